"""copy_db's rerun skips a database only when the copy holds what the source holds: every column of every
row, every large object, and every line of the schema."""

import builtins
import uuid

import pytest

from tests.dbdata import command, snapshot

READINGS = """
CREATE TABLE readings (id int PRIMARY KEY, t timestamptz NOT NULL, value double precision);
INSERT INTO readings SELECT g, timestamptz '2026-01-01 00:00+00' + g * interval '1 hour', g / 10.0
FROM generate_series(1, 24) AS g;
"""


@pytest.fixture
def databases(pg_server):
    """A source database holding the readings table, and a name for its copy on the same server (dropped afterwards)."""
    target = f"copy_{uuid.uuid4().hex[:10]}"
    with pg_server.database("source") as source:
        pg_server.execute(READINGS, database=source)
        yield source, target
        pg_server.drop_database(target)


def copy_db(server, source, target, *options):
    return command("copy_db", "--from", server.url(source), "--to", server.url(target), *options)


def refused_rerun(server, source, target, monkeypatch):
    """What copy_db asks before replacing the target's tables, answered "no"."""
    questions = []
    monkeypatch.setattr(builtins, "input", lambda question: questions.append(question) or "no")
    with pytest.raises(Exception, match="Cancelled; nothing was changed"):
        copy_db(server, source, target)
    (question,) = questions
    return question


def large_objects(server, database):
    return server.execute("SELECT oid, lo_get(oid) FROM pg_largeobject_metadata ORDER BY oid", database=database)


def test_a_column_named_t_does_not_hide_changes_in_the_other_columns(pg_server, databases, monkeypatch):
    source, target = databases
    copy_db(pg_server, source, target)
    pg_server.execute("UPDATE readings SET value = value * 100", database=source)

    question = refused_rerun(pg_server, source, target, monkeypatch)
    assert "(1 tables): it holds other rows than the source" in question

    output = copy_db(pg_server, source, target, "--noinput")

    assert ": copied and verified, 1 tables, 24 rows" in output
    assert snapshot(pg_server, target) == snapshot(pg_server, source)
    assert ": skipped, " in copy_db(pg_server, source, target)


@pytest.mark.pg15
def test_a_column_named_t_on_postgresql_15(pg15_server):
    with pg15_server.database("source") as source, pg15_server.database("copy") as target:
        pg15_server.execute(READINGS, database=source)
        copy_db(pg15_server, source, target, "--noinput")
        pg15_server.execute("UPDATE readings SET value = value * 100", database=source)

        output = copy_db(pg15_server, source, target, "--noinput")

        assert ": copied and verified, 1 tables, 24 rows" in output
        assert snapshot(pg15_server, target) == snapshot(pg15_server, source)


LARGE_OBJECT_CHANGES = {
    "rewritten": "SELECT lo_put(oid, 0, 'HELLO') FROM pg_largeobject_metadata",
    "grown": "SELECT lo_put(oid, 5, ', world') FROM pg_largeobject_metadata",
    "added": "SELECT lo_from_bytea(0, 'another')",
}


@pytest.mark.parametrize("change", LARGE_OBJECT_CHANGES)
def test_rerun_after_a_large_object_changed_copies_again(pg_server, databases, monkeypatch, change):
    source, target = databases
    pg_server.execute("SELECT lo_from_bytea(0, 'hello')", database=source)
    copy_db(pg_server, source, target)
    assert ": skipped, " in copy_db(pg_server, source, target)
    pg_server.execute(LARGE_OBJECT_CHANGES[change], database=source)

    question = refused_rerun(pg_server, source, target, monkeypatch)
    assert "(1 tables): its large objects differ from the source's" in question

    output = copy_db(pg_server, source, target, "--noinput")

    assert ": copied and verified, 1 tables, 24 rows" in output
    assert large_objects(pg_server, target) == large_objects(pg_server, source)
    assert ": skipped, " in copy_db(pg_server, source, target)


@pytest.fixture
def owner(pg_server):
    """A role that may create databases, and is no superuser; dropped afterwards with what it owns."""
    name = f"owner_{uuid.uuid4().hex[:8]}"
    pg_server.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'secret' CREATEDB")
    yield name
    for (database,) in pg_server.execute("SELECT datname FROM pg_database WHERE datdba = %s::regrole", [name]):
        pg_server.drop_database(database)
    pg_server.execute(f"DROP ROLE {name}")


def test_large_objects_the_target_may_not_read_are_not_taken_as_equal(pg_server, owner, monkeypatch):
    """Copying as the databases' owner, who is no superuser: a large object in the target that only a
    superuser may read cannot be compared, so the copy is made again rather than skipped."""
    source, target = (f"{prefix}_{uuid.uuid4().hex[:10]}" for prefix in ("source", "copy"))
    pg_server.execute(f"CREATE DATABASE {source} OWNER {owner}")
    pg_server.execute(f"{READINGS}; ALTER TABLE readings OWNER TO {owner}", database=source)
    from_url, to_url = (pg_server.url(name, user=owner, password="secret") for name in (source, target))
    command("copy_db", "--from", from_url, "--to", to_url)
    pg_server.execute("SELECT lo_from_bytea(0, 'only for superusers')", database=target)

    questions = []
    monkeypatch.setattr(builtins, "input", lambda question: questions.append(question) or "no")
    with pytest.raises(Exception, match="Cancelled; nothing was changed"):
        command("copy_db", "--from", from_url, "--to", to_url)
    assert "(1 tables): its large objects could not all be read to compare with the source's" in questions[0]
    output = command("copy_db", "--from", from_url, "--to", to_url, "--noinput")
    assert ": copied and verified, 1 tables, 24 rows" in output


# A string whose second line starts with "--", as pg_dump --schema-only writes it over two lines.
SCHEMA_LITERALS = {
    "view": (
        "CREATE OR REPLACE VIEW banner AS SELECT E'Readings\\n-- {}'::text AS line",
        "SELECT line FROM banner",
    ),
    "default": (
        "ALTER TABLE readings ADD COLUMN IF NOT EXISTS note text; "
        "ALTER TABLE readings ALTER COLUMN note SET DEFAULT E'measured\\n-- {}'",
        "SELECT column_default FROM information_schema.columns WHERE table_name = 'readings' AND column_name = 'note'",
    ),
    "comment": (
        "COMMENT ON TABLE readings IS E'Hourly readings\\n-- {}'",
        "SELECT obj_description('readings'::regclass, 'pg_class')",
    ),
}


@pytest.mark.parametrize("kind", SCHEMA_LITERALS)
def test_a_schema_line_starting_with_two_dashes_is_compared(pg_server, databases, monkeypatch, kind):
    source, target = databases
    change, question = SCHEMA_LITERALS[kind]
    pg_server.execute(change.format("version 1"), database=source)
    copy_db(pg_server, source, target)
    pg_server.execute(change.format("version 2"), database=source)
    (in_source,) = pg_server.execute(question, database=source)

    asked = refused_rerun(pg_server, source, target, monkeypatch)
    assert "(1 tables): its schema differs from the source's (only in the source: -- version 2" in asked
    assert pg_server.execute(question, database=target) != [in_source]

    output = copy_db(pg_server, source, target, "--noinput")

    assert ": copied and verified, 1 tables, 24 rows" in output
    assert pg_server.execute(question, database=target) == [in_source]
    assert ": skipped, " in copy_db(pg_server, source, target)
