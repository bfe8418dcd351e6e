import json
import secrets
import subprocess
import sys

import pytest

from dbops.cluster import free_port
from tests.helpers import PROJECT_DIR, child_env, manage

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "RENDER": "true",
    "RENDER_EXTERNAL_HOSTNAME": "birdsite.onrender.com",
}

PRINT_SETTINGS = (
    "import json, django; from django.conf import settings; django.setup();"
    "db = settings.DATABASES['default'];"
    "print(json.dumps({'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS,"
    " 'csrf': settings.CSRF_TRUSTED_ORIGINS, 'engine': db['ENGINE'], 'name': str(db['NAME']),"
    " 'host': db.get('HOST'), 'options': db['OPTIONS'], 'max_age': db['CONN_MAX_AGE'],"
    " 'health': db['CONN_HEALTH_CHECKS']}))"
)


def effective_settings(**env):
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=PROJECT_DIR, env=child_env(**env),
        capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout)


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=child_env(**PRODUCTION))
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_missing_secret_key_with_debug_off_fails_with_a_clear_message():
    env = dict(PRODUCTION)
    del env["SECRET_KEY"]
    result = manage("check", env=child_env(**env))
    assert result.returncode == 1
    assert result.stderr.startswith("ImproperlyConfigured: SECRET_KEY is not set.")
    assert result.stderr.count("\n") == 1  # one line, no traceback


@pytest.mark.parametrize("where", ["DATABASE_URL", "--url"])
def test_an_invalid_database_url_is_one_line_without_the_password(where):
    url = "postgresql://u:hunter2@[::1/x"
    if where == "--url":
        result = manage("db_info", "--url", url, env=child_env())
    else:
        result = manage("db_info", env=child_env(DATABASE_URL=url))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "hunter2" not in result.stderr
    assert result.stderr.startswith(
        "CommandError: The database URL is not valid (Invalid IPv6 URL)"
        if where == "--url"
        else "ImproperlyConfigured: DATABASE_URL is not a valid database URL: it does not parse as a URL."
    )


def test_render_defaults_debug_off_and_trusts_its_hostname():
    values = effective_settings(**PRODUCTION)
    assert values["debug"] is False
    assert values["hosts"] == ["birdsite.onrender.com"]
    assert values["csrf"] == ["https://birdsite.onrender.com"]


def test_without_database_url_the_embedded_sqlite_file_is_used():
    values = effective_settings()
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(PROJECT_DIR / "db.sqlite3")
    assert values["debug"] is True


def test_render_style_postgres_url_with_sslmode():
    values = effective_settings(DATABASE_URL="postgres://bird_user:pw@dpg-x.oregon-postgres.render.com/bird_app_db?sslmode=require")
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["name"] == "bird_app_db"
    assert values["host"] == "dpg-x.oregon-postgres.render.com"
    assert values["options"] == {"sslmode": "require", "connect_timeout": 10}
    # Persistent connections, without a health-check query before every request (bench/RESULTS.md).
    assert (values["max_age"], values["health"]) == (600, False)


def test_postgresql_scheme_is_accepted_too():
    values = effective_settings(DATABASE_URL="postgresql://u:p@localhost:5433/birds")
    assert (values["engine"], values["name"]) == ("django.db.backends.postgresql", "birds")


def test_env_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("ALLOWED_HOSTS=from-file.example\nDATABASE_URL=postgres://u:p@filehost/filedb\n")
    values = effective_settings(ENV_FILE=env_file, DATABASE_URL="postgres://u:p@envhost/envdb")
    assert values["hosts"] == ["from-file.example"]
    assert (values["host"], values["name"]) == ("envhost", "envdb")


