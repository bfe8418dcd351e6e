"""Backup files, whatever the engine: names, formats, manifests, checksums, locks and the backup folder."""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tarfile
import typing
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import DbOpsError

CUSTOM = "custom"
DIRECTORY = "directory"
TAR = "tar"
SQL = "sql"
SQLITE = "sqlite"

KIND_BACKUP = "backup"
KIND_SAFETY = "safety"

# UTC to the microsecond, so that names sort by time and backups in the same second differ;
# names of older versions, to the second, are still read. Encrypted backups end in .age.
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
SECONDS_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_PATTERN = re.compile(
    r"^(?P<database>.+)-(?P<stamp>\d{8}T\d{6}(?:\.\d{6})?Z)(?P<safety>-pre-restore)?(?P<suffix>\.\w+)"
    r"(?P<encrypted>\.age)?$"
)
DESCRIPTIONS = {
    CUSTOM: "PostgreSQL custom archive",
    DIRECTORY: "PostgreSQL directory archive",
    TAR: "PostgreSQL tar archive",
    SQL: "plain SQL dump",
    SQLITE: "SQLite database",
}
SUFFIX_BY_FORMAT = {CUSTOM: ".dump", DIRECTORY: ".dir", SQLITE: ".sqlite3"}
DEFAULT_POSTGRES_PORT = 5432
BY_IDENTIFIER = "system identifier"
BY_ADDRESS = "host:port"
HEADER_SIZE = 4096  # enough for any pg_dump archive's header and for telling the formats apart


@dataclass(frozen=True)
class Origin:
    """Which database of which server a backup comes from: a name alone does not tell the
    bird_app_db of one server from another's."""

    server: str  # host:port, or the SQLite file's absolute path
    database: str
    system_identifier: str = ""  # the cluster's pg_control_system() identifier, when the role could read it

    @classmethod
    def of(cls, source: str, database: str, system_identifier: str = "") -> "Origin":
        """The origin of a database given by its (masked) URL."""
        parts = urlsplit(source)
        if parts.scheme == "sqlite":
            return cls(os.path.abspath(unquote(source.removeprefix("sqlite:///"))), database, system_identifier)
        try:
            port = parts.port or DEFAULT_POSTGRES_PORT
        except ValueError:
            port = DEFAULT_POSTGRES_PORT
        host = parts.hostname or "localhost"
        return cls(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", database, system_identifier)

    def server_match(self, other: "Origin") -> str:
        """The rule by which both are one server (BY_IDENTIFIER, BY_ADDRESS), or "" when they are not.

        A server is who it is, not how it is spelt: Render's Internal and External URLs (or
        127.0.0.1 and localhost) name one cluster, whose system identifier says so. Where either side
        lacks one (an old manifest, SQLite, a role or server that could not tell), host:port decides."""
        if self.system_identifier and other.system_identifier:
            return BY_IDENTIFIER if self.system_identifier == other.system_identifier else ""
        return BY_ADDRESS if self.server == other.server else ""

    def is_same_database(self, other: "Origin") -> bool:
        return self.database == other.database and bool(self.server_match(other))

    def __str__(self) -> str:
        return f"{self.database} on {self.server}"


# How a manifest's error names the JSON type a field needs.
JSON_TYPES = {
    str: "a string", int: "a whole number", bool: "true or false", list: "a list",
    dict: "an object",
}


@dataclass
class Manifest:
    """What a backup held when it was made; stored beside it as <name>.json, after the archive itself."""

    database: str
    source: str
    engine: str
    format: str
    created_at: str
    size: int
    sha256: str  # of the bytes stored (encrypted ones, when encrypted)
    tables: dict[str, int]
    server_version: str = ""
    pg_dump_version: str = ""
    kind: str = KIND_BACKUP
    system_identifier: str = ""
    compression: str = ""  # of a pg_dump archive's data, from its header: none, gzip, lz4 or zstd
    encrypted: bool = False
    recipients: list[str] = field(default_factory=list)  # age public keys; never a secret key
    extra: dict = field(default_factory=dict)

    @property
    def origin(self) -> Origin:
        return Origin.of(self.source, self.database, self.system_identifier)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> "Manifest":
        try:
            data = json.loads(text)
            manifest = cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})
        except (ValueError, TypeError, AttributeError) as exc:
            raise unreadable_manifest(where, exc) from None
        wrong = manifest.mistyped_field()
        if wrong:
            expected = cls.__dataclass_fields__[wrong].type
            raise unreadable_manifest(where, f'"{wrong}" is not {JSON_TYPES[typing.get_origin(expected) or expected]}')
        return manifest

    def mistyped_field(self) -> str | None:
        """The first field whose JSON value has the wrong type ("tables": null, a list, a count that is text)."""
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, typing.get_origin(item.type) or item.type):
                return item.name
        if not all(isinstance(key, str) and type(count) is int for key, count in self.tables.items()):
            return "tables"
        return None


