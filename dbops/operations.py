"""The operations the management commands call: one typed function each, whatever the engine."""

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from . import archive, cleanup, encryption, postgres, render, sqlite, storage, swap
from .catalog import BackupCatalog
from .connection import Target
from .encryption import Recipients
from .errors import DbOpsError, Interrupted
from .facts import DatabaseFailure, DatabaseState, InstanceInfo
from .manifest import BY_ADDRESS, KIND_BACKUP, KIND_SAFETY, Manifest, Origin, utc_now
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
    kind: str = KIND_BACKUP,
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
    catalog = BackupCatalog(location)
    with catalog.lock(target.label):
        if output is None:
            catalog.refuse_plaintext_beside_encrypted(bool(recipients))
            created_at, name = catalog.new_name(target.label, archive_format, kind, bool(recipients))
        else:
            created_at, name = utc_now(), output.name
            catalog.refuse_taken_output(name)
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
            catalog.store_manifest(name, manifest)
        except OSError as exc:
            raise DbOpsError(
                f"Could not write the backup {location.where(name)}: {exc.strerror}. Nothing was kept."
            ) from None
        except KeyboardInterrupt:
            raise Interrupted(f"Interrupted: no backup of {target.label} was written.") from None
    warnings = []
    local = location.local_path(name)
    if local is not None and storage.unignored_in_git(local):
        warnings.append(
            f"{local} lies inside a git work tree and is not ignored: add it to .gitignore so a backup "
            "(your data) is never pushed."
        )
    pruned, prune_failure = [], ""
    if retention and output is None:
        try:
            pruned, prune_failure = catalog.prune(manifest.origin, retention, name, safety_days)
        except KeyboardInterrupt:
            raise Interrupted(
                f"Interrupted while deleting old backups; the new backup {location.where(name)} is complete."
            ) from None
    seconds = time.monotonic() - started
    return BackupResult(
        name, location.where(name), manifest, seconds, facts.tools_used, warnings, pruned, prune_failure
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
    if BackupCatalog(location).holds_encrypted():
        raise DbOpsError(
            f"{location.url} holds encrypted backups, and the safety backup of {target.masked} would lie beside "
            "them in plaintext: set BACKUP_AGE_RECIPIENTS to the age public key (age1...) they are encrypted "
            "to, or add --no-safety-backup. Nothing was changed."
        )
    return Recipients()


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
    archive.refuse_existing(final)
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
    BackupCatalog(location).refuse_plaintext_beside_encrypted(bool(options.get("recipients")))
    backups, failures = [], []
    for name in engine_for(target).list_databases(target):
        try:
            backups.append(backup(target.with_database(name), location, **options))
        except DbOpsError as exc:
            failures.append(DatabaseFailure(name, str(exc).rstrip(".")))
    return BackupAllResult(backups, failures)


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
        doomed = BackupCatalog(location).deletions_by_next_backup(live_origin(each), retention, safety_days)
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
                tools_used = _load(plan, taken.where if taken else None, jobs)
        except BaseException:
            if created:
                with ctrl_c_deferred():
                    postgres.drop_database(target, maintenance_db)
            raise
    finally:
        plan.backup.cleanup()
    safety = taken.where if taken else None
    pruned, prune_failure = (
        BackupCatalog(location).prune(taken.manifest.origin, RetentionPolicy(), taken.name, safety_days)
        if taken
        else ([], "")
    )
    try:
        tables = engine.row_counts(target)
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
    return RestoreResult(safety, tables, time.monotonic() - started, tools_used, pruned, prune_failure, dropped)


def _drop_expired_kept(target: Target, safety_days: int, maintenance_db: str | None) -> list[str]:
    try:
        return swap.drop_expired(target, safety_days, maintenance_db)
    except DbOpsError:  # a role that may restore the tables but not drop databases leaves them to the owner
        return []


def _safety_backup(target: Target, location: BackupLocation, recipients: Recipients) -> BackupResult:
    try:
        return backup(target, location, kind=KIND_SAFETY, recipients=recipients)
    except KeyboardInterrupt:
        raise RestoreInterrupted(
            f"Interrupted: nothing was restored; {target.masked} is as it was (no safety backup was kept)."
        ) from None


def _load(plan: RestorePlan, safety: str | None, jobs: int | None) -> str:
    target, backup_file = plan.target, plan.backup
    try:
        return engine_for(target).load(
            target, backup_file.path, plan.archive_format, jobs, backup_file.unchecked_sha256
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


def row_count_differences(
    expected: dict[str, int], actual: dict[str, int], expected_in: str, actual_in: str, exact: bool = False
) -> list[str]:
    """Every expected table with its count; with exact, no other table either."""
    differences = [
        f"{table}: {count} {expected_in}, {actual.get(table, 'none')} {actual_in}"
        for table, count in sorted(expected.items())
        if actual.get(table) != count
    ]
    if exact:
        differences += [
            f"{table}: not {expected_in}, {count} {actual_in}" for table, count in sorted(actual.items())
            if table not in expected
        ]
    return differences


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
                tools_used = postgres.load(
                    new, plan.backup.path, plan.archive_format, jobs, plan.backup.unchecked_sha256
                )
                tables = postgres.row_counts(new)
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
