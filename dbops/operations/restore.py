"""Restores in place: the backup chosen, fetched and checked, a safety backup of what the target holds, then
the engine's load and a check of every table's row count against the manifest."""

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import archive, cleanup, encryption
from ..catalog import BackupCatalog
from ..connection import Target
from ..encryption import Recipients
from ..engine import KeptDatabase, engine_for
from ..errors import DbOpsError, Interrupted
from ..facts import Loaded, compare_row_counts
from ..manifest import KIND_SAFETY, Manifest, Origin
from ..plans import LoadRequest, LocalBackup, RestorePlan
from ..process import ctrl_c_deferred
from ..retention import SAFETY_DAYS_DEFAULT, RetentionPolicy
from ..storage import BackupLocation
from ..streams import HashingReader, copy_stream
from .backup import BackupOptions, BackupResult, backup


class RestoreInterrupted(Interrupted):
    """Ctrl-C during a restore; a half-restored target names the safety backup that puts it back."""

    def __init__(self, message: str, safety_backup: str | None = None, half_restored: bool = False):
        super().__init__(message)
        self.safety_backup = safety_backup
        self.half_restored = half_restored


class RestoredWithDifferences(DbOpsError):
    """The restore committed, but its row counts differ from the manifest's: the target holds it now."""

    def __init__(self, message: str, safety_backup: str | None):
        super().__init__(message)
        self.safety_backup = safety_backup


@dataclass(frozen=True)
class RestoreResult:
    safety_backup: str | None
    tables: dict[str, int]
    seconds: float
    tools_used: str
    pruned: list[str] = field(default_factory=list)
    prune_failure: str = ""
    dropped_databases: list[str] = field(default_factory=list)  # kept by old swaps, past the safety rule


def safety_recipients(
    location: BackupLocation, configured: Recipients, restoring: Manifest | None, target: Target
) -> Recipients:
    """Whom the safety backup of target is encrypted to: BACKUP_AGE_RECIPIENTS, else the keys of the backup
    being restored (its manifest lists them); plaintext only where no encrypted backup lies beside it."""
    if configured:
        return configured
    if restoring is not None and restoring.recipients:
        return Recipients(tuple(restoring.recipients))
    if BackupCatalog(location).holds_encrypted():
        raise DbOpsError(
            f"{location.url} holds encrypted backups, and the safety backup of {target.masked} would lie beside "
            "them in plaintext: set BACKUP_AGE_RECIPIENTS to the age public key (age1...) they are encrypted "
            "to, or add --no-safety-backup. Nothing was changed."
        )
    return Recipients()


def fetch(location: BackupLocation, name: str, identity: Path | None) -> LocalBackup:
    """The backup as a plain archive on this machine. A local unencrypted file is used where it is
    (its checksum is checked while it is restored); anything else is downloaded and decrypted into a
    private scratch folder, checked against its manifest on the way, before anything is touched."""
    where, local = location.where(name), location.local_path(name)
    if local is not None and not local.exists():
        raise DbOpsError(f"{local} does not exist.")
    manifest = BackupCatalog(location).manifest(name)
    encrypted = bool(manifest and manifest.encrypted) or name.endswith(encryption.ENCRYPTED_SUFFIX)
    if local is not None and local.is_file() and not encrypted:
        with local.open("rb") as stream:
            encrypted = encryption.is_encrypted(stream.read(len(encryption.AGE_MAGIC)))
    if local is not None and not encrypted:
        return LocalBackup(where, local, manifest, manifest.sha256 if manifest else None)
    identities = encryption.load_identities(identity, where) if encrypted else []
    scratch = contextlib.ExitStack()
    try:
        plain = scratch.enter_context(cleanup.spool_folder("download")) / name.removesuffix(
            encryption.ENCRYPTED_SUFFIX
        )
        with location.reader(name) as source, plain.open("xb") as sink:
            stored = HashingReader(source)
            if encrypted:
                encryption.decrypt(stored, sink, identities, where)
            else:
                copy_stream(stored, sink)
        if manifest is not None and stored.hexdigest() != manifest.sha256:
            raise archive.sha256_mismatch(where)
    except BaseException:
        scratch.close()
        raise
    return LocalBackup(where, plain, manifest, None, scratch)


