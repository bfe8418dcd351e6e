"""Questions the server answers over a connection: its version and identity, the databases, the tables
(one filter: TABLE_FILTER), their row counts, sizes and fingerprints, and the schema as pg_dump writes it."""

import difflib

from psycopg2 import errors, sql

from ..connection import Target, needs_tls_tools
from ..errors import DbOpsError
from ..facts import DatabaseState, DatabaseSummary, InstanceInfo, TableSummary
from ..process import capture
from ..tools import ClientTools, tools_for_server
from .argv import pg_dump_schema_command
from .session import connect, maintenance_connection

# The tables of a database that its app owns: ordinary and partitioned ones, outside the system schemas.
TABLE_FILTER = """
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
"""
TABLES_QUERY = f"SELECT n.nspname, c.relname {TABLE_FILTER} ORDER BY 1, 2"
# A statement that counts every table's rows exactly, written by the server for psql to run next
# (\\gset, then :count_query): no XML, procedural language or temporary object needed, and no limit
# on the number of tables. TABLES_QUERY's doubled % are psycopg2's escaping; in LIKE, "%%" matches
# what "%" does.
COUNT_QUERY_QUERY = f"""
    SELECT coalesce(
      'SELECT jsonb_object_agg(name, n) FROM (VALUES '
        || string_agg(format('(%L, (SELECT count(*) FROM %I.%I))', t.nspname || '.' || t.relname, t.nspname,
                             t.relname), ', ')
        || ') AS v(name, n)',
      'SELECT ''{{}}''::jsonb') AS count_query
    FROM ({TABLES_QUERY}) AS t
"""  # noqa: S608 (constant text: no input in it)
DATABASES_QUERY = """
    SELECT datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding),
           CASE WHEN has_database_privilege(datname, 'CONNECT') THEN pg_database_size(datname) END
    FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1
"""
TABLE_SIZES_QUERY = f"SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid) {TABLE_FILTER}"
# A table's contents as two sums of its rows' md5s (as text): one sequential scan, no sort, and no
# memory that grows with the table, unlike string_agg over sorted rows. Rows are a multiset: order-free.
# ROW(t.*), not t: a bare t is a column of that name when the table has one; a qualified star is
# always the alias's whole row.
FINGERPRINT_QUERY = """
    SELECT count(*), coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0)::text || '/'
                     || coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)::text
    FROM (SELECT md5(ROW(t.*)::text) AS h FROM {}.{} AS t) AS hashed
"""
# Every large object's OID and an md5 of its content. pg_largeobject_metadata is readable by every
# role; lo_get needs SELECT on the object (unless lo_compat_privileges is on).
LARGE_OBJECTS_QUERY = "SELECT oid::bigint, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid"
# pg_dump's lines that differ between two servers holding the same schema: the versions, and the
# \restrict key that it draws at random for every dump. Every other line is compared, comments too:
# a string's line may start with "--".
SERVER_SPECIFIC_LINES = (
    "-- Dumped from database version ",
    "-- Dumped by pg_dump version ",
    "\\restrict",
    "\\unrestrict",
)
SEQUENCES_QUERY = "SELECT schemaname || '.' || sequencename, last_value::text FROM pg_sequences ORDER BY 1"
# Settings that change how values print as text: fixed, so both sides of a comparison print rows alike.
ROW_TEXT_SETTINGS = (
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL bytea_output = 'hex'",
)


def server_version(conn) -> tuple[int, str]:
    with conn.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version_num')::int, current_setting('server_version')")
        number, text = cursor.fetchone()
    return number // 10000, text.split()[0]


