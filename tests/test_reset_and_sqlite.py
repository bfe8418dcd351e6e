"""reset_db on PostgreSQL and SQLite, and SQLite backup/restore."""

import sqlite3

import psycopg2
import pytest
from django.core.management.base import CommandError

from tests.dbdata import command, create_app_data
from tests.helpers import child_env, manage


@pytest.fixture
def backup_dir(tmp_path, settings):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


def tables(server, database):
    return [
        name
        for (name,) in server.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", database=database
        )
    ]


def test_reset_drops_everything_even_with_sessions_open(pg_server):
    with pg_server.database("reset") as name:
        create_app_data(pg_server, name)
        session = psycopg2.connect(pg_server.url(name))  # another session, as a running site has
        try:
            result = manage("reset_db", "--noinput", env=child_env(DATABASE_URL=pg_server.url(name, scheme="postgres")))
        finally:
            session.close()
        assert result.returncode == 0, result.stderr
        assert f"Reset postgresql://postgres:****@127.0.0.1:{pg_server.port}/{name}: it is now empty." in result.stdout
        assert tables(pg_server, name) == []


def test_reset_with_migrate_and_seed(pg_server):
    with pg_server.database("reset") as name:
        create_app_data(pg_server, name)
        result = manage("reset_db", "--noinput", "--migrate", "--seed", env=child_env(DATABASE_URL=pg_server.url(name)))
        assert result.returncode == 0, result.stderr
        assert "sightings" not in tables(pg_server, name)
        assert "django_migrations" in tables(pg_server, name)
        assert pg_server.execute("SELECT id, name FROM birds ORDER BY id", database=name)[0] == (
            1,
            "Black-Capped Chickadee",
        )
        assert pg_server.execute("SELECT count(*) FROM birds", database=name) == [(4,)]


def test_reset_keeps_the_database_owner(pg_server):
    pg_server.execute(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reset_owner') THEN "
        "CREATE ROLE reset_owner; END IF; END$$"
    )
    with pg_server.database("reset") as name:
        pg_server.execute(f'ALTER DATABASE "{name}" OWNER TO reset_owner')
        command("reset_db", "--url", pg_server.url(name), "--noinput")
        owner = pg_server.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name])
        assert owner == [("reset_owner",)]


def test_reset_options_that_do_not_fit(pg_server):
    with pytest.raises(CommandError, match="--seed needs the tables that --migrate creates"):
        command("reset_db", "--noinput", "--seed")
    with pytest.raises(CommandError, match="use --database ALIAS, not --url"):
        command("reset_db", "--url", pg_server.url("whatever"), "--noinput", "--migrate")


@pytest.fixture
def sqlite_db(tmp_path):
    path = tmp_path / "site.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE birds (id INTEGER PRIMARY KEY, name TEXT, species TEXT);"
        "INSERT INTO birds (name, species) VALUES ('Grackle', 'Quiscalus Quiscula'), ('Ωmega', NULL);"
        "CREATE TABLE notes (body BLOB); INSERT INTO notes VALUES (x'00ff10');"
    )
    conn.commit()
    conn.close()
    return path


def sqlite_rows(path):
    conn = sqlite3.connect(path)
    try:
        return {
            table: sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall())
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        }
    finally:
        conn.close()


def test_sqlite_backup_and_restore_round_trip(sqlite_db, backup_dir):
    url = f"sqlite:///{sqlite_db}"
    original = sqlite_rows(sqlite_db)
    reader = sqlite3.connect(sqlite_db)  # the site keeps its connection open meanwhile
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM birds").fetchall()
    output = command("backup_db", "--url", url)
    reader.rollback()
    reader.close()
    (backup,) = backup_dir.glob("site-*.sqlite3")
    assert "2 tables, 3 rows" in output
    assert '"notes": 1' in backup.with_name(backup.name + ".json").read_text()

    with sqlite3.connect(sqlite_db) as conn:
        conn.execute("DELETE FROM birds")
    output = command("restore_db", "--url", url, "--noinput")
    assert "Safety backup of the previous contents" in output
    assert "row counts match the manifest" in output
    assert sqlite_rows(sqlite_db) == original


def test_sqlite_refuses_damaged_and_postgres_files(sqlite_db, backup_dir, tmp_path):
    url = f"sqlite:///{sqlite_db}"
    original = sqlite_rows(sqlite_db)
    damaged = tmp_path / "damaged.sqlite3"
    data = bytearray(sqlite_db.read_bytes())
    data[100:4096] = bytes(range(256)) * 15 + bytes(range(156))
    damaged.write_bytes(bytes(data))
    with pytest.raises(CommandError, match=r"not a usable SQLite database|failed SQLite's integrity check"):
        command("restore_db", str(damaged), "--url", url, "--noinput", "--no-safety-backup")
    pg_archive = tmp_path / "pg.dump"
    pg_archive.write_bytes(b"PGDMP\x01\x10\x00" + bytes(100))
    with pytest.raises(CommandError, match="is a PostgreSQL custom archive; the target is SQLite"):
        command("restore_db", str(pg_archive), "--url", url, "--noinput", "--no-safety-backup")
    assert sqlite_rows(sqlite_db) == original


def test_sqlite_reset_replaces_the_file_with_an_empty_database(sqlite_db):
    command("reset_db", "--url", f"sqlite:///{sqlite_db}", "--noinput")
    assert sqlite_rows(sqlite_db) == {}


def test_sqlite_reset_with_migrate_and_seed(tmp_path):
    path = tmp_path / "db.sqlite3"
    result = manage("reset_db", "--noinput", "--migrate", "--seed", env=child_env(DATABASE_URL=f"sqlite:///{path}"))
    assert result.returncode == 0, result.stderr
    assert sqlite_rows(path)["birds"][0] == (1, "Black-Capped Chickadee", "Poecile Atricapillus")
    assert len(sqlite_rows(path)["birds"]) == 4


def test_a_sqlite_backup_is_refused_for_a_postgresql_target(pg_server, sqlite_db, backup_dir):
    command("backup_db", "--url", f"sqlite:///{sqlite_db}")
    (backup,) = backup_dir.glob("site-*.sqlite3")
    with pg_server.database("target") as name:
        pg_server.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)", database=name)
        refused = r"is a SQLite database; the target is PostgreSQL\. Nothing was restored"
        with pytest.raises(CommandError, match=refused):
            command("restore_db", str(backup), "--url", pg_server.url(name), "--noinput")
        assert pg_server.execute("SELECT x FROM kept", database=name) == [(1,)]
    assert list(backup_dir.glob("*pre-restore*")) == []
