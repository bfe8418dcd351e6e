"""restore_db --swap and --undo on real servers: the new database is made like the target (owner,
locale, settings, grants, comment, connection limit), restored and checked beside it, and swapped in
by one transaction; every failure before the swap leaves the target untouched and no new database."""

import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psutil
import psycopg2
import pytest
from django.core.management.base import CommandError

from dbops.cluster import SERVER_USER_WHEN_ROOT, _allow_traversal
from dbops.management.base import human_size
from dbops.postgres import swap
from tests.dbdata import APP_SCHEMA, EXTRA_OBJECTS, command, snapshot
from tests.helpers import PROJECT_DIR, child_env, manage
from tests.test_interrupts import BIG_TABLE, back_up

OWNER, OWNER_PASSWORD = "swap_owner", "swap-pass-123"
PLAIN_OWNER = "swap_plain_owner"  # owns a database, has no CREATEDB
READER = "swap_reader"
# What a dump does not carry, set on the target as an app's operator would.
DATABASE_EXTRAS = """
ALTER DATABASE {db} SET search_path TO "$user", public, archive;
ALTER DATABASE {db} SET work_mem TO '7MB';
ALTER DATABASE {db} SET statement_timeout TO '45s';
ALTER DATABASE {db} CONNECTION LIMIT 23;
COMMENT ON DATABASE {db} IS 'the birds'' app';
REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC;
GRANT CONNECT ON DATABASE {db} TO {reader};
GRANT CREATE ON DATABASE {db} TO {reader} WITH GRANT OPTION;
"""
ATTRIBUTES_QUERY = """
SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, d.datlocprovider,
       coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale'), d.datconnlimit, d.datallowconn,
       ARRAY(SELECT unnest(d.datacl::text[]) ORDER BY 1),
       shobj_description(d.oid, 'pg_database'), t.spcname,
       (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0)
FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = %s
"""


def attributes(server, name):
    return server.execute(ATTRIBUTES_QUERY, [name])


def database_names(server, like):
    return [name for (name,) in server.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [like])]


def ensure_role(server, name, *options):
    server.execute(
        f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN "
        f"CREATE ROLE {name} LOGIN PASSWORD '{OWNER_PASSWORD}'; END IF; END$$"
    )
    server.execute(f"ALTER ROLE {name} {' '.join(options) or 'NOCREATEDB'}")


def owned_database(server, owner, encoding_options=""):
    """A database of the sample app owned by owner (not a superuser), holding pg_trgm, with settings,
    grants, a comment and a connection limit; its name, and the owner's URL."""
    ensure_role(server, READER)
    name = server.create_database("swapped")
    if encoding_options:  # a database whose locale template1 does not have
        server.drop_database(name)
        server.execute(f"CREATE DATABASE {name} TEMPLATE template0 {encoding_options}")
    server.execute(f"ALTER DATABASE {name} OWNER TO {owner}")
    server.execute(DATABASE_EXTRAS.format(db=name, reader=READER))
    server.execute("CREATE EXTENSION pg_trgm", database=name)
    url = server.url(name, user=owner, password=OWNER_PASSWORD)
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("SET search_path TO public")
        cursor.execute(APP_SCHEMA)
        cursor.execute("CREATE INDEX birds_trgm ON birds USING gin (name gin_trgm_ops)")
    return name, url


@pytest.fixture
def swap_owner(pg_server):
    ensure_role(pg_server, OWNER, "CREATEDB")
    return OWNER


@pytest.fixture
def owned(pg_server, swap_owner):
    name, url = owned_database(pg_server, swap_owner)
    yield name, url
    drop_with_what_swaps_left(pg_server, name)


def drop_with_what_swaps_left(server, name):
    for each in database_names(server, f"{name}%"):
        server.drop_database(each)


# PostgreSQL 18 with template1's locale, restored in parallel; 15 with a locale and provider of the
# database's own, in one transaction (pg_restore 18 --jobs would send it transaction_timeout).
SERVERS = {
    "18": ("pg_server", "", f"{os.cpu_count()} parallel jobs"),
    "15, ICU": (
        "pg15_server",
        "ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
        "one job (this archive and server allow no more)",
    ),
}


