"""What an engine does for the operations: the contract that dbops.postgres and dbops.sqlite fulfil.

operations asks the engine of a target (engine_for) and never names an engine module: what differs
between engines is a method or a capability here, not an if/elif in the operations. The layers, each
importing only those below it:

    management commands          parse, confirm, call one operation, print
    operations                   backup, restore, pruning, databases (reset, create, swap)
    engine -> postgres | sqlite  postgres: argv <- session <- catalog <- dump, restore, admin <- swap
    archive, storage, ...        backups as files and objects: names, manifests, locations, encryption
    connection, tools, process   targets, client tools, child processes and pipelines, streams, errors, facts
"""

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from . import postgres, sqlite
from .connection import Target
from .facts import DatabaseState, DumpFacts, InstanceInfo, Loaded
from .plans import DumpOptions, LoadRequest, RestorePlan
from .postgres.swap import KeptDatabase, SwapPlan, SwapResult, UndoResult


class Engine(Protocol):
    name: str  # as the user reads it: "PostgreSQL"
    archive_formats: frozenset[str]  # the archive formats it restores
    # A database is created apart from being written (CREATE DATABASE), so restoring into a missing
    # one needs --create; without it (SQLite), the first write creates the database.
    can_create_databases: bool

    def backup_format(self, jobs: int | None, compress: str | None) -> str:
        """The archive format a backup with these options writes; refuses options it cannot honour."""

    def inspect(self, target: Target) -> DatabaseState: ...

    def describe(self, target: Target) -> InstanceInfo: ...

    def list_databases(self, target: Target) -> list[str]: ...

    def row_counts(self, target: Target) -> dict[str, int]: ...

    def dump(self, target: Target, output: Path, options: DumpOptions) -> DumpFacts:
        """Dump into output (a new file or folder) and read all of it back."""

    def dump_stream(self, target: Target, consume: Callable[[IO[bytes]], None], options: DumpOptions) -> DumpFacts:
        """Hand the archive to consume as a stream; raises (consume's output is then discarded) unless it is whole."""

    def stream_dump(self, target: Target, consume: Callable[[IO[bytes]], None], compress: str | None) -> None:
        """backup_db --output -: the archive as it is made, unchecked, no manifest."""

    def check_restorable(self, target: Target, state: DatabaseState, archive_path: Path, archive_format: str) -> None:
        """Refuse, before anything is touched, an archive that this machine cannot restore into target."""

    def load(self, target: Target, request: LoadRequest, session: object = None) -> Loaded:
        """Make target hold what the archive holds; which tools did it, and the row counts it took. session:
        what restore_lock yielded, to ask the target's questions on (None: the engine connects itself)."""

    def restore_lock(self, target: Target) -> contextlib.AbstractContextManager:
        """One restore at a time into target; yields a session in it, or None where there is none."""

    def check_reset(self, target: Target, maintenance_db: str | None, create: bool) -> DatabaseState: ...

    def recreate(self, target: Target, maintenance_db: str | None) -> str: ...

    def create_database(self, target: Target, maintenance_db: str | None, exist_ok: bool = False) -> bool: ...

    def drop_database(self, target: Target, maintenance_db: str | None) -> None: ...

    def scratch_database(self, instance: Target, label: str) -> contextlib.AbstractContextManager[Target]: ...

    # restore_db --swap and --undo, and the databases swaps keep
    def check_swap(self, target: Target, maintenance_db: str | None) -> SwapPlan:
        """Refuse, before anything is touched, a swap that this engine or role cannot do."""

    def check_swap_space(self, swap_plan: SwapPlan, plan: RestorePlan) -> int: ...

    def restore_by_swap(
        self, plan: RestorePlan, swap_plan: SwapPlan, jobs: int | None, maintenance_db: str | None, safety_days: int
    ) -> SwapResult: ...

    def undo_swap(self, target: Target, maintenance_db: str | None) -> UndoResult: ...

    def clean_up_killed_swap(self, target: Target, maintenance_db: str | None) -> list[str]: ...

    def kept_databases(
        self, target: Target, maintenance_db: str | None = None, session: object = None
    ) -> list[KeptDatabase]:
        """What swaps kept of target, newest first; asked over session (restore_lock's) when given."""

    def drop_expired_kept(
        self, target: Target, days: int, maintenance_db: str | None, kept: list[KeptDatabase] | None = None
    ) -> list[str]:
        """Drop what swaps kept past the safety rule, of kept when the caller listed it already."""


def engine_for(target: Target) -> Engine:
    return sqlite.ENGINE if target.is_sqlite else postgres.ENGINE
