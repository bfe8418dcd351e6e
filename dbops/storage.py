"""Where backups live: a local folder or S3-compatible object storage (dbops.s3), behind one small
interface that moves bytes. What the bytes mean (names, manifests, retention, the lock's rules) is the
catalog's (dbops.catalog).

BACKUP_DIR is a folder or s3://BUCKET/PREFIX. An archive appears under its final name only when it is
whole: a local file is renamed into place; an object becomes visible when its upload completes.
"""

import contextlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from . import archive, cleanup, locks
from .errors import DbOpsError
from .s3 import S3Bucket, mask_location


class BackupLocation(Protocol):
    """A flat namespace of backup files: names in, bytes out."""

    url: str  # how messages name the location (never with a secret)

    def where(self, name: str) -> str: ...

    def prepare(self) -> None: ...

    def sizes(self) -> dict[str, int]: ...

    def writer(self, name: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def reader(self, name: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def read_text(self, name: str) -> str | None: ...

    def write_text(self, name: str, text: str) -> None: ...

    def delete(self, name: str) -> None: ...

    def local_path(self, name: str) -> Path | None: ...

    def lock(self, name: str) -> contextlib.AbstractContextManager:
        """Hold name exclusively while the block runs (locks.Held when another run holds it)."""


class LocalFolder:
    """A folder on this machine: private (0700), files 0600, published by an atomic rename."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.url = str(self.folder)

    def where(self, name: str) -> str:
        return str(self.folder / name)

    def prepare(self) -> None:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise DbOpsError(
                f"Cannot use {self.folder} as the backup folder: it or a folder above it is a file. Point "
                "BACKUP_DIR (or --output) at a folder."
            ) from None
        except OSError as exc:
            raise DbOpsError(f"Cannot create the backup folder {self.folder}: {exc.strerror}.") from None
        cleanup.remove_stale(self.folder, ".*.partial-*")  # of backups killed (-9) before they could

    def sizes(self) -> dict[str, int]:
        if not self.folder.is_dir():
            return {}
        return {path.name: archive.size_of(path) for path in self.folder.iterdir() if not path.name.startswith(".")}

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[IO[bytes]]:
        final = self.folder / name
        archive.refuse_existing(final)
        partial = archive.partial_path(final)
        try:
            with archive.create_private(partial) as stream:
                yield stream
            archive.publish(partial, final)
        finally:
            archive.remove_archive(partial)

    @contextlib.contextmanager
    def reader(self, name: str) -> Iterator[IO[bytes]]:
        try:
            stream = (self.folder / name).open("rb")
        except OSError as exc:
            raise DbOpsError(f"Cannot read {self.folder / name}: {exc.strerror}.") from None
        with stream:
            yield stream

    def read_text(self, name: str) -> str | None:
        path = self.folder / name
        return path.read_text() if path.is_file() else None

    def write_text(self, name: str, text: str) -> None:
        with self.writer(name) as stream:
            stream.write(text.encode())

    def delete(self, name: str) -> None:
        try:
            archive.remove_archive(self.folder / name)
        except OSError as exc:
            raise DbOpsError(f"Cannot delete {self.folder / name}: {exc.strerror}.") from None

    def local_path(self, name: str) -> Path:
        return self.folder / name

    def lock(self, name: str) -> contextlib.AbstractContextManager:
        return locks.file_lock(self.folder / name)


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


LOCATIONS = {"": LocalFolder, "s3": S3Bucket.from_url}
# s3:/bucket, s3:bucket, s3//bucket: meant as object storage, but they would name a local folder (which
# Render wipes at the next deploy).
MISTYPED_S3 = re.compile(r"s3:(?!//)|s3//", re.IGNORECASE)


def refuse_mistyped_s3(text: str) -> None:
    if MISTYPED_S3.match(text):
        shown = "s3:****" if "@" in text else text  # key:secret@ may stand anywhere in a URL that does not parse
        raise DbOpsError(
            f"Malformed object storage URL {shown}: write s3://BUCKET/PREFIX (two slashes after s3:)."
        )


def location_for(spec: str | Path) -> BackupLocation:
    """The location that BACKUP_DIR names: a folder, or s3://BUCKET/PREFIX."""
    text = str(spec)
    refuse_mistyped_s3(text)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in LOCATIONS:
        raise DbOpsError(f"Unsupported backup location {mask_location(text)}: use a folder or s3://BUCKET/PREFIX.")
    return LOCATIONS[scheme](Path(text) if not scheme else text)


def backup_at(spec: str | Path) -> tuple[BackupLocation, str]:
    """The location and name of one backup given by path or s3://BUCKET/KEY."""
    text = str(spec)
    refuse_mistyped_s3(text)
    if "://" not in text:
        path = Path(text)
        return LocalFolder(path.parent), path.name
    location = location_for(text.rsplit("/", 1)[0] if text.count("/") > 2 else text)
    name = text.rsplit("/", 1)[1] if text.count("/") > 2 else ""
    if not name:
        raise DbOpsError(f"{mask_location(text)} names no backup: write s3://BUCKET/KEY.")
    return location, name
