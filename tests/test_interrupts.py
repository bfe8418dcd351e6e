"""While a backup, restore, copy, drill or seeding of a big database runs: Ctrl-C, SIGTERM (docker stop, timeout,
a cron job's limit) and SIGHUP (a dropped ssh session), each sent to the manage.py process alone, give
exit code 128 + the signal, one line saying what state things are in, no tool left running, nothing
half-written or spooled, no scratch database, and the target as that line says. Also what else is
seen only mid-way: the temporary archive's mode, and a second restore of the same target."""

import contextlib
import os
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time

import psutil
import psycopg2
import pytest

from dbops import postgres
from dbops.connection import target_from_url
from tests.dbdata import snapshot
from tests.helpers import PROJECT_DIR, child_env, manage

# A client is sending rows into the database: the signal lands mid-stream.
COPYING_INTO = "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND query ILIKE 'COPY %%'"
BIG_TABLE = """
CREATE TABLE readings (id bigserial PRIMARY KEY, notes jsonb);
INSERT INTO readings (notes)
SELECT jsonb_build_object('pad', repeat(md5(g::text), 20)) FROM generate_series(1, 300000) g;
"""


@pytest.fixture(scope="module")
def big_db(pg_server):
    """A database that takes pg_dump and pg_restore a few seconds, and an archive of it."""
    with pg_server.database("big") as name:
        pg_server.execute(BIG_TABLE, database=name)
        yield name


@pytest.fixture(scope="module")
def big_archive(pg_server, big_db, tmp_path_factory):
    return back_up(pg_server.url(big_db), tmp_path_factory.mktemp("big") / "big.dump", "--compress", "0")


@pytest.fixture(scope="module")
def big_dir_archive(pg_server, big_db, tmp_path_factory):
    return back_up(pg_server.url(big_db), tmp_path_factory.mktemp("big") / "big.dir", "--jobs", "2")


def back_up(url, path, *options):
    result = manage("backup_db", "--url", url, "--output", str(path), *options)
    assert result.returncode == 0, result.stderr
    return path


STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def signal_name(number):
    return signal.Signals(number).name


def stops(*numbers):
    """Parametrize a test by the stop signals it is run with."""
    return pytest.mark.parametrize("stop", numbers, ids=signal_name)


@pytest.fixture
def spool(tmp_path):
    """The user's cache folder that manage.py spools into (XDG_CACHE_HOME), to check it is left empty."""
    return tmp_path / "cache"


def spooled_files(cache):
    return [path for path in cache.rglob("*") if path.is_file()]