def plan_restore(
    target: Target,
    source: str | Path | None,
    location: BackupLocation,
    create: bool = False,
    identity: Path | None = None,
    latest_of: str | None = None,
    safety_backup: bool = True,
    recipients: Recipients | None = None,
) -> RestorePlan:
    """Choose, fetch and check the archive, look at the target, and decide whom the safety backup is
    encrypted to, before anything is changed."""
    state = engine_for(target).inspect(target)
    target_origin = Origin.of_target(target, state.system_identifier)
    with archive.read_errors(location.url):
        backup_file = fetch(*BackupCatalog(location).locate(target_origin, source, latest_of), identity)
    manifest = backup_file.manifest
    try:
        with archive.read_errors(backup_file.where):
            archive_format = check_engine(backup_file, target)
        if not state.exists and not create and engine_for(target).can_create_databases:
            raise DbOpsError(f"{target.masked} does not exist; add --create to create it first.")
        engine_for(target).check_restorable(target, state, backup_file.path, archive_format)
        safety = Recipients()
        if safety_backup and state.table_count:
            safety = safety_recipients(location, recipients or Recipients(), manifest, target)
    except BaseException:
        backup_file.cleanup()
        raise
    notices = origin_notices(manifest.origin, target_origin) if manifest is not None else []
    return RestorePlan(target, backup_file, archive_format, state, notices, safety_backup, safety)


def origin_notices(backup: Origin, target: Origin) -> list[str]:
    """What the user should know before restoring a backup of another database or server."""
    notices = []
    if not backup.is_same_database(target):
        notices.append(f"The backup was taken from {backup}, not from this database ({target}).")
    if backup.database != target.database:
        notices.append(
            f"Warning: it is a backup of database {backup.database!r}, not of {target.database!r}: "
            f"afterwards {target.database!r} holds what {backup.database!r} held, and nothing else."
        )
    return notices


def check_engine(backup_file: LocalBackup, target: Target) -> str:
    """The archive's format, when the target's engine can restore it."""
    archive_format = archive.detect_format(backup_file.path)
    engine = engine_for(target)
    if archive_format not in engine.archive_formats:
        raise DbOpsError(
            f"{backup_file.where} is a {archive.DESCRIPTIONS[archive_format]}; the target is "
            f"{engine.name}. Nothing was restored."
        )
    return archive_format


def restore(
    plan: RestorePlan,
    location: BackupLocation,
    jobs: int | None = None,
    maintenance_db: str | None = None,
    safety_days: int = SAFETY_DAYS_DEFAULT,
) -> RestoreResult:
    """Restore the planned archive; take the planned safety backup of a non-empty target first.

    One restore at a time per target; a database created for the restore is dropped again when the
    restore fails or is interrupted."""
    started = time.monotonic()
    target = plan.target
    try:
        loaded, taken, kept = _load_under_lock(plan, location, jobs, maintenance_db)
    except BaseException:
        plan.backup.cleanup()
        raise
    safety = taken.where if taken else None
    with _stopped_after_restoring(target, safety):
        try:
            tables = _check_restored(plan, loaded, safety)
        finally:
            plan.backup.cleanup()
        pruned, prune_failure = (
            BackupCatalog(location).prune(taken.manifest.origin, RetentionPolicy(), taken.name, safety_days)
            if taken
            else ([], "")
        )
        dropped = _drop_expired_kept(target, safety_days, maintenance_db, kept)
    return RestoreResult(safety, tables, time.monotonic() - started, loaded.tools_used, pruned, prune_failure, dropped)


