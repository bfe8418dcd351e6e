"""Which backups retention deletes, deleting them, and whether the newest backup of a database is fresh."""

from dataclasses import dataclass
from datetime import timedelta

from .. import archive
from .. import retention as retention_rules
from ..connection import Target
from ..engine import engine_for
from ..errors import DbOpsError
from ..retention import SAFETY_DAYS_DEFAULT, RetentionPolicy
from ..storage import BackupLocation


def deletions(
    location: BackupLocation,
    origin: archive.Origin,
    retention: RetentionPolicy,
    protect: str | None,
    safety_days: int = SAFETY_DAYS_DEFAULT,
    backup_to_come: bool = False,
) -> list[str]:
    """Names of the backups of origin's database from its server that retention deletes: by the policy,
    expired safety backups (never one without a manifest, whose origin is unknown), and the manifests
    whose archive is gone. backup_to_come counts a backup made now (--dry-run's question: what would a
    backup delete?)."""
    backups = [b for b in archive.list_backups(location, origin.database) if b.is_from(origin)]
    now = archive.utc_now()
    regular = [(b.name, b.created_at) for b in backups if b.kind == archive.KIND_BACKUP]
    if backup_to_come:
        regular, protect = [("", now), *regular], ""
    safety = [(b.name, b.created_at) for b in backups if b.kind == archive.KIND_SAFETY]
    doomed = retention_rules.to_delete(regular, retention, protect) if retention else []
    lost = archive.manifests_without_archive(location, origin.database)
    return (
        doomed
        + retention_rules.expired_safety(safety, now, safety_days, protect)
        + [archive.manifest_name(b.name) for b in lost if b.is_from(origin)]
    )


def prune(
    location: BackupLocation,
    origin: archive.Origin,
    retention: RetentionPolicy,
    protect: str | None,
    safety_days: int = SAFETY_DAYS_DEFAULT,
) -> tuple[list[str], str]:
    """Delete what retention deletes: (what was deleted, why the rest could not be, or ""). The first
    backup that cannot be deleted (a key without delete access, a file without write permission on
    its folder) stops the pruning: the others would fail alike."""
    doomed = deletions(location, origin, retention, protect, safety_days)
    deleted = []
    for name in doomed:
        try:
            archive.delete_backup(location, name)
        except DbOpsError as exc:
            remaining = len(doomed) - len(deleted)
            return deleted, f"{str(exc).rstrip('.')}; {remaining} old backup(s) that retention deletes remain."
        deleted.append(location.where(name))
    return deleted, ""


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
    preview = {}
    for each in targets:
        doomed = deletions(location, live_origin(each), retention, None, safety_days, backup_to_come=True)
        preview[each.label] = [location.where(name) for name in doomed]
    return preview


@dataclass(frozen=True)
class Freshness:
    origin: archive.Origin
    newest: str
    age: timedelta
    rule: str  # how the backup's server is known to be the origin's: archive.BY_IDENTIFIER or BY_ADDRESS

    def __str__(self) -> str:
        return (
            f"The newest backup of {self.origin} ({self.newest}) is {age_text(self.age)} old: fresh enough "
            f"(the same server by {self.rule})."
        )


def live_origin(target: Target) -> archive.Origin:
    """The target as its server tells it: its address, and its system identifier where the role may read it."""
    return archive.Origin.of(target.masked, target.label, engine_for(target).inspect(target).system_identifier)


def monitored_origin(target: Target) -> tuple[archive.Origin, str]:
    """list_backups' origin, and a warning when the server did not answer: listing and a monitor's check
    read backups only, so they go on without the system identifier, matching by host:port alone."""
    try:
        return live_origin(target), ""
    except DbOpsError as exc:
        return archive.Origin.of(target.masked, target.label), (
            f"{str(exc).rstrip('.')}; backups are matched to the server by {archive.BY_ADDRESS} alone."
        )


def check_freshness(
    backups: list[archive.BackupFile], origin: archive.Origin, max_age: timedelta, where: str
) -> Freshness:
    """list_backups --max-age: the newest backup (as list_backups found them at `where`) of origin's
    database from its server must be at most max_age old."""
    named = [b for b in backups if b.kind == archive.KIND_BACKUP and b.database == origin.database]
    newest = next((b for b in named if b.is_from(origin)), None)
    if newest is None:
        elsewhere = f" (only {len(named)} from elsewhere, the newest {named[0].name})" if named else ""
        raise DbOpsError(
            f"No backup of {origin} in {where}{elsewhere}: the newest should be at most {age_text(max_age)} old."
        )
    age = archive.utc_now() - newest.created_at
    if age > max_age:
        raise DbOpsError(
            f"The newest backup of {origin} ({newest.name}) is {age_text(age)} old, older than {age_text(max_age)}."
        )
    return Freshness(origin, newest.name, age, newest.origin.server_match(origin))


def age_text(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
