"""backup_db, restore_db, list_backups on a real PostgreSQL 18 server."""

import contextlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
from datetime import UTC, datetime

import psutil
import pytest
from django.core.management.base import CommandError

from dbops import manifest
from dbops.archive import sha256_of
from dbops.catalog import BackupCatalog
from dbops.cluster import free_port
from dbops.connection import target_from_url
from dbops.errors import DbOpsError
from dbops.postgres import maintenance_connection
from dbops.storage import LocalFolder
from tests.dbdata import APP_OBJECTS, EXTRA_OBJECTS, command, create_app_data, snapshot, user_objects
from tests.helpers import PROJECT_DIR, child_env, manage, manage_with_file_permissions


@pytest.fixture
def url(pg_server, app_db):
    """conftest's url spelt postgres://, as many hosts print it: this module proves the commands with it."""
    return pg_server.url(app_db, scheme="postgres")


def only_backup(backup_dir):
    (path,) = [p for p in backup_dir.iterdir() if p.suffix == ".dump"]
    return path


def test_backup_then_restore_round_trips_every_row(pg_server, app_db, url, backup_dir):
    original = snapshot(pg_server, app_db)
    output = command("backup_db", "--url", url)
    path = only_backup(backup_dir)
    assert f"Backed up postgresql://postgres:****@127.0.0.1:{pg_server.port}/{app_db} to {path}" in output
    assert "3 tables, 507 rows" in output

    pg_server.execute("DELETE FROM sightings WHERE id > 10; UPDATE birds SET name = 'changed'", database=app_db)
    pg_server.execute(EXTRA_OBJECTS, database=app_db)
    pg_server.execute("ALTER TABLE birds ADD COLUMN rating positive; CREATE TABLE archive.x (y int)", database=app_db)
    restored = command("restore_db", str(path), "--url", url, "--noinput")

    assert "tables and row counts match the manifest" in restored
    assert snapshot(pg_server, app_db) == original  # what the backup did not hold is gone
    assert user_objects(pg_server, app_db) == APP_OBJECTS


