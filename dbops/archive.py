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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .errors import DbOpsError

CUSTOM = "custom"
DIRECTORY = "directory"
TAR = "tar"
SQL = "sql"
SQLITE = "sqlite"

KIND_BACKUP = "backup"
KIND_SAFETY = "safety"

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_PATTERN = re.compile(r"^(?P<database>.+)-(?P<stamp>\d{8}T\d{6}Z)(?P<safety>-pre-restore)?(?P<suffix>\.\w+)$")
DESCRIPTIONS = {
    CUSTOM: "PostgreSQL custom archive",
    DIRECTORY: "PostgreSQL directory archive",
    TAR: "PostgreSQL tar archive",
    SQL: "plain SQL dump",
    SQLITE: "SQLite database",
}
SUFFIX_BY_FORMAT = {CUSTOM: ".dump", DIRECTORY: ".dir", SQLITE: ".sqlite3"}


@dataclass
class Manifest:
    """What a backup held when it was made; written beside it as <name>.json."""

    database: str
    source: str
    engine: str
    format: str
    created_at: str
    size: int
    sha256: str
    tables: dict[str, int]
    server_version: str = ""
    pg_dump_version: str = ""
    kind: str = KIND_BACKUP
    compression: str = ""  # of a pg_dump archive's data, from its header: none, gzip, lz4 or zstd
    extra: dict = field(default_factory=dict)

    def write(self, archive: Path) -> None:
        path = manifest_path(archive)
        temporary = path.with_name(f".{path.name}.partial")
        temporary.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        temporary.chmod(0o600)
        os.replace(temporary, path)

    @classmethod
    def read(cls, archive: Path) -> "Manifest | None":
        path = manifest_path(archive)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})
        except (ValueError, TypeError) as exc:
            raise DbOpsError(
                f"The manifest {path} is not readable ({exc}); move it away to restore without it."
            ) from exc


def manifest_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".json")


def utc_now() -> datetime:
    return datetime.now(UTC)


def backup_name(database: str, when: datetime, archive_format: str, kind: str = KIND_BACKUP) -> str:
    safety = "-pre-restore" if kind == KIND_SAFETY else ""
    return f"{database}-{when.strftime(TIMESTAMP_FORMAT)}{safety}{SUFFIX_BY_FORMAT[archive_format]}"


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
    with path.open("rb") as stream:
        head = stream.read(4096)
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
            return _parse_header(path.read_bytes()[:4096])
        if archive_format == DIRECTORY:
            return _parse_header((path / "toc.dat").read_bytes()[:4096])
        if archive_format == TAR:
            with tarfile.open(path) as archive:
                member = archive.extractfile("toc.dat")
                return _parse_header(member.read(4096)) if member else ArchiveHeader()
    except (OSError, tarfile.TarError, KeyError, struct.error, IndexError, UnicodeDecodeError):
        return ArchiveHeader()
    return ArchiveHeader()


# pg_compress_algorithm's values in PostgreSQL's common/compression.h, as archive version 1.15+ stores them.
COMPRESSION_ALGORITHMS = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}


def _parse_header(header: bytes) -> ArchiveHeader:
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
    path: Path
    database: str
    created_at: datetime
    kind: str
    manifest: Manifest | None

    @property
    def size(self) -> int:
        return size_of(self.path)

    def checksum_status(self) -> str:
        if self.manifest is None:
            return "no manifest"
        return "ok" if sha256_of(self.path) == self.manifest.sha256 else "MISMATCH"


def list_backups(folder: Path, database: str | None = None) -> list[BackupFile]:
    """The backups in folder (newest first), optionally only those of one database."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = NAME_PATTERN.match(path.name)
        if not match or path.name.endswith(".json") or path.name.startswith("."):
            continue
        if database is not None and match["database"] != database:
            continue
        created = datetime.strptime(match["stamp"], TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        kind = KIND_SAFETY if match["safety"] else KIND_BACKUP
        found.append(BackupFile(path, match["database"], created, kind, Manifest.read(path)))
    return sorted(found, key=lambda backup: (backup.created_at, backup.path.name), reverse=True)


def newest_backup(folder: Path, database: str) -> BackupFile:
    backups = [backup for backup in list_backups(folder, database) if backup.kind == KIND_BACKUP]
    if not backups:
        raise DbOpsError(f"No backup of {database!r} in {folder}; name the file to restore.")
    return backups[0]


def prune(folder: Path, database: str, keep: int, protect: Path) -> list[Path]:
    """Delete all but the newest `keep` backups of database (never `protect`); return what went."""
    backups = [backup for backup in list_backups(folder, database) if backup.kind == KIND_BACKUP]
    doomed = [backup.path for backup in backups[keep:] if backup.path != protect]
    for path in doomed:
        remove_archive(path)
        manifest_path(path).unlink(missing_ok=True)
    return doomed


def remove_archive(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def prepare_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def partial_path(final: Path) -> Path:
    """A temporary name beside final, so the last rename stays on one file system."""
    return final.with_name(f".{final.name}.partial-{os.getpid()}")


def publish(partial: Path, final: Path) -> None:
    """Make a finished archive visible under its final name: flushed, private, renamed atomically."""
    files = [p for p in partial.rglob("*") if p.is_file()] if partial.is_dir() else [partial]
    for file in files:
        file.chmod(0o600)
        with file.open("rb") as stream:
            os.fsync(stream.fileno())
    partial.chmod(0o700 if partial.is_dir() else 0o600)
    os.replace(partial, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.contextmanager
def exclusive_lock(folder: Path, database: str):
    """Refuse a second backup of the same database into the same folder while one runs."""
    lock_path = folder / f".{database}.lock"
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DbOpsError(
                f"Another backup of {database!r} into {folder} is running; try again when it ends."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
