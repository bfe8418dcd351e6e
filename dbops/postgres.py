"""The PostgreSQL engine: pg_dump, pg_restore and psql driven as (argv, env), psycopg2 for questions."""

import contextlib
import difflib
import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg2
from psycopg2 import sql

from . import archive, cleanup, splitcopy, streams
from .connection import DEFAULT_CONNECT_TIMEOUT, Target, connection_options, libpq_args, libpq_env, needs_tls_tools
from .errors import DbOpsError
from .facts import DatabaseState, DatabaseSummary, DumpFacts, InstanceInfo, Loaded, TableSummary, row_count_differences
from .process import Command, capture, ctrl_c_deferred, run, run_pipeline, spawned
from .tools import ClientTools, tools_for_server

ENGINE_NAME = "PostgreSQL"
ARCHIVE_FORMATS = frozenset({archive.CUSTOM, archive.DIRECTORY, archive.TAR, archive.SQL})
MAINTENANCE_DATABASES = ("postgres", "template1")
SCRATCH_PREFIX = "verify_"  # restore drills' scratch databases
SWAP_ATTEMPTS = 3
TRANSACTION_TIMEOUT_MAJOR = 17  # the first server version that knows transaction_timeout
EXCLUDE_EXTENSION_MAJOR = 17  # the first pg_dump with --exclude-extension
TABLES_QUERY = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
    ORDER BY 1, 2
"""
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
TABLE_SIZES_QUERY = """
    SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
# A table's contents as two sums of its rows' md5s (as text): one sequential scan, no sort, and no
# memory that grows with the table, unlike string_agg over sorted rows. Rows are a multiset: order-free.
FINGERPRINT_QUERY = """
    SELECT count(*), coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0)::text || '/'
                     || coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)::text
    FROM (SELECT md5(t::text) AS h FROM {}.{} AS t) AS hashed
"""
SEQUENCES_QUERY = "SELECT schemaname || '.' || sequencename, last_value::text FROM pg_sequences ORDER BY 1"
# Settings that change how values print as text: fixed, so both sides of a comparison print rows alike.
ROW_TEXT_SETTINGS = (
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL bytea_output = 'hex'",
)
# Run first, in the restore's transaction: drop everything an archive may hold, so that the target
# ends up holding what the archive holds and nothing else (what was there is in the safety backup).
# The app's own schemas go whole; in public and in schemas that hold an extension, every object that
# no extension brought (an extension and its objects stay: a database owner who is not a superuser
# could not create most of them again). pg_identify_object names each object as DROP wants it.
EMPTY_DATABASE_SQL = r"""
SET client_min_messages = warning;
DO $empty_database$
DECLARE
  item record;
BEGIN
  FOR item IN
    SELECT n.nspname FROM pg_namespace n
    WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
      AND NOT EXISTS (SELECT FROM pg_extension e WHERE e.extnamespace = n.oid)
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid
                                               AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', item.nspname);
  END LOOP;
  FOR item IN
    SELECT o.type, o.identity FROM (
      SELECT 'pg_class'::regclass AS classid, oid AS objid, relnamespace AS nsp FROM pg_class
        WHERE relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      UNION ALL SELECT 'pg_proc'::regclass, oid, pronamespace FROM pg_proc
      UNION ALL SELECT 'pg_type'::regclass, t.oid, t.typnamespace FROM pg_type t
        WHERE t.typtype IN ('d', 'e', 'r')
           OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
      UNION ALL SELECT 'pg_collation'::regclass, oid, collnamespace FROM pg_collation
      UNION ALL SELECT 'pg_conversion'::regclass, oid, connamespace FROM pg_conversion
      UNION ALL SELECT 'pg_operator'::regclass, oid, oprnamespace FROM pg_operator
      UNION ALL SELECT 'pg_opfamily'::regclass, oid, opfnamespace FROM pg_opfamily
      UNION ALL SELECT 'pg_ts_config'::regclass, oid, cfgnamespace FROM pg_ts_config
      UNION ALL SELECT 'pg_ts_dict'::regclass, oid, dictnamespace FROM pg_ts_dict
    ) AS candidate
    JOIN pg_namespace n ON n.oid = candidate.nsp
    CROSS JOIN LATERAL pg_identify_object(candidate.classid, candidate.objid, 0) AS o
    WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = candidate.classid AND d.objid = candidate.objid
                                               AND d.deptype IN ('e', 'i'))
  LOOP
    EXECUTE format('DROP %s IF EXISTS %s CASCADE', item.type, item.identity);
  END LOOP;
END
$empty_database$;
"""
TABLE_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )")
TABLE_DATA_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE DATA ")
PROGRESS_PATTERN = re.compile(r'dumping contents of table "([^"]+)"')
# The advisory lock key that restore_db holds in the target database while it restores (any fixed
# bigint; this one spells "restore" in ASCII).
RESTORE_LOCK_KEY = 0x72657374_6F7265
CANCEL_INTERVAL = 0.1  # seconds between cancel requests for a query that must stop
EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:COMMENT - )?EXTENSION (?:- )?(\S+)")
# The formats whose data pg_dump 16+ compresses with zstd (tar is never compressed).
ZSTD_FORMATS = frozenset({archive.CUSTOM, archive.DIRECTORY})
# Level 1: pg_dump compresses each table's data as a stream, and on every data set measured
# (bench/backup_speed.py and three others) level 1 was faster than zstd's default level 3 and made
# archives smaller than gzip's, which level 3 did not always (random numbers: 19.5 MB against 20.0 MB).
DEFAULT_ZSTD = "zstd:1"