def test_backup_files_are_private_with_a_manifest(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    path = only_backup(backup_dir)
    assert path.name.startswith(f"{app_db}-") and path.name.endswith("Z.dump")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    manifest = json.loads(path.with_name(path.name + ".json").read_text())
    assert manifest["tables"] == {"archive.old_birds": 2, "public.birds": 5, "public.sightings": 500}
    assert manifest["sha256"] == sha256_of(path)
    assert manifest["size"] == path.stat().st_size
    assert manifest["database"] == app_db
    assert manifest["source"] == f"postgresql://postgres:****@127.0.0.1:{pg_server.port}/{app_db}"
    assert manifest["server_version"].startswith("18.")
    assert manifest["pg_dump_version"].startswith("18.")
    assert manifest["created_at"].endswith("+00:00")
    assert not [p for p in backup_dir.iterdir() if ".partial" in p.name]
    assert not list(backup_dir.glob(".*.lock"))  # the lock file goes when the backup ends


def test_restore_without_path_takes_the_newest_backup(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url, "--output", str(backup_dir / f"{app_db}-20200101T000000Z.dump"))
    pg_server.execute("INSERT INTO birds (name) VALUES ('Newer')", database=app_db)
    command("backup_db", "--url", url)
    expected = snapshot(pg_server, app_db)
    pg_server.execute("TRUNCATE birds CASCADE", database=app_db)

    output = command("restore_db", "--url", url, "--noinput")

    assert "Safety backup of the previous contents" in output
    assert snapshot(pg_server, app_db) == expected
    # The safety backup is newer, but is not what "the newest backup" means next time.
    output = command("restore_db", "--url", url, "--noinput", "--no-safety-backup")
    assert "20200101" not in output and "pre-restore" not in output.split("Restored")[1].split(" into")[0]


def test_restore_into_a_new_database_with_create(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    new_name = f"{app_db}_copy"
    new_url = pg_server.url(new_name)
    with pytest.raises(CommandError, match="does not exist; add --create"):
        command("restore_db", str(only_backup(backup_dir)), "--url", new_url, "--noinput")
    try:
        command("restore_db", str(only_backup(backup_dir)), "--url", new_url, "--noinput", "--create")
        assert snapshot(pg_server, new_name) == snapshot(pg_server, app_db)
    finally:
        pg_server.drop_database(new_name)


def test_directory_format_with_jobs_and_compression(pg_server, app_db, url, backup_dir):
    original = snapshot(pg_server, app_db)
    command("backup_db", "--url", url, "--jobs", "2", "--compress", "gzip:1")
    (path,) = [p for p in backup_dir.iterdir() if p.suffix == ".dir"]
    assert (path / "toc.dat").is_file()
    pg_server.execute("DELETE FROM sightings", database=app_db)
    pg_server.execute(EXTRA_OBJECTS, database=app_db)
    command("restore_db", str(path), "--url", url, "--noinput", "--jobs", "2")
    assert snapshot(pg_server, app_db) == original
    assert user_objects(pg_server, app_db) == APP_OBJECTS
    with pytest.raises(CommandError, match="needs its safety backup"):
        command("restore_db", str(path), "--url", url, "--noinput", "--jobs", "2", "--no-safety-backup")


def test_a_directory_backup_that_finder_has_shown_still_matches_its_manifest(pg_server, app_db, url, backup_dir):
    # Finder writes .DS_Store into a folder it shows (and ._ files on other disks): not pg_dump's files.
    original = snapshot(pg_server, app_db)
    command("backup_db", "--url", url, "--jobs", "2")
    (path,) = [p for p in backup_dir.iterdir() if p.suffix == ".dir"]
    (path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (path / "._toc.dat").write_bytes(b"\0\5\26\7")
    listed = command("list_backups", "--url", url)
    assert "  ok  " in listed and "MISMATCH" not in listed
    pg_server.execute("DELETE FROM sightings", database=app_db)
    command("restore_db", str(path), "--url", url, "--noinput", "--jobs", "2")
    assert snapshot(pg_server, app_db) == original


@pytest.mark.parametrize("fmt", ["plain", "tar"])
def test_plain_sql_and_tar_dumps_restore(pg_server, app_db, url, tmp_path, backup_dir, fmt):
    original = snapshot(pg_server, app_db)
    dump = tmp_path / "bird_app_db.sql"  # the tutorial's name, whatever the format
    raw_pg_dump(
        pg_server, app_db, f"--format={fmt}", "--no-acl", "--no-owner", "--clean", "--if-exists", "--file", str(dump)
    )
    pg_server.execute("DELETE FROM sightings; DELETE FROM archive.old_birds", database=app_db)
    command("restore_db", str(dump), "--url", url, "--noinput")
    assert snapshot(pg_server, app_db) == original


@pytest.mark.parametrize("encoding", ["LATIN1", "UTF8"])
def test_a_plain_dump_with_other_than_ascii_in_its_first_bytes_restores(pg_server, tmp_path, backup_dir, encoding):
    # A plain dump is in its database's encoding, and the bytes read to tell its format may end
    # inside a character: neither makes it "not a backup".
    source = f"accents_{encoding.lower()}"
    pg_server.execute(f"CREATE DATABASE {source} TEMPLATE template0 ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C'")
    dump = tmp_path / "plain.sql"
    try:
        pg_server.execute('CREATE TABLE "café" (name text); INSERT INTO "café" VALUES (\'crème\')', database=source)
        for padding in ("", "x"):  # one of the two puts byte 4,096 inside an é
            pg_server.execute(f"COMMENT ON TABLE \"café\" IS '{padding + 'é' * 3000}'", database=source)
            raw_pg_dump(pg_server, source, "--format=plain", "--no-owner", "--file", str(dump))
            head = dump.read_bytes()[:4096]
            if encoding == "LATIN1" or head.endswith("é".encode()[:1]):
                break
            dump.unlink()
        assert b"caf\xe9" in head if encoding == "LATIN1" else head.endswith(b"\xc3")  # the cases at stake
        with pg_server.database("target") as target:
            command("restore_db", str(dump), "--url", pg_server.url(target), "--noinput", "--no-safety-backup")
            assert pg_server.execute('SELECT name FROM "café"', database=target) == [("crème",)]
    finally:
        pg_server.drop_database(source)


def raw_pg_dump(server, database, *args):
    server.run_tool("pg_dump", *args, database)


def test_the_tutorials_raw_pg_dump_restores_with_restore_db(pg_server, app_db, tmp_path, backup_dir):
    dump = tmp_path / "bird_app_db.sql"
    raw_pg_dump(pg_server, app_db, "--format=custom", "--no-acl", "--no-owner", "--file", str(dump))
    with pg_server.database("tutorial") as fresh:
        command("restore_db", str(dump), "--url", pg_server.url(fresh), "--noinput")
        assert snapshot(pg_server, fresh) == snapshot(pg_server, app_db)


# --- damaged archives and failures leave the target as it was ----------------------------------


def test_garbage_and_empty_files_are_refused_before_the_target_is_touched(pg_server, app_db, url, tmp_path):
    before = snapshot(pg_server, app_db)
    garbage, empty = tmp_path / "garbage.dump", tmp_path / "empty.dump"
    garbage.write_bytes(os.urandom(4096))
    empty.write_bytes(b"")
    with pytest.raises(CommandError, match="is not a backup this tool knows"):
        command("restore_db", str(garbage), "--url", url, "--noinput")
    with pytest.raises(CommandError, match="is empty"):
        command("restore_db", str(empty), "--url", url, "--noinput")
    assert snapshot(pg_server, app_db) == before


def test_truncated_archive_without_manifest_fails_inside_the_transaction(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    path = only_backup(backup_dir)
    path.with_name(path.name + ".json").unlink()
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    pg_server.execute("INSERT INTO birds (name) VALUES ('after the backup')", database=app_db)
    before = snapshot(pg_server, app_db)
    with pytest.raises(CommandError, match="pg_restore failed"):
        command("restore_db", str(path), "--url", url, "--noinput", "--no-safety-backup")
    assert snapshot(pg_server, app_db) == before


def test_bit_flipped_uncompressed_archive_is_refused_by_its_checksum(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url, "--compress", "0")
    path = only_backup(backup_dir)
    data = bytearray(path.read_bytes())
    position = data.index(b"Grackle")
    data[position] ^= 0x01  # "Frackle": still a valid archive, wrong data
    path.write_bytes(bytes(data))
    pg_server.execute("INSERT INTO birds (name) VALUES ('after the backup')", database=app_db)
    before = snapshot(pg_server, app_db)
    with pytest.raises(CommandError, match="no longer matches the SHA-256 in its manifest"):
        command("restore_db", str(path), "--url", url, "--noinput")
    assert snapshot(pg_server, app_db) == before
    assert "MISMATCH" in command("list_backups")


def test_restore_failing_half_way_leaves_everything_as_it_was(pg_server, url, app_db, backup_dir):
    # A full backup whose last table holds a row its CHECK constraint refuses outside the session
    # that wrote it: the target is emptied, the first tables load, then the last one fails; the
    # transaction rolls all of it back, the objects made after the backup included.
    with pg_server.database("source") as source:
        create_app_data(pg_server, source)
        pg_server.execute(
            "ALTER TABLE sightings ADD CONSTRAINT restorable "
            "CHECK (notes IS NOT NULL OR coalesce(current_setting('birdsite.allow_empty', true), '') = 'on');"
            "SET birdsite.allow_empty = 'on'; INSERT INTO sightings (bird_id) VALUES (1)",
            database=source,
        )
        command("backup_db", "--url", pg_server.url(source))
    pg_server.execute(EXTRA_OBJECTS, database=app_db)
    before, objects_before = snapshot(pg_server, app_db), user_objects(pg_server, app_db)
    (dump,) = backup_dir.glob("source_*.dump")
    with pytest.raises(CommandError, match='violates check constraint "restorable"'):
        command("restore_db", str(dump), "--url", url, "--noinput", "--no-safety-backup")
    assert snapshot(pg_server, app_db) == before
    assert user_objects(pg_server, app_db) == objects_before


def test_a_data_only_dump_is_refused_before_anything_changes(pg_server, url, app_db, tmp_path):
    dump = tmp_path / "data-only.dump"
    raw_pg_dump(pg_server, app_db, "--format=custom", "--data-only", "--file", str(dump))
    pg_server.execute("UPDATE birds SET name = 'changed' WHERE id = 5", database=app_db)
    before = snapshot(pg_server, app_db)
    with pytest.raises(CommandError, match=r"holds data without tables \(pg_dump --data-only\): restore_db replaces"):
        command("restore_db", str(dump), "--url", url, "--noinput", "--no-safety-backup")
    assert snapshot(pg_server, app_db) == before


def test_restoring_another_databases_backup_leaves_only_its_tables(pg_server, url, app_db, backup_dir):
    with pg_server.database("notes_app") as other:
        pg_server.execute(
            "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'hi')", database=other
        )
        command("backup_db", "--url", pg_server.url(other))
        (dump,) = backup_dir.glob("notes_app_*.dump")
        refused = manage("restore_db", str(dump), "--url", url, env=child_env(BACKUP_DIR=backup_dir), input="no\n")
        assert f"Warning: it is a backup of database '{other}', not of '{app_db}'" in refused.stdout
        output = command("restore_db", str(dump), "--url", url, "--noinput")
        assert snapshot(pg_server, app_db) == snapshot(pg_server, other) == {"public.notes": ["(1,hi)"]}
    assert "1 tables, 1 rows (tables and row counts match the manifest)" in output
    (safety,) = backup_dir.glob(f"{app_db}-*-pre-restore.dump")  # what the target held
    assert set(json.loads(safety.with_name(safety.name + ".json").read_text())["tables"]) == {
        "archive.old_birds",
        "public.birds",
        "public.sightings",
    }


OUTSIDE_SCHEMAS_QUERY = """
    SELECT 'large object ' || convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata
    UNION ALL SELECT 'publication ' || pubname FROM pg_publication
    UNION ALL SELECT 'server ' || srvname FROM pg_foreign_server
    UNION ALL SELECT 'user mapping ' || srvname FROM pg_user_mappings
    ORDER BY 1
"""


@pytest.mark.parametrize("route", [["--no-safety-backup"], ["--jobs", "2"]], ids=["one-transaction", "jobs"])
def test_what_lies_in_no_schema_goes_too_when_the_backup_does_not_hold_it(pg_server, url, app_db, backup_dir, route):
    with pg_server.database("notes_app") as other:
        pg_server.execute("CREATE TABLE notes (id int PRIMARY KEY); INSERT INTO notes VALUES (1)", database=other)
        command("backup_db", "--url", pg_server.url(other))
        (dump,) = backup_dir.glob("notes_app_*.dump")
        pg_server.execute(
            "SELECT lo_from_bytea(0, 'scan.png'); CREATE PUBLICATION birds_feed FOR TABLE birds;"
            "CREATE FOREIGN DATA WRAPPER stand_in; CREATE SERVER elsewhere FOREIGN DATA WRAPPER stand_in;"
            "CREATE USER MAPPING FOR CURRENT_USER SERVER elsewhere OPTIONS (password 'x')",
            database=app_db,
        )
        assert len(pg_server.execute(OUTSIDE_SCHEMAS_QUERY, database=app_db)) == 4
        try:
            command("restore_db", str(dump), "--url", url, "--noinput", *route)
            assert pg_server.execute(OUTSIDE_SCHEMAS_QUERY, database=app_db) == []
            assert snapshot(pg_server, app_db) == {"public.notes": ["(1)"]}
        finally:
            pg_server.execute("DROP FOREIGN DATA WRAPPER stand_in CASCADE", database=app_db)


def test_a_restore_that_would_leave_a_table_beyond_the_manifest_commits_nothing(pg_server, url, app_db, backup_dir):
    command("backup_db", "--url", url)
    path = only_backup(backup_dir)
    manifest = json.loads(path.with_name(path.name + ".json").read_text())
    del manifest["tables"]["archive.old_birds"]  # as if the backup had not held it
    path.with_name(path.name + ".json").write_text(json.dumps(manifest))
    pg_server.execute("INSERT INTO birds (name, species) VALUES ('Added', 'after the backup')", database=app_db)
    before = snapshot(pg_server, app_db)
    failed = manage("restore_db", str(path), "--url", url, "--noinput", env=child_env(BACKUP_DIR=backup_dir))
    assert failed.returncode == 1
    (error,) = failed.stderr.strip().splitlines()
    assert error == (
        "CommandError: Row counts differ: archive.old_birds: not in the backup, 2 after restoring. "
        f"Nothing was restored: {pg_server.url(app_db).replace(pg_server.password, '****')} is as it was."
    )
    assert snapshot(pg_server, app_db) == before
    assert len(list(backup_dir.glob(f"{app_db}-*-pre-restore.dump"))) == 1  # taken first, and kept


def test_a_restore_whose_row_count_differs_from_the_manifest_commits_nothing(pg_server, url, app_db, backup_dir):
    command("backup_db", "--url", url)
    path = only_backup(backup_dir)
    manifest = json.loads(path.with_name(path.name + ".json").read_text())
    manifest["tables"]["public.birds"] += 1
    path.with_name(path.name + ".json").write_text(json.dumps(manifest))
    before = snapshot(pg_server, app_db)
    failed = manage(
        "restore_db", str(path), "--url", url, "--noinput", "--no-safety-backup", env=child_env(BACKUP_DIR=backup_dir)
    )
    assert failed.returncode == 1
    count = manifest["tables"]["public.birds"]
    assert f"Row counts differ: public.birds: {count} in the backup, {count - 1} after restoring." in failed.stderr
    assert snapshot(pg_server, app_db) == before


def large_objects(server, database):
    return server.execute(
        "SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata ORDER BY 1", database=database
    )


def test_a_backup_with_large_objects_restores_them_and_a_failed_check_commits_nothing(
    pg_server, url, app_db, backup_dir
):
    # pg_restore writes large objects inside a BEGIN ... COMMIT of their own, which would commit the
    # restore's one transaction halfway, before its row counts are checked.
    pg_server.execute("SELECT lo_from_bytea(0, 'first'), lo_from_bytea(0, 'second')", database=app_db)
    command("backup_db", "--url", url)
    path = only_backup(backup_dir)
    backed_up = snapshot(pg_server, app_db), large_objects(pg_server, app_db)
    pg_server.execute(
        "DELETE FROM sightings; SELECT lo_unlink(oid) FROM pg_largeobject_metadata; CREATE TABLE keepme (id int)",
        database=app_db,
    )
    command("restore_db", str(path), "--url", url, "--noinput", "--no-safety-backup")
    assert (snapshot(pg_server, app_db), large_objects(pg_server, app_db)) == backed_up

    pg_server.execute("DELETE FROM sightings; CREATE TABLE keepme (id int)", database=app_db)
    before = snapshot(pg_server, app_db), large_objects(pg_server, app_db)
    manifest = json.loads(path.with_name(path.name + ".json").read_text())
    manifest["tables"]["public.birds"] += 1
    path.with_name(path.name + ".json").write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match=r"Row counts differ: public\.birds: .* is as it was\.$"):
        command("restore_db", str(path), "--url", url, "--noinput", "--no-safety-backup")
    assert (snapshot(pg_server, app_db), large_objects(pg_server, app_db)) == before


def test_a_plain_dump_with_large_objects_that_fails_after_them_changes_nothing(pg_server, url, app_db, tmp_path):
    pg_server.execute("SELECT lo_from_bytea(0, 'kept apart')", database=app_db)
    dump = tmp_path / "plain.sql"
    raw_pg_dump(pg_server, app_db, "--format=plain", "--no-owner", "--file", str(dump))
    dump.write_text(dump.read_text() + "\nSELECT 1 / 0;\n")  # fails after the large objects' COMMIT
    pg_server.execute(
        "SELECT lo_unlink(oid) FROM pg_largeobject_metadata; CREATE TABLE keepme (id int)", database=app_db
    )
    before = snapshot(pg_server, app_db), large_objects(pg_server, app_db)
    with pytest.raises(CommandError, match="division by zero"):
        command("restore_db", str(dump), "--url", url, "--noinput", "--no-safety-backup")
    assert (snapshot(pg_server, app_db), large_objects(pg_server, app_db)) == before


def test_pg_dump_killed_mid_backup_leaves_no_file(pg_server, app_db, url, tmp_path):
    pg_server.execute(
        "INSERT INTO sightings (bird_id, notes) SELECT 1, jsonb_build_object('pad', repeat(md5(g::text), 20)) "
        "FROM generate_series(1, 300000) g",
        database=app_db,
    )
    backups = tmp_path / "backups"
    backup = subprocess.Popen(
        [sys.executable, "manage.py", "backup_db", "--url", url],
        cwd=PROJECT_DIR,
        env=child_env(BACKUP_DIR=backups),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = False
    while backup.poll() is None and not killed:
        for child in psutil.Process(backup.pid).children(recursive=True):
            # The dumping pg_dump (not discovery's version probes), once part of its archive is written.
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                dumping = child.name() == "pg_dump" and any("--snapshot" in arg for arg in child.cmdline())
                if dumping and any(".partial" in p.name and p.stat().st_size for p in backups.glob(".*")):
                    child.kill()
                    killed = True
    _, stderr = backup.communicate(timeout=60)
    assert killed, "pg_dump finished before it could be killed; make the table larger"
    assert backup.returncode == 1
    assert stderr.startswith("CommandError: pg_dump failed")
    assert "Traceback" not in stderr
    assert list(backups.iterdir()) == []


# --- connection problems ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password": "wrong-password"}, 'password authentication failed for user "postgres"'),
        ({"database": "no_such_db"}, 'database "no_such_db" does not exist'),
    ],
)
def test_connection_failures_are_one_line_errors(pg_server, backup_dir, change, message):
    url = pg_server.url(change.get("database", "postgres"), password=change.get("password"))
    result = manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=backup_dir))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert message in result.stderr
    assert "postgresql://postgres:****@127.0.0.1" in result.stderr
    assert pg_server.password not in result.stderr + result.stdout


