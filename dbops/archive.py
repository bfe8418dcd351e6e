"""An archive file itself, whatever the engine and wherever it is stored: its format (from its content),
a pg_dump archive's header, its checksum and size, and publishing a finished one on this machine
(private, flushed, renamed into place)."""

import contextlib
import hashlib
import os
import shutil
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import cleanup
from .errors import DbOpsError

CUSTOM = "custom"
DIRECTORY = "directory"
TAR = "tar"
SQL = "sql"
SQLITE = "sqlite"

DESCRIPTIONS = {
    CUSTOM: "PostgreSQL custom archive",
    DIRECTORY: "PostgreSQL directory archive",
    TAR: "PostgreSQL tar archive",
    SQL: "plain SQL dump",
    SQLITE: "SQLite database",
}
HEADER_SIZE = 4096  # enough for any pg_dump archive's header and for telling the formats apart


@contextlib.contextmanager
def read_errors(path: Path | str):
    """A file that cannot be read (permissions, say) is one line naming it; nothing was restored."""
    try:
        yield
    except OSError as exc:
        raise DbOpsError(f"Cannot read {exc.filename or path}: {exc.strerror}. Nothing was restored.") from None


def archive_files(path: Path) -> list[Path]:
    """The file, or a directory archive's files in name order. Hidden ones are not pg_dump's: macOS's
    Finder writes .DS_Store (and ._ files on other disks) into a folder it has shown."""
    if not path.is_dir():
        return [path]
    files = (file for file in path.rglob("*") if file.is_file())
    return sorted(file for file in files if not any(part.startswith(".") for part in file.relative_to(path).parts))


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, or of a directory archive's files in name order."""
    digest = hashlib.sha256()
    for file in archive_files(path):
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as stream:
            for block in iter(lambda s=stream: s.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, actual: str | None = None) -> None:
    if (actual or sha256_of(path)) != expected:
        raise sha256_mismatch(str(path), "the file")


def sha256_mismatch(where: str, it: str = "it") -> DbOpsError:
    return DbOpsError(
        f"{where} no longer matches the SHA-256 in its manifest: {it} is damaged or was changed. Nothing was restored."
    )


def size_of(path: Path) -> int:
    return sum(file.stat().st_size for file in archive_files(path))


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
    # Not strict UTF-8: a dump is in its database's encoding (LATIN1, say), and the head may end
    # inside a character. What tells SQL from a binary file is how its first line starts.
    text = head.decode("utf-8", errors="replace")
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


def remove_archive(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def create_private(path: Path) -> IO[bytes]:
    """A new file, readable by this user alone from its first byte (whatever the umask)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def refuse_existing(final: Path) -> None:
    """An --output (or the manifest that goes beside it) is never overwritten."""
    if final.exists():
        raise DbOpsError(f"{final} already exists; choose another --output.")


def partial_path(final: Path) -> Path:
    """A temporary name beside final, so the last rename stays on one file system; it carries the owner's
    tag, so the next backup removes it if its process was killed before it could."""
    return final.with_name(f".{final.name}.partial-{cleanup.owner_tag()}")


def flush_private(partial: Path) -> None:
    """Make a finished archive private and flush it to disk, before its checksum is taken."""
    for file in archive_files(partial):
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
