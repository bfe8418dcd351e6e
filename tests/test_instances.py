"""copy_db, create_db and db_info with two PostgreSQL instances running at once (and Debian's 15)."""

import json
import sqlite3
import subprocess
import sys

import pytest
from django.core.management.base import CommandError

from dbops import copy, postgres
from dbops.connection import target_from_url
from dbops.errors import DbOpsError
from tests.dbdata import command, create_app_data, snapshot
from tests.helpers import PROJECT_DIR, child_env, manage
from tests.servers import embedded_server

SECOND_APP_SCHEMA = """
CREATE TABLE notes (id int PRIMARY KEY, body text, written date);
INSERT INTO notes SELECT g, 'note ' || g, date '2026-01-01' + g FROM generate_series(1, 42) AS g;
CREATE TABLE tags (name text PRIMARY KEY);
INSERT INTO tags VALUES ('owl'), ('heron');
"""


@pytest.fixture(scope="module")
def old_instance():
    with embedded_server() as server:
        yield server


@pytest.fixture(scope="module")
def new_instance():
    with embedded_server() as server:
        yield server


def app_databases(server):
    return [
        name
        for (name,) in server.execute(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1"
        )
    ]


@pytest.fixture
def instances(old_instance, new_instance):
    """The tutorial's situation: two apps' databases (and an empty one) in the old instance, a new empty one."""
    old_instance.execute("CREATE DATABASE bird_app_db")
    create_app_data(old_instance, "bird_app_db")
    old_instance.execute("CREATE DATABASE notes_app_db")
    old_instance.execute(SECOND_APP_SCHEMA, database="notes_app_db")
    old_instance.execute("CREATE DATABASE empty_db")
    yield old_instance, new_instance
    for server in (old_instance, new_instance):
        if not server.cluster.is_running():
            server.cluster.start()
        for name in app_databases(server):
            server.drop_database(name)


def copy_all(old, new, *options):
    return command("copy_db", "--all", "--from", old.url("postgres"), "--to", new.url("postgres"), *options)


def test_copy_all_copies_every_database_that_holds_tables(instances):
    old, new = instances
    before = {name: snapshot(old, name) for name in ("bird_app_db", "notes_app_db")}

    output = copy_all(old, new)

    assert app_databases(new) == ["bird_app_db", "notes_app_db"]  # empty_db and postgres hold no tables
    for name, rows in before.items():
        assert snapshot(new, name) == rows
        assert snapshot(old, name) == rows
    assert (
        f"bird_app_db: copying 3 tables, about 507 rows, to postgresql://postgres:****@127.0.0.1:{new.port}"
        "/bird_app_db (a new database) ..." in output
    )
    assert "bird_app_db: copied and verified, 3 tables, 507 rows" in output
    assert "notes_app_db: copied and verified, 2 tables, 44 rows" in output
    assert f"  bird_app_db: postgresql://postgres:****@127.0.0.1:{new.port}/bird_app_db" in output
    assert f"  notes_app_db: postgresql://postgres:****@127.0.0.1:{new.port}/notes_app_db" in output
    assert old.password not in output and new.password not in output


def test_rerun_skips_what_was_copied_and_shows_the_password_when_asked(instances):
    old, new = instances
    copy_all(old, new)

    output = copy_all(old, new, "--show-password")

    assert "bird_app_db: skipped, " in output and "notes_app_db: skipped, " in output
    assert "copying" not in output
    assert f"  bird_app_db: {new.url('bird_app_db')}" in output


def test_rerun_after_changes_that_keep_every_row_count_copies_again(instances):
    old, new = instances
    copy_all(old, new)
    old.execute(
        "UPDATE birds SET name = 'Common Grackle' WHERE name = 'Grackle';"
        "DELETE FROM sightings WHERE id = 7;"
        "INSERT INTO sightings (bird_id, seen_at) VALUES (2, '2026-06-01 12:00:00+00')",
        database="bird_app_db",
    )
    assert old.execute("SELECT count(*) FROM birds", database="bird_app_db") == [(5,)]
    assert old.execute("SELECT count(*) FROM sightings", database="bird_app_db") == [(500,)]

    output = copy_all(old, new, "--noinput")

    assert "bird_app_db: copied and verified, 3 tables, 507 rows" in output
    assert "notes_app_db: skipped, " in output  # unchanged: the hashes of its rows still match
    assert snapshot(new, "bird_app_db") == snapshot(old, "bird_app_db")


