"""The PostgreSQL engine: pg_dump, pg_restore and psql driven as (argv, env), psycopg2 for questions."""

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from . import archive
from .connection import DEFAULT_CONNECT_TIMEOUT, Target, connection_options, libpq_args, libpq_env, needs_tls_tools
from .errors import DbOpsError
from .facts import DatabaseState, DatabaseSummary, DumpFacts, InstanceInfo, TableSummary
from .process import Command, capture, run, run_pipeline
from .tools import ClientTools, tools_for_server

ENGINE_NAME = "PostgreSQL"
ARCHIVE_FORMATS = frozenset({archive.CUSTOM, archive.DIRECTORY, archive.TAR, archive.SQL})
MAINTENANCE_DATABASES = ("postgres", "template1")
TRANSACTION_TIMEOUT_MAJOR = 17  # the first server version that knows transaction_timeout
TABLES_QUERY = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
    ORDER BY 1, 2
"""
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
PROGRESS_PATTERN = re.compile(r'dumping contents of table "([^"]+)"')
EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:COMMENT - )?EXTENSION (?:- )?(\S+)")
# The formats whose data pg_dump 16+ compresses with zstd (tar is never compressed).
ZSTD_FORMATS = frozenset({archive.CUSTOM, archive.DIRECTORY})


def default_compression(tools: ClientTools, archive_format: str) -> str | None:
    """What every dump compresses with unless told otherwise: zstd where the tools and the format
    have it, about 3.5 times faster than gzip at a slightly smaller archive (bench/RESULTS.md);
    else None, pg_dump's own default (gzip, which every pg_restore reads)."""
    if "zstd" in tools.compressions and archive_format in ZSTD_FORMATS:
        return "zstd"
    return None


# --- (argv, env) builders: pure, tested with exact lists --------------------------------------


def pg_dump_command(
    target: Target,
    tools: ClientTools,
    output: str | None,
    archive_format: str = archive.CUSTOM,
    jobs: int | None = None,
    compress: str | None = None,
    snapshot: str | None = None,
) -> Command:
    argv = [tools.path("pg_dump"), *libpq_args(target), f"--format={archive_format}", "--no-acl", "--no-owner"]
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


def pg_restore_command(
    target: Target,
    tools: ClientTools,
    archive_path: Path | None,
    jobs: int | None = None,
    use_list: Path | None = None,
) -> Command:
    """pg_restore into the target; archive_path None reads the archive from standard input."""
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
    """pg_restore writing the SQL it would run, for a server that cannot take all of it directly.

    archive_path None reads the archive from standard input; output "-" writes to standard output."""
    argv = [tools.path("pg_restore"), "--clean", "--if-exists", "--no-acl", "--no-owner"]
    if use_list:
        argv.append(f"--use-list={use_list}")
    argv.append(f"--file={output}")
    if archive_path is not None:
        argv.append(str(archive_path))
    return Command(argv, {})


def pg_restore_read_command(tools: ClientTools, archive_path: Path, list_only: bool = False) -> Command:
    """Read an archive without a server: --list reads the table of contents, -f /dev/null all of it."""
    mode = ["--list"] if list_only else ["--file=/dev/null"]
    return Command([tools.path("pg_restore"), *mode, str(archive_path)], {})


def psql_script_command(target: Target, tools: ClientTools) -> Command:
    argv = [
        tools.path("psql"),
        *libpq_args(target),
        "--quiet",
        "--no-psqlrc",
        "--set=ON_ERROR_STOP=1",
        "--single-transaction",
        "--file=-",
        "--dbname",
        target.name,
    ]
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


def table_row_counts(conn) -> dict[str, int]:
    with conn.cursor() as cursor:
        cursor.execute(TABLES_QUERY)
        tables = cursor.fetchall()
        counts = {}
        for schema, table in tables:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
            counts[f"{schema}.{table}"] = cursor.fetchone()[0]
    return counts


def row_counts(target: Target) -> dict[str, int]:
    with connect(target) as conn:
        return table_row_counts(conn)


def inspect(target: Target) -> DatabaseState:
    """Whether the target database exists and how many tables it holds."""
    with maintenance_connection(target) as conn:
        _, version = server_version(conn)
        if not database_exists(conn, target.name):
            return DatabaseState(exists=False, table_count=0, server_version=version)
    with connect(target) as conn, conn.cursor() as cursor:
        cursor.execute(TABLES_QUERY)
        table_count = cursor.rowcount
        return DatabaseState(exists=True, table_count=table_count, server_version=version)


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
    with counted_snapshot(target) as snapshot:
        tools = tools_for_server(snapshot.major, needs_tls_tools(target))
        command = pg_dump_command(target, tools, str(output), archive_format, jobs, compress, snapshot.name)
        run(command, scrub=target.scrub, on_stderr_line=_progress_reporter(on_table))
    verify_archive(tools, output)
    return DumpFacts(snapshot.version, tools.version, snapshot.tables, tools_used=tools.describe())


@dataclass(frozen=True)
class Snapshot:
    """An exported snapshot of a database (pg_dump --snapshot takes it) and its row counts in it."""

    name: str
    major: int
    version: str
    tables: dict[str, int]


@contextlib.contextmanager
def counted_snapshot(target: Target) -> Iterator[Snapshot]:
    """Row counts in the snapshot that pg_dump will dump, so the counts describe exactly what it writes.

    The snapshot lives as long as this read-only transaction: run pg_dump inside the with block."""
    with connect(target) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        major, version = server_version(conn)
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot()")
            name = cursor.fetchone()[0]
        yield Snapshot(name, major, version, table_row_counts(conn))
        conn.rollback()