@pytest.fixture(params=SERVERS, ids=list(SERVERS))
def any_owned(request):
    fixture, encoding_options, _ = SERVERS[request.param]
    server = request.getfixturevalue(fixture)
    ensure_role(server, OWNER, "CREATEDB")
    name, url = owned_database(server, OWNER, encoding_options)
    yield server, name, url, SERVERS[request.param][2]
    drop_with_what_swaps_left(server, name)


def backup_then_change(server, name, url, backup_dir):
    """A backup of the database, then later work on it (rows gone, new objects); the snapshots of both."""
    command("backup_db", "--url", url)
    backed_up = snapshot(server, name)
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("DELETE FROM sightings WHERE id > 100")
        cursor.execute(EXTRA_OBJECTS)
    return backed_up, snapshot(server, name)


def restoring_rows(server, name):
    """Whether a swap's new database beside name is receiving the rows of readings."""
    return any(
        server.execute("SELECT 1 FROM pg_tables WHERE tablename = 'readings'", database=each)
        for each in database_names(server, f"{name}\\_restoring\\_%")
    )


def newest_dump(backup_dir):
    return max(backup_dir.glob("*.dump"), key=lambda p: p.name)


def test_swap_restores_beside_the_target_keeps_its_attributes_and_undo_swaps_back(any_owned, backup_dir):
    pg_server, name, url, jobs = any_owned
    backed_up, changed = backup_then_change(pg_server, name, url, backup_dir)
    before = attributes(pg_server, name)

    output = command("restore_db", "--url", url, "--swap", "--noinput")

    (kept,) = database_names(pg_server, f"{name}_before_%")
    assert f"Route: swap. Restored into a new database with {jobs}, checked it" in output
    assert f"The previous contents are kept as the database {kept} (" in output
    masked = f"postgresql://{OWNER}:****@127.0.0.1:{pg_server.port}/{name}"
    assert f"drop them now with: psql '{masked}' -c 'DROP DATABASE {kept}'" in output
    assert "persistent connections (CONN_MAX_AGE) to the old database fail once per worker" in output
    assert "tables and row counts match the manifest" in output
    assert snapshot(pg_server, name) == backed_up
    assert attributes(pg_server, name) == before
    assert snapshot(pg_server, kept) == changed
    assert pg_server.execute("SELECT name FROM birds WHERE name % 'Grakle'", database=name) == [("Grackle",)]
    assert not database_names(pg_server, f"{name}_restoring_%")

    output = command("restore_db", "--url", url, "--undo", "--noinput")

    assert f"Route: undo. Swapped {kept} (" in output
    assert snapshot(pg_server, name) == changed
    assert attributes(pg_server, name) == before
    (now_kept,) = database_names(pg_server, f"{name}_before_%")
    assert now_kept != kept
    assert snapshot(pg_server, now_kept) == backed_up
    drop = shlex.split(output.split("drop them now with: ")[1].splitlines()[0])
    drop[1] = url  # the password in place of ****
    subprocess.run(drop, check=True, capture_output=True)
    assert database_names(pg_server, f"{name}\\_%") == []


def test_the_swap_ends_the_apps_sessions_which_fail_once_then_reconnect_to_new_contents(pg_server, owned, backup_dir):
    name, url = owned
    backed_up, _ = backup_then_change(pg_server, name, url, backup_dir)
    worker = psycopg2.connect(url)  # a Django worker's persistent connection
    worker.autocommit = True
    try:
        command("restore_db", "--url", url, "--swap", "--noinput")
        with pytest.raises(psycopg2.OperationalError), worker.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sightings")
    finally:
        worker.close()
    with psycopg2.connect(url) as again, again.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sightings")
        assert cursor.fetchone() == (len(backed_up["public.sightings"]),)


