"""Pure builders of the PostgreSQL client tools' command lines: each returns a Command, (argv, env),
as Django's db/backends/postgresql/client.py does; nothing here runs or connects."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from .. import archive
from ..connection import Target, libpq_args, libpq_env
from ..process import Command
from ..splitcopy import COMMENT, END_OF_COPY, SESSION_SETUP
from ..tools import ClientTools

TRANSACTION_TIMEOUT_MAJOR = 17  # the first server version that knows transaction_timeout
# A script's opening lines, before its first statement: comments, psql's \restrict, the BEGIN of
# pg_restore --single-transaction and the settings.
OPENING_LINES = (COMMENT, b"BEGIN;", *SESSION_SETUP)
# How pg_dump writes each large object's data: opened, written, closed, all inside BEGIN ... COMMIT.
LARGE_OBJECT_OPEN = b"SELECT pg_catalog.lo_open("
LARGE_OBJECT_CLOSE = b"SELECT pg_catalog.lo_close(0);\n"
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


def pg_restore_read_command(tools: ClientTools, archive_path: Path | None) -> Command:
    """pg_restore reading every byte of an archive without a server (-f /dev/null): a truncated or
    bit-flipped archive fails it, which --list alone passes. archive_path None reads standard input."""
    return Command([tools.path("pg_restore"), "--file=/dev/null", *([str(archive_path)] if archive_path else [])], {})


def pg_restore_list_command(tools: ClientTools, archive_path: Path) -> Command:
    """pg_restore --list: the archive's table of contents, read without a server."""
    return Command([tools.path("pg_restore"), "--list", str(archive_path)], {})


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


def script_lines(server_major: int, large_objects: bool) -> Callable[[Iterable[bytes]], Iterator[bytes]] | None:
    """How a pg_dump or pg_restore script is rewritten to run inside the caller's own transaction, for
    this server: the lines script_line_filter leaves out, and, with large objects, the BEGIN and
    COMMIT that pg_dump and pg_restore (without --single-transaction) put around their data, which
    would commit the caller's transaction halfway. None: nothing to rewrite."""
    if server_major >= TRANSACTION_TIMEOUT_MAJOR and not large_objects:
        return None
    keep = script_line_filter(server_major)

    def rewritten(lines: Iterable[bytes]) -> Iterator[bytes]:
        kept = (line for line in lines if keep(line))
        yield from _without_large_object_transactions(kept) if large_objects else kept

    return rewritten


def _without_large_object_transactions(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Every line but a BEGIN whose next statement opens a large object and a COMMIT whose last one
    closed one: the blocks in which pg_dump writes large objects' data. Rows of COPY data are never
    looked at, and nothing is reordered."""
    held: list[bytes] = []  # a BEGIN and the blank lines after it, until the next statement says what it is
    after_close = in_copy = False
    for line in lines:
        if in_copy:
            in_copy = line != END_OF_COPY
            yield line
            continue
        if held and not line.strip():
            held.append(line)
            continue
        if held:
            yield from held[1:] if line.startswith(LARGE_OBJECT_OPEN) else held
            held = []
        if line == b"BEGIN;\n":
            held = [line]
        elif not (line == b"COMMIT;\n" and after_close):
            yield line
        if line.strip():
            after_close = line == LARGE_OBJECT_CLOSE
        in_copy = line.startswith(b"COPY ") and line.rstrip().endswith(b" FROM stdin;")
    yield from held


def needs_script_route(server_major: int, tools: ClientTools) -> bool:
    """pg_restore 17+ sends "SET transaction_timeout", which older servers reject: such a restore
    goes through pg_restore's SQL script, run by psql without that setting."""
    return server_major < TRANSACTION_TIMEOUT_MAJOR <= tools.major


def script_line_filter(server_major: int) -> Callable[[bytes], bool]:
    """Which lines of one SQL script the server can run: pg_dump/pg_restore 17+ write "SET
    transaction_timeout" among a script's opening settings, which older servers reject. Only those
    opening lines are left out: further on, the same text may be a row of COPY data, or a line of a
    string or of a function's body, and is kept."""
    if server_major >= TRANSACTION_TIMEOUT_MAJOR:
        return lambda line: True
    opening = True

    def keep(line: bytes) -> bool:
        nonlocal opening
        opening = opening and (not line.strip() or line.startswith(OPENING_LINES))
        return not (opening and line.startswith(b"SET transaction_timeout"))

    return keep