# A migration deployed between two runs of copy_db --all: every row stays as it was.
SCHEMA_CHANGES = {
    "index": (
        "CREATE INDEX sightings_seen_at ON sightings (seen_at)",
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'sightings_seen_at'",
    ),
    "view": (
        "CREATE VIEW bird_names AS SELECT name FROM birds",
        "SELECT definition FROM pg_views WHERE viewname = 'bird_names'",
    ),
    "constraint": (
        "ALTER TABLE sightings ADD CONSTRAINT weight_not_negative CHECK (weight >= 0)",
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'weight_not_negative'",
    ),
    "default": (
        "ALTER TABLE birds ALTER COLUMN species SET DEFAULT 'unknown'",
        "SELECT column_default FROM information_schema.columns WHERE table_name = 'birds' AND column_name = 'species'",
    ),
    "function": (
        "CREATE FUNCTION bird_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM birds'",
        "SELECT prosrc FROM pg_proc WHERE proname = 'bird_count'",
    ),
}


@pytest.mark.parametrize("kind", SCHEMA_CHANGES)
def test_rerun_after_a_schema_change_that_keeps_every_row_copies_again(instances, kind):
    old, new = instances
    change, question = SCHEMA_CHANGES[kind]
    copy_all(old, new)
    old.execute(change, database="bird_app_db")
    (in_source,) = old.execute(question, database="bird_app_db")

    refused = manage(
        "copy_db", "--all", "--from", old.url("postgres"), "--to", new.url("postgres"), env=child_env(), input="no\n"
    )
    assert refused.returncode == 1
    assert "/bird_app_db (3 tables): its schema differs from the source's (only in the source: " in refused.stdout
    assert new.execute(question, database="bird_app_db") != [in_source]  # nothing changed before "yes"

    output = copy_all(old, new, "--noinput")

    assert "bird_app_db: copied and verified, 3 tables, 507 rows" in output
    assert "notes_app_db: skipped, " in output
    assert new.execute(question, database="bird_app_db") == [in_source]
    assert snapshot(new, "bird_app_db") == snapshot(old, "bird_app_db")
    assert "bird_app_db: skipped, " in copy_all(old, new)  # now equal: the next run has nothing to do


def test_copy_all_copies_every_database_it_can_and_names_each_it_cannot(instances):
    old, new = instances
    old.execute(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'partial_reader') THEN "
        "CREATE ROLE partial_reader LOGIN PASSWORD 'reader-pass'; END IF; END$$"
    )
    for name in ("bird_app_db", "notes_app_db"):
        old.execute(
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO partial_reader;"
            "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO partial_reader",
            database=name,
        )
    old.execute(
        "GRANT USAGE ON SCHEMA archive TO partial_reader; GRANT SELECT ON archive.old_birds TO partial_reader",
        database="bird_app_db",
    )
    old.execute("CREATE DATABASE aa_locked")
    old.execute("CREATE TABLE kept_out (x int)", database="aa_locked")
    old.execute("REVOKE CONNECT ON DATABASE aa_locked FROM PUBLIC")
    old.execute("CREATE DATABASE ab_unreadable")
    old.execute("CREATE TABLE secrets (x int)", database="ab_unreadable")  # owned by postgres, not granted
    source = old.url("postgres", user="partial_reader", password="reader-pass")

    result = manage("copy_db", "--all", "--from", source, "--to", new.url("postgres"), env=child_env())

    assert result.returncode == 1, result.stderr
    assert app_databases(new) == ["bird_app_db", "notes_app_db"]
    assert snapshot(new, "bird_app_db") == snapshot(old, "bird_app_db")
    assert snapshot(new, "notes_app_db") == snapshot(old, "notes_app_db")
    assert "bird_app_db: copied and verified, 3 tables, 507 rows" in result.stdout
    assert "notes_app_db: copied and verified, 2 tables, 44 rows" in result.stdout
    assert f"  notes_app_db: postgresql://postgres:****@127.0.0.1:{new.port}/notes_app_db" in result.stdout
    (error,) = result.stderr.strip().splitlines()
    shown = f"postgresql://partial_reader:****@127.0.0.1:{old.port}"
    assert error.startswith(
        f"CommandError: Could not copy 2 of 4 databases: aa_locked (Cannot connect to {shown}/aa_locked: "
        'permission denied for database "aa_locked"); '
        f"ab_unreadable ({shown}/ab_unreadable: permission denied for table secrets). "
    ), error
    assert "reader-pass" not in result.stdout + result.stderr