def unreadable_manifest(where: str, reason) -> DbOpsError:
    return DbOpsError(f"The manifest {where} is not readable ({reason}); move it away to restore without it.")


@contextlib.contextmanager
def read_errors(path: Path | str):
    """A file that cannot be read (permissions, say) is one line naming it; nothing was restored."""
    try:
        yield
    except OSError as exc:
        raise DbOpsError(f"Cannot read {exc.filename or path}: {exc.strerror}. Nothing was restored.") from None


def manifest_name(archive_name: str) -> str:
    return archive_name + ".json"


def utc_now() -> datetime:
    return datetime.now(UTC)


def backup_name(database: str, when: datetime, archive_format: str, kind: str = KIND_BACKUP) -> str:
    safety = "-pre-restore" if kind == KIND_SAFETY else ""
    return f"{database}-{when.strftime(TIMESTAMP_FORMAT)}{safety}{SUFFIX_BY_FORMAT[archive_format]}"


def unused_name(
    taken: set[str], database: str, archive_format: str, kind: str, suffix: str = ""
) -> tuple[datetime, str]:
    """The time and name of a new backup: now, or a microsecond later than a name (or its manifest's)
    already taken. Call it holding the location's lock, so that no other backup takes the name meanwhile."""
    when = utc_now()
    while (name := backup_name(database, when, archive_format, kind) + suffix) in taken or manifest_name(
        name
    ) in taken:
        when += timedelta(microseconds=1)
    return when, name


def parse_stamp(stamp: str) -> datetime:
    layout = TIMESTAMP_FORMAT if "." in stamp else SECONDS_TIMESTAMP_FORMAT
    return datetime.strptime(stamp, layout).replace(tzinfo=UTC)


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, or of a directory archive's files in name order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as stream:
            for block in iter(lambda s=stream: s.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, actual: str | None = None) -> None:
    if (actual or sha256_of(path)) != expected:
        raise DbOpsError(
            f"{path} no longer matches the SHA-256 in its manifest: the file is damaged or was changed. "
            "Nothing was restored."
        )


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def detect_format(path: Path) -> str:
    """The archive's format from its content, not its name (the tutorial names custom dumps .sql)."""
    if not path.exists():
        raise DbOpsError(f"{path} does not exist.")
    if path.is_dir():
        if (path / "toc.dat").is_file():
            return DIRECTORY
        raise DbOpsError(f"{path} is a folder but not a pg_dump directory archive (no toc.dat).")
    head = _head(path)
    if not head:
        raise DbOpsError(f"{path} is empty: it is not a backup.")
    if head.startswith(b"PGDMP"):
        return CUSTOM
    if head.startswith(b"SQLite format 3\0"):
        return SQLITE
    if len(head) >= 262 and head[257:262] == b"ustar":
        return TAR
    if _looks_like_sql(head):
        return SQL
    raise DbOpsError(
        f"{path} is not a backup this tool knows: not a pg_dump archive (custom, directory, tar), "
        "not a plain SQL dump and not a SQLite database."
    )


def _looks_like_sql(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    words = ("--", "SET ", "CREATE ", "BEGIN", "\\connect", "SELECT ", "INSERT ", "COPY ", "/*")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first.upper().startswith(tuple(word.upper() for word in words))


@dataclass(frozen=True)
class ArchiveHeader:
    """What a pg_dump archive's header says ("" where it does not say or cannot be read)."""

    dump_version: str = ""
    compression: str = ""  # none, gzip, lz4 or zstd

    @property
    def dump_major(self) -> int:
        return int(self.dump_version.split(".")[0]) if self.dump_version[:1].isdigit() else 0


def archive_header(path: Path, archive_format: str) -> ArchiveHeader:
    """The header of a custom, directory or tar archive: who wrote it and how its data is compressed."""
    try:
        if archive_format == CUSTOM:
            return parse_header(_head(path))
        if archive_format == DIRECTORY:
            return parse_header(_head(path / "toc.dat"))
        if archive_format == TAR:
            with tarfile.open(path) as archive:
                member = archive.extractfile("toc.dat")
                return parse_header(member.read(HEADER_SIZE)) if member else ArchiveHeader()
    except (OSError, tarfile.TarError, KeyError, struct.error, IndexError, UnicodeDecodeError):
        return ArchiveHeader()
    return ArchiveHeader()


def _head(path: Path, size: int = HEADER_SIZE) -> bytes:
    """The first bytes of a file, without reading the rest (an archive may be gigabytes)."""
    with path.open("rb") as stream:
        return stream.read(size)


# pg_compress_algorithm's values in PostgreSQL's common/compression.h, as archive version 1.15+ stores them.
COMPRESSION_ALGORITHMS = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}