def interrupt(
    *args, when_running, backup_dir, ready=lambda: True, stop=signal.SIGINT, cache=None, env=None, loaded=None
):
    """Run manage.py ARGS; once a child named when_running runs (None: no child needed), manage.py has
    loaded the shared library named loaded (if given) and ready(), send the stop signal to manage.py
    alone. Returns the finished process, its output and every child process it had then."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=child_env(BACKUP_DIR=backup_dir, **({"XDG_CACHE_HOME": cache} if cache else {}), **(env or {})),
        # A shell runs background jobs with Ctrl-C ignored (nohup: SIGHUP too), and children inherit
        # that: this test may itself run in one, and then manage.py would never see the signal it sends.
        preexec_fn=lambda: [signal.signal(number, signal.SIG_DFL) for number in STOP_SIGNALS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children, sent = [], False
    deadline = time.monotonic() + 60
    while not sent and process.poll() is None and time.monotonic() < deadline:
        try:
            children = psutil.Process(process.pid).children(recursive=True)
            libraries = {mapping.path for mapping in psutil.Process(process.pid).memory_maps()} if loaded else set()
        except psutil.NoSuchProcess:
            break
        running = when_running is None or when_running in {name_of(child) for child in children}
        if running and (not loaded or any(loaded in path for path in libraries)) and ready():
            os.kill(process.pid, stop)
            sent = True
        else:
            time.sleep(0.02)
    stdout, stderr = process.communicate(timeout=120)
    assert sent, f"it ended before {when_running or 'it'} ran (and was ready): {stderr}"
    return process, stdout, stderr, children


def name_of(process):
    try:
        return process.name()
    except psutil.NoSuchProcess:  # a short-lived one (pg_restore --list, say) that has ended meanwhile
        return ""


def assert_interrupted(process, stderr, children, message, stop=signal.SIGINT, cache=None):
    assert process.returncode == 128 + stop, stderr
    assert "Traceback" not in stderr
    assert stderr == f"CommandError: {message}\n"
    assert not [child for child in children if still_running(child)], "a tool outlived the command"
    if cache is not None:
        assert spooled_files(cache) == []


def still_running(process):
    # A zombie has ended: the pg_restore --jobs workers, orphaned when their leader is stopped, wait
    # there for an init process to collect them (in a container, PID 1 may never do it).
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@stops(*STOP_SIGNALS)
def test_a_stop_during_a_backup_stops_pg_dump_and_leaves_nothing(pg_server, big_db, tmp_path, stop, spool):
    backups = tmp_path / "backups"

    def writing():
        return any(".partial" in path.name for path in backups.glob(".*"))

    process, _, stderr, children = interrupt(
        "backup_db", "--url", pg_server.url(big_db), when_running="pg_dump", backup_dir=backups, ready=writing,
        stop=stop, cache=spool,
    )

    assert_interrupted(process, stderr, children, f"Interrupted: no backup of {big_db} was written.", stop, spool)
    assert list(backups.iterdir()) == []


@pytest.mark.parametrize(
    "source, stop",
    [("file", signal.SIGINT), ("file", signal.SIGTERM), ("file", signal.SIGHUP), ("object", signal.SIGTERM),
     ("object", signal.SIGHUP)],
    ids=lambda value: signal_name(value) if isinstance(value, signal.Signals) else value,
)
def test_a_stop_during_a_restore_rolls_it_back_and_names_the_safety_backup(
    pg_server, app_db, big_archive, tmp_path, source, stop, spool, s3_server, request
):
    """From a local file, or from s3:// (downloaded into the spool first, which must go too)."""
    before = snapshot(pg_server, app_db)
    backups = tmp_path / "backups"
    archive = str(big_archive) if source == "file" else request.getfixturevalue("big_object")

    def restoring():  # psql is sending the archive's rows into the target, in its one transaction
        return bool(pg_server.execute(COPYING_INTO, [app_db]))

    process, _, stderr, children = interrupt(
        "restore_db", archive, "--url", pg_server.url(app_db), "--noinput", when_running="psql",
        backup_dir=backups, ready=restoring, stop=stop, cache=spool, env=s3_server.env(),
    )

    (safety,) = backups.glob("*-pre-restore.dump")
    assert_interrupted(
        process,
        stderr,
        children,
        f"Interrupted: nothing was restored; postgresql://postgres:****@127.0.0.1:{pg_server.port}/{app_db} is as "
        f"it was. The safety backup of what it held is {safety}.",
        stop,
        spool,
    )
    assert snapshot(pg_server, app_db) == before
    assert safety.with_name(safety.name + ".json").is_file()


def test_ctrl_c_during_a_jobs_restore_says_half_restored_and_how_to_put_it_back(
    pg_server, app_db, big_dir_archive, tmp_path
):
    before = snapshot(pg_server, app_db)
    backups = tmp_path / "backups"
    url = pg_server.url(app_db)

    def loading_rows():  # the table is created (committed), and its rows are on their way
        return bool(pg_server.execute("SELECT 1 FROM pg_tables WHERE tablename = 'readings'", database=app_db))

    process, _, stderr, children = interrupt(
        "restore_db", str(big_dir_archive), "--url", url, "--noinput", "--jobs", "2",
        when_running="pg_restore", backup_dir=backups, ready=loading_rows,
    )

    (safety,) = backups.glob("*-pre-restore.dump")
    masked = f"postgresql://postgres:****@127.0.0.1:{pg_server.port}/{app_db}"
    assert_interrupted(
        process,
        stderr,
        children,
        f"Interrupted: {masked} is half-restored (a --jobs restore is not atomic). The safety backup of what it "
        f"held is {safety}. Put it back with: python manage.py restore_db {safety} --url '{masked}' --noinput",
    )
    assert snapshot(pg_server, app_db) != before
    # The command it prints, with the password in place of ****, puts everything back.
    put_back = shlex.split(stderr.split("Put it back with: python manage.py ")[1])
    put_back[put_back.index("--url") + 1] = url
    result = manage(*put_back, env=child_env(BACKUP_DIR=backups))
    assert result.returncode == 0, result.stderr
    after = snapshot(pg_server, app_db)
    assert {table: after[table] for table in before} == before  # (the half-restored table may stay: issue 13)


