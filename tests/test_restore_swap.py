"""restore_db --swap and --undo on real servers: the new database is made like the target (owner,
locale, settings, grants, comment, connection limit), restored and checked beside it, and swapped in
by one transaction; every failure before the swap leaves the target untouched and no new database."""

import os

import psycopg2
import pytest
from django.core.management.base import CommandError

from tests.dbdata import EXTRA_OBJECTS, command, create_app_data, snapshot
from tests.helpers import child_env, manage

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
       d.datconnlimit, d.datallowconn, ARRAY(SELECT unnest(d.datacl::text[]) ORDER BY 1),
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
        create_app_data_as(cursor)
        cursor.execute("CREATE INDEX birds_trgm ON birds USING gin (name gin_trgm_ops)")
    return name, url


def create_app_data_as(cursor):
    from tests.dbdata import APP_SCHEMA

    cursor.execute(APP_SCHEMA)


@pytest.fixture
def swap_owner(pg_server):
    ensure_role(pg_server, OWNER, "CREATEDB")
    return OWNER


@pytest.fixture
def owned(pg_server, swap_owner):
    name, url = owned_database(pg_server, swap_owner)
    yield name, url
    for each in database_names(pg_server, f"{name}%"):
        pg_server.drop_database(each)


def backup_then_change(server, name, url, backup_dir):
    """A backup of the database, then later work on it (rows gone, new objects); the snapshots of both."""
    command("backup_db", "--url", url)
    backed_up = snapshot(server, name)
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("DELETE FROM sightings WHERE id > 100")
        cursor.execute(EXTRA_OBJECTS)
    return backed_up, snapshot(server, name)


def newest_dump(backup_dir):
    return max(backup_dir.glob("*.dump"), key=lambda p: p.name)


def test_swap_restores_beside_the_target_keeps_its_attributes_and_undo_swaps_back(pg_server, owned, backup_dir):
    name, url = owned
    backed_up, changed = backup_then_change(pg_server, name, url, backup_dir)
    before = attributes(pg_server, name)

    output = command("restore_db", "--url", url, "--swap", "--noinput")

    (kept,) = database_names(pg_server, f"{name}_before_%")
    print(output, before)
    assert f"Route: swap. Restored into a new database with {os.cpu_count()} parallel jobs, checked it" in output
    assert f"The previous contents are kept as the database {kept} (" in output
    assert f'drop them now with: python manage.py dbshell -- -c "DROP DATABASE {kept}"' in output
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