def default_compression(tools: ClientTools, archive_format: str) -> str | None:
    """What every dump compresses with unless told otherwise: zstd where the tools and the format
    have it, several times faster than gzip at an archive no larger (bench/RESULTS.md); else None,
    pg_dump's own default (gzip, which every pg_restore reads)."""
    if "zstd" in tools.compressions and archive_format in ZSTD_FORMATS:
        return DEFAULT_ZSTD
    return None


def pg_dump_command(
    target: Target,
    tools: ClientTools,
    output: str | None,
    archive_format: str = archive.CUSTOM,
    jobs: int | None = None,
    compress: str | None = None,
    snapshot: str | None = None,
    exclude_extensions: Sequence[str] = (),
) -> Command:
    argv = [tools.path("pg_dump"), *libpq_args(target), f"--format={archive_format}", "--no-acl", "--no-owner"]
    argv += [f"--exclude-extension={name}" for name in exclude_extensions]
    if jobs:
        argv.append(f"--jobs={jobs}")
    if compress is None:
        compress = default_compression(tools, archive_format)
    if compress is not None:
        argv.append(f"--compress={compress}")
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    argv.append("--verbose")
    if output is not None:  # None: write to standard output
        argv.append(f"--file={output}")
    argv += ["--dbname", target.name]
    return Command(argv, libpq_env(target))


def pg_dump_schema_command(target: Target, tools: ClientTools) -> Command:
    """pg_dump writing the database's schema as SQL to standard output, without owners and grants
    (which a copy leaves out too)."""
    argv = [tools.path("pg_dump"), *libpq_args(target), "--schema-only", "--no-acl", "--no-owner"]
    return Command([*argv, "--dbname", target.name], libpq_env(target))


def pg_restore_command(
    target: Target,
    tools: ClientTools,
    archive_path: Path | None,
    jobs: int | None = None,
    use_list: Path | None = None,
    section: str | None = None,
) -> Command:
    """pg_restore into the target (section: only "pre-data" or "post-data"); archive_path None reads the
    archive from standard input."""
    argv = [
        tools.path("pg_restore"),
        *libpq_args(target),
        "--clean",
        "--if-exists",
        "--no-acl",
        "--no-owner",
        "--exit-on-error",
    ]
    argv += [f"--jobs={jobs}"] if jobs else ["--single-transaction"]
    if use_list:
        argv.append(f"--use-list={use_list}")
    if section:
        argv.append(f"--section={section}")
    argv += ["--dbname", target.name]
    if archive_path is not None:
        argv.append(str(archive_path))
    return Command(argv, libpq_env(target))


def pg_restore_script_command(
    tools: ClientTools,
    archive_path: Path | None,
    output: Path | str,
    use_list: Path | None = None,
) -> Command:
    """pg_restore writing the SQL it would run, for psql to run.

    The script is one transaction, BEGIN first and COMMIT last, so a script cut short (the archive or
    the stream feeding pg_restore failed) commits nothing. archive_path None reads the archive from
    standard input; output "-" writes to standard output."""
    return _pg_restore_script(tools, archive_path, output, use_list, ["--single-transaction"])


def pg_restore_statements_command(
    tools: ClientTools,
    archive_path: Path | None,
    output: Path | str,
    use_list: Path | None = None,
) -> Command:
    """pg_restore's SQL script without a transaction of its own: for a caller that opens one before it
    and commits it after, only once the script has arrived whole and been checked."""
    return _pg_restore_script(tools, archive_path, output, use_list, [])


def pg_restore_data_script_command(tools: ClientTools, archive_path: Path, use_list: Path | None = None) -> Command:
    """The archive's table data (and sequence values) as a SQL script on standard output, for
    splitcopy to deal out to several sessions."""
    return _pg_restore_script(tools, archive_path, "-", use_list, ["--section=data"])


def _pg_restore_script(tools, archive_path, output, use_list, options: list[str]) -> Command:
    argv = [tools.path("pg_restore"), "--clean", "--if-exists", "--no-acl", "--no-owner", *options]
    if use_list:
        argv.append(f"--use-list={use_list}")
    argv.append(f"--file={output}")
    if archive_path is not None:
        argv.append(str(archive_path))
    return Command(argv, {})


