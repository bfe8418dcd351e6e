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
from .errors import DbOpsError
from .facts import DatabaseState, InstanceInfo

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
    started, created_at = time.monotonic(), archive.utc_now()
    archive_format = archive.SQLITE if target.is_sqlite else (archive.DIRECTORY if jobs else archive.CUSTOM)
    final = output or folder / archive.backup_name(target.label, created_at, archive_format, kind)
    if final.exists():
        raise DbOpsError(f"{final} already exists; choose another --output.")
    archive.prepare_folder(final.parent)
    partial = archive.partial_path(final)
    with archive.exclusive_lock(final.parent, target.label):
        try:
            facts = engine_for(target).dump(target, partial, archive_format, jobs, compress, on_table)
            archive.publish(partial, final)
        finally:
            archive.remove_archive(partial)
    manifest = Manifest(
        database=target.label,
        source=target.masked,
        engine=target.engine,
        format=archive_format,
        created_at=created_at.isoformat(timespec="seconds"),
        size=archive.size_of(final),
        sha256=archive.sha256_of(final),
        tables=facts.tables,
        server_version=facts.server_version,
        pg_dump_version=facts.dump_version,
        kind=kind,
        compression=archive.archive_header(final, archive_format).compression,
    )
    manifest.write(final)
    warnings = []
    if archive.unignored_in_git(final):
        warnings.append(
            f"{final} lies inside a git work tree and is not ignored: add it to .gitignore so a backup "
            "(your data) is never pushed."
        )
    pruned = archive.prune(final.parent, manifest.database, keep, protect=final) if keep else []
    return BackupResult(final, manifest, time.monotonic() - started, facts.tools_used, warnings, pruned)


def backup_all(target: Target, folder: Path, **options) -> list[BackupResult]:
    """One backup per non-template database of the target's instance, as the tutorial does by hand."""
    return [backup(target.with_database(name), folder, **options) for name in engine_for(target).list_databases(target)]


def backup_to_stream(target: Target, stream, compress: str | None = None) -> None:
    if target.is_sqlite:
        raise DbOpsError("--output - streams pg_dump archives; back up SQLite to a file.")
    postgres.stream_dump(target, stream, compress)


def plan_restore(target: Target, path: Path | None, folder: Path, create: bool = False) -> RestorePlan:
    """Choose and check the archive, and look at the target, before anything is changed."""
    archive_path = path if path is not None else archive.newest_backup(folder, target.label).path
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
    state = engine.inspect(target)
    if not state.exists and not create and not target.is_sqlite:
        raise DbOpsError(f"{target.masked} does not exist; add --create to create it first.")
    engine.check_restorable(target, state, archive_path, archive_format)
    return RestorePlan(target, archive_path, archive_format, manifest, state)


def restore(
    plan: RestorePlan,
    folder: Path,
    safety_backup: bool = True,
    jobs: int | None = None,
    maintenance_db: str | None = None,
) -> RestoreResult:
    """Restore the planned archive; take a safety backup of a non-empty target first."""
    started = time.monotonic()
    target, engine = plan.target, engine_for(plan.target)
    if jobs and not safety_backup:
        raise DbOpsError("A --jobs restore is not atomic, so it needs its safety backup: drop --no-safety-backup.")
    if not plan.state.exists and not target.is_sqlite:
        postgres.create_database(target, maintenance_db)
    safety = None
    if safety_backup and plan.state.exists and plan.state.table_count:
        safety = backup(target, folder, kind=archive.KIND_SAFETY).path
    tools_used = engine.load(target, plan.archive_path, plan.archive_format, jobs)
    tables = engine.row_counts(target)
    if plan.manifest is not None:
        compare_row_counts(plan.manifest.tables, tables)
    return RestoreResult(safety, tables, time.monotonic() - started, tools_used)


def compare_row_counts(
    expected: dict[str, int],
    actual: dict[str, int],
    expected_in: str = "in the backup",
    actual_in: str = "after restoring",
) -> None:
    differences = [
        f"{table}: {count} {expected_in}, {actual.get(table, 'missing')} {actual_in}"
        for table, count in sorted(expected.items())
        if actual.get(table) != count
    ]
    if differences:
        raise DbOpsError("Row counts differ: " + "; ".join(differences))


def check_reset(target: Target, maintenance_db: str | None = None) -> DatabaseState:
    """Refuse what reset must never drop, before anyone is asked to confirm; describe the rest."""
    engine_for(target).refuse_reset(target, maintenance_db)
    return engine_for(target).inspect(target)


def reset(target: Target, maintenance_db: str | None = None) -> None:
    engine_for(target).recreate(target, maintenance_db)


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