def stream_dump(target: Target, stdout, compress: str | None = None) -> None:
    """pg_dump in custom format to an open binary stream (backup_db --output -)."""
    with connect(target) as conn:
        major, _ = server_version(conn)
    tools = tools_for_server(major, needs_tls_tools(target))
    command = pg_dump_command(target, tools, None, archive.CUSTOM, None, compress)
    run(command, scrub=target.scrub, stdout=stdout)


def stream_copy(source: Target, target: Target) -> DumpFacts:
    """pg_dump the source straight into pg_restore on the target: nothing on local disk, one transaction
    on the target, and the source's row counts from the very snapshot that pg_dump copies."""
    with connect(target) as conn:
        target_major, _ = server_version(conn)
    with counted_snapshot(source) as snapshot:
        needs_tls = needs_tls_tools(source) or needs_tls_tools(target)
        tools = tools_for_server(max(snapshot.major, target_major), needs_tls)
        dump_command = pg_dump_command(source, tools, None, snapshot=snapshot.name)

        def scrub(text: str) -> str:
            return target.scrub(source.scrub(text))

        if needs_script_route(target_major, tools):
            script = pg_restore_script_command(tools, None, "-")
            restore = psql_script_command(target, tools)
            run_pipeline([dump_command, script, restore], scrub=scrub, keep_line=script_line_filter(target_major))
        else:
            run_pipeline([dump_command, pg_restore_command(target, tools, None)], scrub=scrub)
    return DumpFacts(snapshot.version, tools.version, snapshot.tables, tools_used=tools.describe())


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
        raise DbOpsError(f"The archive did not read back cleanly, so it was not kept: {exc}") from exc


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


def load(target: Target, archive_path: Path, archive_format: str, jobs: int | None = None) -> str:
    """Restore an archive into the target: one transaction unless jobs, so a failure changes nothing.

    Returns which client tools did it."""
    with connect(target) as conn:
        major, _ = server_version(conn)
        existing_extensions = _extensions(conn)
    tools = restore_tools(major, needs_tls_tools(target), archive_path, archive_format)
    if archive_format == archive.SQL:
        _run_sql_script(target, tools, archive_path, major)
        return tools.describe()
    with tempfile.TemporaryDirectory(prefix="restore-") as scratch:
        use_list = _restore_list(tools, archive_path, existing_extensions, Path(scratch))
        if needs_script_route(major, tools):
            script = Path(scratch) / "restore.sql"
            capture(pg_restore_script_command(tools, archive_path, script, use_list))
            _run_sql_script(target, tools, script, major)
            return tools.describe()
        run(pg_restore_command(target, tools, archive_path, jobs, use_list), scrub=target.scrub)
    return tools.describe()


def _extensions(conn) -> set[str]:
    with conn.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension")
        return {name for (name,) in cursor.fetchall()}


def _restore_list(tools: ClientTools, archive_path: Path, existing: set[str], scratch: Path) -> Path:
    # With --clean, pg_restore drops and re-comments every extension in the archive, which a
    # database owner who is not a superuser may not do ("must be owner of extension"). An
    # extension that the target already has needs neither, so its entries are left out.
    entries = capture(pg_restore_read_command(tools, archive_path, list_only=True)).splitlines()
    kept = [line for line in entries if not _is_existing_extension(line, existing)]
    list_file = scratch / "restore.list"
    list_file.write_text("\n".join(kept) + "\n")
    return list_file


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


def _run_sql_script(target: Target, tools: ClientTools, script: Path, server_major: int) -> None:
    keep = script_line_filter(server_major)
    with tempfile.TemporaryFile("w+b") as filtered:
        with script.open("rb") as source:
            filtered.writelines(line for line in source if keep(line))
        filtered.seek(0)
        run(psql_script_command(target, tools), scrub=target.scrub, stdin=filtered)


def create_database(target: Target, maintenance_db: str | None = None, exist_ok: bool = False) -> bool:
    """Create the target database; False when it already exists and exist_ok says that is fine."""
    with maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
        if database_exists(conn, target.name):
            if exist_ok:
                return False
            raise DbOpsError(f"{target.masked} already exists.")
        cursor.execute(create_database_statement(target.name))
    return True


def create_database_statement(name: str, owner: str | None = None) -> sql.Composable:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner:
        statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    return statement


def recreate(target: Target, maintenance_db: str | None = None) -> None:
    """Drop the target database (ending its sessions) and create it empty, with the same owner."""
    refuse_reset(target, maintenance_db)
    with maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
        if conn.info.dbname == target.name:
            raise DbOpsError(
                f"Cannot drop {target.masked} while connected to it: no maintenance database (postgres, "
                "template1) is reachable; name one with --maintenance-db NAME."
            )
        cursor.execute(
            "SELECT pg_get_userbyid(datdba), current_user FROM pg_database WHERE datname = %s", [target.name]
        )
        row = cursor.fetchone()
        owner = row[0] if row and row[0] != row[1] else None
        force = sql.SQL(" WITH (FORCE)") if conn.server_version >= 130000 else sql.SQL("")
        if conn.server_version < 130000:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [target.name],
            )
        try:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(target.name)) + force)
            cursor.execute(create_database_statement(target.name, owner))
        except psycopg2.Error as exc:
            raise DbOpsError(f"Could not recreate {target.masked}: {target.scrub(str(exc)).strip()}") from None


def refuse_reset(target: Target, maintenance_db: str | None) -> None:
    protected = {*MAINTENANCE_DATABASES, "template0", *([maintenance_db] if maintenance_db else [])}
    if target.name in protected:
        raise DbOpsError(
            f"Refusing to drop {target.name!r}: it is a maintenance database. Point DATABASE_URL or --url at "
            "the app's own database (e.g. .../bird_app_db)."
        )