def commit_if_counts_match(expected: dict[str, int] | None, counts_file: Path) -> bytes:
    """psql's last words after a restore script: count every table inside the restore's transaction
    (rows it wrote itself are read without setting hint bits, about three times faster than after the
    COMMIT), write the counts to counts_file as JSON, and COMMIT only when they are the expected ones.
    Otherwise psql ends with the transaction open, so the server rolls it back."""
    matches = "true" if expected is None else f"counted.counts = {_sql_literal(json.dumps(expected))}::jsonb"
    return f"""
SET standard_conforming_strings = on;
\\pset tuples_only on
\\pset format unaligned
{COUNT_QUERY_QUERY} \\gset
SELECT counted.counts AS restored_row_counts, {matches} AS row_counts_match
FROM (:count_query) AS counted(counts) \\gset
\\o {_psql_argument(counts_file)}
\\qecho :restored_row_counts
\\o
\\if :row_counts_match
COMMIT;
\\endif
""".encode()  # noqa: S608 (the expected counts are quoted as a literal)


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _psql_argument(path: Path) -> str:
    """A file name as one argument of a psql meta-command, whatever characters it holds."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def pg_restore_read_command(tools: ClientTools, archive_path: Path | None, list_only: bool = False) -> Command:
    """Read an archive without a server: --list reads the table of contents, -f /dev/null all of it.

    archive_path None reads the archive from standard input."""
    mode = ["--list"] if list_only else ["--file=/dev/null"]
    return Command([tools.path("pg_restore"), *mode, *([str(archive_path)] if archive_path else [])], {})


def psql_script_command(
    target: Target, tools: ClientTools, files: Sequence[str] = ("-",), single_transaction: bool = True
) -> Command:
    """psql running files ("-": standard input) and stopping at the first error; single_transaction
    wraps them in one, for scripts that do not open their own (never for a stream that may be cut
    short: psql would commit what arrived)."""
    argv = [tools.path("psql"), *libpq_args(target), "--quiet", "--no-psqlrc", "--set=ON_ERROR_STOP=1"]
    if single_transaction:
        argv.append("--single-transaction")
    argv += [f"--file={name}" for name in files]
    argv += ["--dbname", target.name]
    return Command(argv, libpq_env(target))


# --- questions answered over a connection ----------------------------------------------------


@contextlib.contextmanager
def connect(target: Target, database: str | None = None) -> Iterator:
    """A psycopg2 connection; failures, connecting or later, become one line naming the masked target."""
    conn = open_connection(target, database)
    with _session(conn, target.with_database(database) if database else target):
        yield conn


def connect_arguments(target: Target, database: str | None = None) -> dict:
    """psycopg2.connect's keyword arguments: the same TLS options the client tools get."""
    options = connection_options(target)
    return {
        "host": target.host or None,
        "port": target.port,
        "user": target.user or None,
        "password": target.password or None,
        "dbname": database or target.name,
        **options,
        "connect_timeout": int(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
    }


def open_connection(target: Target, database: str | None = None):
    try:
        return psycopg2.connect(**connect_arguments(target, database))
    except psycopg2.Error as exc:
        shown = target.with_database(database) if database else target
        raise DbOpsError(f"Cannot connect to {shown.masked}: {connection_error_reason(exc, target)}") from None


@contextlib.contextmanager
def _session(conn, shown: Target) -> Iterator:
    try:
        yield conn
    except psycopg2.Error as exc:
        raise DbOpsError(f"{shown.masked}: {shown.scrub(str(exc)).strip().splitlines()[0]}") from None
    finally:
        conn.close()


def connection_error_reason(exc: Exception, target: Target) -> str:
    text = target.scrub(str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    reason = re.sub(r"^connection to server at .*? failed: ", "", reason)
    reason = reason.replace("FATAL:  ", "")
    if "timeout expired" in reason:
        reason = f"the server did not answer within {target.options.get('connect_timeout', DEFAULT_CONNECT_TIMEOUT)} s"
    return reason


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


def schema_difference(source: Target, target: Target) -> str | None:
    """The first line in which the target's schema differs from the source's, or None when they are
    equal: both as one pg_dump --schema-only writes them (every index, view, constraint, default,
    function, trigger...), less its comments (versions, times) and its random \\restrict keys."""
    majors = []
    for each in (source, target):
        with connect(each) as conn:
            majors.append(server_version(conn)[0])
    tools = tools_for_server(max(majors), needs_tls_tools(source) or needs_tls_tools(target))
    source_lines, target_lines = (_schema_lines(each, tools) for each in (source, target))
    for line in difflib.unified_diff(source_lines, target_lines, lineterm="", n=0):
        if line[:1] in "+-" and not line.startswith(("+++", "---")):
            return f"{'only in the source' if line[0] == '-' else 'only in the target'}: {line[1:].strip()}"
    return None


def _schema_lines(target: Target, tools: ClientTools) -> list[str]:
    text = capture(pg_dump_schema_command(target, tools), scrub=target.scrub)
    return [line for line in text.splitlines() if line and not line.startswith(("--", "\\restrict", "\\unrestrict"))]


def inspect(target: Target) -> DatabaseState:
    """Whether the target database exists and how many tables it holds."""
    with maintenance_connection(target) as conn:
        _, version = server_version(conn)
        identifier = system_identifier(conn)
        if not database_exists(conn, target.name):
            return DatabaseState(exists=False, table_count=0, server_version=version, system_identifier=identifier)
    with connect(target) as conn, conn.cursor() as cursor:
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


@contextlib.contextmanager
def maintenance_connection(target: Target, maintenance_db: str | None = None) -> Iterator:
    """A connection to a database other than the target: --maintenance-db, else postgres, else template1."""
    candidates = [maintenance_db] if maintenance_db else [*MAINTENANCE_DATABASES, target.name]
    for name in candidates:
        try:
            conn = open_connection(target, database=name)
            break
        except DbOpsError as exc:
            if "does not exist" not in str(exc) and "permission denied" not in str(exc):
                raise
            last_error = exc
    else:
        raise DbOpsError(f"{last_error} (choose another maintenance database with --maintenance-db NAME)")
    conn.autocommit = True
    with _session(conn, target.with_database(name)):
        yield conn


# --- operations --------------------------------------------------------------------------------


def dump(
    target: Target,
    output: Path,
    archive_format: str,
    jobs: int | None,
    compress: str | None,
    on_table: Callable[[str], None] | None = None,
) -> DumpFacts:
    """pg_dump the target into output and read all of it back; the row counts match the dump exactly."""
    with exported_snapshot(target) as snapshot:
        tools = tools_for_server(snapshot.major, needs_tls_tools(target))
        command = pg_dump_command(target, tools, str(output), archive_format, jobs, compress, snapshot.name)
        with counting_meanwhile(snapshot) as counts:
            run(command, scrub=target.scrub, on_stderr_line=_progress_reporter(on_table))
        tables = counts.result()
    verify_archive(tools, output)
    return _dump_facts(snapshot, tables, tools)


def dump_stream(
    target: Target,
    consume: Callable[[IO[bytes]], None],
    compress: str | None = None,
    on_table: Callable[[str], None] | None = None,
) -> DumpFacts:
    """pg_dump the target in custom format and hand the stream to consume, while pg_restore reads every
    byte of the same stream back; raises (so the caller discards what consume wrote) unless both succeed."""
    with exported_snapshot(target) as snapshot:
        tools = tools_for_server(snapshot.major, needs_tls_tools(target))
        dump_command = pg_dump_command(target, tools, None, archive.CUSTOM, None, compress, snapshot.name)
        progress = _progress_reporter(on_table)
        with (
            spawned(dump_command, stdout=subprocess.PIPE, scrub=target.scrub, on_stderr_line=progress) as dumper,
            spawned(pg_restore_read_command(tools, None), stdin=subprocess.PIPE) as checker,
            counting_meanwhile(snapshot) as counts,
        ):
            consume(streams.tee_reader(dumper.stdout, checker.stdin))
            dumper.finish()
            try:
                checker.finish()
            except DbOpsError as exc:
                raise _unreadable(exc) from exc
        tables = counts.result()
    return _dump_facts(snapshot, tables, tools)


def _dump_facts(snapshot: "Snapshot", tables: dict[str, int], tools: ClientTools) -> DumpFacts:
    return DumpFacts(
        snapshot.version,
        tools.version,
        tables,
        tools_used=tools.describe(),
        system_identifier=snapshot.system_identifier,
    )


@dataclass(frozen=True)
class Snapshot:
    """A snapshot of a database exported for pg_dump --snapshot; it lives as long as the read-only
    transaction on conn, which holds a lock on every table, so none can go before it is counted."""

    conn: "psycopg2.extensions.connection"
    name: str
    major: int
    version: str
    system_identifier: str
    tables: list[tuple[str, str]]


@contextlib.contextmanager
def exported_snapshot(target: Target) -> Iterator[Snapshot]:
    """The snapshot that pg_dump dumps (run it inside the with block): counts taken in it describe
    exactly what pg_dump writes. A table this role may not read fails here, before pg_dump starts."""
    with connect(target) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        major, version = server_version(conn)
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot()")
            name = cursor.fetchone()[0]
            tables = list_tables(conn)
            if tables:  # the lock pg_dump takes too (it needs the same privilege)
                names = sql.SQL(", ").join(sql.Identifier(schema, table) for schema, table in tables)
                cursor.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(names))
        yield Snapshot(conn, name, major, version, system_identifier(conn), tables)
        conn.rollback()


@contextlib.contextmanager
def counting_meanwhile(snapshot: Snapshot) -> Iterator[Future]:
    """The snapshot's row counts, counted by the server in a thread of this process while the with
    block runs pg_dump on the same snapshot (on another core), and waited for at its end. When the
    block fails, or Ctrl-C interrupts the wait, the count is cancelled."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        counts = pool.submit(count_rows, snapshot.conn, snapshot.tables)
        try:
            yield counts
            wait([counts])
        except BaseException:
            while not counts.done():  # again and again: a cancel that comes before a query misses it
                snapshot.conn.cancel()
                wait([counts], timeout=CANCEL_INTERVAL)
            raise


@contextlib.contextmanager
def counted_snapshot(target: Target) -> Iterator[tuple[Snapshot, dict[str, int], dict[str, str]]]:
    """An exported snapshot with its row counts and fingerprints, taken before the with block runs."""
    with exported_snapshot(target) as snapshot:
        contents = table_fingerprints(snapshot.conn)
        yield snapshot, count_rows(snapshot.conn, snapshot.tables), contents


def stream_dump(target: Target, consume: Callable[[IO[bytes]], None], compress: str | None = None) -> None:
    """pg_dump in custom format, its output handed to consume (backup_db --output -)."""
    with connect(target) as conn:
        major, _ = server_version(conn)
    tools = tools_for_server(major, needs_tls_tools(target))
    command = pg_dump_command(target, tools, None, archive.CUSTOM, None, compress)
    with spawned(command, stdout=subprocess.PIPE, scrub=target.scrub) as dumper:
        consume(dumper.stdout)


def stream_copy(source: Target, target: Target) -> DumpFacts:
    """pg_dump the source straight into pg_restore on the target: nothing on local disk, one transaction
    on the target, and the source's row counts from the very snapshot that pg_dump copies."""
    with connect(target) as conn:
        target_major, _ = server_version(conn)
        existing_extensions = _extensions(conn)
    with counted_snapshot(source) as (snapshot, tables, contents):
        needs_tls = needs_tls_tools(source) or needs_tls_tools(target)
        tools = tools_for_server(max(snapshot.major, target_major), needs_tls)
        # As restore's --use-list does (see _restore_list): extensions the target already has are left
        # out, so a database owner who is not a superuser can copy into it. pg_dump 17 can exclude them.
        excluded = sorted(existing_extensions) if tools.major >= EXCLUDE_EXTENSION_MAJOR else []
        dump_command = pg_dump_command(source, tools, None, snapshot=snapshot.name, exclude_extensions=excluded)

        def scrub(text: str) -> str:
            return target.scrub(source.scrub(text))

        if needs_script_route(target_major, tools):
            script = pg_restore_script_command(tools, None, "-")
            restore = psql_script_command(target, tools, single_transaction=False)
            run_pipeline([dump_command, script, restore], scrub=scrub, keep_line=script_line_filter(target_major))
        else:
            run_pipeline([dump_command, pg_restore_command(target, tools, None)], scrub=scrub)
    return DumpFacts(snapshot.version, tools.version, tables, tools.describe(), contents)


def _progress_reporter(on_table: Callable[[str], None] | None) -> Callable[[str], None] | None:
    if on_table is None:
        return None

    def report(line: str) -> None:
        match = PROGRESS_PATTERN.search(line)
        if match:
            on_table(match.group(1))

    return report


def verify_archive(tools: ClientTools, archive_path: Path) -> None:
    """Read every byte of the archive; --list alone passes truncated and bit-flipped archives."""
    try:
        capture(pg_restore_read_command(tools, archive_path))
    except DbOpsError as exc:
        raise _unreadable(exc) from exc


def _unreadable(exc: DbOpsError) -> DbOpsError:
    return DbOpsError(f"The archive did not read back cleanly, so it was not kept: {exc}")


def restore_tools(target_major: int, needs_tls: bool, archive_path: Path, archive_format: str) -> ClientTools:
    """Tools new enough for the target server and for the pg_dump that made the archive, built with
    the archive's compression."""
    if archive_format == archive.SQL:
        return tools_for_server(target_major, needs_tls)
    header = archive.archive_header(archive_path, archive_format)
    if header.dump_major > target_major:
        return tools_for_server(header.dump_major, needs_tls, header.compression, "The archive was made by pg_dump of")
    return tools_for_server(target_major, needs_tls, header.compression)


def check_restorable(target: Target, state: DatabaseState, archive_path: Path, archive_format: str) -> None:
    """Refuse, before anything is touched, an archive that no pg_restore found here can read."""
    restore_tools(int(re.match(r"\d+", state.server_version)[0]), needs_tls_tools(target), archive_path, archive_format)


def load(
    target: Target,
    archive_path: Path,
    archive_format: str,
    jobs: int | None = None,
    expected_sha256: str | None = None,
    expected_tables: dict[str, int] | None = None,
) -> Loaded:
    """Make the target hold what the archive holds, and nothing else (EMPTY_DATABASE_SQL runs first).
    With expected_sha256, an archive that no longer matches it is refused and nothing is changed; with
    expected_tables, so is one whose tables and row counts, counted before the COMMIT, differ.

    One transaction unless jobs, so a failure changes nothing. Returns which client tools did it, and
    the row counts when they were taken inside that transaction."""
    with connect(target) as conn:
        major, _ = server_version(conn)
        existing_extensions = _extensions(conn)
    tools = restore_tools(major, needs_tls_tools(target), archive_path, archive_format)
    # A custom archive is hashed while pg_restore reads it (read once); other formats before.
    streamed = bool(expected_sha256) and archive_format == archive.CUSTOM and not jobs
    if expected_sha256 and not streamed:
        archive.check_sha256(archive_path, expected_sha256)
    with cleanup.spool_folder("restore") as scratch:
        prelude = scratch / "empty-database.sql"
        if archive_format == archive.SQL:
            prelude.write_text(EMPTY_DATABASE_SQL)
            _run_sql_script(target, tools, archive_path, major, prelude)
            return Loaded(tools.describe())
        use_list = _restore_list(tools, archive_path, existing_extensions, scratch)
        if jobs:  # parallel workers cannot share one transaction: emptying it first is no less atomic
            with connect(target) as conn, conn.cursor() as cursor:
                cursor.execute(EMPTY_DATABASE_SQL)
                conn.commit()
            _load_in_parallel(target, tools, archive_path, use_list, jobs, script_line_filter(major))
            return Loaded(tools.describe())
        # The prelude opens the transaction, so the target is emptied in it too; the COMMIT comes after
        # the script, from this process, once pg_restore has ended well and the counts are checked.
        # Streamed: no script on disk.
        prelude.write_text("BEGIN;\n" + EMPTY_DATABASE_SQL)
        script = pg_restore_statements_command(tools, None if streamed else archive_path, "-", use_list)
        psql = psql_script_command(target, tools, [str(prelude), "-"], single_transaction=False)
        counts_file = scratch / "row-counts.json"
        # Streamed, the archive's last block reaches pg_restore only once the whole file's SHA-256
        # matches: until then pg_restore cannot end well, and a mismatch cuts it short.
        feed = None
        if streamed:

            def feed(stdin):
                streams.feed_when_whole(
                    archive_path, stdin, lambda actual: archive.check_sha256(archive_path, expected_sha256, actual)
                )

        # Lines go through this process only when some must be left out: relaying them all costs.
        keep_line = script_line_filter(major) if major < TRANSACTION_TIMEOUT_MAJOR else None
        ending = commit_if_counts_match(expected_tables, counts_file)
        run_pipeline([script, psql], scrub=target.scrub, keep_line=keep_line, feed=feed, ending=ending)
        tables = json.loads(counts_file.read_text())
    _refuse_other_counts(target, expected_tables, tables)
    return Loaded(tools.describe(), tables)


def _refuse_other_counts(target: Target, expected: dict[str, int] | None, counted: dict[str, int]) -> None:
    """commit_if_counts_match did not commit: say why."""
    differences = row_count_differences(expected or counted, counted, "in the backup", "after restoring", exact=True)
    if differences:
        raise DbOpsError(
            f"Row counts differ: {'; '.join(differences)}. Nothing was restored: {target.masked} is as it was."
        )


def _load_in_parallel(target, tools, archive_path, use_list, jobs: int, keep_line) -> None:
    """The tables, then their rows dealt out to `jobs` sessions (so a single big table loads on every
    core, which pg_restore --jobs cannot do), then indexes and constraints by pg_restore --jobs."""
    run(pg_restore_command(target, tools, archive_path, None, use_list, "pre-data"), scrub=target.scrub)
    _load_rows(target, tools, pg_restore_data_script_command(tools, archive_path, use_list), jobs, keep_line)
    run(pg_restore_command(target, tools, archive_path, jobs, use_list, "post-data"), scrub=target.scrub)


def _load_rows(target: Target, tools: ClientTools, script: Command, sessions: int, keep_line) -> None:
    session = psql_script_command(target, tools, single_transaction=False)
    with contextlib.ExitStack() as running:
        source = running.enter_context(spawned(script, stdout=subprocess.PIPE, scrub=target.scrub))
        loaders = [
            running.enter_context(spawned(session, stdin=subprocess.PIPE, scrub=target.scrub)) for _ in range(sessions)
        ]
        splitter = splitcopy.CopySplitter([loader.stdin.write for loader in loaders], keep_line)
        try:
            while data := os.read(source.stdout.fileno(), streams.BLOCK_SIZE):
                splitter.feed(data)
            splitter.close()
        except BrokenPipeError:
            pass  # a session stopped: its own error, when it is finished, says why
        except splitcopy.TruncatedScript as exc:
            source.finish()  # pg_restore's own error says why it stopped
            raise DbOpsError(f"{exc}, although pg_restore reported no error.") from None


def _extensions(conn) -> set[str]:
    with conn.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension")
        return {name for (name,) in cursor.fetchall()}


def _restore_list(tools: ClientTools, archive_path: Path, existing: set[str], scratch: Path) -> Path:
    # With --clean, pg_restore drops and re-comments every extension in the archive, which a
    # database owner who is not a superuser may not do ("must be owner of extension"). An
    # extension that the target already has needs neither, so its entries are left out.
    entries = capture(pg_restore_read_command(tools, archive_path, list_only=True)).splitlines()
    _refuse_data_only(entries, archive_path)
    kept = [line for line in entries if not _is_existing_extension(line, existing)]
    list_file = scratch / "restore.list"
    list_file.write_text("\n".join(kept) + "\n")
    return list_file


def _refuse_data_only(entries: list[str], archive_path: Path) -> None:
    if any(TABLE_DATA_ENTRY.match(entry) for entry in entries) and not any(TABLE_ENTRY.match(e) for e in entries):
        raise DbOpsError(
            f"{archive_path} holds data without tables (pg_dump --data-only): restore_db replaces the whole "
            "database, so it needs a dump with the tables. Nothing was restored."
        )


def _is_existing_extension(entry: str, existing: set[str]) -> bool:
    match = EXTENSION_ENTRY.match(entry)
    return bool(match and match.group(1) in existing)


def needs_script_route(server_major: int, tools: ClientTools) -> bool:
    """pg_restore 17+ sends "SET transaction_timeout", which older servers reject: such a restore
    goes through pg_restore's SQL script, run by psql without that setting."""
    return server_major < TRANSACTION_TIMEOUT_MAJOR <= tools.major


def script_line_filter(server_major: int) -> Callable[[bytes], bool]:
    """Which lines of a SQL script the server can run: pg_dump/pg_restore 17+ write
    "SET transaction_timeout", a setting older servers reject."""
    if server_major >= TRANSACTION_TIMEOUT_MAJOR:
        return lambda line: True
    return lambda line: not line.startswith(b"SET transaction_timeout")


def _run_sql_script(target: Target, tools: ClientTools, script: Path, server_major: int, prelude: Path) -> None:
    """A plain SQL dump, after the prelude, in one transaction (psql's: a dump holds no BEGIN)."""
    keep = script_line_filter(server_major)
    with tempfile.TemporaryFile("w+b") as filtered:
        with script.open("rb") as source:
            filtered.writelines(line for line in source if keep(line))
        filtered.seek(0)
        run(psql_script_command(target, tools, [str(prelude), "-"]), scrub=target.scrub, stdin=filtered)


def create_database(target: Target, maintenance_db: str | None = None, exist_ok: bool = False) -> bool:
    """Create the target database; False when it already exists and exist_ok says that is fine."""
    with maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
        if database_exists(conn, target.name):
            if exist_ok:
                return False
            raise DbOpsError(f"{target.masked} already exists.")
        cursor.execute(create_database_statement(target.name))
    return True


def drop_database(target: Target, maintenance_db: str | None = None) -> None:
    """Drop a database this run created (and nobody else uses yet), e.g. after its restore failed."""
    with maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
        force = sql.SQL(" WITH (FORCE)") if conn.server_version >= 130000 else sql.SQL("")
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(target.name)) + force)