def test_short_passwords_are_masked_where_they_stand_not_all_over_the_message(pg_server):
    pg_server.execute("DROP ROLE IF EXISTS simple_user; CREATE ROLE simple_user LOGIN PASSWORD 'simple'")
    try:
        missing_db = manage("db_info", "--url", f"postgres://simple_user:simple@127.0.0.1:{pg_server.port}/simple_dbx")
    finally:
        pg_server.execute("DROP ROLE simple_user")
    no_host = manage("db_info", "--url", "postgres://u:p@/bird_app_db?host=/tmp/no-such-folder/postgresql")
    assert missing_db.stderr == (
        f"CommandError: Cannot connect to postgresql://simple_user:****@127.0.0.1:{pg_server.port}/simple_dbx: "
        'database "simple_dbx" does not exist\n'
    )
    assert no_host.stderr == (
        "CommandError: Cannot connect to postgresql://u:****@/bird_app_db?host=/tmp/no-such-folder/postgresql: "
        'connection to server on socket "/tmp/no-such-folder/postgresql/.s.PGSQL.5432" failed: '
        "No such file or directory\n"
    )


def test_refused_port(backup_dir):
    url = f"postgres://u:pw@127.0.0.1:{free_port()}/db"
    result = manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=backup_dir))
    assert result.returncode == 1
    assert "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_server_that_does_not_answer_times_out(backup_dir):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        url = f"postgres://u:pw@127.0.0.1:{port}/db?connect_timeout=2"
        result = manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=backup_dir), timeout=60)
    assert result.returncode == 1
    assert "the server did not answer within 2 s" in result.stderr