def test_a_copy_with_one_changed_value_is_not_verified(instances):
    old, new = instances
    source, target = target_from_url(old.url("bird_app_db")), target_from_url(new.url("bird_app_db"))
    (item,) = copy.plan_copy(source, target).copies
    copy.copy_database(item)
    new.execute("UPDATE sightings SET weight = weight + 0.01 WHERE id = 250", database="bird_app_db")

    with pytest.raises(DbOpsError, match=r"public\.sightings: 500 rows, hash [-\d/]+ in the source, 500 rows, hash"):
        copy.compare_fingerprints(postgres.fingerprints(source), postgres.fingerprints(target))
    assert copy.plan_copy(source, target).copies[0].action is copy.Action.OVERWRITE


def test_a_target_holding_other_data_is_only_overwritten_after_confirmation(instances):
    old, new = instances
    copy_all(old, new)
    old.execute("INSERT INTO tags VALUES ('wren')", database="notes_app_db")
    new.execute("INSERT INTO notes VALUES (1000, 'written on the new instance')", database="notes_app_db")
    target_before = snapshot(new, "notes_app_db")

    refused = manage(
        "copy_db", "--all", "--from", old.url("postgres"), "--to", new.url("postgres"), env=child_env(), input="no\n"
    )

    assert refused.returncode == 1
    assert "Cancelled; nothing was changed." in refused.stderr
    assert f"postgresql://postgres:****@127.0.0.1:{new.port}/notes_app_db (2 tables)" in refused.stdout
    assert "bird_app_db" not in refused.stdout  # already copied: nothing to confirm
    assert snapshot(new, "notes_app_db") == target_before

    output = copy_all(old, new, "--noinput")

    assert "bird_app_db: skipped" in output
    assert "notes_app_db: copied and verified, 2 tables, 45 rows" in output
    assert snapshot(new, "notes_app_db") == snapshot(old, "notes_app_db")


def test_a_failure_half_way_names_the_database_and_a_rerun_finishes(instances):
    old, new = instances
    source_before = {name: snapshot(old, name) for name in ("bird_app_db", "notes_app_db")}
    plan = copy.plan_copy(target_from_url(old.url("postgres")), target_from_url(new.url("postgres")), True).copies
    assert [item.action for item in plan] == [copy.Action.CREATE, copy.Action.CREATE]

    copy.copy_database(plan[0])
    new.cluster.stop()  # the new instance goes away before the second database
    with pytest.raises(DbOpsError) as failure:
        copy.copy_database(plan[1])

    message = str(failure.value)
    assert message.startswith("Copying database 'notes_app_db' (postgresql://postgres:****@127.0.0.1:")
    assert "Connection refused" in message and "Run the same command again" in message
    assert new.password not in message and old.password not in message
    assert {name: snapshot(old, name) for name in source_before} == source_before

    new.cluster.start()
    output = copy_all(old, new)
    assert "bird_app_db: skipped" in output
    assert "notes_app_db: copied and verified" in output
    assert snapshot(new, "notes_app_db") == source_before["notes_app_db"]


def test_a_restore_failing_inside_the_target_leaves_it_unchanged(instances):
    # The target's transaction fails on a table the user made on the new instance: pg_restore --clean
    # cannot drop "birds" while another table's foreign key depends on it.
    old, new = instances
    new.execute("CREATE DATABASE bird_app_db")
    new.execute(
        "CREATE TABLE birds (id int PRIMARY KEY); INSERT INTO birds VALUES (7);"
        "CREATE TABLE nests (bird_id int REFERENCES birds(id))",
        database="bird_app_db",
    )
    before = snapshot(new, "bird_app_db")
    with pytest.raises(CommandError, match=r"Copying database 'bird_app_db' .* failed: .*birds") as failure:
        command("copy_db", "--from", old.url("bird_app_db"), "--to", new.url("bird_app_db"), "--noinput")
    assert "The source was not changed" in str(failure.value)
    assert snapshot(new, "bird_app_db") == before