def test_a_failed_check_drops_the_new_database_and_leaves_the_target_untouched(pg_server, owned, backup_dir):
    name, url = owned
    _, changed = backup_then_change(pg_server, name, url, backup_dir)
    before = attributes(pg_server, name)
    manifest = newest_dump(backup_dir).with_name(newest_dump(backup_dir).name + ".json")
    manifest.write_text(manifest.read_text().replace('"public.birds": 5', '"public.birds": 6'))

    with pytest.raises(CommandError) as raised:
        command("restore_db", "--url", url, "--swap", "--noinput")

    masked = f"postgresql://{OWNER}:****@127.0.0.1:{pg_server.port}/{name}"
    assert str(raised.value) == (
        "Row counts differ: public.birds: 6 in the backup, 5 after restoring. Nothing was swapped: "
        f"{masked} is untouched (the new database was dropped)."
    )
    assert snapshot(pg_server, name) == changed
    assert attributes(pg_server, name) == before
    assert database_names(pg_server, f"{name}\\_%") == []


# Rows whose text COPY must escape (newlines, tabs, backslashes, a line that reads "\."), NULLs, bytes,
# JSON and one row longer than the chunks the rows are dealt out in: about 2 MB, so the parallel route
# shares this one table between its sessions.
TRICKY_TABLE = r"""
CREATE TABLE tricky (id int PRIMARY KEY, body text, raw bytea, doc jsonb);
INSERT INTO tricky
SELECT g, E'line one\nline\ttwo \\ back' || g || CASE WHEN g % 7 = 0 THEN E'\n\\.\n' ELSE '' END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
       jsonb_build_object('n', g, 's', E'a "quote" and \\ a backslash')
FROM generate_series(1, 20000) g;
INSERT INTO tricky VALUES (0, repeat('long row ', 70000), NULL, NULL);
"""


def test_one_table_dealt_out_to_parallel_sessions_arrives_exact(pg_server, owned, backup_dir):
    name, url = owned
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(TRICKY_TABLE)
    backed_up, _ = backup_then_change(pg_server, name, url, backup_dir)
    assert len(backed_up["public.tricky"]) == 20001

    output = command("restore_db", "--url", url, "--swap", "--noinput")

    assert f"Restored into a new database with {os.cpu_count()} parallel jobs" in output
    assert snapshot(pg_server, name) == backed_up


def test_a_dump_made_with_inserts_whose_text_reads_like_commands_is_swapped_in_exact(pg_server, owned, tmp_path):
    # pg_dump --inserts writes a string's newlines as they are: its lines must not be dealt out as
    # settings, psql commands (refused after \restrict) or COPY rows.
    name, url = owned
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES "
            "(1, E'intro\\n\\\\section{Birds}\\nSET x = 1;\\nCOPY public.notes (id) FROM stdin;\\n7\\n\\\\.\\nend'), "
            "(2, 'plain')"
        )
    before = snapshot(pg_server, name)
    dump = tmp_path / "inserts.dump"
    pg_server.run_tool("pg_dump", "--format=custom", "--inserts", "--file", str(dump), "--dbname", url)
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("DELETE FROM notes")

    output = command("restore_db", str(dump), "--url", url, "--swap", "--noinput")

    assert "Route: swap." in output
    assert snapshot(pg_server, name) == before


def test_a_row_one_parallel_session_refuses_drops_the_new_database_and_leaves_the_target_untouched(
    pg_server, owned, backup_dir
):
    name, url = owned
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(TRICKY_TABLE)
        cursor.execute(  # refuses, outside the session that wrote it, a row it holds
            "ALTER TABLE tricky ADD CONSTRAINT restorable "
            "CHECK (body IS NOT NULL OR coalesce(current_setting('birdsite.allow_empty', true), '') = 'on');"
            "SET birdsite.allow_empty = 'on'; INSERT INTO tricky (id) VALUES (-1)"
        )
    _, changed = backup_then_change(pg_server, name, url, backup_dir)

    with pytest.raises(CommandError, match='violates check constraint "restorable"') as raised:
        command("restore_db", "--url", url, "--swap", "--noinput")

    assert str(raised.value).endswith("is untouched (the new database was dropped).")
    assert snapshot(pg_server, name) == changed
    assert database_names(pg_server, f"{name}\\_restoring\\_%") == []
    left = [p for p in psutil.process_iter(["name", "ppid"]) if p.info["name"] in ("psql", "pg_restore")]
    assert [p for p in left if p.info["ppid"] == os.getpid()] == []  # none of this run's tools is left running


