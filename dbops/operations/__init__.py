"""The operations the management commands call: one typed function each, whatever the engine.

Each asks the target's engine (dbops.engine.engine_for) for what differs between engines; the modules:
backup (backups), restore (restores in place), pruning (what a backup would prune, the origin backups
are matched to; the catalog itself is dbops.catalog), databases (describe, reset, create, restore_db
--swap / --undo)."""

from ..facts import compare_row_counts, row_count_differences
from ..plans import LocalBackup, RestorePlan
from .backup import (
    BackupAllResult,
    BackupOptions,
    BackupResult,
    backup,
    backup_all,
    backup_to_file,
    backup_to_stream,
)
from .databases import (
    CreateResult,
    check_database_name,
    check_reset,
    check_swap,
    check_swap_space,
    clean_up_killed_swap,
    create_db,
    describe,
    inspect,
    kept_databases,
    reset,
    restore_by_swap,
    undo_swap,
)
from .pruning import (
    live_origin,
    monitored_origin,
    preview_pruning,
)
from .restore import (
    RestoredWithDifferences,
    RestoreInterrupted,
    RestoreResult,
    check_engine,
    fetch,
    origin_notices,
    plan_restore,
    restore,
    safety_recipients,
)

__all__ = [
    "BackupAllResult",
    "BackupOptions",
    "BackupResult",
    "CreateResult",
    "LocalBackup",
    "RestoreInterrupted",
    "RestorePlan",
    "RestoreResult",
    "RestoredWithDifferences",
    "backup",
    "backup_all",
    "backup_to_file",
    "backup_to_stream",
    "check_database_name",
    "check_engine",
    "check_reset",
    "check_swap",
    "check_swap_space",
    "clean_up_killed_swap",
    "compare_row_counts",
    "create_db",
    "describe",
    "fetch",
    "inspect",
    "kept_databases",
    "live_origin",
    "monitored_origin",
    "origin_notices",
    "plan_restore",
    "preview_pruning",
    "reset",
    "restore",
    "restore_by_swap",
    "row_count_differences",
    "safety_recipients",
    "undo_swap",
]