def parse_header(header: bytes) -> ArchiveHeader:
    # Layout of pg_backup_archiver.c's WriteHead: magic, version, int and offset sizes, format,
    # compression, creation time, database name, server version, pg_dump version.
    if not header.startswith(b"PGDMP"):
        return ArchiveHeader()
    major, minor = header[5], header[6]
    position = 8 if (major, minor) > (1, 0) else 7
    int_size = header[position]
    position += 3
    version = (major, minor)

    def read_int(at):
        sign, value = header[at], int.from_bytes(header[at + 1 : at + 1 + int_size], "little")
        return (-value if sign else value), at + 1 + int_size

    def read_str(at):
        length, at = read_int(at)
        return ("" if length < 0 else header[at : at + length].decode()), at + max(length, 0)

    if version >= (1, 15):  # the algorithm, one byte
        compression = COMPRESSION_ALGORITHMS.get(header[position], "")
        position += 1
    elif version >= (1, 2):  # a zlib level, 0 for none
        level, position = read_int(position)
        compression = "none" if level == 0 else "gzip"
    else:
        compression = "gzip"
    if version >= (1, 4):
        for _ in range(7):
            _, position = read_int(position)
    _, position = read_str(position)
    if version < (1, 10):
        return ArchiveHeader(compression=compression)
    _, position = read_str(position)
    dump_version, _ = read_str(position)
    return ArchiveHeader(dump_version, compression)


@dataclass(frozen=True)
class BackupFile:
    name: str
    where: str  # the path or s3:// URL to show
    database: str
    created_at: datetime
    kind: str
    size: int
    manifest: Manifest | None
    local_path: Path | None = None
    manifest_problem: str = ""  # why the manifest beside it could not be read

    @property
    def origin(self) -> Origin | None:
        """None for a backup without a manifest: where it came from is unknown."""
        return self.manifest.origin if self.manifest else None

    def is_from(self, origin: Origin) -> bool:
        return self.origin is not None and self.origin.is_same_database(origin)

    def checksum_status(self) -> str:
        """Local files are hashed; objects are compared by size (reading them all would mean downloading)."""
        if self.manifest_problem:
            return "unreadable manifest"
        if self.manifest is None:
            return "no manifest"
        if self.local_path is None:
            return "size ok" if self.size == self.manifest.size else "SIZE MISMATCH"
        try:
            return "ok" if sha256_of(self.local_path) == self.manifest.sha256 else "MISMATCH"
        except OSError as exc:
            return f"unreadable ({exc.strerror})"


def list_backups(location, database: str | None = None) -> list[BackupFile]:
    """The backups at a storage location (newest first), optionally only those of one database."""
    sizes = location.sizes()
    found = []
    for name, size in sizes.items():
        match = NAME_PATTERN.match(name)
        if not match or name.endswith(".json") or name.startswith("."):
            continue
        if database is not None and match["database"] != database:
            continue
        created = parse_stamp(match["stamp"])
        kind = KIND_SAFETY if match["safety"] else KIND_BACKUP
        try:  # one damaged manifest must not hide, or stop, everything else in the folder
            manifest = read_manifest(location, name) if manifest_name(name) in sizes else None
            problem = ""
        except DbOpsError as exc:
            manifest, problem = None, str(exc)
        found.append(
            BackupFile(name, location.where(name), match["database"], created, kind, size, manifest,
                       location.local_path(name), problem)
        )
    return sorted(found, key=lambda backup: (backup.created_at, backup.name), reverse=True)


def manifests_without_archive(location, database: str | None = None) -> list[BackupFile]:
    """Manifests whose archive is gone (deleted by hand, or by a bucket's lifecycle rule): nothing to
    restore, but they would pass for backups. Newest first; one that cannot be read is left out."""
    sizes = location.sizes()
    lost = []
    for name in sizes:
        archive_name = name.removesuffix(".json")
        match = NAME_PATTERN.match(archive_name)
        if archive_name == name or not match or archive_name in sizes or name.startswith("."):
            continue
        if database is not None and match["database"] != database:
            continue
        try:
            manifest = read_manifest(location, archive_name)
        except DbOpsError:
            continue
        kind = KIND_SAFETY if match["safety"] else KIND_BACKUP
        lost.append(BackupFile(archive_name, location.where(name), match["database"], parse_stamp(match["stamp"]),
                               kind, 0, manifest))
    return sorted(lost, key=lambda backup: (backup.created_at, backup.name), reverse=True)