@contextlib.contextmanager
def restore_lock(target: Target) -> Iterator[None]:
    """One restore at a time into a database: a session advisory lock in it, which every client of
    the server sees, whatever machine or backup folder it restores from. It needs no privilege."""
    with connect(target) as conn:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [RESTORE_LOCK_KEY])
            if not cursor.fetchone()[0]:
                raise DbOpsError(
                    f"Another restore into {target.masked} is running; try again when it has ended. "
                    "Nothing was restored."
                )
        yield


def same_database(first: Target, second: Target) -> bool:
    """Whether two targets are one database, however their URLs spell it (127.0.0.1 or localhost,
    a proxy, a DNS alias): the first takes a random advisory lock, and the second cannot take it
    only if it is the same database of the same server. No privilege is needed, unlike
    pg_control_system()'s system_identifier, which copies and replicas of a server share anyway."""
    key = secrets.randbits(63)
    with connect(first) as held, held.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            probe = open_connection(second)
        except DbOpsError as exc:
            if f'database "{second.name}" does not exist' in str(exc):
                return False
            raise
        with _session(probe, second), probe.cursor() as probe_cursor:
            probe_cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            return not probe_cursor.fetchone()[0]


def create_database_statement(name: str, owner: str | None = None) -> sql.Composable:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner:
        statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    return statement