def test_password_is_in_no_child_argv_and_no_output(pg_server, app_db, url, backup_dir, monkeypatch):
    started = []
    real_popen_init = subprocess.Popen.__init__

    def recording_init(self, args, *rest, **kwargs):
        started.append((list(args), dict(kwargs.get("env") or {})))
        real_popen_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", recording_init)
    output = command("backup_db", "--url", url, "-v", "2")
    output += command("restore_db", "--url", url, "--noinput", "-v", "2")
    assert "; used PostgreSQL " in output and "Used PostgreSQL " in output  # -v 2 names the tools chosen
    output += command("list_backups")
    monkeypatch.undo()

    programs = {os.path.basename(argv[0]) for argv, _ in started}
    assert {"pg_dump", "pg_restore"} <= programs
    for argv, env in started:
        assert not any(pg_server.password in arg for arg in argv), argv
        if "--host" in argv:  # the tools that connect to the server get the password from the environment
            assert env.get("PGPASSWORD") == pg_server.password
    assert pg_server.password not in output
    for path in backup_dir.iterdir():
        if path.suffix == ".json":
            assert pg_server.password not in path.read_text()


def test_version_mismatch_names_the_versions_and_the_fix(pg_server, app_db, url, pg15_server, backup_dir):
    result = manage("backup_db", "--url", url, env=child_env(PG_BIN_DIR=pg15_server.bin_dir, BACKUP_DIR=backup_dir))
    assert result.returncode == 1
    assert "The server runs PostgreSQL 18, which needs pg_dump/pg_restore/psql 18 or newer" in result.stderr
    assert "found only 15." in result.stderr
    assert "apt install postgresql-client-18" in result.stderr
    assert not backup_dir.exists() or not list(backup_dir.glob("*.dump"))