@stops(signal.SIGINT, signal.SIGHUP)
def test_a_stop_during_a_restore_with_create_drops_the_new_database(pg_server, big_archive, tmp_path, stop):
    name = "interrupted_new_db"
    process, _, stderr, children = interrupt(
        "restore_db", str(big_archive), "--url", pg_server.url(name), "--noinput", "--create",
        when_running="pg_restore", backup_dir=tmp_path / "backups", stop=stop,
    )
    try:
        assert_interrupted(
            process,
            stderr,
            children,
            f"Interrupted: nothing was restored; postgresql://postgres:****@127.0.0.1:{pg_server.port}/{name} is as "
            "it was (the database created for it was dropped).",
            stop,
        )
        assert not pg_server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
    finally:
        pg_server.drop_database(name)


@stops(signal.SIGINT, signal.SIGTERM)
def test_a_stop_during_a_copy_stops_both_tools_and_keeps_the_target(pg_server, big_db, app_db, tmp_path, stop):
    before = snapshot(pg_server, app_db)
    process, _, stderr, children = interrupt(
        "copy_db", "--from", pg_server.url(big_db), "--to", pg_server.url(app_db), "--noinput",
        when_running="pg_restore", backup_dir=tmp_path / "backups", stop=stop,
    )
    assert_interrupted(
        process,
        stderr,
        children,
        f"Interrupted: the copy of {big_db!r} was rolled back, so postgresql://postgres:****@127.0.0.1:"
        f"{pg_server.port}/{app_db} is as it was before; the source was not changed. Databases copied before it "
        "are complete.",
        stop,
    )
    assert snapshot(pg_server, app_db) == before


@stops(signal.SIGTERM)
def test_a_stop_during_a_copy_into_a_new_database_drops_it(pg_server, big_db, tmp_path, stop):
    name = "interrupted_copy_db"

    def copying():  # pg_restore is sending rows into the database that copy_db created
        return bool(pg_server.execute(COPYING_INTO, [name]))

    process, _, stderr, children = interrupt(
        "copy_db", "--from", pg_server.url(big_db), "--to", pg_server.url(name), "--noinput",
        when_running="pg_restore", backup_dir=tmp_path / "backups", ready=copying, stop=stop,
    )
    try:
        assert_interrupted(
            process,
            stderr,
            children,
            f"Interrupted: the copy of {big_db!r} was rolled back, so postgresql://postgres:****@127.0.0.1:"
            f"{pg_server.port}/{name} is as it was (it did not exist); the source was not changed. Databases "
            "copied before it are complete.",
            stop,
        )
        assert not pg_server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
    finally:
        pg_server.drop_database(name)


@pytest.mark.parametrize("into", ["an existing database", "a new database"])
def test_a_stop_while_the_committed_copy_is_compared_with_the_source_says_what_the_target_holds(
    pg_server, big_db, app_db, tmp_path, into
):
    name = app_db if into == "an existing database" else "copied_then_stopped"

    def comparing():  # the copy has committed; its rows' fingerprints are being taken
        return bool(pg_server.execute(
            "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND query LIKE '%%md5(ROW(%%' AND state = 'active'",
            [name],
        ))

    try:
        process, _, stderr, children = interrupt(
            "copy_db", "--from", pg_server.url(big_db), "--to", pg_server.url(name), "--noinput",
            when_running=None, backup_dir=tmp_path / "backups", ready=comparing,
        )
    finally:
        if into == "a new database":
            created = pg_server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            pg_server.drop_database(name)
    target = f"postgresql://postgres:****@127.0.0.1:{pg_server.port}/{name}"
    if into == "a new database":
        message = (
            f"Interrupted: the copy of {big_db!r} was rolled back, so {target} is as it was (it did not exist); the "
            "source was not changed. Databases copied before it are complete."
        )
    else:
        message = (
            f"Interrupted while checking the copy of {big_db!r}: {target} holds the copy, committed but not yet "
            "compared with the source; the source was not changed. Databases copied before it are complete."
        )
    assert_interrupted(process, stderr, children, message)
    if into == "a new database":
        assert not created
    else:
        assert pg_server.execute("SELECT count(*) FROM readings", database=name) == [(300000,)]