def recreate(target: Target, maintenance_db: str | None = None) -> str:
    """Replace the target database by an empty one with the same owner (ending its sessions), so that
    its name exists at every instant, whenever this process dies:

    1. the empty one is created under a temporary name (a role that could drop the database but not
       create it again fails here, before anything is changed);
    2. one transaction renames the target away and the empty one in;
    3. the old one is dropped.

    A reset that died between the steps left a database under one of the temporary names; this one
    first finishes (after 2) or undoes (before 2) it, and returns a line saying which ("" if none)."""
    refuse_reset(target, maintenance_db)
    with maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
        if conn.info.dbname == target.name:
            raise DbOpsError(
                f"Cannot drop {target.masked} while connected to it: no maintenance database (postgres, "
                "template1) is reachable; name one with --maintenance-db NAME."
            )
        notice = _finish_half_done_reset(cursor, conn.server_version, target)
        cursor.execute(
            "SELECT pg_get_userbyid(datdba), current_user FROM pg_database WHERE datname = %s", [target.name]
        )
        row = cursor.fetchone()
        if row is None:  # reset --create of a database that does not exist
            cursor.execute(create_database_statement(target.name))
            return notice
        create_replacement(cursor, target, owner=row[0] if row[0] != row[1] else None)
        swap_in_replacement(cursor, target)
        old = reset_names(target.name)[1]
        try:
            _drop_database(cursor, conn.server_version, old)
        except psycopg2.Error as exc:
            raise DbOpsError(
                f"{target.masked} is now empty, but its old contents, renamed {old!r}, could not be dropped: "
                f"{_first_line(target, exc)}. The next reset_db drops it (or: DROP DATABASE {old})."
            ) from None
    return notice