def test_a_changed_archive_is_refused_before_the_swap_and_the_new_database_dropped(pg_server, owned, backup_dir):
    name, url = owned
    command("backup_db", "--url", url, "--compress", "0")
    path = newest_dump(backup_dir)
    data = bytearray(path.read_bytes())
    data[data.index(b"Grackle")] ^= 0x01  # still a valid archive: pg_restore reads it, the sum does not match
    path.write_bytes(bytes(data))
    before = snapshot(pg_server, name)

    with pytest.raises(CommandError, match="no longer matches the SHA-256 in its manifest") as raised:
        command("restore_db", "--url", url, "--swap", "--noinput")

    assert str(raised.value).endswith("is untouched (the new database was dropped).")
    assert snapshot(pg_server, name) == before
    assert database_names(pg_server, f"{name}\\_%") == []


def test_swap_by_an_owner_without_createdb_is_refused_in_one_line_before_anything(pg_server, backup_dir, tmp_path):
    ensure_role(pg_server, PLAIN_OWNER)
    name, url = owned_database(pg_server, PLAIN_OWNER)
    try:
        command("backup_db", "--url", url)
        before = snapshot(pg_server, name)
        result = manage("restore_db", "--url", url, "--swap", "--noinput", env=child_env(BACKUP_DIR=backup_dir))
        assert result.returncode == 1
        assert result.stderr == (
            f"CommandError: --swap creates a new database, and the role '{PLAIN_OWNER}' has no CREATEDB privilege: "
            "restore without --swap (in place, after a safety backup), or have a superuser run ALTER ROLE "
            f"{PLAIN_OWNER} CREATEDB. Nothing was changed.\n"
        )
        assert snapshot(pg_server, name) == before
        assert not list(backup_dir.glob("*-pre-restore*"))
        assert database_names(pg_server, f"{name}\\_%") == []
        # Without --swap, the same owner restores in place after a safety backup.
        output = command("restore_db", "--url", url, "--noinput")
        assert "Route: in place, in one transaction, after a safety backup (without --swap)." in output
    finally:
        pg_server.drop_database(name)


def test_swap_and_undo_on_sqlite_are_refused_in_one_line(tmp_path, backup_dir):
    url = f"sqlite:///{tmp_path / 'site.sqlite3'}"
    for option in ("--swap", "--undo"):
        result = manage("restore_db", "--url", url, option, "--noinput", env=child_env(BACKUP_DIR=backup_dir))
        assert result.returncode == 1
        assert result.stderr == (
            "CommandError: --swap and --undo rename databases inside a PostgreSQL instance; a SQLite database is a "
            "single file: restore without them. Nothing was changed.\n"
        )
    assert not (tmp_path / "site.sqlite3").exists()


def test_undo_without_a_kept_database_says_so(pg_server, owned):
    name, url = owned
    with pytest.raises(CommandError, match=rf"No database kept by restore_db --swap for .*/{name} \(none named "):
        command("restore_db", "--url", url, "--undo", "--noinput")


def test_kept_databases_are_listed_with_their_size_and_dropped_after_the_safety_rule(pg_server, owned, backup_dir):
    name, url = owned
    command("backup_db", "--url", url)
    six_days_ago = datetime.now(UTC) - timedelta(days=6)
    old, recent = f"{name}_before_20200101000000", f"{name}_before_{six_days_ago:%Y%m%d%H%M%S}"
    for each in (old, recent):
        pg_server.execute(f"CREATE DATABASE {each} OWNER {OWNER}")
    size = human_size(pg_server.execute("SELECT pg_database_size(%s)", [old])[0][0])

    for listing in (command("db_info", "--url", url), command("list_backups", "--url", url)):
        assert f"Previous contents of {name} kept by restore_db --swap (restore_db --undo swaps the newest" in listing
        for kept, when in ((recent, f"{six_days_ago:%Y-%m-%d %H:%M:%S}"), (old, "2020-01-01 00:00:00")):
            assert re.search(rf"^  {kept} +{when} +{re.escape(size)}$", listing, re.MULTILINE), listing

    output = command("restore_db", "--url", url, "--noinput")

    assert f"Dropped the database {old}, kept by a swap more than 7 days ago." in output
    assert database_names(pg_server, f"{name}\\_before\\_%") == [recent]