# --- several backups ----------------------------------------------------------------------------


def test_all_backs_up_every_database_of_the_instance(pg_server, app_db, url, backup_dir):
    with pg_server.database("second_app") as second:
        pg_server.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1), (2)", database=second)
        output = command("backup_db", "--url", url, "--all")
        expected = {
            name
            for (name,) in pg_server.execute("SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn")
        }
    databases = {json.loads(p.read_text())["database"] for p in backup_dir.glob("*.json")}
    assert databases == expected
    assert {app_db, second, "postgres"} <= databases
    assert output.count("Backed up") == len(expected)
    with pytest.raises(CommandError, match="drop --output"):
        command("backup_db", "--url", url, "--all", "--output", "x.dump")


def test_keep_deletes_all_but_the_newest(pg_server, app_db, url, backup_dir):
    for stamp in ("20200101T000000Z", "20200102T000000Z", "20200103T000000Z"):
        command("backup_db", "--url", url, "--output", str(backup_dir / f"{app_db}-{stamp}.dump"))
    output = command("backup_db", "--url", url, "--keep", "2")
    names = sorted(p.name for p in backup_dir.glob("*.dump"))
    assert len(names) == 2
    assert names[0] == f"{app_db}-20200103T000000Z.dump"
    assert output.count("Deleted old backup") == 2
    assert sorted(p.name for p in backup_dir.glob("*.json")) == [f"{name}.json" for name in names]


