"""reset_db stopped between its steps: a stop signal waits for the swap to finish; kill -9 leaves the
database's name in place (with its data, or already empty), and the next reset_db finishes or undoes
what it finds. The test holds a lock that one step waits on, to stop it exactly there."""

import contextlib
import signal
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
from django.db.migrations.loader import MigrationLoader

from dbops import postgres
from dbops.connection import target_from_url
from tests.dbdata import create_app_data, snapshot
from tests.helpers import PROJECT_DIR, child_env, manage
from tests.test_interrupts import assert_interrupted, interrupt

WAITING_ON_A_LOCK = "SELECT pid, query FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> %s"


def tables(server, database):
    return server.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", database=database
    )


def databases_like(server, pattern):
    return [name for (name,) in server.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [pattern])]


@pytest.fixture
def app_database(pg_server):
    with pg_server.database("reset_stop") as name:
        create_app_data(pg_server, name)
        yield name
    for leftover in databases_like(pg_server, f"{name}\\_reset\\_%"):
        pg_server.drop_database(leftover)


@contextlib.contextmanager
def database_locked(pg_server, name):
    """Hold a lock on database name (COMMENT ON takes one) that renaming or dropping it waits for."""
    conn = pg_server.connect()
    conn.autocommit = False
    try:
        with conn.cursor() as cursor:
            cursor.execute(f'COMMENT ON DATABASE "{name}" IS NULL')
        yield conn
    finally:
        conn.rollback()
        conn.close()


def start_reset(pg_server, name):
    return subprocess.Popen(
        [sys.executable, "manage.py", "reset_db", "--noinput"],
        cwd=PROJECT_DIR,
        env=child_env(DATABASE_URL=pg_server.url(name)),
        preexec_fn=lambda: [signal.signal(number, signal.SIG_DFL) for number in (signal.SIGINT, signal.SIGTERM)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_blocked(pg_server, lock_holder, process):
    """The reset's statement that waits on the test's lock, once it waits."""
    holder_pid = lock_holder.info.backend_pid
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        waiting = pg_server.execute(WAITING_ON_A_LOCK, [holder_pid])
        if waiting:
            return waiting[0]
        time.sleep(0.02)
    raise AssertionError(f"reset_db never waited on the lock: {process.communicate()}")


def test_a_stop_during_the_swap_waits_for_it_and_says_the_database_is_empty(pg_server, app_database):
    masked = f"postgresql://postgres:****@127.0.0.1:{pg_server.port}/{app_database}"
    with database_locked(pg_server, app_database) as holder:
        process = start_reset(pg_server, app_database)
        _, query = wait_until_blocked(pg_server, holder, process)
        assert "RENAME" in query
        process.send_signal(signal.SIGTERM)
        # It is stopped in the middle of the swap, which must still end: the lock goes.
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr == f"CommandError: Interrupted after the reset had finished: {masked} is now empty.\n"
    assert tables(pg_server, app_database) == []
    assert databases_like(pg_server, f"{app_database}\\_reset\\_%") == []


def test_a_reset_killed_before_the_swap_leaves_the_database_and_the_next_one_undoes_it(pg_server, app_database):
    before = snapshot(pg_server, app_database)
    with database_locked(pg_server, app_database) as holder:
        process = start_reset(pg_server, app_database)
        backend, _ = wait_until_blocked(pg_server, holder, process)
        process.kill()
        process.communicate(timeout=60)
        # The server ends the dead client's session, as it does once it notices the closed connection.
        pg_server.execute("SELECT pg_terminate_backend(%s)", [backend])
    assert snapshot(pg_server, app_database) == before  # the name is there, with all its data
    (replacement,) = databases_like(pg_server, f"{app_database}\\_reset\\_%")

    result = manage("reset_db", "--noinput", env=child_env(DATABASE_URL=pg_server.url(app_database)))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"First dropped the empty database {replacement!r} of a reset of {app_database} that was stopped before it."
    )
    assert tables(pg_server, app_database) == []
    assert databases_like(pg_server, f"{app_database}\\_reset\\_%") == []


def test_the_next_reset_finishes_one_stopped_after_the_swap(pg_server, app_database):
    # The first two steps of a reset, run here; the process that ran them died before the third.
    before = snapshot(pg_server, app_database)
    target = target_from_url(pg_server.url(app_database))
    with postgres.maintenance_connection(target) as conn, conn.cursor() as cursor:
        postgres.create_replacement(cursor, target)
        postgres.swap_in_replacement(cursor, target)
    (old,) = databases_like(pg_server, f"{app_database}\\_reset\\_%")
    assert snapshot(pg_server, old) == before and tables(pg_server, app_database) == []

    result = manage("reset_db", "--noinput", env=child_env(DATABASE_URL=pg_server.url(app_database)))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"First finished a reset of {app_database} that was stopped before it dropped the old contents."
    )
    assert databases_like(pg_server, f"{app_database}\\_reset\\_%") == []


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=lambda number: signal.Signals(number).name)
def test_a_stop_while_migrating_after_the_reset_says_the_reset_happened(pg_server, app_database, tmp_path, stop):
    """The test locks django_migrations once the new database has it, so migrate waits there for the stop."""
    holder, release = None, None

    def migrating():
        nonlocal holder, release
        try:
            holder = holder or psycopg2.connect(pg_server.url(app_database))
            holder.cursor().execute("LOCK TABLE django_migrations IN ACCESS EXCLUSIVE MODE")
        except psycopg2.Error:  # not created yet: the reset or migrate's first step is still running
            if holder is not None:
                holder.close()
            holder = None
            return False
        release = threading.Timer(0.5, holder.rollback)
        release.start()
        return True

    try:
        process, stdout, stderr, children = interrupt(
            "reset_db", "--noinput", "--migrate", when_running=None, backup_dir=tmp_path, ready=migrating, stop=stop,
            env={"DATABASE_URL": pg_server.url(app_database)},
        )
    finally:
        if release is not None:
            release.join()
        if holder is not None:
            holder.close()

    target = f"postgresql://postgres:****@127.0.0.1:{pg_server.port}/{app_database}"
    assert f"Reset {target}: it is now empty." in stdout
    assert_interrupted(
        process, stderr, children,
        f"Interrupted while migrating after the reset: {target} holds just the migrations that had finished; run "
        "migrate again.",
        stop,
    )
    assert ("birds",) not in tables(pg_server, app_database)  # the sample app's table went with the reset
    applied = pg_server.execute("SELECT count(*) FROM django_migrations", database=app_database)[0][0]
    assert applied < len(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