def test_a_kept_database_the_owner_may_not_drop_fails_the_swap_in_a_line_that_says_the_swap_happened(
    pg_server, owned, backup_dir
):
    name, url = owned
    command("backup_db", "--url", url)
    others = f"{name}_before_20200101000000"
    pg_server.execute(f"CREATE DATABASE {others}")  # the superuser's, past the safety rule

    with pytest.raises(CommandError) as raised:
        command("restore_db", "--url", url, "--swap", "--noinput")

    (kept,) = [each for each in database_names(pg_server, f"{name}\\_before\\_%") if each != others]
    assert str(raised.value) == (
        f"postgresql://{OWNER}:****@127.0.0.1:{pg_server.port}/{name} holds the backup (what it held is the database "
        f"{kept}), but the kept databases past the safety rule could not be dropped: "
        f"postgresql://{OWNER}:****@127.0.0.1:{pg_server.port}/postgres: must be owner of database {others}."
    )
    assert database_names(pg_server, others) == [others]



def test_an_in_place_restore_leaves_a_kept_database_it_may_not_connect_to(pg_server, owned, backup_dir):
    """pg_database_size needs CONNECT: the listing of kept databases fails, and the restore goes on."""
    name, url = owned
    command("backup_db", "--url", url)
    closed = f"{name}_before_20200101000000"
    pg_server.execute(f"CREATE DATABASE {closed}")
    pg_server.execute(f"REVOKE CONNECT ON DATABASE {closed} FROM PUBLIC")

    output = command("restore_db", "--url", url, "--noinput", "--no-safety-backup")

    assert "Route: in place, in one transaction (without --swap)." in output
    assert "Dropped the database" not in output
    assert database_names(pg_server, closed) == [closed]


FILL_TABLE = """
CREATE TABLE readings (id bigserial PRIMARY KEY, note text);
INSERT INTO readings (note) SELECT md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 100000) g;
"""