def test_copy_under_a_new_name_in_the_same_instance(instances):
    old, _ = instances
    output = command("copy_db", "--from", old.url("notes_app_db"), "--to", old.url("notes_copy", scheme="postgres"))
    assert snapshot(old, "notes_copy") == snapshot(old, "notes_app_db")
    assert f"  notes_copy: postgresql://postgres:****@127.0.0.1:{old.port}/notes_copy" in output
    with pytest.raises(CommandError, match="are one database"):
        command("copy_db", "--from", old.url("notes_app_db"), "--to", old.url("notes_app_db"))


def test_one_database_under_two_spellings_is_refused_even_for_an_owner_who_is_not_superuser(instances):
    old, _ = instances
    old.execute(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'notes_owner') THEN "
        "CREATE ROLE notes_owner LOGIN PASSWORD 'notes-owner-pw'; END IF; END$$"
    )
    old.execute("ALTER DATABASE notes_app_db OWNER TO notes_owner")
    before = snapshot(old, "notes_app_db")
    by_address = f"postgres://notes_owner:notes-owner-pw@127.0.0.1:{old.port}/notes_app_db"
    by_name = f"postgres://notes_owner:notes-owner-pw@localhost:{old.port}/notes_app_db"

    result = manage("copy_db", "--from", by_address, "--to", by_name, "--noinput", env=child_env())

    assert result.returncode == 1
    assert result.stderr == (
        f"CommandError: postgresql://notes_owner:****@127.0.0.1:{old.port}/notes_app_db and "
        f"postgresql://notes_owner:****@localhost:{old.port}/notes_app_db are one database (the server says so): "
        "give the copy another name or instance.\n"
    )
    assert snapshot(old, "notes_app_db") == before


def test_bad_urls_and_sqlite_are_one_line_errors(instances, tmp_path):
    old, _ = instances
    result = manage("copy_db", "--from", "mysql://u:p@h/db", "--to", old.url("x"), env=child_env())
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: Unsupported database URL mysql://: use postgres://, postgresql:// or sqlite:///."
    )


def test_the_advice_for_sqlite_works_as_written(instances, tmp_path):
    """copy_db refuses SQLite, and the commands its message gives do the move."""
    old, _ = instances
    sqlite_url, copy_url = f"sqlite:///{tmp_path}/db.sqlite3", f"sqlite:///{tmp_path}/copy.sqlite3"
    assert manage("migrate", env=child_env(DATABASE_URL=sqlite_url)).returncode == 0
    assert manage("seed_birds", env=child_env(DATABASE_URL=sqlite_url)).returncode == 0

    to_sqlite = manage("copy_db", "--from", sqlite_url, "--to", copy_url, env=child_env())
    to_postgresql = manage("copy_db", "--from", sqlite_url, "--to", old.url("from_sqlite"), env=child_env())

    assert to_sqlite.returncode == to_postgresql.returncode == 1
    same_engine, other_engine = (advised_commands(result.stderr) for result in (to_sqlite, to_postgresql))
    backup, restore = same_engine
    backed_up = manage(*backup.replace("SOURCE", sqlite_url).split()[2:], env=child_env(BACKUP_DIR=tmp_path / "b"))
    assert backed_up.returncode == 0, backed_up.stderr
    (archive_path,) = (tmp_path / "b").glob("*.sqlite3")
    restore = restore.replace("BACKUP", str(archive_path)).replace("TARGET", copy_url)
    restored = manage(*restore.split()[2:], "--noinput", env=child_env(BACKUP_DIR=tmp_path / "b"))
    assert restored.returncode == 0, restored.stderr

    dump, migrate, load = other_engine
    old.execute("CREATE DATABASE from_sqlite")
    try:
        for advised, url in ((dump, sqlite_url), (migrate, old.url("from_sqlite")), (load, old.url("from_sqlite"))):
            result = subprocess.run(
                advised.replace("python", sys.executable, 1).replace("data.json", str(tmp_path / "data.json")).split(),
                cwd=PROJECT_DIR,
                env=child_env(DATABASE_URL=url),
                capture_output=True,
                text=True,
            )
            assert result.returncode == 0, (advised, result.stderr)
        birds = sorted(old.execute("SELECT id, name, species FROM birds", database="from_sqlite"))
    finally:
        old.drop_database("from_sqlite")
    with sqlite3.connect(tmp_path / "db.sqlite3") as source, sqlite3.connect(tmp_path / "copy.sqlite3") as copied:
        expected = sorted(source.execute("SELECT id, name, species FROM birds"))
        assert sorted(copied.execute("SELECT id, name, species FROM birds")) == expected
    assert birds == expected and len(expected) == 4


