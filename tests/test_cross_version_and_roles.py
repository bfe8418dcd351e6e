"""PostgreSQL 15 <-> 18, and restoring as a database owner who is not a superuser."""

import psycopg2
import pytest
from django.core.management.base import CommandError

from tests.dbdata import APP_OBJECTS, EXTRA_OBJECTS, command, create_app_data, snapshot, user_objects
from tests.helpers import child_env, manage

pytestmark = pytest.mark.pg15
OWNER, OWNER_PASSWORD = "bird_owner", "owner-pass-123"


def newest_dump(backup_dir):
    return max(backup_dir.glob("*.dump"), key=lambda p: p.name)


def test_a_dump_of_postgresql_15_restores_into_18(pg15_server, pg_server, backup_dir):
    with pg15_server.database("old") as old, pg_server.database("new") as new:
        create_app_data(pg15_server, old)
        command("backup_db", "--url", pg15_server.url(old))
        command("restore_db", str(newest_dump(backup_dir)), "--url", pg_server.url(new), "--noinput")
        assert snapshot(pg_server, new) == snapshot(pg15_server, old)


def test_a_dump_taken_by_pg_dump_18_from_15_restores_back_into_15(pg15_server, backup_dir):
    with pg15_server.database("source") as source, pg15_server.database("target") as target:
        create_app_data(pg15_server, source)
        create_app_data(pg15_server, target)
        pg15_server.execute(EXTRA_OBJECTS, database=target)
        output = command("backup_db", "--url", pg15_server.url(source), "-v", "2")
        manifest_dump_version = (newest_dump(backup_dir).with_suffix(".dump.json")).read_text()
        assert '"pg_dump_version": "18.' in manifest_dump_version  # newest tools, as the server allows
        assert '"server_version": "15.' in manifest_dump_version
        assert "Backed up" in output
        command("restore_db", str(newest_dump(backup_dir)), "--url", pg15_server.url(target), "--noinput")
        assert snapshot(pg15_server, target) == snapshot(pg15_server, source)
        assert user_objects(pg15_server, target) == APP_OBJECTS


def test_plain_sql_from_pg_dump_18_restores_into_15(pg15_server, pg_server, tmp_path, backup_dir):
    # pg_dump 17+ writes "SET transaction_timeout = 0", which a 16-or-older server rejects.
    with pg15_server.database("source") as source, pg15_server.database("target") as target:
        create_app_data(pg15_server, source)
        script = tmp_path / "plain.sql"
        pg15_server.run_tool(
            "pg_dump", "--format=plain", "--no-owner", "--file", str(script), source, bin_dir=pg_server.bin_dir
        )
        assert "SET transaction_timeout" in script.read_text()
        create_app_data(pg15_server, target)
        pg15_server.execute(EXTRA_OBJECTS, database=target)
        command("restore_db", str(script), "--url", pg15_server.url(target), "--noinput")
        assert snapshot(pg15_server, target) == snapshot(pg15_server, source)
        assert user_objects(pg15_server, target) == APP_OBJECTS


@pytest.mark.parametrize("archive_format", ["custom", "plain"])
def test_a_row_that_reads_like_the_setting_15_rejects_is_restored_into_15(
    pg15_server, pg_server, tmp_path, archive_format
):
    # The setting is left out only among a script's opening lines, where pg_dump writes it: a row that
    # reads the same is data, also in an archive without a manifest to count against.
    with pg15_server.database("source") as source, pg15_server.database("target") as target:
        pg15_server.execute(
            "CREATE TABLE said (line text); INSERT INTO said VALUES ('SET transaction_timeout = 0;'), ('kept')",
            database=source,
        )
        archive = tmp_path / f"said.{archive_format}"
        pg15_server.run_tool(
            "pg_dump", f"--format={archive_format}", "--file", str(archive), source, bin_dir=pg_server.bin_dir
        )
        command("restore_db", str(archive), "--url", pg15_server.url(target), "--noinput", "--no-safety-backup")
        assert sorted(pg15_server.execute("SELECT line FROM said", database=target)) == [
            ("SET transaction_timeout = 0;",), ("kept",)
        ]


def test_an_archive_newer_than_every_pg_restore_is_refused_with_the_version_it_needs(
    pg15_server, pg_server, backup_dir
):
    with pg_server.database("new") as new, pg15_server.database("old") as old:
        create_app_data(pg_server, new)
        command("backup_db", "--url", pg_server.url(new), "--compress", "gzip")  # what pg_restore 15 could read
        before = snapshot(pg15_server, old)
        result = manage(
            "restore_db",
            str(newest_dump(backup_dir)),
            "--url",
            pg15_server.url(old),
            "--noinput",
            env=child_env(PG_BIN_DIR=pg15_server.bin_dir, BACKUP_DIR=backup_dir),
        )
        assert result.returncode == 1
        assert "The archive was made by pg_dump of PostgreSQL 18, which needs pg_dump/pg_restore/psql 18" in (
            result.stderr
        )
        assert snapshot(pg15_server, old) == before