def test_list_backups(pg_server, app_db, url, backup_dir):
    assert f"No backups in {backup_dir}" in command("list_backups")
    command("backup_db", "--url", url)
    listing = command("list_backups").splitlines()
    assert listing[0].split() == [
        "FILE", "DATABASE", "SERVER", "CREATED", "(UTC)", "SIZE", "COMPRESSION", "KIND", "CHECKSUM"
    ]  # fmt: skip
    assert listing[1].split()[0] == only_backup(backup_dir).name
    assert listing[1].split()[1:3] == [app_db, f"127.0.0.1:{pg_server.port}"]
    assert listing[1].split()[-2:] == ["backup", "ok"]


def test_a_second_backup_while_one_runs_is_refused(pg_server, app_db, url, backup_dir):
    backup_dir.mkdir(parents=True)
    with BackupCatalog(LocalFolder(backup_dir)).lock(app_db), pytest.raises(CommandError, match="Another backup of"):
        command("backup_db", "--url", url)


@pytest.mark.parametrize("taken", ["here.dump", "here.dump.json"])
def test_an_output_or_its_manifest_that_exists_is_refused_before_connecting(tmp_path, taken):
    (tmp_path / taken).write_text("kept")
    unreachable = f"postgresql://app:secret@127.0.0.1:{free_port()}/app"
    with pytest.raises(CommandError) as raised:
        command("backup_db", "--url", unreachable, "--output", str(tmp_path / "here.dump"))
    assert str(raised.value) == f"{tmp_path / taken} already exists; choose another --output."
    assert [path.name for path in tmp_path.iterdir()] == [taken]
    assert (tmp_path / taken).read_text() == "kept"


def test_output_dash_streams_a_valid_archive(pg_server, app_db, url, tmp_path):
    with open(tmp_path / "stream.dump", "wb") as sink:
        result = subprocess.run(
            [sys.executable, "manage.py", "backup_db", "--url", url, "--output", "-"],
            cwd=PROJECT_DIR,
            env=child_env(),
            stdout=sink,
            stderr=subprocess.PIPE,
            text=False,
        )
    assert result.returncode == 0, result.stderr
    with pg_server.database("from_stream") as fresh:
        command("restore_db", str(tmp_path / "stream.dump"), "--url", pg_server.url(fresh), "--noinput")
        assert snapshot(pg_server, fresh) == snapshot(pg_server, app_db)