# (variable, value, what the one line says it accepts); none may be echoed: a URL may hold a password.
INVALID_SETTINGS = [
    ("THROTTLE_ANON_RATE", "", "a number of requests per second, minute, hour or day, e.g. 120/minute"),
    ("THROTTLE_ANON_RATE", "garbage", "a number of requests per second, minute, hour or day, e.g. 120/minute"),
    ("THROTTLE_ANON_RATE", "5/fortnight", "a number of requests per second, minute, hour or day, e.g. 120/minute"),
    ("REDIS_URL", "notaurl", "a Redis URL: redis://[:PASSWORD@]HOST:PORT/DB, rediss://... (TLS) or unix:///PATH"),
    ("REDIS_URL", "redis://:s3cret-pw@cache:abc/0", "a Redis URL: redis://[:PASSWORD@]HOST:PORT/DB"),
    ("NUM_PROXIES", "abc", "a whole number of at least 0"),
    ("BIRDS_MAX_LIST", "abc", "a whole number of at least 1"),
    ("BIRDS_MAX_LIST", "0", "a whole number of at least 1"),
    ("BACKUP_S3_TIMEOUT", "soon", "a whole number of at least 1"),
    ("AWS_ENDPOINT_URL", "localhost:9000", "an http:// or https:// URL with a host"),
    ("RENDER_API_URL", "api.render.com", "an http:// or https:// URL with a host"),
    ("RENDER_API_TIMEOUT", "soon", "a whole number of at least 1"),
    ("AWS_ENDPOINT_URL_S3", "s3.example.com", "an http:// or https:// URL with a host"),
    ("LOG_LEVEL", "loud", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("SECURE_HSTS_SECONDS", "a year", "a whole number of at least 0"),
    ("SECURE_SSL_REDIRECT", "ture", "1, true, yes or on, or 0, false, no or off"),
    ("DEBUG", "maybe", "1, true, yes or on, or 0, false, no or off"),
]
INVALID_SETTING_LINES = {
    (name, value): f"ImproperlyConfigured: {name} is not valid: it must be {accepted}"
    for name, value, accepted in INVALID_SETTINGS
}
INVALID_SETTING_LINES.update({
    ("DATABASE_URL", "postgresql://u:hunter22@h/db?connect_timeout=abc"):
        "ImproperlyConfigured: connect_timeout in DATABASE_URL must be a whole number of seconds (0: wait forever).",
    ("DATABASE_URL", "postgresql://u:p@ss/w:rd@host/db"):
        "ImproperlyConfigured: DATABASE_URL: The database URL does not parse: @ / : % # ? in a password must be "
        "percent-encoded",
    ("DATABASE_URL", " "): "ImproperlyConfigured: DATABASE_URL is not valid: it must be a database URL",
    ("BACKUP_DIR", "s3:/bucket"): "ImproperlyConfigured: BACKUP_DIR: Malformed object storage URL s3:/bucket: "
                                  "write s3://BUCKET/PREFIX (two slashes after s3:).",
    ("BACKUP_DIR", "s3:bucket"): "ImproperlyConfigured: BACKUP_DIR: Malformed object storage URL s3:bucket",
    ("BACKUP_DIR", "S3//bucket/prefix"): "ImproperlyConfigured: BACKUP_DIR: Malformed object storage URL S3//bucket",
})


def assert_one_line_without_value(output, line, value):
    assert output.startswith(line), output
    assert "Traceback" not in output
    for secret in ("hunter22", "s3cret-pw", "w:rd"):
        assert secret not in output


@pytest.mark.parametrize(("name", "value"), INVALID_SETTING_LINES)
def test_an_invalid_setting_fails_manage_py_check_in_one_line(name, value):
    result = manage("check", env=child_env(**{**PRODUCTION, name: value}))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert_one_line_without_value(result.stderr, INVALID_SETTING_LINES[name, value], value)


@pytest.mark.parametrize(("name", "value"), INVALID_SETTING_LINES)
def test_an_invalid_setting_stops_gunicorn_before_it_serves(name, value):
    """Not a site whose every /birds request fails while /healthz answers: the boot itself fails, once."""
    result = subprocess.run(
        ["gunicorn", "--bind", f"127.0.0.1:{free_port()}", "--workers", "2", "birdsite.wsgi"],
        cwd=PROJECT_DIR, env=child_env(**{**PRODUCTION, name: value}), capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert "Booting worker" not in result.stderr
    last_line = result.stderr.splitlines()[-1]
    assert_one_line_without_value(last_line, INVALID_SETTING_LINES[name, value], value)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("THROTTLE_ANON_RATE", "5/min"), ("THROTTLE_ANON_RATE", "1000/day"), ("REDIS_URL", "rediss://:pw@h:6380/1"),
     ("REDIS_URL", "unix:///run/redis.sock"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
     ("BACKUP_DIR", "s3://birds/nightly"), ("NUM_PROXIES", "0"), ("LOG_LEVEL", "debug")],
)
def test_valid_settings_pass_the_check(name, value):
    result = manage("check", env=child_env(**{**PRODUCTION, name: value}))
    assert result.returncode == 0, result.stderr


def test_a_sqlite_path_with_an_at_sign_is_not_a_password(tmp_path):
    folder = tmp_path / "me@example"
    folder.mkdir()
    values = effective_settings(DATABASE_URL=f"sqlite:///{folder}/db.sqlite3")
    assert values["name"] == f"{folder}/db.sqlite3"


def test_a_mistyped_object_url_never_shows_credentials():
    result = manage("check", env=child_env(BACKUP_DIR="s3:AKIAEXAMPLE:very-secret@bucket/x"))
    assert result.stderr == "ImproperlyConfigured: BACKUP_DIR: Malformed object storage URL s3:****: write " \
                            "s3://BUCKET/PREFIX (two slashes after s3:).\n"


def test_commands_and_the_site_collect_garbage_once_django_has_started():
    """manage.py and birdsite/wsgi.py keep the collector off while Django starts; a command or a site that
    then ran without it would keep every reference cycle it made until it exits."""
    command = manage("shell", "--verbosity", "0", "-c", "import gc; print(gc.isenabled())")
    assert (command.returncode, command.stdout.strip()) == (0, "True"), command.stderr
    site = subprocess.run(
        [sys.executable, "-c", "import gc, birdsite.wsgi; print(gc.isenabled())"],
        cwd=PROJECT_DIR, env=child_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert (site.returncode, site.stdout.strip()) == (0, "True"), site.stderr