@pytest.fixture
def owner_database(pg_server):
    """A database owned by a role that is not a superuser, holding pg_trgm that a superuser installed."""
    role, password = OWNER, OWNER_PASSWORD
    pg_server.execute(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bird_owner') THEN "
        f"CREATE ROLE bird_owner LOGIN PASSWORD '{password}'; END IF; END$$"
    )
    name = pg_server.create_database("owned")
    pg_server.execute(f'ALTER DATABASE "{name}" OWNER TO {role}')
    pg_server.execute("CREATE EXTENSION pg_trgm", database=name)
    owner_url = pg_server.url(name, user=role, password=password)
    conn = psycopg2.connect(owner_url)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE words (id serial PRIMARY KEY, word text);"
            "INSERT INTO words (word) VALUES ('chickadee'), ('grackle'), ('starling');"
            "CREATE INDEX words_trgm ON words USING gin (word gin_trgm_ops);"
        )
    conn.close()
    yield name, owner_url
    pg_server.drop_database(name)


def test_restore_as_a_non_superuser_owner_of_a_dump_holding_an_extension(pg_server, owner_database, backup_dir):
    name, owner_url = owner_database
    command("backup_db", "--url", owner_url)
    before = snapshot(pg_server, name)
    pg_server.execute("DELETE FROM words", database=name)
    with psycopg2.connect(owner_url) as conn, conn.cursor() as cursor:  # the owner's own later work
        cursor.execute(EXTRA_OBJECTS)
    command("restore_db", str(newest_dump(backup_dir)), "--url", owner_url, "--noinput")
    assert snapshot(pg_server, name) == before
    assert pg_server.execute("SELECT word FROM words WHERE word % 'grackel'", database=name) == [("grackle",)]
    assert user_objects(pg_server, name) == [("public.words", "table"), ("public.words_id_seq", "sequence")]


def test_an_owners_restore_drops_its_own_large_objects_and_publications_and_leaves_others(
    pg_server, owner_database, backup_dir
):
    name, owner_url = owner_database
    command("backup_db", "--url", owner_url)
    pg_server.execute("SELECT lo_from_bytea(0, 'the superuser''s')", database=name)
    with psycopg2.connect(owner_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT lo_from_bytea(0, 'the owner''s'); CREATE PUBLICATION words_feed FOR TABLE words")
    # --no-safety-backup: the owner's pg_dump may not read the superuser's large object
    command("restore_db", str(newest_dump(backup_dir)), "--url", owner_url, "--noinput", "--no-safety-backup")
    large_objects = "SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata"
    assert pg_server.execute(large_objects, database=name) == [("the superuser's",)]
    assert pg_server.execute("SELECT pubname FROM pg_publication", database=name) == []


def test_without_filtering_the_owner_could_not_restore_that_dump(pg_server, owner_database, backup_dir):
    # The trap the filtering avoids: plain pg_restore --clean as the owner fails on the extension.

    name, owner_url = owner_database
    command("backup_db", "--url", owner_url, "--compress", "gzip")  # the wheel's pg_restore has no zstd
    result = pg_server.run_tool(
        "pg_restore", "--clean", "--if-exists", "--no-owner", "--no-acl", "--single-transaction",
        "--exit-on-error", "-d", name, str(newest_dump(backup_dir)),
        user=OWNER, password=OWNER_PASSWORD, check=False,
    )
    assert result.returncode != 0
    assert "must be owner of extension pg_trgm" in result.stderr


def test_copy_db_as_a_non_superuser_owner_into_a_database_holding_the_extension(pg_server, owner_database):
    # The target, like the source, belongs to bird_owner and holds pg_trgm that a superuser installed.
    name, owner_url = owner_database
    with pg_server.database("owned_copy") as copy_name:
        pg_server.execute(f'ALTER DATABASE "{copy_name}" OWNER TO {OWNER}')
        pg_server.execute("CREATE EXTENSION pg_trgm; CREATE TABLE old (x int)", database=copy_name)
        pg_server.execute(f"ALTER TABLE old OWNER TO {OWNER}", database=copy_name)
        copy_url = pg_server.url(copy_name, user=OWNER, password=OWNER_PASSWORD)
        output = command("copy_db", "--from", owner_url, "--to", copy_url, "--noinput")
        assert "copied and verified" in output
        assert snapshot(pg_server, copy_name)["public.words"] == snapshot(pg_server, name)["public.words"]
        found = pg_server.execute("SELECT word FROM words WHERE word % 'grackel'", database=copy_name)
        assert found == [("grackle",)]


def test_refuses_the_maintenance_database(pg_server):
    with pytest.raises(CommandError, match="Refusing to drop 'postgres'"):
        command("reset_db", "--url", pg_server.url("postgres"), "--noinput")