def test_backup_inside_an_unignored_git_work_tree_warns(pg_server, app_db, url, tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    output = command("backup_db", "--url", url, "--output", str(repo / "bird_app_db.dump"))
    assert "lies inside a git work tree and is not ignored" in output
    (repo / ".gitignore").write_text("*.dump\n")
    output = command("backup_db", "--url", url, "--output", str(repo / "second.dump"))
    assert "git work tree" not in output


def test_confirmation_refused_keeps_the_data(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    pg_server.execute("INSERT INTO birds (name) VALUES ('keep me')", database=app_db)
    before = snapshot(pg_server, app_db)
    env = child_env(BACKUP_DIR=backup_dir)
    restore = manage("restore_db", "--url", url, env=env, input="no\n")
    reset = manage("reset_db", "--url", url, env=env, input="\n")
    for result in (restore, reset):
        assert result.returncode == 1
        assert "Cancelled; nothing was changed." in result.stderr
    assert f"/{app_db} (3 tables)" in restore.stdout
    assert f"You are about to DROP postgresql://postgres:****@127.0.0.1:{pg_server.port}/{app_db}" in reset.stdout
    assert snapshot(pg_server, app_db) == before


def test_an_error_inside_a_maintenance_connection_is_reported_not_retried(pg_server):
    target = target_from_url(pg_server.url("bird_app_db"))
    with pytest.raises(DbOpsError, match='/postgres: relation "missing" does not exist'):  # noqa: SIM117
        with maintenance_connection(target) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT * FROM missing")


def test_backup_shows_per_table_progress_on_a_terminal(pg_server, app_db, url, tmp_path):
    import pty

    controller, terminal = pty.openpty()
    try:
        backup = subprocess.run(
            [sys.executable, "manage.py", "backup_db", "--url", url],
            cwd=PROJECT_DIR,
            env=child_env(BACKUP_DIR=tmp_path / "backups"),
            stdout=terminal,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        os.close(terminal)
        shown = b""
        while chunk := _read_available(controller):
            shown += chunk
    finally:
        os.close(controller)
    assert backup.returncode == 0, backup.stderr
    lines = shown.decode().splitlines()
    assert [line.strip() for line in lines if "dumping" in line] == [
        "dumping archive.old_birds",
        "dumping public.birds",
        "dumping public.sightings",
    ]
    assert "Backed up" in lines[-1]  # in colour, as Django styles success on a terminal
    # Without a terminal (and at the default verbosity) only the result is printed.
    # (Another folder: two backups in one second would have the same name.)
    quiet = manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=tmp_path / "quiet"))
    assert "dumping" not in quiet.stdout and quiet.stdout.startswith("Backed up")


def _read_available(fd):
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal's other end is closed: everything was read
        return b""


def test_manifest_time_is_the_time_in_the_file_name(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    path = only_backup(backup_dir)
    stamp = json.loads(path.with_name(path.name + ".json").read_text())["created_at"]
    assert stamp.replace("-", "").replace(":", "").replace("+0000", "Z") in path.name


def test_all_backs_up_every_database_it_can_and_lists_the_others(pg_server, app_db, backup_dir):
    pg_server.execute(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'partial_reader') THEN "
        "CREATE ROLE partial_reader LOGIN PASSWORD 'reader-pass'; END IF; END$$"
    )
    pg_server.execute(
        "GRANT SELECT ON ALL TABLES IN SCHEMA public, archive TO partial_reader;"
        "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO partial_reader",
        database=app_db,
    )
    pg_server.execute("GRANT USAGE ON SCHEMA archive TO partial_reader", database=app_db)
    with pg_server.database("aa_locked") as locked, pg_server.database("ab_unreadable") as unreadable:
        pg_server.execute(f'REVOKE CONNECT ON DATABASE "{locked}" FROM PUBLIC')
        pg_server.execute("CREATE TABLE secrets (x int)", database=unreadable)  # owned by postgres, not granted
        result = manage(
            "backup_db",
            "--all",
            "--url",
            pg_server.url(app_db, user="partial_reader", password="reader-pass"),
            env=child_env(BACKUP_DIR=backup_dir),
        )
    assert result.returncode == 1, result.stderr
    assert {json.loads(p.read_text())["database"] for p in backup_dir.glob("*.json")} >= {app_db, "postgres"}, (
        result.stderr
    )
    assert f"/{app_db} to " in result.stdout  # reported although two databases before it failed
    (error,) = result.stderr.strip().splitlines()
    failed, total = map(int, re.match(r"CommandError: Could not back up (\d+) of (\d+) databases: ", error).groups())
    assert failed >= 2 and total == failed + result.stdout.count("Backed up")  # others' test databases may fail too
    shown = f"postgresql://partial_reader:****@127.0.0.1:{pg_server.port}"
    assert f'{locked} (Cannot connect to {shown}/{locked}: permission denied for database "{locked}")' in error
    assert f"{unreadable} ({shown}/{unreadable}: permission denied for table secrets)" in error
    assert not list(backup_dir.glob(f"{locked}-*")) and not list(backup_dir.glob(f"{unreadable}-*"))
    assert not [p for p in backup_dir.iterdir() if ".partial" in p.name]


def test_backups_in_the_same_instant_get_names_that_differ_and_sort_by_time(
    pg_server, app_db, url, backup_dir, monkeypatch
):
    # A clock that does not move: the second backup's name is the first's plus a microsecond.
    instant = datetime(2026, 11, 23, 9, 5, 7, 999999, tzinfo=UTC)
    monkeypatch.setattr(manifest, "utc_now", lambda: instant)
    command("backup_db", "--url", url)
    command("backup_db", "--url", url)
    names = sorted(p.name for p in backup_dir.glob("*.dump"))
    assert names == [f"{app_db}-20261123T090507.999999Z.dump", f"{app_db}-20261123T090508.000000Z.dump"]
    assert [json.loads((backup_dir / f"{name}.json").read_text())["created_at"] for name in names] == [
        "2026-11-23T09:05:07.999999+00:00",
        "2026-11-23T09:05:08.000000+00:00",
    ]
    assert BackupCatalog(LocalFolder(backup_dir)).backups(app_db)[0].name == names[-1]


@pytest.fixture
def tiny_disk(tmp_path):
    """A tmpfs of the size the test asks for (we are root in CI); skipped where it cannot be mounted."""
    mounted = []

    def mount(size):
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to fill up ({result.stderr.strip() or 'mount failed'}); needs root")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_disk_full_at_the_manifest_leaves_nothing_behind(pg_server, app_db, url, tmp_path, tiny_disk):
    command("backup_db", "--url", url, "--output", str(tmp_path / "sized.dump"))
    archive_pages = -(-(tmp_path / "sized.dump").stat().st_size // 4096)
    disk = tiny_disk(archive_pages * 4096)  # room for the archive, none left for its manifest

    result = manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=disk))

    assert result.returncode == 1
    assert result.stderr.startswith("CommandError: Could not write the backup ")
    assert "No space left on device. Nothing was kept." in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert list(disk.iterdir()) == []