def system_identifier(conn) -> str:
    """The cluster's unique identifier (pg_control_system()), or "" when this role may not read it."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN to_regprocedure('pg_catalog.pg_control_system()') IS NOT NULL "
            "THEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE') ELSE false END"
        )
        if not cursor.fetchone()[0]:
            return ""
        cursor.execute("SELECT system_identifier::text FROM pg_catalog.pg_control_system()")
        return cursor.fetchone()[0]


def table_row_counts(conn) -> dict[str, int]:
    return count_rows(conn, list_tables(conn))


def list_tables(conn) -> list[tuple[str, str]]:
    """(schema, name) of every table of the database, in name order."""
    with conn.cursor() as cursor:
        cursor.execute(TABLES_QUERY)
        return cursor.fetchall()


def count_rows(conn, tables: list[tuple[str, str]]) -> dict[str, int]:
    counts = {}
    with conn.cursor() as cursor:
        for schema, table in tables:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
            counts[f"{schema}.{table}"] = cursor.fetchone()[0]
    return counts


def row_counts(target: Target) -> dict[str, int]:
    with connect(target) as conn:
        return table_row_counts(conn)


def table_fingerprints(conn) -> dict[str, str]:
    """Per table its row count and a hash of its rows; per sequence its value. Equal fingerprints
    mean equal contents (whatever the order of the rows on disk)."""
    fingerprints = {}
    with conn.cursor() as cursor:
        for statement in ROW_TEXT_SETTINGS:
            cursor.execute(statement)
        cursor.execute(TABLES_QUERY)
        for schema, table in cursor.fetchall():
            cursor.execute(sql.SQL(FINGERPRINT_QUERY).format(sql.Identifier(schema), sql.Identifier(table)))
            count, digest = cursor.fetchone()
            fingerprints[f"{schema}.{table}"] = f"{count} rows, hash {digest}"
        cursor.execute(SEQUENCES_QUERY)
        fingerprints.update({f"{name} (sequence)": f"at {value}" for name, value in cursor.fetchall()})
    return fingerprints


def fingerprints(target: Target) -> dict[str, str]:
    """table_fingerprints of the target, all tables read in one snapshot."""
    with connect(target) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        return table_fingerprints(conn)


def large_objects(target: Target) -> list[tuple[int, str]] | None:
    """(OID, md5 of the content) of every large object, in OID order, all read in one snapshot; None
    when they cannot all be read: this role may not read one, or one is too large for lo_get (1 GB)."""
    with connect(target) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cursor:
            try:
                cursor.execute(LARGE_OBJECTS_QUERY)
            except (errors.InsufficientPrivilege, errors.ProgramLimitExceeded):
                return None
            return cursor.fetchall()


def schema_difference(source: Target, target: Target) -> str | None:
    """The first line in which the target's schema differs from the source's, or None when they are
    equal: both as one pg_dump --schema-only writes them (every index, view, constraint, default,
    function, trigger...), less the lines that differ between servers (SERVER_SPECIFIC_LINES)."""
    majors = []
    for each in (source, target):
        with connect(each) as conn:
            majors.append(server_version(conn)[0])
    tools = tools_for_server(max(majors), needs_tls_tools(source) or needs_tls_tools(target))
    source_lines, target_lines = (_schema_lines(each, tools) for each in (source, target))
    # Past the diff's two header lines, as a line of the dump may itself start with "--".
    hunks = list(difflib.unified_diff(source_lines, target_lines, lineterm="", n=0))[2:]
    changed = [line for line in hunks if line[:1] in "+-"]
    if not changed:
        return None
    # A blank line or a bare "--" of pg_dump's comment frames says nothing to the reader: the first other.
    line = next((each for each in changed if each[1:].strip(" -")), changed[0])
    return f"{'only in the source' if line[0] == '-' else 'only in the target'}: {line[1:].strip()}"


def _schema_lines(target: Target, tools: ClientTools) -> list[str]:
    text = capture(pg_dump_schema_command(target, tools), scrub=target.scrub)
    return [line for line in text.splitlines() if not line.startswith(SERVER_SPECIFIC_LINES)]


def inspect(target: Target) -> DatabaseState:
    """Whether the target database exists and how many tables it holds."""
    with maintenance_connection(target) as conn:
        _, version = server_version(conn)
        identifier = system_identifier(conn)
        if not database_exists(conn, target.name):
            return DatabaseState(exists=False, table_count=0, server_version=version, system_identifier=identifier)
    with connect(target) as conn, conn.cursor() as cursor:
        conn.autocommit = True  # one question: no BEGIN, a round trip less
        cursor.execute(TABLES_QUERY)
        table_count = cursor.rowcount
        return DatabaseState(exists=True, table_count=table_count, server_version=version, system_identifier=identifier)


def database_exists(conn, name: str) -> bool:
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cursor.fetchone() is not None


def list_databases(target: Target) -> list[str]:
    """Every database of the instance that can hold an app's data (no templates)."""
    with maintenance_connection(target) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1")
        return [name for (name,) in cursor.fetchall()]


def describe(target: Target) -> InstanceInfo:
    """psql's \\l and \\dt+ in one: server, client tools, databases, and the target's tables."""
    with connect(target) as conn:
        major, version = server_version(conn)
        counts = table_row_counts(conn)
        with conn.cursor() as cursor:
            cursor.execute(DATABASES_QUERY)
            databases = [DatabaseSummary(*row) for row in cursor.fetchall()]
            cursor.execute(TABLE_SIZES_QUERY)
            sizes = dict(cursor.fetchall())
    try:
        client_tools = tools_for_server(major, needs_tls_tools(target)).describe()
    except DbOpsError as exc:  # worth reporting, not failing for: db_info itself needs no tools
        client_tools = f"none that fit: {exc}"
    return InstanceInfo(
        target=target.masked,
        database=target.name,
        server=f"PostgreSQL {version}",
        client_tools=client_tools,
        databases=databases,
        tables=[TableSummary(name, rows, sizes.get(name)) for name, rows in counts.items()],
    )


def extensions(conn) -> set[str]:
    with conn.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension")
        return {name for (name,) in cursor.fetchall()}
