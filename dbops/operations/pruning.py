"""What a backup would prune (--dry-run), and the origin a target's backups are matched to."""

from ..catalog import BackupCatalog
from ..connection import Target
from ..engine import engine_for
from ..errors import DbOpsError
from ..manifest import BY_ADDRESS, Origin
from ..retention import SAFETY_DAYS_DEFAULT, RetentionPolicy
from ..storage import BackupLocation


def preview_pruning(
    target: Target,
    location: BackupLocation,
    retention: RetentionPolicy,
    all_databases: bool = False,
    safety_days: int = SAFETY_DAYS_DEFAULT,
) -> dict[str, list[str]]:
    """What a backup with this retention would delete now (--dry-run), per database; nothing is changed."""
    engine = engine_for(target)
    targets = [target.with_database(name) for name in engine.list_databases(target)] if all_databases else [target]
    catalog, preview = BackupCatalog(location), {}
    for each in targets:
        doomed = catalog.deletions_by_next_backup(live_origin(each), retention, safety_days)
        preview[each.label] = [location.where(name) for name in doomed]
    return preview


def live_origin(target: Target) -> Origin:
    """The target as its server tells it: its address, and its system identifier where the role may read it."""
    return Origin.of_target(target, engine_for(target).inspect(target).system_identifier)


def monitored_origin(target: Target) -> tuple[Origin, str]:
    """list_backups' origin, and a warning when the server did not answer: listing and a monitor's check
    read backups only, so they go on without the system identifier, matching by host:port alone."""
    try:
        return live_origin(target), ""
    except DbOpsError as exc:
        return Origin.of_target(target), (
            f"{str(exc).rstrip('.')}; backups are matched to the server by {BY_ADDRESS} alone."
        )
