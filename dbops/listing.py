"""list_backups' report: the backups at a location, the manifests whose archive is gone, what restore_db
--swap kept on the server, and with a maximum age whether the newest backup is fresh enough."""

from dataclasses import dataclass, field
from datetime import timedelta

from . import operations
from .catalog import BackupCatalog, Freshness
from .connection import Target
from .engine import KeptDatabase
from .errors import DbOpsError
from .manifest import BackupFile, Origin
from .storage import BackupLocation


@dataclass(frozen=True)
class Listing:
    url: str
    backups: list[BackupFile]
    lost: list[BackupFile]  # manifests whose archive is gone
    origin: Origin | None = None  # the server the backups are matched to
    warning: str = ""  # why the server's own word on who it is is missing
    kept: list[KeptDatabase] = field(default_factory=list)
    freshness: Freshness | None = None
    stale: str = ""  # why the newest backup is not fresh enough ("" when it is, or when no age was given)


def list_backups(
    location: BackupLocation, target: Target | None, database: str | None, max_age: timedelta | None
) -> Listing:
    """The backups of database (all without it); with a target, matched to its server, whose kept databases
    are listed where it answers; with max_age, checked for freshness."""
    catalog = BackupCatalog(location)
    origin, warning = operations.monitored_origin(target) if target is not None else (None, "")
    database = origin.database if origin else database
    backups, lost = catalog.backups(database), catalog.lost_manifests(database)
    freshness, stale = None, ""
    if max_age is not None:
        try:
            freshness = catalog.freshness(backups, origin, max_age)
        except DbOpsError as exc:
            stale = str(exc)
    return Listing(location.url, backups, lost, origin, warning, kept_of(target), freshness, stale)


def kept_of(target: Target | None) -> list[KeptDatabase]:
    """What restore_db --swap kept of the target; none when the server did not answer (a warning says so)."""
    try:
        return operations.kept_databases(target) if target is not None else []
    except DbOpsError:
        return []
