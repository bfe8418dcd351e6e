"""pg_dump in an exported snapshot, its row counts counted meanwhile in the same snapshot, and every
archive read back before it is kept; copy_db's pg_dump-into-pg_restore stream."""

import contextlib
import re
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg2
from psycopg2 import sql

from .. import archive, streams
from ..connection import Target, needs_tls_tools
from ..errors import DbOpsError
from ..facts import DumpFacts
from ..pipeline import run_pipeline
from ..process import capture, run, spawned
from ..tools import ClientTools, tools_for_server
from .argv import (
    needs_script_route,
    pg_dump_command,
    pg_restore_command,
    pg_restore_read_command,
    pg_restore_script_command,
    psql_script_command,
    script_lines,
)
from .catalog import count_rows, extensions, list_tables, server_version, system_identifier, table_fingerprints
from .session import connect

EXCLUDE_EXTENSION_MAJOR = 17  # the first pg_dump with --exclude-extension
PROGRESS_PATTERN = re.compile(r'dumping contents of table "([^"]+)"')
CANCEL_INTERVAL = 0.1  # seconds between cancel requests for a query that must stop


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
        existing_extensions = extensions(conn)
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
            run_pipeline([dump_command, script, restore], scrub=scrub, filter_lines=script_lines(target_major, False))
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
