"""Restoring an archive into a database so that it holds what the archive holds and nothing else: in one
transaction (pg_restore's script run by psql) unless --jobs, with the client tools the archive needs."""

import re
import tempfile
from pathlib import Path

from .. import archive, cleanup, streams
from ..connection import Target, needs_tls_tools
from ..errors import DbOpsError
from ..facts import DatabaseState
from ..process import capture, run, run_pipeline
from ..tools import ClientTools, tools_for_server
from .argv import (
    TRANSACTION_TIMEOUT_MAJOR,
    pg_restore_command,
    pg_restore_list_command,
    pg_restore_script_command,
    psql_script_command,
    script_line_filter,
)
from .catalog import extensions, server_version
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
END
$empty_database$;
"""
TABLE_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )")
TABLE_DATA_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE DATA ")
EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:COMMENT - )?EXTENSION (?:- )?(\S+)")


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
) -> str:
    """Make the target hold what the archive holds, and nothing else (EMPTY_DATABASE_SQL runs first).
    With expected_sha256, an archive that no longer matches it is refused and nothing is changed.

    One transaction unless jobs, so a failure changes nothing. Returns which client tools did it."""
    with connect(target) as conn:
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
            return tools.describe()
        use_list = _restore_list(tools, archive_path, existing_extensions, scratch)
        if jobs:
            _load_in_parallel(target, tools, archive_path, jobs, use_list)
            return tools.describe()
        # The script opens its transaction with BEGIN (then only warned about) and ends it with COMMIT;
        # the prelude opens it first, so the target is emptied in it too. Streamed: no script on disk.
        prelude.write_text("BEGIN;\n" + EMPTY_DATABASE_SQL)
        script = pg_restore_script_command(tools, None if streamed else archive_path, "-", use_list)
        psql = psql_script_command(target, tools, [str(prelude), "-"], single_transaction=False)
        # Streamed, the archive's last block reaches pg_restore only once the whole file's SHA-256
        # matches: until then the script cannot reach its COMMIT, and a mismatch cuts it short.
        feed = None
        if streamed:

            def feed(stdin):
                streams.feed_when_whole(
                    archive_path, stdin, lambda actual: archive.check_sha256(archive_path, expected_sha256, actual)
                )

        # Lines go through this process only when some must be left out: relaying them all costs.
        keep_line = script_line_filter(major) if major < TRANSACTION_TIMEOUT_MAJOR else None
        run_pipeline([script, psql], scrub=target.scrub, keep_line=keep_line, feed=feed)
    return tools.describe()


def _load_in_parallel(target: Target, tools: ClientTools, archive_path: Path, jobs: int, use_list: Path) -> None:
    # Parallel workers cannot share one transaction: emptying it first is no less atomic.
    with connect(target) as conn, conn.cursor() as cursor:
        cursor.execute(EMPTY_DATABASE_SQL)
        conn.commit()
    run(pg_restore_command(target, tools, archive_path, jobs, use_list), scrub=target.scrub)


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


def _is_existing_extension(entry: str, existing: set[str]) -> bool:
    match = EXTENSION_ENTRY.match(entry)
    return bool(match and match.group(1) in existing)


def _run_sql_script(target: Target, tools: ClientTools, script: Path, server_major: int, prelude: Path) -> None:
    """A plain SQL dump, after the prelude, in one transaction (psql's: a dump holds no BEGIN)."""
    keep = script_line_filter(server_major)
    with tempfile.TemporaryFile("w+b") as filtered:
        with script.open("rb") as source:
            filtered.writelines(line for line in source if keep(line))
        filtered.seek(0)
        run(psql_script_command(target, tools, [str(prelude), "-"]), scrub=target.scrub, stdin=filtered)