def reset_names(name: str) -> tuple[str, str]:
    """The temporary names of a reset of database name: its empty replacement, and itself once replaced."""
    stem = f"{name[:40]}_reset_{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    return f"{stem}_new", f"{stem}_old"


def create_replacement(cursor, target: Target, owner: str | None) -> None:
    try:
        cursor.execute(create_database_statement(reset_names(target.name)[0], owner))
    except psycopg2.Error as exc:
        raise DbOpsError(
            f"Could not create an empty database to replace {target.masked}, so nothing was dropped: "
            f"{_first_line(target, exc)}"
        ) from None


def swap_in_replacement(cursor, target: Target) -> None:
    """Rename the target away and its replacement in, in one transaction: the name never goes missing."""
    new, old = reset_names(target.name)
    rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
    for attempt in range(SWAP_ATTEMPTS):
        # A renamed database may have no sessions; a new one may connect meanwhile, hence the attempts.
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [target.name],
        )
        try:
            cursor.execute("BEGIN")
            cursor.execute(rename.format(sql.Identifier(target.name), sql.Identifier(old)))
            cursor.execute(rename.format(sql.Identifier(new), sql.Identifier(target.name)))
            cursor.execute("COMMIT")
            return
        except psycopg2.Error as exc:
            cursor.execute("ROLLBACK")
            if isinstance(exc, psycopg2.errors.ObjectInUse) and attempt < SWAP_ATTEMPTS - 1:
                continue
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(new)))
            raise DbOpsError(
                f"Could not replace {target.masked}; nothing was changed: {_first_line(target, exc)}"
            ) from None


