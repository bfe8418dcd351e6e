"""What a command leaves behind, in one place: its private spool folders, removed on every way it
exits, and the leftovers of processes that died without cleaning up (kill -9, a power cut).

Everything temporary that a command creates (spooled uploads and downloads, decrypted archives,
.partial files, scratch databases) carries its owner's tag, this machine's id and the process id;
the next command removes what belongs to a process of this machine that no longer runs. A process
of another machine is never presumed dead. Spool folders live in a private (0700) folder of the
user's (XDG_CACHE_HOME/birdsite-dbops, else ~/.cache/birdsite-dbops), never in the system's
shared temporary folder: they hold whole databases.
"""

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from .errors import DbOpsError

SPOOL_FOLDER_NAME = "birdsite-dbops"
TAG = re.compile(r"(?<![0-9a-z])p(?P<pid>\d+)h(?P<host>[0-9a-f]{6})(?![0-9a-z])")


def host_id() -> str:
    """Six hex digits naming this machine in the names of temporary things (databases included)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def owner_tag() -> str:
    """This process's tag, p<process id>h<host id>: fit for file and database names."""
    return f"p{os.getpid()}h{host_id()}"


def left_by_dead_process(name: str) -> bool:
    """Whether name carries the tag of a process of this machine that has ended."""
    matches = list(TAG.finditer(name))  # the last: a database's own name may hold something like a tag
    if not matches or matches[-1]["host"] != host_id():
        return False
    match = matches[-1]
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def spool_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME")
    if not cache:
        try:
            cache = Path.home() / ".cache"
        except RuntimeError:  # no HOME, and a user id without an entry (a container's arbitrary uid)
            raise DbOpsError(
                "No folder to spool temporary files into: set XDG_CACHE_HOME (or HOME) to a private folder."
            ) from None
    return Path(cache) / SPOOL_FOLDER_NAME


@contextlib.contextmanager
def spool_folder(purpose: str) -> Iterator[Path]:
    """A new private folder for this process's temporary files, removed when the block ends."""
    root = spool_root()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)
        folder = root / f"{purpose}-{owner_tag()}-{secrets.token_hex(4)}"
        folder.mkdir(mode=0o700)
    except OSError as exc:
        raise DbOpsError(f"Cannot create a private spool folder in {root}: {exc.strerror}.") from None
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale(folder: Path, pattern: str = "*") -> list[Path]:
    """Remove the entries of folder matching pattern that dead processes of this machine left."""
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.glob(pattern):
        if left_by_dead_process(path.name):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def remove_own(folder: Path) -> None:
    """Remove this process's own entries of folder: the backstop when a block could not clean up."""
    if not folder.is_dir():
        return
    for path in folder.glob(f"*-{owner_tag()}-*"):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def command_scope() -> Iterator[None]:
    """Around every command: stale spool folders go first, this process's own ones on every exit. A
    command that needs no spool runs without one."""
    try:
        root = spool_root()
    except DbOpsError:
        yield
        return
    remove_stale(root)
    try:
        yield
    finally:
        remove_own(root)
