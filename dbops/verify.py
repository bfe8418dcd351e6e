"""Restore drills: a backup is restored into a scratch database and its row counts compared with its manifest.

A backup that is never restored is not a backup. The scratch database is created for the drill (on the
same instance, or another one such as a localdb server) and dropped afterwards, whatever happens.
"""

import time
from dataclasses import dataclass
from pathlib import Path

from . import operations
from .catalog import BackupCatalog
from .connection import Target
from .engine import engine_for
from .errors import DbOpsError
from .facts import row_count_differences
from .plans import LoadRequest
from .storage import BackupLocation


@dataclass(frozen=True)
class Verdict:
    backup: str
    scratch_database: str
    matches: bool
    expected: dict[str, int]
    restored: dict[str, int]
    seconds: float

    @property
    def differences(self) -> list[str]:
        return row_count_differences(self.expected, self.restored, "in the manifest", "restored", exact=True)


def verify(
    target: Target,
    location: BackupLocation,
    source: str | Path | None = None,
    scratch_instance: Target | None = None,
    identity: Path | None = None,
) -> Verdict:
    """Restore the backup (the target's newest when source is None) into a scratch database on
    scratch_instance (default: the target's instance) and compare every table's row count."""
    started = time.monotonic()
    instance = scratch_instance or target
    origin = operations.live_origin(target) if source is None else None  # the newest backup, from its server
    backup_file = operations.fetch(*BackupCatalog(location).locate(origin, source), identity)
    try:
        if backup_file.manifest is None:
            raise DbOpsError(f"{backup_file.where} has no manifest: there are no row counts to compare with.")
        archive_format = operations.check_engine(backup_file, instance)
        engine = engine_for(instance)
        with engine.scratch_database(instance, backup_file.manifest.database) as scratch:
            loaded = engine.load(scratch, LoadRequest(backup_file, archive_format))
            restored = engine.row_counts(scratch) if loaded.tables is None else loaded.tables
    finally:
        backup_file.cleanup()
    expected = backup_file.manifest.tables
    return Verdict(
        backup_file.where, scratch.masked, restored == expected, expected, restored, time.monotonic() - started
    )