def _load_under_lock(
    plan: RestorePlan, location: BackupLocation, jobs: int | None, maintenance_db: str | None
) -> tuple[Loaded, BackupResult | None, list[KeptDatabase] | None]:
    """The planned safety backup, then the load; what the load did, the safety backup taken, and what swaps
    had kept of the target (listed over the lock's session, so that dropping the expired ones afterwards
    connects only when there are some)."""
    target, engine = plan.target, engine_for(plan.target)
    if jobs and not plan.safety_backup:
        raise DbOpsError("A --jobs restore is not atomic, so it needs its safety backup: drop --no-safety-backup.")
    created = not plan.state.exists and engine.can_create_databases
    if created:
        engine.create_database(target, maintenance_db)
    try:
        with engine.restore_lock(target) as session:
            kept, taken = _kept_databases(target, session), None
            if plan.safety_backup and plan.state.table_count:
                taken = _safety_backup(target, location, plan.safety_recipients)
            return _load(plan, taken.where if taken else None, jobs, session), taken, kept
    except BaseException:
        if created:
            with ctrl_c_deferred():
                engine.drop_database(target, maintenance_db)
        raise


@contextlib.contextmanager
def _stopped_after_restoring(target: Target, safety: str | None) -> Iterator[None]:
    """A stop once the target holds the backup says so, whichever clean-up after it the stop cut short."""
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt:
        kept = f" The safety backup of what it held before is {safety}." if safety else ""
        raise RestoreInterrupted(
            f"Interrupted after restoring: {target.masked} holds the backup; what is past the safety rule (older "
            f"safety backups, databases kept by --swap) may not all be deleted yet: the next restore does it.{kept}",
            safety,
        ) from None


def _check_restored(plan: RestorePlan, loaded: Loaded, safety: str | None) -> dict[str, int]:
    """The restored target's row counts (the load's, when it counted them), which must be the manifest's."""
    target = plan.target
    try:
        tables = engine_for(target).row_counts(target) if loaded.tables is None else loaded.tables
    except KeyboardInterrupt:
        raise RestoreInterrupted(
            f"Interrupted after restoring: {target.masked} holds the backup; its row counts were not checked.",
            safety,
        ) from None
    if plan.manifest is not None:
        try:
            compare_row_counts(plan.manifest.tables, tables, exact=True)
        except DbOpsError as exc:
            kept = f" The safety backup of what it held before is {safety}." if safety else ""
            raise RestoredWithDifferences(f"{exc}. {target.masked} holds what was restored.{kept}", safety) from exc
    return tables


def _kept_databases(target: Target, session: object) -> list[KeptDatabase] | None:
    try:
        return engine_for(target).kept_databases(target, session=session)
    except DbOpsError:  # no CONNECT on one of them: _drop_expired_kept lists them again, and leaves them
        return None


def _drop_expired_kept(
    target: Target, safety_days: int, maintenance_db: str | None, kept: list[KeptDatabase] | None
) -> list[str]:
    try:
        return engine_for(target).drop_expired_kept(target, safety_days, maintenance_db, kept)
    except DbOpsError:  # a role that may restore the tables but not drop databases leaves them to the owner
        return []


def _safety_backup(target: Target, location: BackupLocation, recipients: Recipients) -> BackupResult:
    try:
        return backup(target, location, BackupOptions(kind=KIND_SAFETY, recipients=recipients))
    except KeyboardInterrupt:
        raise RestoreInterrupted(
            f"Interrupted: nothing was restored; {target.masked} is as it was (no safety backup was kept)."
        ) from None


def _load(plan: RestorePlan, safety: str | None, jobs: int | None, session: object) -> Loaded:
    target, backup_file = plan.target, plan.backup
    expected = plan.manifest.tables if plan.manifest is not None else None
    try:
        return engine_for(target).load(target, LoadRequest(backup_file, plan.archive_format, jobs, expected), session)
    except KeyboardInterrupt:
        kept = f" The safety backup of what it held is {safety}." if safety else ""
        if jobs:
            raise RestoreInterrupted(
                f"Interrupted: {target.masked} is half-restored (a --jobs restore is not atomic).{kept}", safety, True
            ) from None
        created = "" if plan.state.exists else " (the database created for it was dropped)"
        raise RestoreInterrupted(
            f"Interrupted: nothing was restored; {target.masked} is as it was{created}.{kept}", safety
        ) from None
