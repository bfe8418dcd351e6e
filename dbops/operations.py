"""The operations the management commands call: one typed function each, whatever the engine."""

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType

from . import archive, cleanup, encryption, postgres, render, sqlite, storage, streams, swap
from . import retention as retention_rules
from .archive import Manifest
from .connection import Target
from .encryption import Recipients
from .errors import DbOpsError, Interrupted
from .facts import DatabaseFailure, DatabaseState, InstanceInfo, Loaded, row_count_differences
from .process import ctrl_c_deferred
from .retention import SAFETY_DAYS_DEFAULT, RetentionPolicy
from .storage import BackupLocation
from .streams import HashingReader, HashingWriter, HeadReader, copy_stream

ENGINES: dict[str, ModuleType] = {"postgresql": postgres, "sqlite": sqlite}
# Names that work unquoted in every hand-written psql command, as the tutorials write them.
PLAIN_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def engine_for(target: Target) -> ModuleType:
    return ENGINES[target.engine]


@dataclass(frozen=True)
class BackupResult:
    name: str
    where: str  # the file's path or the object's s3:// URL
    manifest: Manifest
    seconds: float
    tools_used: str
    warnings: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    prune_failure: str = ""  # why an old backup could not be deleted; the backup itself is complete


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


def backup(
    target: Target,
    location: BackupLocation,
    output: Path | None = None,
    jobs: int | None = None,
    compress: str | None = None,
    retention: RetentionPolicy | None = None,
    kind: str = archive.KIND_BACKUP,
    on_table: Callable[[str], None] | None = None,
    recipients: Recipients | None = None,
    safety_days: int = SAFETY_DAYS_DEFAULT,
) -> BackupResult:
    """Back up target into location (or output): verified, checksummed, encrypted to recipients, never
    half-written. The manifest is stored after its archive; when storing it fails, the archive goes too."""
    started = time.monotonic()
    recipients = recipients or Recipients()
    archive_format = archive.SQLITE if target.is_sqlite else (archive.DIRECTORY if jobs else archive.CUSTOM)
    if output is not None:
        location = storage.LocalFolder(output.parent)
    location.prepare()
    with location.lock(target.label):
        if output is None:
            taken = set(location.sizes())
            refuse_plaintext_beside_encrypted(location, taken, recipients)
            suffix = encryption.ENCRYPTED_SUFFIX if recipients else ""
            created_at, name = archive.unused_name(taken, target.label, archive_format, kind, suffix)
        else:
            created_at, name = archive.utc_now(), output.name
            _refuse_taken_output(location, name)
        try:
            if archive_format == archive.DIRECTORY:
                dumped = _dump_directory(target, location, name, jobs, compress, on_table, recipients)
            else:
                dumped = _dump_streamed(target, location, name, compress, on_table, recipients)
            facts, size, sha256, compression = dumped
            manifest = Manifest(
                database=target.label,
                source=target.masked,
                engine=target.engine,
                format=archive_format,
                created_at=created_at.isoformat(timespec="microseconds"),
                size=size,
                sha256=sha256,
                tables=facts.tables,
                server_version=facts.server_version,
                pg_dump_version=facts.dump_version,
                kind=kind,
                system_identifier=facts.system_identifier,
                compression=compression,
                encrypted=bool(recipients),
                recipients=list(recipients.keys),
            )
            _store_manifest(location, name, manifest)
        except OSError as exc:
            raise DbOpsError(
                f"Could not write the backup {location.where(name)}: {exc.strerror}. Nothing was kept."
            ) from None
        except KeyboardInterrupt:
            raise Interrupted(f"Interrupted: no backup of {target.label} was written.") from None
    warnings = []
    local = location.local_path(name)
    if local is not None and archive.unignored_in_git(local):
        warnings.append(
            f"{local} lies inside a git work tree and is not ignored: add it to .gitignore so a backup "
            "(your data) is never pushed."
        )
    pruned, prune_failure = [], ""
    if retention and output is None:
        try:
            pruned, prune_failure = prune(location, manifest.origin, retention, name, safety_days)
        except KeyboardInterrupt:
            raise Interrupted(
                f"Interrupted while deleting old backups; the new backup {location.where(name)} is complete."
            ) from None
    seconds = time.monotonic() - started
    return BackupResult(
        name, location.where(name), manifest, seconds, facts.tools_used, warnings, pruned, prune_failure
    )