def read_manifest(location, name: str) -> Manifest | None:
    where = location.where(manifest_name(name))
    try:
        text = location.read_text(manifest_name(name))
    except OSError as exc:
        raise unreadable_manifest(where, exc.strerror) from None
    return None if text is None else Manifest.from_json(text, where)


def newest_backup(location, origin: Origin) -> BackupFile:
    """The newest backup (not safety backup) of the database origin names, from that server."""
    backups = [backup for backup in list_backups(location, origin.database) if backup.kind == KIND_BACKUP]
    for backup in backups:
        if backup.is_from(origin):
            return backup
    if backups:
        unknown = "no manifest: origin unknown"
        others = ", ".join(f"{backup.name} ({backup.origin or unknown})" for backup in backups)
        raise DbOpsError(
            f"No backup of {origin} in {location.url}, only of databases of that name from elsewhere: {others}. "
            f"To restore one of them, name its file, or add --latest-of {origin.database} for the newest."
        )
    raise DbOpsError(f"No backup of {origin.database!r} in {location.url}; name the file to restore.")


def newest_of_any_server(location, database: str) -> BackupFile:
    """The newest backup (not safety backup) of a database of that name, whichever server it came from:
    what a new instance restores, having no backups of its own."""
    for backup in list_backups(location, database):
        if backup.kind == KIND_BACKUP:
            return backup
    raise DbOpsError(f"No backup of a database named {database!r} in {location.url}.")


def delete_backup(location, name: str) -> None:
    """Delete an archive and its manifest (given a manifest's own name: that manifest alone)."""
    location.delete(name)
    if not name.endswith(".json"):
        location.delete(manifest_name(name))


def remove_archive(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def prepare_folder(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DbOpsError(
            f"Cannot use {folder} as the backup folder: it or a folder above it is a file. Point BACKUP_DIR "
            "(or --output) at a folder."
        ) from None
    except OSError as exc:
        raise DbOpsError(f"Cannot create the backup folder {folder}: {exc.strerror}.") from None


def partial_path(final: Path) -> Path:
    """A temporary name beside final, so the last rename stays on one file system."""
    return final.with_name(f".{final.name}.partial-{os.getpid()}")


def flush_private(partial: Path) -> None:
    """Make a finished archive private and flush it to disk, before its checksum is taken."""
    files = [p for p in partial.rglob("*") if p.is_file()] if partial.is_dir() else [partial]
    for file in files:
        file.chmod(0o600)
        with file.open("rb") as stream:
            os.fsync(stream.fileno())
    partial.chmod(0o700 if partial.is_dir() else 0o600)


def publish(partial: Path, final: Path) -> None:
    """Make a finished file (an archive, a manifest) visible under its final name: private, flushed,
    renamed atomically, the folder flushed too."""
    flush_private(partial)
    os.replace(partial, final)
    _fsync_folder(final.parent)


def _fsync_folder(folder: Path) -> None:
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.contextmanager
def exclusive_lock(folder: Path, database: str):
    """Refuse a second backup of the same database into the same folder while one runs.

    The lock file .DATABASE.lock is removed when the backup ends. Removing it is safe because a
    process that opened it before then finds, once it holds the lock, that the name now leads to
    another file or none, and starts over. A crash can leave one behind: harmless, used next time."""
    lock_path = folder / f".{database}.lock"
    while True:
        try:
            handle = lock_path.open("a")
        except OSError as exc:
            raise DbOpsError(f"Cannot write in the backup folder {folder}: {exc.strerror}.") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DbOpsError(
                f"Another backup of {database!r} into {folder} is running; try again when it ends."
            ) from None
        if _names_open_file(lock_path, handle):
            break
        handle.close()
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)  # while still holding the lock: see above
        handle.close()


def _names_open_file(path: Path, handle) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def unignored_in_git(path: Path) -> bool:
    """True when path lies in a git work tree and git does not ignore it (it could be pushed)."""
    try:
        inside = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"], cwd=path.parent, capture_output=True, text=True
        )
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return False
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=path.parent, capture_output=True)
    except OSError:
        return False
    return ignored.returncode == 1
