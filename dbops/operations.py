"""The operations the management commands call: one typed function each, whatever the engine."""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from . import archive, postgres, sqlite
from .archive import Manifest
from .connection import Target
from .errors import DbOpsError, Interrupted
from .facts import DatabaseState, InstanceInfo
from .process import ctrl_c_deferred

ENGINES: dict[str, ModuleType] = {"postgresql": postgres, "sqlite": sqlite}
# Names that work unquoted in every hand-written psql command, as the tutorials write them.
PLAIN_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def engine_for(target: Target) -> ModuleType:
    return ENGINES[target.engine]


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    seconds: float
    tools_used: str
    warnings: list[str] = field(default_factory=list)
    pruned: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class RestorePlan:
    """Everything checked before the target is touched; the command confirms it with the user."""

    target: Target
    archive_path: Path
    archive_format: str
    manifest: Manifest | None
    state: DatabaseState
    notices: list[str] = field(default_factory=list)  # for the prompt: the backup comes from elsewhere


class RestoreInterrupted(Interrupted):
    """Ctrl-C during a restore; a half-restored target names the safety backup that puts it back."""

    def __init__(self, message: str, safety_backup: Path | None = None, half_restored: bool = False):
        super().__init__(message)
        self.safety_backup = safety_backup
        self.half_restored = half_restored


@dataclass(frozen=True)
class RestoreResult:
    safety_backup: Path | None
    tables: dict[str, int]
    seconds: float
    tools_used: str


def backup(
    target: Target,
    folder: Path,
    output: Path | None = None,
    jobs: int | None = None,
    compress: str | None = None,
    keep: int | None = None,
    kind: str = archive.KIND_BACKUP,
    on_table: Callable[[str], None] | None = None,
) -> BackupResult:
    """Back up target into folder (or output): verified, checksummed, never half-written."""
    started = time.monotonic()
    archive_format = archive.SQLITE if target.is_sqlite else (archive.DIRECTORY if jobs else archive.CUSTOM)
    parent = output.parent if output else folder
    archive.prepare_folder(parent)
    with archive.exclusive_lock(parent, target.label):
        if output is None:
            created_at, final = archive.unused_backup_path(folder, target.label, archive_format, kind)
        else:
            created_at, final = archive.utc_now(), output
            if final.exists():
                raise DbOpsError(f"{final} already exists; choose another --output.")
        partial = archive.partial_path(final)
        try:
            facts = engine_for(target).dump(target, partial, archive_format, jobs, compress, on_table)
            archive.flush_private(partial)
            manifest = Manifest(
                database=target.label,
                source=target.masked,
                engine=target.engine,
                format=archive_format,
                created_at=created_at.isoformat(timespec="microseconds"),
                size=archive.size_of(partial),
                sha256=archive.sha256_of(partial),
                tables=facts.tables,
                server_version=facts.server_version,
                pg_dump_version=facts.dump_version,
                kind=kind,
                system_identifier=facts.system_identifier,
                compression=archive.archive_header(partial, archive_format).compression,
            )
            archive.publish(partial, final, manifest)
        except OSError as exc:
            raise DbOpsError(f"Could not write the backup {final}: {exc.strerror}. Nothing was kept.") from None
        except KeyboardInterrupt:
            raise Interrupted(f"Interrupted: no backup of {target.label} was written.") from None
        finally:
            archive.remove_archive(partial)
    warnings = []
    if archive.unignored_in_git(final):
        warnings.append(
            f"{final} lies inside a git work tree and is not ignored: add it to .gitignore so a backup "
            "(your data) is never pushed."
        )
    try:
        pruned = archive.prune(final.parent, manifest.origin, keep, protect=final) if keep else []
    except KeyboardInterrupt:
        raise Interrupted(f"Interrupted while deleting old backups; the new backup {final} is complete.") from None
    return BackupResult(final, manifest, time.monotonic() - started, facts.tools_used, warnings, pruned)


@dataclass(frozen=True)
class BackupFailure:
    database: str
    reason: str


@dataclass(frozen=True)
class BackupAllResult:
    backups: list[BackupResult]
    failures: list[BackupFailure]


def backup_all(target: Target, folder: Path, **options) -> BackupAllResult:
    """One backup per non-template database of the target's instance, as the tutorial does by hand.

    A database the role cannot back up (no CONNECT privilege, a table it may not read) does not
    stop the others: it is reported with its reason."""
    backups, failures = [], []
    for name in engine_for(target).list_databases(target):
        try:
            backups.append(backup(target.with_database(name), folder, **options))
        except DbOpsError as exc:
            failures.append(BackupFailure(name, str(exc).rstrip(".")))
    return BackupAllResult(backups, failures)


def backup_to_stream(target: Target, stream, compress: str | None = None) -> None:
    if target.is_sqlite:
        raise DbOpsError("--output - streams pg_dump archives; back up SQLite to a file.")
    postgres.stream_dump(target, stream, compress)