@stops(signal.SIGINT, signal.SIGTERM)
def test_a_stop_during_seed_birds_rolls_it_back_in_one_line(pg_server, tmp_path, stop):
    with pg_server.database("seeded") as name:
        env = {"DATABASE_URL": pg_server.url(name)}
        for setup in (["migrate", "--no-input"], ["seed_birds"]):
            assert manage(*setup, env=child_env(**env)).returncode == 0
        before = snapshot(pg_server, name)

        def generating():  # the generated birds are being copied in, in seed_birds' one transaction
            return bool(pg_server.execute(COPYING_INTO, [name]))

        process, _, stderr, children = interrupt(
            "seed_birds", "--count", "3000000", when_running=None, backup_dir=tmp_path, ready=generating, stop=stop,
            env=env,
        )

        assert_interrupted(process, stderr, children, "Interrupted: nothing was changed.", stop)
        assert snapshot(pg_server, name) == before


def test_the_archive_is_private_while_it_is_written(pg_server, big_db, tmp_path):
    backups = tmp_path / "backups"
    modes = set()

    def partial_mode_seen():
        modes.update(stat.S_IMODE(path.stat().st_mode) for path in backups.glob(".*.partial-*"))
        return bool(modes)

    process, _, stderr, children = interrupt(
        "backup_db", "--url", pg_server.url(big_db), when_running="pg_dump", backup_dir=backups,
        ready=partial_mode_seen,
    )
    assert modes == {0o600}
    assert_interrupted(process, stderr, children, f"Interrupted: no backup of {big_db} was written.")


def test_a_second_restore_of_the_same_target_is_refused_in_one_line(pg_server, app_db, big_archive, tmp_path):
    # The first restore is this test holding the product's own restore lock, for as long as it needs:
    # a real first restore_db may end before a second one on a busy machine has even started.
    backups = tmp_path / "backups"
    url = pg_server.url(app_db)
    before = snapshot(pg_server, app_db)
    with postgres.restore_lock(target_from_url(url)):
        second = manage("restore_db", str(big_archive), "--url", url, "--noinput", env=child_env(BACKUP_DIR=backups))
    assert second.returncode == 1
    assert second.stderr == (
        f"CommandError: Another restore into postgresql://postgres:****@127.0.0.1:{pg_server.port}/{app_db} is "
        "running; try again when it has ended. Nothing was restored.\n"
    )
    assert snapshot(pg_server, app_db) == before
    assert not backups.exists() or not list(backups.glob("*-pre-restore.dump"))  # and took no safety backup


@pytest.fixture(scope="module")
def big_object(s3_server, big_archive):
    """big_archive and its manifest in a bucket: s3://BUCKET/big.dump."""
    bucket = s3_server.new_bucket()
    for path in (big_archive, big_archive.with_name(big_archive.name + ".json")):
        s3_server.client().upload_file(str(path), bucket, path.name)
    return f"s3://{bucket}/{big_archive.name}"


@stops(signal.SIGHUP)
def test_a_stop_during_a_backup_to_object_storage_uploads_nothing_and_removes_the_spool(
    pg_server, big_db, s3_server, stop, spool
):
    bucket = s3_server.new_bucket()
    modes = set()

    def spooling():  # into private folders of the user's, not the shared temporary folder
        files = spooled_files(spool)
        modes.update(stat.S_IMODE(folder.stat().st_mode) for path in files for folder in path.parents[:2])
        return bool(files)

    process, _, stderr, children = interrupt(
        "backup_db", "--url", pg_server.url(big_db), when_running="pg_dump", backup_dir=f"s3://{bucket}/nightly",
        ready=spooling, stop=stop, cache=spool, env=s3_server.env(),
    )

    assert_interrupted(process, stderr, children, f"Interrupted: no backup of {big_db} was written.", stop, spool)
    assert s3_server.keys(bucket) == []
    assert modes == {0o700}


@stops(signal.SIGTERM)
def test_a_stop_during_a_restore_drill_drops_its_scratch_database(pg_server, big_db, big_archive, tmp_path, stop):
    def drilling():
        return bool(pg_server.execute(COPYING_INTO.replace("datname = %s", "datname LIKE %s"), ["verify\\_%"]))

    process, _, stderr, children = interrupt(
        "verify_backup", str(big_archive), when_running="psql", backup_dir=tmp_path / "backups", ready=drilling,
        stop=stop, env={"DATABASE_URL": pg_server.url(big_db)},
    )

    assert_interrupted(
        process, stderr, children, "Interrupted: the drill's scratch database was dropped; nothing else was changed.",
        stop,
    )
    assert pg_server.execute("SELECT datname FROM pg_database WHERE datname LIKE 'verify\\_%'") == []


