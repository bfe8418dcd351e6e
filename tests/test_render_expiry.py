"""db_info and Render's free PostgreSQL expiry, against a stand-in of Render's API (tests/renderapi.py)."""

import json
import subprocess
from datetime import timedelta
from urllib.parse import quote

import pytest
import yaml

from dbops import render
from tests.helpers import PROJECT_DIR, child_env, manage
from tests.renderapi import API_KEY, fake_render_api, postgres_detail, postgres_id, silent_api
from tests.servers import make_certificates

INSTANCE = postgres_id("d1birds")
EXTERNAL_URL = f"postgresql://bird_app_db_user:Pa55word@{INSTANCE}.oregon-postgres.render.com/bird_app_db"


@pytest.fixture
def render_api():
    with fake_render_api() as api:
        yield api


def expiry_check(api_url, *options, url=EXTERNAL_URL, key=API_KEY, **env):
    """db_info --expires-within as the workflow runs it: the URL from the environment, not argv."""
    variables = {"DATABASE_URL": url, "RENDER_API_URL": api_url, **env}
    if key is not None:
        variables["RENDER_API_KEY"] = key
    return manage("db_info", "--expires-within", "7d", *options, env=child_env(**variables))


def one_line(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert API_KEY not in result.stdout + result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (INSTANCE, INSTANCE),  # the Internal URL's host (the cron job's)
        (f"{INSTANCE}.oregon-postgres.render.com", INSTANCE),  # the External URL's
        (f"{INSTANCE}.frankfurt-postgres.render.com".upper(), INSTANCE),
        ("localhost", None),
        ("dpg-short-a", None),
        (f"{INSTANCE}.example.com", None),
        (f"{INSTANCE}.oregon-postgres.render.com.evil.example", None),
        ("", None),
    ],
)
def test_the_instance_id_is_read_from_either_render_host(host, expected):
    assert render.instance_id(host) == expected


def test_a_free_instance_with_five_days_left_fails_the_check_and_says_how_to_move(render_api):
    render_api.add(postgres_detail(INSTANCE, expires_in=timedelta(days=5, hours=1)))
    result = expiry_check(render_api.url)
    assert result.returncode == 1
    line = one_line(result)
    assert f"Render instance bird-db ({INSTANCE}, plan free, PostgreSQL 18, oregon): expires on " in line
    assert "in 5 days" in line
    assert "copy_db --all" in line
    assert render_api.requests == [(f"/v1/postgres/{INSTANCE}", f"Bearer {API_KEY}")]


def test_a_free_instance_with_twenty_days_left_passes(render_api):
    render_api.add(postgres_detail(INSTANCE, expires_in=timedelta(days=20, hours=1)))
    result = expiry_check(render_api.url)
    assert result.returncode == 0, result.stderr
    assert "expires on" in one_line(result)
    assert "in 20 days" in result.stdout


def test_a_certificate_this_python_cannot_verify_says_how_to_make_it_trust_one(tmp_path):
    # Python from python.org on macOS trusts no authority until its "Install Certificates.command" has run.
    certificates = make_certificates(tmp_path, ["localhost"], ["127.0.0.1"])
    with fake_render_api(certificates) as api:
        api.add(postgres_detail(INSTANCE, expires_in=timedelta(days=20, hours=1)))
        refused = expiry_check(api.url)
        trusted = expiry_check(api.url, SSL_CERT_FILE=str(certificates.ca_cert))
    assert refused.returncode == 1
    line = one_line(refused)
    assert line.startswith(f"CommandError: Could not verify the certificate of Render's API at {api.url} (")
    assert "Install Certificates.command" in line and "SSL_CERT_FILE" in line
    assert trusted.returncode == 0, trusted.stderr
    assert "in 20 days" in trusted.stdout


def test_an_expired_instance_fails_with_the_day_render_deletes_it(render_api):
    render_api.add(postgres_detail(INSTANCE, expires_in=-timedelta(days=3)))
    result = expiry_check(render_api.url)
    assert result.returncode == 1
    line = one_line(result)
    assert "expired on" in line
    assert "Render deletes it on" in line
    assert "copy_db --all" in line


def test_a_paid_instance_does_not_expire(render_api):
    render_api.add(postgres_detail(INSTANCE, plan="basic_256mb"))
    result = expiry_check(render_api.url)
    assert result.returncode == 0, result.stderr
    assert one_line(result).endswith("plan basic_256mb, PostgreSQL 18, oregon): does not expire.")


def test_the_internal_url_finds_the_same_instance(render_api):
    render_api.add(postgres_detail(INSTANCE, expires_in=timedelta(days=20, hours=1)))
    result = expiry_check(render_api.url, url=f"postgresql://u:p@{INSTANCE}/bird_app_db")
    assert result.returncode == 0, result.stderr
    assert INSTANCE in one_line(result)


def test_a_host_that_is_not_renders_has_nothing_to_check(render_api):
    result = expiry_check(render_api.url, url="postgresql://u:p@db.example.com/bird_app_db")
    assert result.returncode == 1
    assert "db.example.com is not a Render PostgreSQL host" in one_line(result)
    assert render_api.requests == []


def test_the_check_without_a_key_says_which_variable_to_set(render_api):
    result = expiry_check(render_api.url, key=None)
    assert result.returncode == 1
    assert "set RENDER_API_KEY" in one_line(result)


def test_a_wrong_key_is_one_line_without_the_key(render_api):
    render_api.add(postgres_detail(INSTANCE, expires_in=timedelta(days=20)))
    result = expiry_check(render_api.url, key="rnd_wrong_key_that_must_not_show")
    assert result.returncode == 1
    line = one_line(result)
    assert "401" in line
    assert "rnd_wrong_key_that_must_not_show" not in result.stdout + result.stderr


