"""reset_db on PostgreSQL empties the database and keeps everything else that CREATE and ALTER DATABASE
gave it: encoding and locale, who may connect, the comment, the connection limit and its settings. A bare
CREATE DATABASE from template1 would let anyone connect again. (A role's settings in it, ALTER ROLE ... IN
DATABASE, are not carried over: an owner who is not a superuser may not set another role's.)"""

import psycopg2
import pytest
from django.core.management.base import CommandError

from tests.dbdata import command

MEMBER, OUTSIDER, PASSWORD = "reset_member", "reset_outsider", "reset-pass-123"
# Set on the database as an app's operator would; template1 has none of it.
DATABASE_EXTRAS = """
COMMENT ON DATABASE {db} IS 'the birds'' app';
ALTER DATABASE {db} CONNECTION LIMIT 5;
ALTER DATABASE {db} SET work_mem TO '7MB';
ALTER DATABASE {db} SET search_path TO "$user", public, archive;
REVOKE CONNECT ON DATABASE {db} FROM PUBLIC;
GRANT CONNECT ON DATABASE {db} TO {member};
"""
ATTRIBUTES_QUERY = """
SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, d.datlocprovider,
       d.datconnlimit, ARRAY(SELECT unnest(d.datacl::text[]) ORDER BY 1), shobj_description(d.oid, 'pg_database'),
       ARRAY(SELECT s.setrole::regrole || ': ' || array_to_string(s.setconfig, '; ')
             FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0 ORDER BY 1)
FROM pg_database d WHERE d.datname = %s
"""


def attributes(server, name):
    (row,) = server.execute(ATTRIBUTES_QUERY, [name])
    return row


def ensure_login_role(server, name):
    server.execute(
        f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN "
        f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'; END IF; END$$"
    )


def can_connect(server, name, role):
    try:
        psycopg2.connect(server.url(name, user=role, password=PASSWORD)).close()
    except psycopg2.OperationalError as exc:
        assert "permission denied for database" in str(exc)
        return False
    return True


@pytest.fixture
def tuned_database(pg_server):
    """A database in LATIN1 (which only template0 can give) holding a table, with all of DATABASE_EXTRAS."""
    for role in (MEMBER, OUTSIDER):
        ensure_login_role(pg_server, role)
    name = pg_server.create_database("reset_tuned")
    pg_server.drop_database(name)
    pg_server.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'")
    try:
        pg_server.execute(DATABASE_EXTRAS.format(db=name, member=MEMBER))
        pg_server.execute("CREATE TABLE birds AS SELECT 'Grackle' AS name", database=name)
        yield name
    finally:
        pg_server.drop_database(name)


def test_reset_keeps_the_databases_encoding_grants_comment_limit_and_settings(pg_server, tuned_database):
    name = tuned_database
    before = attributes(pg_server, name)
    assert before[1] == "LATIN1" and len(before[8]) == 1  # what the test sets up, as it set it up

    output = command("reset_db", "--url", pg_server.url(name), "--noinput")

    assert "it is now empty" in output
    assert pg_server.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database=name) == [(0,)]
    assert attributes(pg_server, name) == before
    assert can_connect(pg_server, name, MEMBER)
    assert not can_connect(pg_server, name, OUTSIDER)
    assert pg_server.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{name}\\_reset\\_%"]) == []


def test_a_setting_the_owner_may_not_set_again_stops_the_reset_before_anything_is_dropped(pg_server, tuned_database):
    # log_statement is a superuser's setting: the owner, who is not one, cannot give it to the replacement.
    name = tuned_database
    pg_server.execute(f"ALTER DATABASE {name} OWNER TO {MEMBER}; ALTER ROLE {MEMBER} CREATEDB")
    pg_server.execute(f"ALTER DATABASE {name} SET log_statement TO 'ddl'")
    before = attributes(pg_server, name)

    with pytest.raises(CommandError, match=r"Could not create an empty database to replace .*, so nothing was dropped"):
        command("reset_db", "--url", pg_server.url(name, user=MEMBER, password=PASSWORD), "--noinput")

    assert attributes(pg_server, name) == before
    assert pg_server.execute("SELECT name FROM birds", database=name) == [("Grackle",)]
    assert pg_server.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{name}\\_reset\\_%"]) == []
