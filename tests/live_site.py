"""The site served by gunicorn on a loopback port, over a fresh, migrated and seeded database,
for clients that need a real server: a browser, a fuzzer."""
import secrets
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from dbops.cluster import free_port
from tests.helpers import PROJECT_DIR, WORK_TREE, child_env, copy_project, manage


def project_with_static_files(destination: Path) -> Path:
    """A copy of the project (the work tree's files, untracked ones too) with its static files collected.

    Its own copy, so that its staticfiles/ is its own: collectstatic rewrites files in place, and a site
    served from a folder that another test collects into (another pytest-xdist worker, build.sh) loses
    them for a moment. Collected once: with DEBUG off the pages link the hashed names only collectstatic
    (build.sh) writes."""
    copy_project(destination, *WORK_TREE)
    env = child_env(**production_over_http())
    result = manage("collectstatic", "--no-input", env=env, cwd=destination)
    assert result.returncode == 0, result.stdout + result.stderr
    return destination


@dataclass(frozen=True)
class LiveSite:
    url: str
    staff_username: str
    staff_password: str
    staff_token: str
    env: dict = field(repr=False)  # the site's environment, for manage.py commands against it
    log: BinaryIO  # gunicorn's stdout and stderr

    def log_text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def run_manage(*args, env):
    result = manage(*args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def wait_until_answering(server, url, log):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise AssertionError(f"gunicorn exited: {log.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5):
                return
        except OSError:  # refused, reset, or a first answer slower than 5 s (a busy machine): ask again
            time.sleep(0.2)
    raise AssertionError("gunicorn did not answer within 30 seconds")


def production_over_http(**settings):
    """The site's environment as in production (DEBUG off, a strong key), but over plain HTTP on the
    loopback address."""
    return {
        "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "SECURE_SSL_REDIRECT": "0", "ALLOWED_HOSTS": "127.0.0.1",
        **settings,
    }


@dataclass(frozen=True)
class SiteDatabase:
    """A database migrated and seeded once, with a staff user who has a token: live sites serve copies."""

    name: str
    staff_username: str
    staff_password: str
    staff_token: str


@contextmanager
def site_database(pg_server):
    """The site's database as build.sh leaves it (the four tutorial birds) plus a staff user "keeper" with
    a token; made once, because migrating takes seconds and copying it (CREATE DATABASE ... TEMPLATE)
    does not."""
    password = secrets.token_urlsafe(16)
    with pg_server.database("site_template") as database:
        env = child_env(DATABASE_URL=pg_server.url(database), DJANGO_SUPERUSER_PASSWORD=password)
        run_manage("migrate", "--no-input", env=env)
        run_manage("seed_birds", env=env)
        run_manage("createsuperuser", "--no-input", "--username", "keeper", "--email", "k@example.com", env=env)
        token = run_manage("drf_create_token", "keeper", env=env).split()[2]
        yield SiteDatabase(name=database, staff_username="keeper", staff_password=password, staff_token=token)


@contextmanager
def live_site(pg_server, project, template: SiteDatabase, **settings):
    """Serve a copy of template (site_database) from project (project_with_static_files).

    settings: environment variables for the site, e.g. DEBUG="0".
    """
    with pg_server.database("live", template=template.name) as database:
        env = child_env(DATABASE_URL=pg_server.url(database), THROTTLE_ANON_RATE="100000/minute", **settings)
        with gunicorn(env, cwd=project) as (url, log):
            yield LiveSite(
                url=url, staff_username=template.staff_username, staff_password=template.staff_password,
                staff_token=template.staff_token, env=env, log=log,
            )


@contextmanager
def gunicorn(env, cwd=PROJECT_DIR):
    """The site (the project in cwd) on a free loopback port with 2 workers: yields its URL and its log file
    (stdout and stderr)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A file, not a pipe: a fuzz run logs thousands of lines and a full pipe would stall gunicorn.
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            ["gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "birdsite.wsgi"],
            cwd=cwd, env=env, stdout=log, stderr=log,
        )
        try:
            wait_until_answering(server, url, log)
            yield url, log
        finally:
            server.terminate()
            server.wait(timeout=10)
