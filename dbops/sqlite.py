"""The SQLite engine: SQLite's online backup API (consistent while the site runs) and integrity checks."""

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from . import archive, cleanup
from .connection import Target
from .errors import DbOpsError
from .facts import DatabaseState, DatabaseSummary, DumpFacts, InstanceInfo, Loaded, TableSummary
from .plans import DumpOptions, LoadRequest

SQLITE_TOOLS = f"SQLite {sqlite3.sqlite_version} online backup API"
# SQLite keeps "sqlite_" (any case) for its own tables; in LIKE, "_" matches any character unless escaped.
TABLES_QUERY = (
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
)


@contextlib.contextmanager
def open_database(path: Path, must_exist: bool = True) -> Iterator[sqlite3.Connection]:
    if must_exist and not path.is_file():
        raise DbOpsError(f"SQLite database {path} does not exist.")
    try:
        conn = sqlite3.connect(path if not must_exist else f"file:{path}?mode=rw", uri=must_exist)
    except sqlite3.Error as exc:
        raise DbOpsError(f"Cannot open SQLite database {path}: {exc}.") from None
    try:
        yield conn
    finally:
        conn.close()


def table_row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    tables = [name for (name,) in conn.execute(TABLES_QUERY)]
    # Table names come from sqlite_master, quoted as identifiers.
    return {
        name: conn.execute(f'SELECT count(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[0]  # noqa: S608
        for name in tables
    }


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise DbOpsError(f"{path} is not a usable SQLite database: {exc}.") from None
    if result != [("ok",)]:
        raise DbOpsError(f"{path} failed SQLite's integrity check: {result[0][0]}.")


def _table_sizes(conn: sqlite3.Connection) -> dict[str, int]:
    # dbstat (bytes per table and its indexes) is a compile-time option of SQLite: without it, no sizes.
    try:
        rows = conn.execute(
            "SELECT coalesce(i.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
            "LEFT JOIN sqlite_master i ON i.name = s.name AND i.type = 'index' GROUP BY 1"
        ).fetchall()
    except sqlite3.OperationalError:
        return {}
    return dict(rows)


def _copy(target: Target, output: Path) -> DumpFacts:
    """A copy by the backup API into the new file output, private from its first byte, checked whole."""
    os.close(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with open_database(target.path) as source, open_database(output, must_exist=False) as copy:
        source.backup(copy)
        check_integrity(copy, output)
        tables = table_row_counts(copy)
    return DumpFacts(sqlite3.sqlite_version, sqlite3.sqlite_version, tables, tools_used=SQLITE_TOOLS)


def _no_swap() -> DbOpsError:
    return DbOpsError(
        "--swap and --undo rename databases inside a PostgreSQL instance; a SQLite database is a single file: "
        "restore without them. Nothing was changed."
    )


class SqliteEngine:
    """dbops.engine.Engine for SQLite files: one database per file, no server, no client tools."""

    name = "SQLite"
    archive_formats = frozenset({archive.SQLITE})
    can_create_databases = False  # the file comes with its first write

    @staticmethod
    def backup_format(jobs: int | None, compress: str | None) -> str:
        if compress is not None:
            raise DbOpsError("SQLite backups are plain SQLite files: --jobs and --compress do not apply.")
        return archive.SQLITE

    def row_counts(self, target: Target) -> dict[str, int]:
        with open_database(target.path) as conn:
            return table_row_counts(conn)

    def inspect(self, target: Target) -> DatabaseState:
        if not target.path.is_file():
            return DatabaseState(exists=False, table_count=0, server_version=sqlite3.sqlite_version)
        tables = len(self.row_counts(target))
        return DatabaseState(exists=True, table_count=tables, server_version=sqlite3.sqlite_version)

    def describe(self, target: Target) -> InstanceInfo:
        """The file, its size and its tables; SQLite has no owners, and one database per file."""
        with open_database(target.path) as conn:
            counts = table_row_counts(conn)
            encoding = conn.execute("PRAGMA encoding").fetchone()[0]
            sizes = _table_sizes(conn)
        return InstanceInfo(
            target=target.masked,
            database=target.name,
            server=f"SQLite {sqlite3.sqlite_version}",
            client_tools=SQLITE_TOOLS,
            databases=[DatabaseSummary(target.name, "", encoding, target.path.stat().st_size)],
            tables=[TableSummary(name, rows, sizes.get(name)) for name, rows in counts.items()],
        )

    @staticmethod
    def list_databases(target: Target) -> list[str]:
        return [target.name]

    @staticmethod
    def dump(target: Target, output: Path, options: DumpOptions) -> DumpFacts:
        return _copy(target, output)

    @staticmethod
    def dump_stream(target: Target, consume: Callable[[IO[bytes]], None], options: DumpOptions) -> DumpFacts:
        """A checked copy made by the backup API in a private scratch folder, handed to consume as a stream."""
        with cleanup.spool_folder("sqlite-backup") as scratch:
            copy = scratch / "backup.sqlite3"
            facts = _copy(target, copy)
            with copy.open("rb") as stream:
                consume(stream)
        return facts

    @staticmethod
    def stream_dump(target: Target, consume: Callable[[IO[bytes]], None], compress: str | None) -> None:
        raise DbOpsError("--output - streams pg_dump archives; back up SQLite to a file.")

    @staticmethod
    def check_restorable(target: Target, state: DatabaseState, archive_path: Path, archive_format: str) -> None:
        """Python's sqlite3 reads every SQLite backup: no client tools to choose."""

    @staticmethod
    def load(target: Target, request: LoadRequest, session: None = None) -> Loaded:
        """Copy a checked SQLite backup over the target in one step of the backup API (the caller then
        compares its row counts with the expected ones)."""
        backup = request.backup
        if backup.unchecked_sha256:
            archive.check_sha256(backup.path, backup.unchecked_sha256)
        with open_database(backup.path) as source:
            check_integrity(source, backup.path)
            with open_database(target.path, must_exist=False) as destination:
                try:
                    source.backup(destination)
                except sqlite3.Error as exc:
                    raise DbOpsError(f"Could not restore into {target.path}: {exc}.") from None
        return Loaded(SQLITE_TOOLS)

    @staticmethod
    def restore_lock(target: Target) -> contextlib.AbstractContextManager:
        """Nothing to take: a SQLite restore is one step of the backup API, under SQLite's own lock."""
        return contextlib.nullcontext()

    @staticmethod
    def recreate(target: Target, maintenance_db: str | None = None) -> str:
        """Replace the database file with an empty one (atomically), dropping its journal files; nothing
        can be left half-done, so there is never a notice."""
        path = target.path
        path.parent.mkdir(parents=True, exist_ok=True)
        empty = archive.partial_path(path)
        sqlite3.connect(empty).close()
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        empty.replace(path)
        return ""

    def check_reset(self, target: Target, maintenance_db: str | None = None, create: bool = False) -> DatabaseState:
        """Any SQLite file may be reset, a missing one too: it is created, as Django does on first use."""
        return self.inspect(target)

    @staticmethod
    def create_database(target: Target, maintenance_db: str | None, exist_ok: bool = False) -> bool:
        raise DbOpsError("A SQLite database is a file, created by its first write: there is no database to create.")

    @staticmethod
    def drop_database(target: Target, maintenance_db: str | None) -> None:
        raise DbOpsError("A SQLite database is a file: there is no database to drop.")

    @staticmethod
    @contextlib.contextmanager
    def scratch_database(instance: Target, label: str) -> Iterator[Target]:
        """A throwaway database file to restore into, removed afterwards."""
        with cleanup.spool_folder("verify") as scratch:
            yield Target(engine="sqlite", name=str(scratch / f"{label}.sqlite3"))

    @staticmethod
    def check_swap(target: Target, maintenance_db: str | None):
        raise _no_swap()

    @staticmethod
    def check_swap_space(swap_plan, plan) -> int:
        raise _no_swap()

    @staticmethod
    def restore_by_swap(plan, swap_plan, jobs: int | None, maintenance_db: str | None, safety_days: int):
        raise _no_swap()

    @staticmethod
    def undo_swap(target: Target, maintenance_db: str | None):
        raise _no_swap()

    @staticmethod
    def clean_up_killed_swap(target: Target, maintenance_db: str | None) -> list[str]:
        return []  # no swap ever ran

    @staticmethod
    def kept_databases(target: Target, maintenance_db: str | None = None, session: None = None) -> list:
        return []

    @staticmethod
    def drop_expired_kept(target: Target, days: int, maintenance_db: str | None, kept: list | None = None) -> list[str]:
        return []


ENGINE = SqliteEngine()