def holds_encrypted_backups(names) -> bool:
    return any(name.endswith(encryption.ENCRYPTED_SUFFIX) and archive.NAME_PATTERN.match(name) for name in names)


def refuse_plaintext_beside_encrypted(location: BackupLocation, names, recipients: Recipients) -> None:
    """A backup is never weaker than what it sits beside: no plaintext one where encrypted ones lie."""
    if not recipients and holds_encrypted_backups(names):
        raise DbOpsError(
            f"{location.url} holds encrypted backups; this one would lie beside them in plaintext: set "
            "BACKUP_AGE_RECIPIENTS to the age public key (age1...) they are encrypted to, or back up elsewhere "
            "(--output FILE, or another BACKUP_DIR). Nothing was written."
        )


def safety_recipients(
    location: BackupLocation, configured: Recipients, restoring: Manifest | None, target: Target
) -> Recipients:
    """Whom the safety backup of target is encrypted to: BACKUP_AGE_RECIPIENTS, else the keys of the backup
    being restored (its manifest lists them); plaintext only where no encrypted backup lies beside it."""
    if configured:
        return configured
    if restoring is not None and restoring.recipients:
        return Recipients(tuple(restoring.recipients))
    if holds_encrypted_backups(location.sizes()):
        raise DbOpsError(
            f"{location.url} holds encrypted backups, and the safety backup of {target.masked} would lie beside "
            "them in plaintext: set BACKUP_AGE_RECIPIENTS to the age public key (age1...) they are encrypted "
            "to, or add --no-safety-backup. Nothing was changed."
        )
    return Recipients()


def _refuse_taken_output(location: BackupLocation, name: str) -> None:
    """Before anything is dumped: an --output, or the manifest that goes beside it, that already exists."""
    for taken in (name, archive.manifest_name(name)):
        if location.local_path(taken).exists():
            raise DbOpsError(f"{location.where(taken)} already exists; choose another --output.")


def _store_manifest(location: BackupLocation, name: str, manifest: Manifest) -> None:
    """The manifest goes after its archive; if it cannot be stored (a full disk, say), the archive is
    deleted again, so a failed backup leaves nothing."""
    try:
        location.write_text(archive.manifest_name(name), manifest.to_json())
    except BaseException:
        with ctrl_c_deferred():
            location.delete(name)
        raise


def _dump_streamed(target, location, name, compress, on_table, recipients):
    """The dump streamed into the location: hashed as stored (encrypted, when asked), its header kept."""
    with location.writer(name) as sink:
        stored, heads = HashingWriter(sink), []

        def store(plain):
            kept = HeadReader(plain)
            encryption.encrypt(kept, stored, recipients)
            heads.append(kept.head)

        facts = engine_for(target).dump_stream(target, store, compress, on_table)
    return facts, stored.size, stored.hexdigest(), archive.parse_header(heads[0]).compression


def _dump_directory(target, location, name, jobs, compress, on_table, recipients):
    """pg_dump --jobs writes a folder of files, straight into a local backup folder."""
    final = location.local_path(name)
    if final is None:
        raise DbOpsError(
            f"--jobs writes a directory archive (a folder of files), which only a local BACKUP_DIR can hold; "
            f"drop --jobs to store in {location.url}."
        )
    if recipients:
        raise DbOpsError("--jobs writes a directory archive, which is not encrypted: drop --jobs to encrypt.")
    if final.exists():
        raise DbOpsError(f"{final} already exists; choose another --output.")
    partial = archive.partial_path(final)
    try:
        facts = postgres.dump(target, partial, archive.DIRECTORY, jobs, compress, on_table)
        archive.publish(partial, final)
    finally:
        archive.remove_archive(partial)
    compression = archive.archive_header(final, archive.DIRECTORY).compression
    return facts, archive.size_of(final), archive.sha256_of(final), compression


