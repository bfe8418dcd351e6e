"""Backups: dumped by the target's engine, verified, checksummed, encrypted when asked, never half-written."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .. import archive, encryption, storage
from ..catalog import BackupCatalog
from ..connection import Target
from ..encryption import Recipients
from ..engine import engine_for
from ..errors import DbOpsError, Interrupted
from ..facts import DatabaseFailure
from ..manifest import KIND_BACKUP, Manifest, utc_now
from ..plans import DumpOptions
from ..retention import SAFETY_DAYS_DEFAULT, RetentionPolicy
from ..storage import BackupLocation
from ..streams import HashingWriter, HeadReader


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
class BackupOptions:
    """How to back up, whatever the database and wherever the backup goes."""

    jobs: int | None = None  # pg_dump --jobs: a directory archive
    compress: str | None = None
    retention: RetentionPolicy | None = None  # what to delete afterwards (never for a backup to a named file)
    kind: str = KIND_BACKUP
    on_table: Callable[[str], None] | None = None
    recipients: Recipients = field(default_factory=Recipients)
    safety_days: int = SAFETY_DAYS_DEFAULT


def backup(target: Target, location: BackupLocation, options: BackupOptions = BackupOptions()) -> BackupResult:
    """Back up target into location under a new name: verified, checksummed, encrypted to the options'
    recipients, never half-written; then delete what the options' retention deletes."""
    return _backup(target, location, None, options)


def backup_to_file(target: Target, output: Path, options: BackupOptions = BackupOptions()) -> BackupResult:
    """backup_db --output FILE: the backup under the name the user chose, beside its manifest; no retention."""
    return _backup(target, storage.LocalFolder(output.parent), output.name, options)


def _backup(target: Target, location: BackupLocation, file_name: str | None, options: BackupOptions) -> BackupResult:
    """The manifest is stored after its archive; when storing it fails, the archive goes too."""
    started = time.monotonic()
    archive_format = engine_for(target).backup_format(options.jobs, options.compress)
    dump_options = DumpOptions(archive_format, options.jobs, options.compress, options.on_table)
    location.prepare()
    catalog = BackupCatalog(location)
    with catalog.lock(target.label):
        created_at, name = _new_name(target, catalog, file_name, dump_options.archive_format, options)
        try:
            manifest, tools_used = _write_backup(target, catalog, name, created_at, dump_options, options)
        except OSError as exc:
            raise DbOpsError(
                f"Could not write the backup {location.where(name)}: {exc.strerror}. Nothing was kept."
            ) from None
        except KeyboardInterrupt:
            raise Interrupted(f"Interrupted: no backup of {target.label} was written.") from None
    pruned, prune_failure = [], ""
    if options.retention and file_name is None:
        try:
            pruned, prune_failure = catalog.prune(manifest.origin, options.retention, name, options.safety_days)
        except KeyboardInterrupt:
            raise Interrupted(
                f"Interrupted while deleting old backups; the new backup {location.where(name)} is complete."
            ) from None
    seconds = time.monotonic() - started
    warnings = _git_warnings(location, name)
    return BackupResult(name, location.where(name), manifest, seconds, tools_used, warnings, pruned, prune_failure)


def _new_name(
    target: Target, catalog: BackupCatalog, file_name: str | None, archive_format: str, options: BackupOptions
) -> tuple[datetime, str]:
    """When the backup is made, and its name: the file the user named, else a new one in the location."""
    if file_name is not None:
        catalog.refuse_taken_output(file_name)
        return utc_now(), file_name
    return catalog.new_name(target.label, archive_format, options.kind, bool(options.recipients))


def _write_backup(
    target: Target,
    catalog: BackupCatalog,
    name: str,
    created_at: datetime,
    dump_options: DumpOptions,
    options: BackupOptions,
) -> tuple[Manifest, str]:
    """The archive and then its manifest; which tools made it."""
    recipients, location = options.recipients, catalog.location
    if dump_options.archive_format == archive.DIRECTORY:
        dumped = _dump_directory(target, location, name, dump_options, recipients)
    else:
        dumped = _dump_streamed(target, location, name, dump_options, recipients)
    facts, size, sha256, compression = dumped
    manifest = Manifest(
        database=target.label,
        source=target.masked,
        engine=target.engine,
        format=dump_options.archive_format,
        created_at=created_at.isoformat(timespec="microseconds"),
        size=size,
        sha256=sha256,
        tables=facts.tables,
        server_version=facts.server_version,
        pg_dump_version=facts.dump_version,
        kind=options.kind,
        system_identifier=facts.system_identifier,
        compression=compression,
        encrypted=bool(recipients),
        recipients=list(recipients.keys),
    )
    catalog.store_manifest(name, manifest)
    return manifest, facts.tools_used


def _git_warnings(location: BackupLocation, name: str) -> list[str]:
    local = location.local_path(name)
    if local is not None and storage.unignored_in_git(local):
        return [
            f"{local} lies inside a git work tree and is not ignored: add it to .gitignore so a backup "
            "(your data) is never pushed."
        ]
    return []


def _dump_streamed(target, location, name, dump_options, recipients):
    """The dump streamed into the location: hashed as stored (encrypted, when asked), its header kept."""
    with location.writer(name) as sink:
        stored, heads = HashingWriter(sink), []

        def store(plain):
            kept = HeadReader(plain)
            encryption.encrypt(kept, stored, recipients)
            heads.append(kept.head)

        facts = engine_for(target).dump_stream(target, store, dump_options)
    return facts, stored.size, stored.hexdigest(), archive.parse_header(heads[0]).compression


def _dump_directory(target, location, name, dump_options, recipients):
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
        facts = engine_for(target).dump(target, partial, dump_options)
        archive.publish(partial, final)
    finally:
        archive.remove_archive(partial)
    compression = archive.archive_header(final, archive.DIRECTORY).compression
    return facts, archive.size_of(final), archive.sha256_of(final), compression


@dataclass(frozen=True)
class BackupAllResult:
    backups: list[BackupResult]
    failures: list[DatabaseFailure]


def backup_all(target: Target, location: BackupLocation, options: BackupOptions = BackupOptions()) -> BackupAllResult:
    """One backup per non-template database of the target's instance, as the tutorial does by hand.

    A database the role cannot back up (no CONNECT privilege, a table it may not read) does not
    stop the others: it is reported with its reason."""
    BackupCatalog(location).refuse_plaintext_beside_encrypted(bool(options.recipients))
    backups, failures = [], []
    for name in engine_for(target).list_databases(target):
        try:
            backups.append(backup(target.with_database(name), location, options))
        except DbOpsError as exc:
            failures.append(DatabaseFailure(name, str(exc).rstrip(".")))
    return BackupAllResult(backups, failures)


def backup_to_stream(
    target: Target, stream, compress: str | None = None, recipients: Recipients | None = None
) -> None:
    """The archive to an open binary stream, encrypted to recipients when there are any."""
    engine_for(target).stream_dump(target, lambda plain: encryption.encrypt(plain, stream, recipients), compress)
    stream.flush()