@stops(signal.SIGINT)
def test_a_stop_while_the_backup_is_encrypted_is_an_interrupt_not_an_encryption_error(
    pg_server, big_db, tmp_path, stop
):
    from pyrage import x25519

    backups = tmp_path / "backups"
    recipient = str(x25519.Identity.generate().to_public())

    def encrypting():  # pyrage has written the age header: it is reading pg_dump's output
        return any(path.stat().st_size > 0 for path in backups.glob(".*.partial-*"))

    process, _, stderr, children = interrupt(
        "backup_db", "--url", pg_server.url(big_db), when_running="pg_dump", backup_dir=backups, ready=encrypting,
        stop=stop, env={"BACKUP_AGE_RECIPIENTS": recipient},
    )

    assert_interrupted(process, stderr, children, f"Interrupted: no backup of {big_db} was written.", stop)
    assert list(backups.iterdir()) == []


@stops(signal.SIGINT, signal.SIGTERM)
def test_a_stop_during_django_start_up_is_one_line(pg_server, app_db, tmp_path, stop):
    # Django's time zone support loads the _zoneinfo extension during its start-up: manage.py reaches
    # it only after installing the stop signals' handling, and before any command runs.
    process, stdout, stderr, _ = interrupt(
        "db_info", "--url", pg_server.url(app_db), when_running=None, loaded="_zoneinfo",
        backup_dir=tmp_path / "backups", stop=stop,
    )
    assert process.returncode == 128 + stop, stderr
    assert (stdout, stderr) == ("", "Interrupted while starting; nothing was changed.\n")


def kill_minus_9(*args, when_running, backup_dir, ready, cache=None, env=None):
    """Run manage.py ARGS and kill -9 it mid-way (and its tools, as when the whole machine stops): it
    can clean nothing up."""
    process, _, stderr, children = interrupt(
        *args, when_running=when_running, backup_dir=backup_dir, ready=ready, stop=signal.SIGKILL, cache=cache,
        env=env,
    )
    assert process.returncode == -signal.SIGKILL, stderr
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=30)


def test_the_next_backup_removes_the_partial_file_of_a_killed_one(pg_server, big_db, app_db, tmp_path):
    backups = tmp_path / "backups"

    def writing():
        return any(backups.glob(".*.partial-*"))

    kill_minus_9("backup_db", "--url", pg_server.url(big_db), when_running="pg_dump", backup_dir=backups, ready=writing)
    assert any(backups.glob(".*.partial-*"))

    result = manage("backup_db", "--url", pg_server.url(app_db), env=child_env(BACKUP_DIR=backups))
    assert result.returncode == 0, result.stderr
    assert list(backups.glob(".*.partial-*")) == []


def test_the_next_drill_drops_the_scratch_database_of_a_killed_one(pg_server, big_db, big_archive, app_db, tmp_path):
    backups = tmp_path / "backups"
    scratch_databases = "SELECT datname FROM pg_database WHERE datname LIKE 'verify\\_%'"

    def drilling():
        return bool(pg_server.execute(scratch_databases))

    kill_minus_9(
        "verify_backup", str(big_archive), when_running="psql", backup_dir=backups, ready=drilling,
        env={"DATABASE_URL": pg_server.url(big_db)},
    )
    assert pg_server.execute(scratch_databases)

    small = back_up(pg_server.url(app_db), tmp_path / "small.dump")
    result = manage("verify_backup", str(small), env=child_env(DATABASE_URL=pg_server.url(app_db)))
    assert result.returncode == 0, result.stderr
    assert pg_server.execute(scratch_databases) == []


def test_the_next_command_removes_the_download_of_a_killed_restore(
    pg_server, app_db, big_object, s3_server, tmp_path, spool
):
    def downloading():
        return bool(spooled_files(spool))

    kill_minus_9(
        "restore_db", big_object, "--url", pg_server.url(app_db), "--noinput", when_running=None,
        backup_dir=tmp_path / "backups", ready=downloading, cache=spool, env=s3_server.env(),
    )
    assert spooled_files(spool)

    result = manage("list_backups", env=child_env(BACKUP_DIR=tmp_path / "backups", XDG_CACHE_HOME=spool))
    assert result.returncode == 0, result.stderr
    assert spooled_files(spool) == []