# --- files and folders that cannot be used: one line each, nothing lost -------------------------


def test_a_backup_without_read_permission_is_one_line_and_changes_nothing(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    path = only_backup(backup_dir)
    path.chmod(0o000)
    before = snapshot(pg_server, app_db)

    result = manage_with_file_permissions("restore_db", str(path), "--url", url, "--noinput",
                                          env=child_env(BACKUP_DIR=backup_dir))

    assert result.returncode == 1
    assert result.stderr == f"CommandError: Cannot read {path}: Permission denied. Nothing was restored.\n"
    assert snapshot(pg_server, app_db) == before


def test_a_read_only_backup_folder_is_one_line(pg_server, app_db, url, backup_dir):
    backup_dir.mkdir(mode=0o500)

    result = manage_with_file_permissions("backup_db", "--url", url, env=child_env(BACKUP_DIR=backup_dir))

    assert result.returncode == 1
    assert result.stderr == f"CommandError: Cannot write in the backup folder {backup_dir}: Permission denied.\n"
    assert list(backup_dir.iterdir()) == []


@pytest.mark.parametrize("where", ["BACKUP_DIR", "--output"])
def test_a_backup_folder_that_is_a_file_is_one_line(pg_server, app_db, url, tmp_path, where):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("notes")
    if where == "BACKUP_DIR":
        result = manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=a_file))
    else:
        result = manage("backup_db", "--url", url, "--output", str(a_file / "x.dump"), env=child_env())
    assert result.returncode == 1
    assert result.stderr == (
        f"CommandError: Cannot use {a_file} as the backup folder: it or a folder above it is a file. "
        "Point BACKUP_DIR (or --output) at a folder.\n"
    )
    assert a_file.read_text() == "notes"


def test_one_corrupt_manifest_is_reported_and_stops_nothing(pg_server, app_db, url, backup_dir):
    for stamp in ("20200101T000000Z", "20200102T000000Z"):
        command("backup_db", "--url", url, "--output", str(backup_dir / f"{app_db}-{stamp}.dump"))
    (backup_dir / "other_db-20200101T000000Z.dump").write_bytes(b"PGDMP")
    corrupt = backup_dir / "other_db-20200101T000000Z.dump.json"
    corrupt.write_text("{not json")
    env = child_env(BACKUP_DIR=backup_dir)

    listing = manage("list_backups", env=env)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert len(rows) == 3
    assert rows["other_db-20200101T000000Z.dump"].endswith("backup  unreadable manifest")
    assert listing.stderr.startswith(f"Warning: The manifest {corrupt} is not readable (Expecting property name")
    kept = manage("backup_db", "--url", url, "--keep", "1", env=env)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.count("Deleted old backup") == 2
    restored = manage("restore_db", "--url", url, "--noinput", env=env)
    assert restored.returncode == 0, restored.stderr
    broken = manage("restore_db", str(backup_dir / "other_db-20200101T000000Z.dump"), "--url", url, "--noinput",
                    env=env)
    assert broken.returncode == 1
    assert broken.stderr.startswith(f"CommandError: The manifest {corrupt} is not readable")
    assert broken.stderr.count("\n") == 1


def test_a_failed_restore_with_create_drops_the_database_it_created(pg_server, tmp_path, backup_dir):
    script = tmp_path / "half.sql"
    script.write_text("CREATE TABLE kept (id int);\nINSERT INTO kept VALUES (1);\nSELECT no_such_function();\n")
    name = "created_then_failed"
    try:
        with pytest.raises(CommandError, match="no_such_function"):
            command("restore_db", str(script), "--url", pg_server.url(name), "--noinput", "--create")
        assert not pg_server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
    finally:
        pg_server.drop_database(name)
