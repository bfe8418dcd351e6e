"""Restoring an archive into a database so that it holds what the archive holds and nothing else: in one
transaction (pg_restore's script run by psql) unless --jobs, with the client tools the archive needs."""

import contextlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .. import archive, cleanup, splitcopy, streams
from ..connection import Target, needs_tls_tools
from ..errors import DbOpsError
from ..facts import DatabaseState, Loaded, row_count_differences
from ..pipeline import enlarge_pipe, run_pipeline
from ..process import Command, capture, run, spawned
from ..tools import ClientTools, tools_for_server
from .argv import (
    pg_restore_command,
    pg_restore_data_script_command,
    pg_restore_list_command,
    pg_restore_statements_command,
    psql_script_command,
    script_line_filter,
    script_lines,
)
from .catalog import COUNT_QUERY_QUERY, extensions, server_version
from .session import connect

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
  -- What lies in no schema goes too, where this role may drop it: large objects, publications, and foreign
  -- servers with their user mappings and foreign tables. Others' stay: dropping them would fail.
  PERFORM lo_unlink(oid) FROM pg_largeobject_metadata WHERE pg_has_role(lomowner, 'USAGE');
  FOR item IN
    SELECT 'PUBLICATION' AS type, p.pubname AS name, 'pg_publication'::regclass AS classid, p.oid AS objid
      FROM pg_publication p WHERE pg_has_role(p.pubowner, 'USAGE')
    UNION ALL SELECT 'SERVER', s.srvname, 'pg_foreign_server'::regclass, s.oid
      FROM pg_foreign_server s WHERE pg_has_role(s.srvowner, 'USAGE')
  LOOP
    CONTINUE WHEN EXISTS (SELECT FROM pg_depend d WHERE d.classid = item.classid AND d.objid = item.objid
                                                    AND d.deptype = 'e');
    EXECUTE format('DROP %s IF EXISTS %I CASCADE', item.type, item.name);
  END LOOP;
END
$empty_database$;
"""
TABLE_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )")
TABLE_DATA_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE DATA ")
LARGE_OBJECT_ENTRY = re.compile(r"^\d+; \d+ \d+ BLOB")  # BLOB, BLOBS, BLOB METADATA
EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:COMMENT - )?EXTENSION (?:- )?(\S+)")


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
    restore_tools(state.server_major, needs_tls_tools(target), archive_path, archive_format)


def load(
    target: Target,
    archive_path: Path,
    archive_format: str,
    jobs: int | None = None,
    expected_sha256: str | None = None,
    expected_tables: dict[str, int] | None = None,
    session=None,
) -> Loaded:
    """Make the target hold what the archive holds, and nothing else (EMPTY_DATABASE_SQL runs first).
    With expected_sha256, an archive that no longer matches it is refused and nothing is changed; with
    expected_tables, so is one whose tables and row counts, counted before the COMMIT, differ.

    One transaction unless jobs, so a failure changes nothing. Returns which client tools did it, and
    the row counts when they were taken inside that transaction. Its questions go over session (a
    connection to the target) when given; each connection is a few round trips over an External URL."""
    with contextlib.nullcontext(session) if session else connect(target) as conn:
        major, _ = server_version(conn)
        existing_extensions = extensions(conn)
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
        if jobs:
            _load_in_parallel(target, tools, archive_path, use_list, jobs, script_line_filter(major))
            return Loaded(tools.describe())
        # The prelude opens the transaction, so the target is emptied in it too; the COMMIT comes after
        # the script, from this process, once pg_restore has ended well and the counts are checked.
        # Streamed: no script on disk.
        prelude.write_text("BEGIN;\n" + EMPTY_DATABASE_SQL)
        script = pg_restore_statements_command(tools, None if streamed else archive_path, "-", use_list)
        psql = psql_script_command(target, tools, [str(prelude), "-"], single_transaction=False)
        counts_file = scratch / "row-counts.json"
        feed = _fed_when_whole(archive_path, expected_sha256) if streamed else None
        # The script is spliced to psql untouched, or rewritten line by line where a server older than 17
        # needs lines left out or large objects' own transactions would commit this one.
        lines = script_lines(major, _holds_large_objects(use_list))
        ending = commit_if_counts_match(expected_tables, counts_file)
        run_pipeline([script, psql], scrub=target.scrub, filter_lines=lines, feed=feed, ending=ending)
        tables = json.loads(counts_file.read_text())
    _refuse_other_counts(target, expected_tables, tables)
    return Loaded(tools.describe(), tables)


def _fed_when_whole(archive_path: Path, expected_sha256: str) -> Callable[[IO[bytes]], None]:
    """Streamed, the archive's last block reaches pg_restore only once the whole file's SHA-256
    matches: until then pg_restore cannot end well, and a mismatch cuts it short."""

    def feed(stdin):
        streams.feed_when_whole(
            archive_path, stdin, lambda actual: archive.check_sha256(archive_path, expected_sha256, actual)
        )

    return feed


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
    # Parallel workers cannot share one transaction: emptying it first is no less atomic.
    with connect(target) as conn, conn.cursor() as cursor:
        cursor.execute(EMPTY_DATABASE_SQL)
        conn.commit()
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
        for pipe in (source.stdout, *(loader.stdin for loader in loaders)):
            enlarge_pipe(pipe)
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


def _restore_list(tools: ClientTools, archive_path: Path, existing: set[str], scratch: Path) -> Path:
    # With --clean, pg_restore drops and re-comments every extension in the archive, which a
    # database owner who is not a superuser may not do ("must be owner of extension"). An
    # extension that the target already has needs neither, so its entries are left out.
    entries = capture(pg_restore_list_command(tools, archive_path)).splitlines()
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


def _holds_large_objects(use_list: Path) -> bool:
    return any(LARGE_OBJECT_ENTRY.match(entry) for entry in use_list.read_text().splitlines())


def _is_existing_extension(entry: str, existing: set[str]) -> bool:
    match = EXTENSION_ENTRY.match(entry)
    return bool(match and match.group(1) in existing)


def _run_sql_script(target: Target, tools: ClientTools, script: Path, server_major: int, prelude: Path) -> None:
    """A plain SQL dump, after the prelude, in one transaction (psql's: a dump holds no BEGIN but the one
    around large objects' data, which script_lines leaves out)."""
    with tempfile.TemporaryFile("w+b") as filtered:
        with script.open("rb") as source:
            filtered.writelines(script_lines(server_major, large_objects=True)(source))
        filtered.seek(0)
        run(psql_script_command(target, tools, [str(prelude), "-"]), scrub=target.scrub, stdin=filtered)