def restoring_databases(server, name):
    return server.execute("SELECT datname, datallowconn FROM pg_database WHERE datname LIKE %s", [f"{name}\\_%"])


@pytest.mark.parametrize(
    ("archive_kind", "stop"), [("big_archive", signal.SIGINT), ("big_dir_archive", signal.SIGTERM)]
)
def test_a_stop_during_a_swap_restore_drops_the_new_database_and_leaves_the_target_untouched(
    pg_server, app_db, archive_kind, stop, request, tmp_path
):
    archive_path = request.getfixturevalue(archive_kind)
    before = snapshot(pg_server, app_db)
    url = pg_server.url(app_db)

    def loading_rows_into_the_new_database():  # pg_restore --jobs workers, in the database beside the target
        return any(
            pg_server.execute("SELECT 1 FROM pg_tables WHERE tablename = 'readings'", database=name)
            for name, _ in restoring_databases(pg_server, app_db)
        )

    process, _, stderr, children = interrupt(
        "restore_db", str(archive_path), "--url", url, "--swap", "--noinput",
        when_running="pg_restore", backup_dir=tmp_path / "backups", ready=loading_rows_into_the_new_database,
        stop=stop,
    )

    assert_interrupted(
        process,
        stderr,
        children,
        f"Interrupted: nothing was restored; postgresql://postgres:****@127.0.0.1:{pg_server.port}/{app_db} is "
        "untouched (the new database was dropped).",
        stop,
    )
    assert snapshot(pg_server, app_db) == before
    assert restoring_databases(pg_server, app_db) == []
    assert pg_server.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", [app_db]) == [(True,)]


@stops(signal.SIGINT, signal.SIGTERM)
@pytest.mark.parametrize("route", ["in place", "swap"])
def test_a_stop_once_the_target_holds_the_backup_says_so_while_expired_kept_databases_are_dropped(
    pg_server, app_db, tmp_path, route, stop
):
    """After the restore, restore_db drops the databases that swaps kept past the safety rule. A stop
    then must not say that nothing was restored. The drop is held on a lock until the stop is sent."""
    with pg_server.database("source") as source:
        pg_server.execute("CREATE TABLE source_only (id int); INSERT INTO source_only VALUES (1)", database=source)
        archive = back_up(pg_server.url(source), tmp_path / "source.dump")
    backups = tmp_path / "backups"
    expired = f"{app_db}_before_20200101000000"
    pg_server.execute(f'CREATE DATABASE "{expired}"')
    holder = psycopg2.connect(pg_server.url("postgres"))
    holder.cursor().execute(f"COMMENT ON DATABASE \"{expired}\" IS 'a lock that DROP DATABASE waits for'")
    release = threading.Timer(0.5, holder.rollback)

    def dropping_the_expired_one():
        waiting = pg_server.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'DROP DATABASE%%' AND wait_event_type = 'Lock'"
        )
        if waiting:
            release.start()
        return bool(waiting)

    options = ["--swap"] if route == "swap" else []
    try:
        process, _, stderr, children = interrupt(
            "restore_db", str(archive), "--url", pg_server.url(app_db), "--noinput", *options,
            when_running=None, backup_dir=backups, ready=dropping_the_expired_one, stop=stop,
        )
    finally:
        release.join()
        holder.close()
    kept = [name for (name,) in pg_server.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                                     [f"{app_db}\\_before\\_%"])]
    for name in kept:
        pg_server.drop_database(name)

    target = f"postgresql://postgres:****@127.0.0.1:{pg_server.port}/{app_db}"
    if route == "swap":
        (kept_now,) = kept
        message = f"Interrupted after the swap: {target} holds the backup; what it held is the database {kept_now}."
    else:
        assert kept == []
        (safety,) = backups.glob("*-pre-restore.dump")
        message = (
            f"Interrupted after restoring: {target} holds the backup; what is past the safety rule (older safety "
            "backups, databases kept by --swap) may not all be deleted yet: the next restore does it. The safety "
            f"backup of what it held before is {safety}."
        )
    assert_interrupted(process, stderr, children, message, stop)
    assert pg_server.execute("SELECT id FROM source_only", database=app_db) == [(1,)]