def test_an_unknown_instance_is_one_line(render_api):
    result = expiry_check(render_api.url)
    assert result.returncode == 1
    assert f"Render has no PostgreSQL instance {INSTANCE} for this API key (404)" in one_line(result)


def test_a_rate_limit_is_waited_out_once(render_api):
    render_api.add(postgres_detail(INSTANCE, expires_in=timedelta(days=20, hours=1)))
    render_api.respond_with(429, Retry_After="1")
    result = expiry_check(render_api.url)
    assert result.returncode == 0, result.stderr
    assert "in 20 days" in one_line(result)
    assert len(render_api.requests) == 2


def test_a_second_rate_limit_is_one_line(render_api):
    render_api.add(postgres_detail(INSTANCE, expires_in=timedelta(days=20)))
    render_api.respond_with(429, Retry_After="1")
    render_api.respond_with(429, Retry_After="30")
    result = expiry_check(render_api.url)
    assert result.returncode == 1
    assert "rate-limiting" in one_line(result)
    assert "try again in 30 seconds" in result.stderr
    assert len(render_api.requests) == 2


def test_an_api_that_never_answers_times_out_in_one_line():
    with silent_api() as url:
        result = expiry_check(url, RENDER_API_TIMEOUT="1")
    assert result.returncode == 1
    assert "Render's API did not answer within 1 s" in one_line(result)


def test_a_bad_timeout_setting_is_one_line(render_api):
    result = expiry_check(render_api.url, RENDER_API_TIMEOUT="soon")
    assert result.returncode == 1
    assert one_line(result) == (
        "ImproperlyConfigured: RENDER_API_TIMEOUT is not valid: it must be a whole number of at least 1."
    )


@pytest.fixture
def render_host_db(pg_server, app_db):
    """app_db reached through a Render-style host name: libpq connects to hostaddr, the name stays as given."""
    return (
        f"postgresql://{quote(pg_server.user)}:{quote(pg_server.password)}@{INSTANCE}:{pg_server.port}/{app_db}"
        f"?hostaddr=127.0.0.1"
    )


def test_db_info_shows_the_instance_and_its_expiry(render_api, render_host_db):
    render_api.add(postgres_detail(INSTANCE, expires_in=timedelta(days=12, hours=1)))
    env = child_env(DATABASE_URL=render_host_db, RENDER_API_KEY=API_KEY, RENDER_API_URL=render_api.url)
    result = manage("db_info", env=env)
    assert result.returncode == 0, result.stderr
    assert f"Render instance bird-db ({INSTANCE}, plan free, PostgreSQL 18, oregon): expires on" in result.stdout
    assert "in 12 days" in result.stdout
    assert "Tables of bird_app_db" in result.stdout
    assert API_KEY not in result.stdout + result.stderr

    as_json = json.loads(manage("db_info", "--json", env=env).stdout)["render"]
    assert as_json["id"] == INSTANCE
    assert as_json["plan"] == "free"
    assert as_json["days_left"] == 12
    assert as_json["expires_at"] == render_api.instances[INSTANCE]["expiresAt"].replace("Z", "+00:00")
    assert as_json["deletes_at"] > as_json["expires_at"]


def test_db_info_without_a_key_or_off_render_is_unchanged(pg_server, app_db, render_api):
    env = child_env(RENDER_API_KEY=API_KEY, RENDER_API_URL=render_api.url)
    result = manage("db_info", "--url", pg_server.url(app_db), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["render"] is None
    assert render_api.requests == []


def test_the_workflow_checks_the_expiry_after_the_backup_when_the_secret_exists():
    workflow = yaml.safe_load((PROJECT_DIR / ".github/workflows/backup.yml").read_text())
    job = workflow["jobs"]["backup"]
    assert job["env"]["RENDER_API_KEY"] == "${{ secrets.RENDER_API_KEY }}"
    names = [step.get("name") for step in job["steps"]]
    check = job["steps"][names.index("Check when the Render instance expires")]
    assert names.index("Back up with retention") < names.index("Check when the Render instance expires")
    assert check["if"] == "env.RENDER_API_KEY != ''"
    assert check["run"] == "python manage.py db_info --expires-within 7d"


def cron_command() -> str:
    blueprint = yaml.safe_load((PROJECT_DIR / "render.yaml").read_text())
    (cron,) = [service for service in blueprint["services"] if service["type"] == "cron"]
    return cron["startCommand"]


@pytest.mark.parametrize("with_key", [False, True])
def test_the_cron_job_checks_the_expiry_only_when_its_environment_has_the_key(
    with_key, pg_server, app_db, tmp_path, render_api
):
    env = child_env(DATABASE_URL=pg_server.url(app_db), BACKUP_DIR=tmp_path, RENDER_API_URL=render_api.url)
    if with_key:
        env["RENDER_API_KEY"] = API_KEY
    result = subprocess.run(["bash", "-c", cron_command()], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    assert "Backed up" in result.stdout
    if with_key:  # the local test server is no Render host, so the check runs and says so
        assert result.returncode == 1
        assert "is not a Render PostgreSQL host" in result.stderr
    else:
        assert result.returncode == 0, result.stderr


def test_an_api_that_cannot_be_reached_is_one_line():
    with silent_api() as url:
        pass  # closed again: nothing listens there now
    result = expiry_check(url)
    assert result.returncode == 1
    assert f"Could not reach Render's API at {url}" in one_line(result)


def test_retry_after_is_read_as_seconds_or_as_a_date():
    assert render.retry_after_seconds("7") == 7
    assert render.retry_after_seconds(None) == 1
    assert render.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: at once
    assert render.retry_after_seconds("soon") == 1