def advised_commands(message):
    return message.split("`")[1::2]


@pytest.mark.pg15
def test_postgresql_15_to_18_and_back(pg15_server, new_instance):
    with pg15_server.database("old") as old_name, pg15_server.database("back") as back_name:
        create_app_data(pg15_server, old_name)
        try:
            output = command(
                "copy_db", "--from", pg15_server.url(old_name), "--to", new_instance.url("from_15"), "-v", "2"
            )
            assert "used PostgreSQL 18." in output
            assert snapshot(new_instance, "from_15") == snapshot(pg15_server, old_name)
            rerun = command("copy_db", "--from", pg15_server.url(old_name), "--to", new_instance.url("from_15"))
            assert f"{old_name}: skipped, " in rerun  # one pg_dump writes both schemas alike
            # 18's pg_restore writes "SET transaction_timeout", which 15 rejects: the script route.
            command("copy_db", "--from", new_instance.url("from_15"), "--to", pg15_server.url(back_name), "--noinput")
            assert snapshot(pg15_server, back_name) == snapshot(pg15_server, old_name)
        finally:
            new_instance.drop_database("from_15")


# --- create_db -----------------------------------------------------------------------------------


def test_create_db_prints_the_new_database_url(new_instance):
    instance_url = new_instance.url("postgres", scheme="postgres")
    try:
        result = manage("create_db", "bird_app_db", env=child_env(DATABASE_URL=instance_url))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "Created database bird_app_db.",
            f"DATABASE_URL=postgresql://postgres:****@127.0.0.1:{new_instance.port}/bird_app_db",
        ]
        assert "bird_app_db" in app_databases(new_instance)

        again = manage("create_db", "bird_app_db", "--url", instance_url, env=child_env())
        assert again.returncode == 1
        assert again.stderr.strip() == (
            f"CommandError: postgresql://postgres:****@127.0.0.1:{new_instance.port}/bird_app_db already exists."
        )
        shown = command("create_db", "bird_app_db", "--url", instance_url, "--if-not-exists", "--show-password")
        assert "Database bird_app_db already exists; nothing was changed." in shown
        assert f"DATABASE_URL={new_instance.url('bird_app_db')}" in shown
    finally:
        new_instance.drop_database("bird_app_db")


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("bird-app-db", "bird_app_db"), ("BirdApp", "birdapp"), ("2birds", "birds"), ("a" * 64, "a" * 63)],
)
def test_create_db_refuses_names_that_need_quoting(new_instance, name, suggestion):
    result = manage("create_db", name, "--url", new_instance.url("postgres"), env=child_env())
    assert result.returncode == 1
    assert result.stderr.startswith(f"CommandError: Refusing the database name {name!r}: use lowercase letters")
    assert f"Try {suggestion!r}." in result.stderr
    assert "Traceback" not in result.stderr
    assert name.lower() not in app_databases(new_instance)


def test_create_db_on_sqlite_says_why_not(tmp_path):
    with pytest.raises(CommandError, match="a SQLite database is just a file"):
        command("create_db", "bird_app_db", "--url", f"sqlite:///{tmp_path}/db.sqlite3")


# --- db_info -------------------------------------------------------------------------------------


def test_db_info_on_postgresql(instances):
    old, _ = instances
    output = command("db_info", "--url", old.url("bird_app_db"))
    lines = output.splitlines()
    version = old.execute("SHOW server_version")[0][0]
    assert lines[0] == f"PostgreSQL {version} at postgresql://postgres:****@127.0.0.1:{old.port}/bird_app_db"
    assert lines[1].startswith("Client tools: PostgreSQL 18.")
    assert any(line.split()[:3] == ["notes_app_db", "postgres", "UTF8"] for line in lines)
    assert any(line.split()[:2] == ["public.sightings", "500"] for line in lines)
    assert any(line.split()[:2] == ["archive.old_birds", "2"] for line in lines)

    info = json.loads(command("db_info", "--url", old.url("notes_app_db"), "--json"))
    assert info["server"].startswith("PostgreSQL 18.")
    assert info["database"] == "notes_app_db"
    assert {db["name"] for db in info["databases"]} >= {"bird_app_db", "notes_app_db", "empty_db", "postgres"}
    assert all(db["size"] > 0 and db["owner"] == "postgres" for db in info["databases"])
    assert [(t["name"], t["rows"]) for t in info["tables"]] == [("public.notes", 42), ("public.tags", 2)]
    assert all(t["size"] > 0 for t in info["tables"])
    assert old.password not in output


