"""The backups at a location, as restic's repository over its backend: names and manifests, which
server a backup came from, the newest, what retention deletes, whether the newest is fresh enough, and
the lock that keeps two backups of one database apart. The location (dbops.storage) only moves bytes."""

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from . import archive, encryption, locks, retention, storage
from .errors import DbOpsError
from .manifest import (
    KIND_BACKUP,
    KIND_SAFETY,
    NAME_PATTERN,
    BackupFile,
    BackupName,
    Manifest,
    Origin,
    manifest_name,
    unreadable_manifest,
    unused_name,
    utc_now,
)
from .process import ctrl_c_deferred
from .retention import SAFETY_DAYS_DEFAULT, RetentionPolicy

# The name that stands for a backup not made yet, when --dry-run asks what one made now would delete.
NEXT_BACKUP = ""


@dataclass(frozen=True)
class Freshness:
    origin: Origin
    newest: str
    age: timedelta
    rule: str  # how the backup's server is known to be the origin's: BY_IDENTIFIER or BY_ADDRESS

    def __str__(self) -> str:
        return (
            f"The newest backup of {self.origin} ({self.newest}) is {age_text(self.age)} old: fresh enough "
            f"(the same server by {self.rule})."
        )


def age_text(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


class BackupCatalog:
    def __init__(self, location: storage.BackupLocation):
        self.location = location

    @property
    def url(self) -> str:
        return self.location.url

    # --- names and manifests ------------------------------------------------------------------

    def new_name(self, database: str, archive_format: str, kind: str, encrypted: bool) -> tuple[datetime, str]:
        """The time and an unused name for a new backup, refused where a plaintext one would lie beside
        encrypted ones (one listing for both); call it holding the lock."""
        names = set(self.location.sizes())
        if not encrypted:
            self._refuse_plaintext_beside(names)
        suffix = encryption.ENCRYPTED_SUFFIX if encrypted else ""
        return unused_name(names, database, archive_format, kind, suffix)

    def refuse_taken_output(self, name: str) -> None:
        """Before anything is dumped: an --output, or the manifest that goes beside it, that already exists."""
        for taken in (name, manifest_name(name)):
            archive.refuse_existing(self.location.local_path(taken))

    def manifest(self, name: str) -> Manifest | None:
        """The manifest beside the archive name, None when there is none."""
        where = self.location.where(manifest_name(name))
        try:
            text = self.location.read_text(manifest_name(name))
        except OSError as exc:
            raise unreadable_manifest(where, exc.strerror) from None
        return None if text is None else Manifest.from_json(text, where)

    def store_manifest(self, name: str, manifest: Manifest) -> None:
        """The manifest goes after its archive; if it cannot be stored (a full disk, say), the archive is
        deleted again, so a failed backup leaves nothing."""
        try:
            self.location.write_text(manifest_name(name), manifest.to_json())
        except BaseException:
            with ctrl_c_deferred():
                self.location.delete(name)
            raise

    def delete(self, name: str) -> None:
        """Delete an archive and its manifest (given a manifest's own name: that manifest alone)."""
        self.location.delete(name)
        if not name.endswith(".json"):
            self.location.delete(manifest_name(name))

    @contextlib.contextmanager
    def lock(self, database: str):
        """Refuse a second backup of the same database into the same location while one runs."""
        try:
            with self.location.lock(f".{database}.lock"):
                yield
        except locks.Held as held:
            since = f" ({held.holder})" if held.holder else ""
            raise DbOpsError(
                f"Another backup of {database!r} into {self.url} is running{since}; try again when it ends."
            ) from None

    # --- listing --------------------------------------------------------------------------------

    def backups(self, database: str | None = None) -> list[BackupFile]:
        """The backups (newest first), optionally only those of one database."""
        sizes = self.location.sizes()
        found = []
        for name, size in sizes.items():
            parsed = BackupName.parse(name)
            if parsed is None or name.endswith(".json") or database not in (None, parsed.database):
                continue
            try:  # one damaged manifest must not hide, or stop, everything else in the folder
                manifest, problem = (self.manifest(name) if manifest_name(name) in sizes else None), ""
            except DbOpsError as exc:
                manifest, problem = None, str(exc)
            found.append(
                BackupFile(name, self.location.where(name), parsed.database, parsed.created_at, parsed.kind, size,
                           manifest, self.location.local_path(name), problem)
            )
        return newest_first(found)

    def lost_manifests(self, database: str | None = None) -> list[BackupFile]:
        """Manifests whose archive is gone (deleted by hand, or by a bucket's lifecycle rule): nothing to
        restore, but they would pass for backups. Newest first; one that cannot be read is left out."""
        sizes = self.location.sizes()
        lost = []
        for name in sizes:
            archive_name = name.removesuffix(".json")
            parsed = BackupName.parse(archive_name)
            if archive_name == name or parsed is None or archive_name in sizes:
                continue
            if database not in (None, parsed.database):
                continue
            try:
                manifest = self.manifest(archive_name)
            except DbOpsError:
                continue
            lost.append(BackupFile(archive_name, self.location.where(name), parsed.database, parsed.created_at,
                                   parsed.kind, 0, manifest))
        return newest_first(lost)

    def holds_encrypted(self) -> bool:
        return _any_encrypted(self.location.sizes())

    def refuse_plaintext_beside_encrypted(self, encrypted: bool) -> None:
        """A backup is never weaker than what it sits beside: no plaintext one where encrypted ones lie."""
        if not encrypted:
            self._refuse_plaintext_beside(self.location.sizes())

    def _refuse_plaintext_beside(self, names) -> None:
        if _any_encrypted(names):
            raise DbOpsError(
                f"{self.url} holds encrypted backups; this one would lie beside them in plaintext: set "
                "BACKUP_AGE_RECIPIENTS to the age public key (age1...) they are encrypted to, or back up "
                "elsewhere (--output FILE, or another BACKUP_DIR). Nothing was written."
            )

    # --- choosing one -------------------------------------------------------------------------

    def newest(self, origin: Origin) -> BackupFile:
        """The newest backup (not safety backup) of the database origin names, from that server."""
        backups = [backup for backup in self.backups(origin.database) if backup.kind == KIND_BACKUP]
        for backup in backups:
            if backup.is_from(origin):
                return backup
        if backups:
            unknown = "no manifest: origin unknown"
            others = ", ".join(f"{backup.name} ({backup.origin or unknown})" for backup in backups)
            raise DbOpsError(
                f"No backup of {origin} in {self.url}, only of databases of that name from elsewhere: {others}. "
                f"To restore one of them, name its file, or add --latest-of {origin.database} for the newest."
            )
        raise DbOpsError(f"No backup of {origin.database!r} in {self.url}; name the file to restore.")

    def newest_of_any_server(self, database: str) -> BackupFile:
        """The newest backup (not safety backup) of a database of that name, whichever server it came from:
        what a new instance restores, having no backups of its own."""
        for backup in self.backups(database):
            if backup.kind == KIND_BACKUP:
                return backup
        raise DbOpsError(f"No backup of a database named {database!r} in {self.url}.")

    def locate(
        self, origin: Origin | None, source: str | Path | None, latest_of: str | None = None
    ) -> tuple[storage.BackupLocation, str]:
        """Where the backup to restore is: the one named (a path or s3://BUCKET/KEY); with latest_of, the
        newest of a database of that name from any server; else the newest of origin's database, from its
        server."""
        if source is not None:
            if latest_of is not None:
                raise DbOpsError("Give either a backup to restore or --latest-of, not both.")
            return storage.backup_at(source)
        if latest_of is not None:
            return self.location, self.newest_of_any_server(latest_of).name
        return self.location, self.newest(origin).name

    def freshness(self, backups: list[BackupFile], origin: Origin, max_age: timedelta) -> Freshness:
        """list_backups --max-age: the newest of these backups (as listed here) of origin's database from its
        server must be at most max_age old."""
        named = [b for b in backups if b.kind == KIND_BACKUP and b.database == origin.database]
        newest = next((b for b in named if b.is_from(origin)), None)
        if newest is None:
            elsewhere = f" (only {len(named)} from elsewhere, the newest {named[0].name})" if named else ""
            raise DbOpsError(
                f"No backup of {origin} in {self.url}{elsewhere}: the newest should be at most "
                f"{age_text(max_age)} old."
            )
        age = utc_now() - newest.created_at
        if age > max_age:
            raise DbOpsError(
                f"The newest backup of {origin} ({newest.name}) is {age_text(age)} old, older than "
                f"{age_text(max_age)}."
            )
        return Freshness(origin, newest.name, age, newest.origin.server_match(origin))

    # --- retention ----------------------------------------------------------------------------

    def deletions(
        self, origin: Origin, policy: RetentionPolicy, just_made: str | None, safety_days: int = SAFETY_DAYS_DEFAULT
    ) -> list[str]:
        """Names of the backups of origin's database from its server that retention deletes, never just_made:
        by the policy, expired safety backups (never one without a manifest, whose origin is unknown), and
        the manifests whose archive is gone."""
        return self._deletions(origin, policy, just_made, safety_days, [])

    def deletions_by_next_backup(
        self, origin: Origin, policy: RetentionPolicy, safety_days: int = SAFETY_DAYS_DEFAULT
    ) -> list[str]:
        """--dry-run's question: what would a backup made now delete? It counts as the newest backup."""
        return self._deletions(origin, policy, NEXT_BACKUP, safety_days, [(NEXT_BACKUP, utc_now())])

    def _deletions(self, origin, policy, protect, safety_days, to_come) -> list[str]:
        backups = [b for b in self.backups(origin.database) if b.is_from(origin)]
        regular = to_come + [(b.name, b.created_at) for b in backups if b.kind == KIND_BACKUP]
        safety = [(b.name, b.created_at) for b in backups if b.kind == KIND_SAFETY]
        doomed = retention.to_delete(regular, policy, protect) if policy else []
        lost = [manifest_name(b.name) for b in self.lost_manifests(origin.database) if b.is_from(origin)]
        return doomed + retention.expired_safety(safety, utc_now(), safety_days, protect) + lost

    def prune(
        self, origin: Origin, policy: RetentionPolicy, just_made: str | None, safety_days: int = SAFETY_DAYS_DEFAULT
    ) -> tuple[list[str], str]:
        """Delete what retention deletes: (what was deleted, why the rest could not be, or ""). The first
        backup that cannot be deleted (a key without delete access, a file without write permission on
        its folder) stops the pruning: the others would fail alike."""
        doomed = self.deletions(origin, policy, just_made, safety_days)
        deleted = []
        for name in doomed:
            try:
                self.delete(name)
            except DbOpsError as exc:
                remaining = len(doomed) - len(deleted)
                return deleted, f"{str(exc).rstrip('.')}; {remaining} old backup(s) that retention deletes remain."
            deleted.append(self.location.where(name))
        return deleted, ""


def newest_first(backups: list[BackupFile]) -> list[BackupFile]:
    return sorted(backups, key=lambda backup: (backup.created_at, backup.name), reverse=True)


def _any_encrypted(names) -> bool:
    return any(name.endswith(encryption.ENCRYPTED_SUFFIX) and NAME_PATTERN.match(name) for name in names)
