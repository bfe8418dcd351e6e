"""The values that operations hand to an engine (dbops.engine): how to dump, and what a restore is planned
from, checked before anything is touched (the backup as a plain archive on this machine, and the plan the
command confirms with the user). Nothing here runs."""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .connection import Target
from .encryption import Recipients
from .facts import DatabaseState
from .manifest import Manifest


@dataclass(frozen=True)
class LocalBackup:
    """A backup as a plain archive on this machine: the file itself, or a checked, decrypted download."""

    where: str
    path: Path
    manifest: Manifest | None
    unchecked_sha256: str | None  # still to check while the archive is read (None: already checked)
    scratch: contextlib.ExitStack | None = None  # removes the download's spool folder

    def cleanup(self) -> None:
        if self.scratch is not None:
            self.scratch.close()


@dataclass(frozen=True)
class RestorePlan:
    """Everything checked before the target is touched; the command confirms it with the user."""

    target: Target
    backup: LocalBackup
    archive_format: str
    state: DatabaseState
    notices: list[str] = field(default_factory=list)  # for the prompt: the backup comes from elsewhere
    safety_backup: bool = True  # of a non-empty target
    safety_recipients: Recipients = field(default_factory=Recipients)

    @property
    def manifest(self) -> Manifest | None:
        return self.backup.manifest


@dataclass(frozen=True)
class DumpOptions:
    """How a backup is dumped, once the engine has accepted these options (Engine.backup_format)."""

    archive_format: str
    jobs: int | None = None
    compress: str | None = None
    on_table: Callable[[str], None] | None = None  # called with each table's name as its data is dumped


@dataclass(frozen=True)
class LoadRequest:
    """An archive on this machine for an engine to load into a database."""

    backup: LocalBackup
    archive_format: str
    jobs: int | None = None
    # Refuse other row counts before committing, where the engine counts inside its transaction.
    expected_tables: dict[str, int] | None = None
