"""reset_db on PostgreSQL and SQLite, and SQLite backup/restore."""

import sqlite3

import psycopg2
import pytest
from django.core.management.base import CommandError

from dbops.errors import DbOpsError
from tests.dbdata import command, create_app_data
from tests.helpers import child_env, manage


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


def test_a_sqlite_table_named_like_sqlites_own_is_counted_and_checked(sqlite_db, backup_dir):
    # Only "sqlite_..." is SQLite's own: a table of the app's called SQLiteLog is in the manifest.
    with sqlite3.connect(sqlite_db) as conn:
        conn.execute("CREATE TABLE SQLiteLog (line text)")
        conn.execute("INSERT INTO SQLiteLog VALUES ('started'), ('stopped')")
    output = command("backup_db", "--url", f"sqlite:///{sqlite_db}")
    (backup,) = backup_dir.glob("site-*.sqlite3")
    assert "3 tables, 5 rows" in output
    assert '"SQLiteLog": 2' in backup.with_name(backup.name + ".json").read_text()


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


@pytest.fixture
def owner_without_createdb(pg_server):
    """A database owned by a login role that is neither a superuser nor allowed to create databases."""
    pg_server.execute(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'no_createdb') THEN "
        "CREATE ROLE no_createdb LOGIN PASSWORD 'no-createdb-pass' NOCREATEDB; END IF; END$$"
    )
    with pg_server.database("owned") as name:
        pg_server.execute(f'ALTER DATABASE "{name}" OWNER TO no_createdb')
        create_app_data(pg_server, name)
        yield name, pg_server.url(name, user="no_createdb", password="no-createdb-pass")


def test_reset_refuses_before_dropping_when_the_role_could_not_create_the_database_again(
    pg_server, owner_without_createdb
):
    name, owner_url = owner_without_createdb
    result = manage("reset_db", "--url", owner_url, "--noinput")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: Cannot reset postgresql://no_createdb:****@127.0.0.1:{pg_server.port}/{name}: the role "
        "'no_createdb' may drop it but has no CREATEDB privilege to create it again (a superuser can grant it: "
        "ALTER ROLE no_createdb CREATEDB). Nothing was changed."
    ]
    assert tables(pg_server, name) == ["birds", "sightings"]


def test_reset_creates_the_replacement_before_dropping(pg_server, owner_without_createdb):
    # Even past the check (it runs before the prompt), the database is never dropped without its replacement.
    from dbops import postgres
    from dbops.connection import target_from_url

    name, owner_url = owner_without_createdb
    with pytest.raises(DbOpsError, match="so nothing was dropped: permission denied to create database"):
        postgres.recreate(target_from_url(owner_url))
    assert tables(pg_server, name) == ["birds", "sightings"]
    assert pg_server.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{name}_reset_%"]) == []


def test_reset_as_an_owner_with_createdb_keeps_the_owner(pg_server, owner_without_createdb):
    name, owner_url = owner_without_createdb
    pg_server.execute("ALTER ROLE no_createdb CREATEDB")
    try:
        output = command("reset_db", "--url", owner_url, "--noinput")
    finally:
        pg_server.execute("ALTER ROLE no_createdb NOCREATEDB")
    assert "it is now empty" in output
    assert tables(pg_server, name) == []
    owner = pg_server.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name])
    assert owner == [("no_createdb",)]
    assert pg_server.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s", [f"{name}_reset_%"]) == [(0,)]


@pytest.mark.usefixtures("owner_without_createdb")
def test_reset_refuses_a_database_it_does_not_own(pg_server):
    with pg_server.database("other") as other:
        url = pg_server.url(other, user="no_createdb", password="no-createdb-pass")
        with pytest.raises(CommandError, match="only its owner 'postgres' or a superuser may drop it, and you connect"):
            command("reset_db", "--url", url, "--noinput")


def test_reset_of_a_database_that_does_not_exist_is_an_error_unless_create(pg_server):
    missing = "bird_app_dbb"  # a typo
    with pytest.raises(CommandError, match=r"/bird_app_dbb does not exist \(is the name right\?\); nothing was"):
        command("reset_db", "--url", pg_server.url(missing), "--noinput")
    assert pg_server.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [missing]) == [(0,)]

    try:
        output = command("reset_db", "--url", pg_server.url(missing), "--noinput", "--create")
        assert f"Created postgresql://postgres:****@127.0.0.1:{pg_server.port}/{missing}: it is now empty." in output
        assert pg_server.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [missing]) == [(1,)]
    finally:
        pg_server.drop_database(missing)


@pytest.mark.parametrize(
    ("command_args", "option"),
    [
        (["reset_db", "--noinput", "--url", ""], "--url"),
        (["backup_db", "--url", ""], "--url"),
        (["restore_db", "--noinput", "--url", ""], "--url"),
        (["db_info", "--url", " "], "--url"),
        (["copy_db", "--noinput", "--from", "", "--to", "postgresql://u@h/x"], "--from"),
        (["copy_db", "--noinput", "--from", "postgresql://u@h/x", "--to", ""], "--to"),
    ],
)
def test_an_empty_url_is_an_error_not_database_url(pg_server, command_args, option):
    # An unset shell variable ($NEW_URL) must not silently mean DATABASE_URL, the database to keep.
    with pg_server.database("default") as name:
        create_app_data(pg_server, name)
        result = manage(*command_args, env=child_env(DATABASE_URL=pg_server.url(name)))
        assert result.returncode == 1
        assert result.stderr.startswith(f"CommandError: {option} is empty (an unset shell variable?)")
        assert tables(pg_server, name) == ["birds", "sightings"]