@dataclass(frozen=True)
class BackupAllResult:
    backups: list[BackupResult]
    failures: list[DatabaseFailure]


def backup_all(target: Target, location: BackupLocation, **options) -> BackupAllResult:
    """One backup per non-template database of the target's instance, as the tutorial does by hand.

    A database the role cannot back up (no CONNECT privilege, a table it may not read) does not
    stop the others: it is reported with its reason."""
    refuse_plaintext_beside_encrypted(location, location.sizes(), options.get("recipients") or Recipients())
    backups, failures = [], []
    for name in engine_for(target).list_databases(target):
        try:
            backups.append(backup(target.with_database(name), location, **options))
        except DbOpsError as exc:
            failures.append(DatabaseFailure(name, str(exc).rstrip(".")))
    return BackupAllResult(backups, failures)


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


def backup_to_stream(
    target: Target, stream, compress: str | None = None, recipients: Recipients | None = None
) -> None:
    """The archive to an open binary stream, encrypted to recipients when there are any."""
    if target.is_sqlite:
        raise DbOpsError("--output - streams pg_dump archives; back up SQLite to a file.")
    postgres.stream_dump(target, lambda plain: encryption.encrypt(plain, stream, recipients), compress)
    stream.flush()


def fetch(location: BackupLocation, name: str, identity: Path | None) -> LocalBackup:
    """The backup as a plain archive on this machine. A local unencrypted file is used where it is
    (its checksum is checked while it is restored); anything else is downloaded and decrypted into a
    private scratch folder, checked against its manifest on the way, before anything is touched."""
    where, local = location.where(name), location.local_path(name)
    if local is not None and not local.exists():
        raise DbOpsError(f"{local} does not exist.")
    manifest = archive.read_manifest(location, name)
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
            raise DbOpsError(
                f"{where} no longer matches the SHA-256 in its manifest: it is damaged or was changed. "
                "Nothing was restored."
            )
    except BaseException:
        scratch.close()
        raise
    return LocalBackup(where, plain, manifest, None, scratch)


def locate(
    location: BackupLocation, origin: archive.Origin, source: str | Path | None, latest_of: str | None = None
) -> tuple[BackupLocation, str]:
    """Where the backup to restore is: the one named (a path or s3://BUCKET/KEY); with latest_of, the
    newest of a database of that name from any server; else the newest of origin's database, from its server."""
    if source is not None:
        if latest_of is not None:
            raise DbOpsError("Give either a backup to restore or --latest-of, not both.")
        return storage.backup_at(source)
    if latest_of is not None:
        return location, archive.newest_of_any_server(location, latest_of).name
    return location, archive.newest_backup(location, origin).name


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
    target_origin = archive.Origin.of(target.masked, target.label, state.system_identifier)
    with archive.read_errors(location.url):
        backup_file = fetch(*locate(location, target_origin, source, latest_of), identity)
    manifest = backup_file.manifest
    try:
        with archive.read_errors(backup_file.where):
            archive_format = check_engine(backup_file, target)
        if not state.exists and not create and not target.is_sqlite:
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