@pytest.fixture
def small_disk(pg_server, tmp_path, swap_owner):
    """A tablespace on a tmpfs of 36 MB holding a ~21 MB database of swap_owner's: no room for a second
    copy. Its name, and the mount point."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    account = pwd.getpwnam(SERVER_USER_WHEN_ROOT)
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size=36m,mode=0700,uid={account.pw_uid},gid={account.pw_gid}", "tmpfs",
         str(disk)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mount.stderr.strip()}")
    _allow_traversal(disk)
    try:
        pg_server.execute(f"CREATE TABLESPACE swap_small LOCATION '{disk}'")
        pg_server.execute(f"GRANT CREATE ON TABLESPACE swap_small TO {swap_owner}")
        name = pg_server.create_database("on_small_disk")
        pg_server.execute(f"ALTER DATABASE {name} OWNER TO {swap_owner}")
        pg_server.execute(f"ALTER DATABASE {name} SET TABLESPACE swap_small")
        with psycopg2.connect(pg_server.url(name, user=swap_owner, password=OWNER_PASSWORD)) as conn:
            conn.cursor().execute(FILL_TABLE)
        yield name, disk
        drop_with_what_swaps_left(pg_server, name)
        pg_server.execute("DROP TABLESPACE swap_small")
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_where_the_free_space_is_known_a_swap_it_does_not_fit_is_refused_first(pg_server, small_disk, backup_dir):
    name, disk = small_disk
    url = pg_server.url(name)  # a superuser reads data_directory: the disk is on this machine
    command("backup_db", "--url", url)
    before = snapshot(pg_server, name)
    free = shutil.disk_usage(disk).free

    with pytest.raises(CommandError) as raised:
        command("restore_db", "--url", url, "--swap", "--noinput")

    message = str(raised.value)
    assert re.fullmatch(
        rf"--swap needs about [\d.]+ MB more on the server's disk \({name}'s [\d.]+ MB plus the archive's [\d.]+ MB\), "
        rf"and {disk} has {free / 1e6:.1f} MB free: restore without --swap, or free some space. Nothing was changed.",
        message,
    ), message
    assert snapshot(pg_server, name) == before
    assert database_names(pg_server, f"{name}\\_%") == []


def test_a_swap_that_fills_the_disk_drops_the_new_database_and_leaves_the_target_as_it_was(
    pg_server, small_disk, backup_dir
):
    name, disk = small_disk
    url = pg_server.url(name, user=OWNER, password=OWNER_PASSWORD)  # an owner cannot know the free space
    command("backup_db", "--url", url)
    before, attributes_before = snapshot(pg_server, name), attributes(pg_server, name)
    free, folders = shutil.disk_usage(disk).free, database_folders(disk)

    with pytest.raises(CommandError) as raised:
        command("restore_db", "--url", url, "--swap", "--noinput")

    assert "No space left on device" in str(raised.value)
    assert str(raised.value).endswith(
        f"Nothing was swapped: postgresql://{OWNER}:****@127.0.0.1:{pg_server.port}/{name} is untouched (the new "
        "database was dropped)."
    )
    assert snapshot(pg_server, name) == before
    assert attributes(pg_server, name) == attributes_before
    assert database_names(pg_server, f"{name}\\_%") == []
    assert database_folders(disk) == folders  # none of the new database's files is left
    # The target's own housekeeping (autovacuum's visibility and free-space maps) may take a few pages.
    assert abs(shutil.disk_usage(disk).free - free) < 1 << 20


def database_folders(tablespace):
    """The folders of the databases that have files in a tablespace (one per database, named by its OID;
    the server's pgsql_tmp, for sorts that spill, is not one)."""
    return sorted(path.name for version in tablespace.iterdir() for path in version.iterdir() if path.name.isdigit())


def test_the_next_run_cleans_up_after_a_swap_killed_with_sigkill_while_restoring(pg_server, app_db, tmp_path):
    pg_server.execute(BIG_TABLE, database=app_db)
    archive = back_up(pg_server.url(app_db), tmp_path / "big.dump")
    pg_server.execute("DROP TABLE readings", database=app_db)
    before = snapshot(pg_server, app_db)
    env, url = child_env(BACKUP_DIR=tmp_path / "backups"), pg_server.url(app_db)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "restore_db", str(archive), "--url", url, "--swap", "--noinput"],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not restoring_rows(pg_server, app_db) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    children = psutil.Process(process.pid).children(recursive=True)
    process.kill()
    process.wait()
    psutil.wait_procs(children, timeout=60)  # the orphaned pg_restore workers finish on their own
    (leftover,) = database_names(pg_server, f"{app_db}\\_restoring\\_%")
    # The server ends the killed clients' sessions a moment after they are gone; until then the next run
    # rightly takes the swap for one still running (it would clean up at the run after).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and pg_server.execute(
        "SELECT 1 FROM pg_stat_activity WHERE datname = %s OR pid IN (SELECT pid FROM pg_locks WHERE locktype = "
        "'advisory')",
        [leftover],
    ):
        time.sleep(0.05)

    output = command("restore_db", str(archive), "--url", pg_server.url(app_db), "--swap", "--noinput")

    assert output.startswith(
        f"Cleaned up after a restore_db --swap that was killed: dropped its unfinished new database {leftover}; "
        f"{app_db} accepts connections.\n"
    )
    assert snapshot(pg_server, app_db)["public.readings"]
    (kept,) = database_names(pg_server, f"{app_db}\\_before\\_%")
    assert snapshot(pg_server, kept) == before
    pg_server.drop_database(kept)


def test_the_next_run_cleans_up_after_a_swap_killed_between_stopping_connections_and_renaming(
    pg_server, app_db, backup_dir
):
    # The state a kill -9 at that moment leaves: the server rolled the renames back with the session.
    command("backup_db", "--url", pg_server.url(app_db))
    leftover = f"{app_db}_restoring_20260101000000"
    pg_server.execute(f"CREATE DATABASE {leftover}")
    pg_server.execute(f"ALTER DATABASE {app_db} ALLOW_CONNECTIONS false")
    with pytest.raises(psycopg2.OperationalError, match="is not currently accepting connections"):
        snapshot(pg_server, app_db)

    output = command("restore_db", "--url", pg_server.url(app_db), "--noinput")

    assert f"dropped its unfinished new database {leftover}; {app_db} accepts connections." in output
    assert "Route: in place, in one transaction, after a safety backup (without --swap)." in output
    assert database_names(pg_server, f"{app_db}\\_%") == []
    assert pg_server.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", [app_db]) == [(True,)]


