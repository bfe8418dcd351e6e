"""End to end as on Render: build.sh against PostgreSQL, then gunicorn serving the site."""
import json
import re
import secrets
import subprocess
import time
import urllib.request

import pytest

from dbops.cluster import free_port
from tests.helpers import TUTORIAL_BIRDS, WORK_TREE, child_env, copy_project


@pytest.fixture
def checkout(tmp_path):
    """The project as Render builds it: a copy of its own, whose staticfiles/ build.sh alone writes."""
    return copy_project(tmp_path / "birdsite", *WORK_TREE)


@pytest.fixture
def production_env(pg_server):
    with pg_server.database("deploy") as database:
        yield child_env(
            DEBUG="0", RENDER="true", RENDER_EXTERNAL_HOSTNAME="localhost",
            SECRET_KEY=secrets.token_urlsafe(50), DATABASE_URL=pg_server.url(database, scheme="postgres"),
            DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_EMAIL="admin@example.com",
            DJANGO_SUPERUSER_PASSWORD=secrets.token_urlsafe(16), WEB_CONCURRENCY="1",
        )


def build(checkout, env):
    result = subprocess.run(["./build.sh"], cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fetch(port, path):
    # Render's proxy terminates TLS and says so in X-Forwarded-Proto.
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"X-Forwarded-Proto": "https", "Host": "localhost"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers, response.read()


def wait_until_serving(server, port):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read()
        try:
            return fetch(port, "/healthz")
        except OSError:  # refused, reset, or a first answer slower than 10 s (a busy machine): ask again
            time.sleep(0.2)
    raise AssertionError("gunicorn did not answer within 30 seconds")


def test_build_then_gunicorn_serves_birds_and_admin_static(checkout, production_env):
    first = build(checkout, production_env)
    assert "Seeded 4 birds" in first
    assert "Created superuser 'admin'" in first
    again = build(checkout, production_env)
    assert "already holds 4 birds; nothing seeded" in again
    assert "Superuser 'admin' already exists" in again

    port = free_port()
    env = dict(production_env, PORT=str(port))
    server = subprocess.Popen(
        ["gunicorn", "birdsite.wsgi"], cwd=checkout, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        status, _, body = wait_until_serving(server, port)
        assert (status, json.loads(body)) == (200, {"status": "ok", "database": "ok"})

        status, headers, body = fetch(port, "/birds")
        assert (status, json.loads(body)) == (200, TUTORIAL_BIRDS)

        _, _, login_page = fetch(port, "/admin/login/")
        stylesheet = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login_page)
        assert stylesheet, "the admin should link its stylesheet under a hashed name"
        status, headers, css = fetch(port, stylesheet.group(1).decode())
        assert status == 200
        assert headers["Content-Type"].startswith("text/css")
        assert b"body" in css
    finally:
        server.terminate()
        server.wait(timeout=10)