def origin_notices(backup: archive.Origin, target: archive.Origin) -> list[str]:
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
    if archive_format not in engine.ARCHIVE_FORMATS:
        raise DbOpsError(
            f"{backup_file.where} is a {archive.DESCRIPTIONS[archive_format]}; the target is "
            f"{engine.ENGINE_NAME}. Nothing was restored."
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
    target, engine = plan.target, engine_for(plan.target)
    try:
        if jobs and not plan.safety_backup:
            raise DbOpsError(
                "A --jobs restore is not atomic, so it needs its safety backup: drop --no-safety-backup."
            )
        created = not plan.state.exists and not target.is_sqlite
        if created:
            postgres.create_database(target, maintenance_db)
        try:
            with engine.restore_lock(target):
                taken = None
                if plan.safety_backup and plan.state.table_count:
                    taken = _safety_backup(target, location, plan.safety_recipients)
                loaded = _load(plan, taken.where if taken else None, jobs)
        except BaseException:
            if created:
                with ctrl_c_deferred():
                    postgres.drop_database(target, maintenance_db)
            raise
    finally:
        plan.backup.cleanup()
    safety = taken.where if taken else None
    pruned, prune_failure = (
        prune(location, taken.manifest.origin, RetentionPolicy(), taken.name, safety_days) if taken else ([], "")
    )
    try:
        tables = engine.row_counts(target) if loaded.tables is None else loaded.tables
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
    dropped = [] if target.is_sqlite else _drop_expired_kept(target, safety_days, maintenance_db)
    return RestoreResult(safety, tables, time.monotonic() - started, loaded.tools_used, pruned, prune_failure, dropped)


def _drop_expired_kept(target: Target, safety_days: int, maintenance_db: str | None) -> list[str]:
    try:
        return swap.drop_expired(target, safety_days, maintenance_db)
    except DbOpsError:  # a role that may restore the tables but not drop databases leaves them to the owner
        return []


def _safety_backup(target: Target, location: BackupLocation, recipients: Recipients) -> BackupResult:
    try:
        return backup(target, location, kind=archive.KIND_SAFETY, recipients=recipients)
    except KeyboardInterrupt:
        raise RestoreInterrupted(
            f"Interrupted: nothing was restored; {target.masked} is as it was (no safety backup was kept)."
        ) from None


def _load(plan: RestorePlan, safety: str | None, jobs: int | None) -> Loaded:
    target, backup_file = plan.target, plan.backup
    expected = plan.manifest.tables if plan.manifest is not None else None
    try:
        return engine_for(target).load(
            target, backup_file.path, plan.archive_format, jobs, backup_file.unchecked_sha256, expected
        )
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


def compare_row_counts(
    expected: dict[str, int],
    actual: dict[str, int],
    expected_in: str = "in the backup",
    actual_in: str = "after restoring",
    exact: bool = False,
) -> None:
    differences = row_count_differences(expected, actual, expected_in, actual_in, exact)
    if differences:
        raise DbOpsError("Row counts differ: " + "; ".join(differences))


def check_reset(target: Target, maintenance_db: str | None = None, create: bool = False) -> DatabaseState:
    """Refuse what reset must never drop or could not recreate, before anyone is asked to confirm;
    describe the rest."""
    return engine_for(target).check_reset(target, maintenance_db, create)


def reset(target: Target, maintenance_db: str | None = None) -> str:
    """Replace by an empty database; a stop signal waits until it is done. Returns what was done to a
    half-done earlier reset ("" if there was none)."""
    try:
        with ctrl_c_deferred():
            return engine_for(target).recreate(target, maintenance_db)
    except KeyboardInterrupt:
        raise Interrupted(f"Interrupted after the reset had finished: {target.masked} is now empty.") from None


def inspect(target: Target) -> DatabaseState:
    return engine_for(target).inspect(target)


def describe(target: Target) -> InstanceInfo:
    """The instance and its databases; with RENDER_API_KEY, also the Render instance it is (and its expiry)."""
    return replace(engine_for(target).describe(target), render=render.instance_of(target.host))


@dataclass(frozen=True)
class CreateResult:
    target: Target
    created: bool


def create_db(instance: Target, name: str, if_not_exists: bool = False) -> CreateResult:
    """CREATE DATABASE name in the instance that the instance target's server runs."""
    if instance.is_sqlite:
        raise DbOpsError(
            "create_db creates a database inside a PostgreSQL instance; a SQLite database is just a file "
            "(DATABASE_URL=sqlite:///path/to/file.sqlite3 creates it on first use)."
        )
    check_database_name(name)
    target = instance.with_database(name)
    # Connect through the database the URL names (it exists, and the user may connect to it),
    # unless that is the one to create.
    maintenance_db = instance.name if instance.name != name else None
    created = postgres.create_database(target, maintenance_db, exist_ok=if_not_exists)
    return CreateResult(target, created)


def check_database_name(name: str) -> None:
    """Refuse names that would need "double quotes" ever after; quoting them here would be easy."""
    if PLAIN_DATABASE_NAME.fullmatch(name):
        return
    suggestion = re.sub(r"[^a-z0-9_]", "_", name.lower()).lstrip("0123456789")[:63] or "app_db"
    raise DbOpsError(
        f"Refusing the database name {name!r}: use lowercase letters, digits and underscores, starting with "
        "a letter or underscore, at most 63 characters. Other names can be created (quoted), but every "
        "hand-written psql or SQL command would then need \"double quotes\" around them: unquoted, a hyphen "
        f"is a syntax error and capitals turn into lowercase. Try {suggestion!r}."
    )


# --- restore by swap (restore_db --swap, --undo) ----------------------------------------------


@dataclass(frozen=True)
class SwapResult:
    kept: swap.KeptDatabase  # what the target held before, under its new name
    tables: dict[str, int]
    seconds: float
    tools_used: str
    jobs: int | None
    dropped: list[str] = field(default_factory=list)  # kept databases older than the safety rule


def check_swap(target: Target, maintenance_db: str | None = None) -> swap.SwapPlan:
    """Refuse, before anything is touched, a swap that this engine or role cannot do."""
    if target.is_sqlite:
        raise DbOpsError(
            "--swap and --undo rename databases inside a PostgreSQL instance; a SQLite database is a single file: "
            "restore without them. Nothing was changed."
        )
    return swap.check(target, maintenance_db)


def clean_up_killed_swap(target: Target, maintenance_db: str | None = None) -> list[str]:
    """Every restore_db first undoes what a swap killed outright left (its new database, the target's
    connections stopped); the databases it dropped."""
    return [] if target.is_sqlite else swap.clean_up_killed_swap(target, maintenance_db)


def check_swap_space(swap_plan: swap.SwapPlan, plan: RestorePlan) -> int:
    """Refuse a swap that the server's disk cannot hold, where its free space can be known; the archive's size."""
    archive_size = archive.size_of(plan.backup.path)
    swap.refuse_without_space(swap_plan, archive_size)
    return archive_size


def swap_jobs(archive_format: str, jobs: int | None) -> int | None:
    """pg_restore --jobs reads directory archives and custom files in parallel: one worker per core by default."""
    if archive_format not in (archive.DIRECTORY, archive.CUSTOM):
        return None
    return jobs or os.cpu_count() or 1


def restore_by_swap(
    plan: RestorePlan,
    swap_plan: swap.SwapPlan,
    jobs: int | None = None,
    maintenance_db: str | None = None,
    safety_days: int = SAFETY_DAYS_DEFAULT,
) -> SwapResult:
    """Restore into a new database made like the target, check it against the manifest, then swap it in.
    Any failure or Ctrl-C before the swap drops the new database: the target is untouched."""
    started = time.monotonic()
    target, kept = plan.target, None
    jobs = swap_jobs(plan.archive_format, jobs)
    try:
        check_swap_space(swap_plan, plan)
        when = swap.swap_time(target, maintenance_db)
        if jobs:
            jobs = swap.parallel_jobs(target, plan.backup.path, plan.archive_format, jobs)
        with swap.swap_lock(target, maintenance_db), swap.new_database(swap_plan, when, maintenance_db) as new:
            with postgres.restore_lock(target):
                loaded = _load_beside(new, plan, jobs)
                tools_used = loaded.tools_used
                tables = postgres.row_counts(new) if loaded.tables is None else loaded.tables
                if plan.manifest is not None:
                    compare_row_counts(plan.manifest.tables, tables, exact=True)
                swap.finish(new, swap_plan.attributes, maintenance_db)
            with ctrl_c_deferred():  # the swap itself takes moments: it happens whole or not at all
                kept = swap.swap_in(target, new.name, when, maintenance_db)
    except DbOpsError as exc:
        raise DbOpsError(
            f"{str(exc).rstrip('.')}. Nothing was swapped: {target.masked} is untouched (the new database was dropped)."
        ) from None
    except KeyboardInterrupt:
        if kept is None:
            raise Interrupted(
                f"Interrupted: nothing was restored; {target.masked} is untouched (the new database was dropped)."
            ) from None
        raise Interrupted(
            f"Interrupted after the swap: {target.masked} holds the backup; what it held is the database {kept}."
        ) from None
    finally:
        plan.backup.cleanup()
    dropped = swap.drop_expired(target, safety_days, maintenance_db)
    kept_database = swap.KeptDatabase(kept, when, swap_plan.attributes.size)
    return SwapResult(kept_database, tables, time.monotonic() - started, tools_used, jobs, dropped)


def _load_beside(new: Target, plan: RestorePlan, jobs: int | None) -> Loaded:
    """Load the new database; in parallel, the archive's SHA-256 is taken meanwhile (pg_restore --jobs
    reads the file itself), which is safe here: a mismatch drops the new database before any swap."""
    path, expected = plan.backup.path, plan.backup.unchecked_sha256
    if not (jobs and expected):
        return postgres.load(new, path, plan.archive_format, jobs, expected)
    with streams.hashed_meanwhile(path) as sha256:
        loaded = postgres.load(new, path, plan.archive_format, jobs)
        archive.check_sha256(path, expected, sha256())
    return loaded


@dataclass(frozen=True)
class UndoResult:
    restored: swap.KeptDatabase  # the kept database swapped back in
    kept: swap.KeptDatabase  # what the target held until the undo, now kept in turn
    table_count: int


def undo_swap(target: Target, maintenance_db: str | None = None) -> UndoResult:
    """Swap the newest <name>_before_<stamp> back in; what the target holds is kept in its turn."""
    swap_plan = check_swap(target, maintenance_db)
    kept = swap.kept_databases(target, maintenance_db)
    if not kept:
        raise DbOpsError(
            f"No database kept by restore_db --swap for {target.masked} (none named "
            f"{target.name[: swap.STEM_LENGTH]}{swap.KEPT_MARK}<stamp>): nothing to undo."
        )
    newest = kept[0]
    table_count = postgres.inspect(target.with_database(newest.name)).table_count
    when = swap.swap_time(target, maintenance_db)
    try:
        with swap.swap_lock(target, maintenance_db), ctrl_c_deferred():
            now_kept = swap.swap_in(target, newest.name, when, maintenance_db)
    except KeyboardInterrupt:
        raise Interrupted(
            f"Interrupted after the undo: {target.masked} holds what {newest.name} held; what it held is kept."
        ) from None
    except DbOpsError as exc:
        raise DbOpsError(f"{str(exc).rstrip('.')}. Nothing was swapped: {target.masked} is untouched.") from None
    return UndoResult(newest, swap.KeptDatabase(now_kept, when, swap_plan.attributes.size), table_count)


def kept_databases(target: Target) -> list[swap.KeptDatabase]:
    """db_info's and list_backups' view of what swaps kept of the target (none on SQLite)."""
    return [] if target.is_sqlite else swap.kept_databases(target)