def test_db_info_on_sqlite(tmp_path):
    import sqlite3

    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript("CREATE TABLE birds (id integer, name text); INSERT INTO birds VALUES (1, 'W'), (2, 'O')")
    conn.close()
    output = command("db_info", "--url", f"sqlite:///{path}")
    assert output.splitlines()[0] == f"SQLite {sqlite3.sqlite_version} at sqlite:///{path}"
    assert any(line.split()[:2] == ["birds", "2"] for line in output.splitlines())

    info = json.loads(command("db_info", "--url", f"sqlite:///{path}", "--json"))
    assert info["databases"] == [{"name": str(path), "owner": "", "encoding": "UTF-8", "size": path.stat().st_size}]
    assert info["tables"][0]["name"] == "birds" and info["tables"][0]["rows"] == 2


# --- backups of databases of the same name on two servers ------------------------------------------


def test_backups_of_two_servers_databases_of_one_name_stay_apart(instances, tmp_path, settings):
    settings.BACKUP_DIR = backups = tmp_path / "backups"
    old, new = instances
    new.execute("CREATE DATABASE bird_app_db")
    new.execute("CREATE TABLE other_app (x int); INSERT INTO other_app VALUES (1)", database="bird_app_db")
    server_a, server_b = old.url("bird_app_db"), new.url("bird_app_db")
    command("backup_db", "--url", server_a, "--output", str(backups / "bird_app_db-20260101T000000Z.dump"))
    command("backup_db", "--url", server_b, "--output", str(backups / "bird_app_db-20260102T000000Z.dump"))
    a_backup = backups / "bird_app_db-20260101T000000Z.dump"

    output = command("backup_db", "--url", server_b, "--keep", "1")

    assert "Deleted old backup" in output and "20260102T000000Z" in output  # B's older backup
    assert a_backup.exists()  # server A's only backup is not B's to delete
    listing = command("list_backups", "bird_app_db")
    assert f" 127.0.0.1:{old.port} " in listing and f" 127.0.0.1:{new.port} " in listing

    # "The newest backup" of A's database is A's, although B's is newer.
    old.execute("DELETE FROM sightings", database="bird_app_db")
    restored = command("restore_db", "--url", server_a, "--noinput", "--no-safety-backup")
    assert f"Restored {a_backup} into" in restored
    assert old.execute("SELECT count(*) FROM sightings", database="bird_app_db") == [(500,)]
    a_manifest = json.loads((backups / "bird_app_db-20260101T000000Z.dump.json").read_text())
    assert (
        a_manifest["system_identifier"] == old.execute("SELECT system_identifier::text FROM pg_control_system()")[0][0]
    )


def test_restore_without_path_refuses_another_servers_backup_and_the_prompt_names_the_source(
    instances, tmp_path, settings
):
    settings.BACKUP_DIR = backups = tmp_path / "backups"
    old, new = instances
    new.execute("CREATE DATABASE bird_app_db")
    command("backup_db", "--url", old.url("bird_app_db"))
    (a_backup,) = backups.glob("*.dump")

    with pytest.raises(
        CommandError,
        match=rf"No backup of bird_app_db on 127.0.0.1:{new.port} in .*, only of "
        rf"databases of that name from elsewhere: {a_backup.name} \(bird_app_db on 127.0.0.1:{old.port}\)",
    ):
        command("restore_db", "--url", new.url("bird_app_db"), "--noinput")

    refused = manage("restore_db", str(a_backup), "--url", new.url("bird_app_db"), env=child_env(), input="no\n")
    assert refused.returncode == 1
    assert (
        f"The backup was taken from bird_app_db on 127.0.0.1:{old.port}, not from this database "
        f"(bird_app_db on 127.0.0.1:{new.port})." in refused.stdout
    )
    assert "Warning" not in refused.stdout
    refused = manage("restore_db", str(a_backup), "--url", new.url("postgres"), env=child_env(), input="no\n")
    assert (
        "Warning: it is a backup of database 'bird_app_db', not of 'postgres': afterwards 'postgres' holds what "
        "'bird_app_db' held, and nothing else." in refused.stdout
    )