def plan_restore(target: Target, path: Path | None, folder: Path, create: bool = False) -> RestorePlan:
    """Choose and check the archive, and look at the target, before anything is changed."""
    engine = engine_for(target)
    state = engine.inspect(target)
    target_origin = archive.Origin.of(target.masked, target.label, state.system_identifier)
    archive_path = path if path is not None else archive.newest_backup(folder, target_origin).path
    with archive.read_errors(archive_path):
        archive_format, manifest = _checked_archive(target, archive_path)
    if not state.exists and not create and not target.is_sqlite:
        raise DbOpsError(f"{target.masked} does not exist; add --create to create it first.")
    engine.check_restorable(target, state, archive_path, archive_format)
    notices = origin_notices(manifest.origin, target_origin) if manifest is not None else []
    return RestorePlan(target, archive_path, archive_format, manifest, state, notices)


def _checked_archive(target: Target, archive_path: Path) -> tuple[str, Manifest | None]:
    archive_format = archive.detect_format(archive_path)
    engine = engine_for(target)
    if archive_format not in engine.ARCHIVE_FORMATS:
        raise DbOpsError(
            f"{archive_path} is a {archive.DESCRIPTIONS[archive_format]}; the target is {engine.ENGINE_NAME}. "
            "Nothing was restored."
        )
    manifest = Manifest.read(archive_path)
    if manifest is not None and archive.sha256_of(archive_path) != manifest.sha256:
        raise DbOpsError(
            f"{archive_path} no longer matches the SHA-256 in its manifest: the file is damaged or was changed. "
            "Nothing was restored."
        )
    return archive_format, manifest


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


def restore(
    plan: RestorePlan,
    folder: Path,
    safety_backup: bool = True,
    jobs: int | None = None,
    maintenance_db: str | None = None,
) -> RestoreResult:
    """Restore the planned archive; take a safety backup of a non-empty target first.

    One restore at a time per target; a database created for the restore is dropped again when the
    restore fails or is interrupted."""
    started = time.monotonic()
    target, engine = plan.target, engine_for(plan.target)
    if jobs and not safety_backup:
        raise DbOpsError("A --jobs restore is not atomic, so it needs its safety backup: drop --no-safety-backup.")
    created = not plan.state.exists and not target.is_sqlite
    if created:
        postgres.create_database(target, maintenance_db)
    try:
        with engine.restore_lock(target):
            safety = _safety_backup(target, folder) if safety_backup and plan.state.table_count else None
            tools_used = _load(plan, safety, jobs)
    except BaseException:
        if created:
            with ctrl_c_deferred():
                postgres.drop_database(target, maintenance_db)
        raise
    try:
        tables = engine.row_counts(target)
    except KeyboardInterrupt:
        raise RestoreInterrupted(
            f"Interrupted after restoring: {target.masked} holds the backup; its row counts were not checked.",
            safety,
        ) from None
    if plan.manifest is not None:
        compare_row_counts(plan.manifest.tables, tables, exact=True)
    return RestoreResult(safety, tables, time.monotonic() - started, tools_used)


def _safety_backup(target: Target, folder: Path) -> Path:
    try:
        return backup(target, folder, kind=archive.KIND_SAFETY).path
    except KeyboardInterrupt:
        raise RestoreInterrupted(
            f"Interrupted: nothing was restored; {target.masked} is as it was (no safety backup was kept)."
        ) from None


def _load(plan: RestorePlan, safety: Path | None, jobs: int | None) -> str:
    target = plan.target
    try:
        return engine_for(target).load(target, plan.archive_path, plan.archive_format, jobs)
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
    """Every expected table with its count; with exact, no other table either."""
    differences = [
        f"{table}: {count} {expected_in}, {actual.get(table, 'missing')} {actual_in}"
        for table, count in sorted(expected.items())
        if actual.get(table) != count
    ]
    if exact:
        differences += [
            f"{table}: not {expected_in}, {count} {actual_in}" for table, count in sorted(actual.items())
            if table not in expected
        ]
    if differences:
        raise DbOpsError("Row counts differ: " + "; ".join(differences))


def check_reset(target: Target, maintenance_db: str | None = None, create: bool = False) -> DatabaseState:
    """Refuse what reset must never drop or could not recreate, before anyone is asked to confirm;
    describe the rest."""
    return engine_for(target).check_reset(target, maintenance_db, create)


def reset(target: Target, maintenance_db: str | None = None) -> None:
    """Drop and recreate; a Ctrl-C waits until both are done, so it never leaves no database at all."""
    try:
        with ctrl_c_deferred():
            engine_for(target).recreate(target, maintenance_db)
    except KeyboardInterrupt:
        raise Interrupted(f"Interrupted after the reset had finished: {target.masked} is now empty.") from None


def inspect(target: Target) -> DatabaseState:
    return engine_for(target).inspect(target)


def describe(target: Target) -> InstanceInfo:
    return engine_for(target).describe(target)


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