def _finish_half_done_reset(cursor, server_version_num: int, target: Target) -> str:
    new, old = reset_names(target.name)
    cursor.execute("SELECT datname FROM pg_database WHERE datname IN (%s, %s)", [new, old])
    found = {name for (name,) in cursor.fetchall()}
    done = []
    if old in found:  # the swap was committed: the target is the empty database already
        _drop_database(cursor, server_version_num, old)
        done.append(f"finished a reset of {target.name} that was stopped before it dropped the old contents")
    if new in found:  # stopped before the swap: the target was never touched
        cursor.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(new)))
        done.append(f"dropped the empty database {new!r} of a reset of {target.name} that was stopped before it")
    return f"First {' and '.join(done)}." if done else ""


def _drop_database(cursor, server_version_num: int, name: str) -> None:
    if server_version_num < 130000:  # no DROP DATABASE ... WITH (FORCE) yet
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        cursor.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
    else:
        cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _first_line(target: Target, exc: Exception) -> str:
    return target.scrub(str(exc)).strip().splitlines()[0]


def check_reset(target: Target, maintenance_db: str | None = None, create: bool = False) -> DatabaseState:
    """Everything reset needs, checked before anyone is asked to confirm; describe the database."""
    refuse_reset(target, maintenance_db)
    state = inspect(target)
    if not state.exists:
        if create:
            return state
        raise DbOpsError(
            f"{target.masked} does not exist (is the name right?); nothing was changed. "
            "Add --create to create it empty."
        )
    with maintenance_connection(target, maintenance_db) as conn:
        missing = missing_reset_privileges(conn, target.name)
    if missing:
        raise DbOpsError(f"Cannot reset {target.masked}: {missing}. Nothing was changed.")
    return state