def test_a_session_the_owner_may_not_end_fails_the_swap_and_leaves_the_target_as_it_was(pg_server, owned, backup_dir):
    name, url = owned
    _, changed = backup_then_change(pg_server, name, url, backup_dir)
    before = attributes(pg_server, name)
    superuser_session = pg_server.connect(name)  # an owner may not end a superuser's session
    try:
        with pytest.raises(CommandError) as raised:
            command("restore_db", "--url", url, "--swap", "--noinput")
    finally:
        superuser_session.close()

    assert "permission denied to terminate process" in str(raised.value)
    assert str(raised.value).endswith(f"{name} is untouched (the new database was dropped).")
    assert snapshot(pg_server, name) == changed
    assert attributes(pg_server, name) == before  # connections allowed again, among the rest
    assert database_names(pg_server, f"{name}\\_%") == []


def test_the_statements_that_make_the_new_database_like_the_target(pg_server):
    attributes = swap.DatabaseAttributes(
        owner="app owner", encoding="UTF8", collate="C.UTF-8", ctype="C.UTF-8", locale_provider="i",
        locale="en-US", icu_rules=None, tablespace="fast", connection_limit=23,
        settings=('search_path="$user", public, "odd ""one"""', "work_mem=7MB", "app.mode=it's"),
        own_grants=True, grants=(("", "CONNECT", False), ("reader", "CREATE", True)), comment="the birds' app",
        size=0, data_directory=None, tablespace_folder="",
    )  # fmt: skip
    conn = pg_server.connect()
    try:
        def text(statements):
            return [statement.as_string(conn) for statement in statements]

        assert text(swap.create_statements("app_restoring_20260101000000", attributes, 180000)) == [
            'CREATE DATABASE "app_restoring_20260101000000" OWNER "app owner" TEMPLATE template0 ENCODING \'UTF8\' '
            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TABLESPACE \"fast\" LOCALE_PROVIDER icu ICU_LOCALE 'en-US'",
            'REVOKE ALL ON DATABASE "app_restoring_20260101000000" FROM PUBLIC, "app owner"',
            'GRANT CONNECT ON DATABASE "app_restoring_20260101000000" TO PUBLIC',
            'GRANT CREATE ON DATABASE "app_restoring_20260101000000" TO "reader" WITH GRANT OPTION',
            "COMMENT ON DATABASE \"app_restoring_20260101000000\" IS 'the birds'' app'",
        ]
        assert text(swap.finish_statements("app_restoring_20260101000000", attributes)) == [
            'ALTER DATABASE "app_restoring_20260101000000" SET "search_path" TO \'$user\', \'public\', \'odd "one"\'',
            'ALTER DATABASE "app_restoring_20260101000000" SET "work_mem" TO \'7MB\'',
            'ALTER DATABASE "app_restoring_20260101000000" SET "app"."mode" TO \'it\'\'s\'',
            'ALTER DATABASE "app_restoring_20260101000000" CONNECTION LIMIT 23',
        ]
    finally:
        conn.close()


def test_the_prompt_says_how_much_more_disk_the_swap_needs(pg_server, app_db, backup_dir):
    url = pg_server.url(app_db)
    command("backup_db", "--url", url)
    archive_size = newest_dump(backup_dir).stat().st_size
    size = pg_server.execute("SELECT pg_database_size(%s)", [app_db])[0][0]
    before = snapshot(pg_server, app_db)

    result = manage("restore_db", "--url", url, "--swap", env=child_env(BACKUP_DIR=backup_dir), input="no\n")

    assert result.returncode == 1
    assert result.stderr == "CommandError: Cancelled; nothing was changed.\n"
    assert (
        f"\n--swap restores into a new database beside it and keeps the previous contents: the instance needs about "
        f"{human_size(size + archive_size)} more disk ({human_size(size)} for the database, {human_size(archive_size)} "
        "for the archive) (its disk has " in result.stdout
    )
    assert " free), and must have it: a hosted instance whose disk fills can stop accepting writes.\n" in result.stdout
    assert snapshot(pg_server, app_db) == before
    assert database_names(pg_server, f"{app_db}\\_%") == []