def missing_reset_privileges(conn, name: str) -> str:
    """What the connected role lacks to drop database name and create it again with its owner ("" if nothing)."""
    # Creating a database for another owner takes the right to SET ROLE to it (16+), membership before.
    can_become = "SET" if conn.server_version >= 160000 else "MEMBER"
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT r.rolsuper, r.rolcreatedb, pg_has_role(d.datdba, 'USAGE'), "
            "d.datdba = r.oid OR pg_has_role(d.datdba, %s), pg_get_userbyid(d.datdba) "
            "FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = %s",
            [can_become, name],
        )
        row = cursor.fetchone()
        role = conn.info.user
    if row is None or row[0]:
        return ""
    _, createdb, owns, can_own, owner = row
    if not owns:
        return f"only its owner {owner!r} or a superuser may drop it, and you connect as {role!r}"
    if not createdb:
        return (
            f"the role {role!r} may drop it but has no CREATEDB privilege to create it again "
            f"(a superuser can grant it: ALTER ROLE {role} CREATEDB)"
        )
    if not can_own:
        return f"the role {role!r} may not create a database owned by {owner!r} (GRANT {owner} TO {role})"
    return ""


def refuse_reset(target: Target, maintenance_db: str | None) -> None:
    protected = {*MAINTENANCE_DATABASES, "template0", *([maintenance_db] if maintenance_db else [])}
    if target.name in protected:
        raise DbOpsError(
            f"Refusing to drop {target.name!r}: it is a maintenance database. Point DATABASE_URL or --url at "
            "the app's own database (e.g. .../bird_app_db)."
        )


@contextlib.contextmanager
def scratch_database(instance: Target, label: str) -> Iterator[Target]:
    """A new, empty database on the instance for a restore drill, dropped afterwards whatever happens.

    Its name carries the owner's tag, so the next drill drops those that killed (-9) drills left."""
    stem = re.sub(r"[^a-z0-9_]", "_", label.lower())[:30]
    scratch = instance.with_database(f"{SCRATCH_PREFIX}{stem}_{cleanup.owner_tag()}_{secrets.token_hex(4)}")
    with maintenance_connection(instance) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user")
        if not cursor.fetchone()[0]:
            raise DbOpsError(
                f"A restore drill restores into a scratch database, and the role {conn.info.user!r} may not create "
                f"databases on {instance.masked} (no CREATEDB). Run the drill on a server of your own instead: "
                '`python manage.py localdb start`, then `python manage.py verify_backup --url "$(python manage.py '
                'localdb url --show-password)"`. Nothing was changed.'
            )
    drop_stale_scratch_databases(instance)
    create_database(scratch)
    try:
        yield scratch
    finally:
        with ctrl_c_deferred():
            drop_database(scratch)


def drop_stale_scratch_databases(instance: Target) -> list[str]:
    """Drop the scratch databases of drills of this machine whose process has ended."""
    with maintenance_connection(instance) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        names = [name for (name,) in cursor.fetchall() if name.startswith(SCRATCH_PREFIX)]
    stale = [name for name in names if cleanup.left_by_dead_process(name)]
    for name in stale:
        with contextlib.suppress(DbOpsError):  # another role's: not this drill's to fail over
            drop_database(instance.with_database(name))
    return stale

