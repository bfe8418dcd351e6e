"""One run at a time per database and backup location: a flock on a local lock file, or a lock object
in a bucket written with a conditional put (S3's If-None-Match: *), which object storage honours.

A lock object says who holds it (host, process, since when). One that is stale can be taken over,
atomically (a put conditional on the stale object's ETag, so two runs cannot both take it): one older
than STALE_AFTER (no backup takes that long; a run killed with -9, or a container that Render stopped,
cannot remove its own), or one whose process on this host is gone (the next cron run on the same
machine need not wait). The holder's host clock decides the age: hosts are assumed to keep time.
"""

import contextlib
import fcntl
import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from .errors import DbOpsError

STALE_AFTER = timedelta(hours=6)
RELEASED = ""  # what a lock object holds once released by a key that may write but not delete


class Held(Exception):
    """Another run holds the lock; its holder where known."""

    def __init__(self, holder: "Holder | None" = None):
        super().__init__(str(holder or ""))
        self.holder = holder


@contextlib.contextmanager
def file_lock(lock_path: Path):
    """An exclusive flock on lock_path, which is removed when the block ends.

    Removing it is safe because a process that opened it before then finds, once it holds the lock,
    that the name now leads to another file or none, and starts over. A crash can leave one behind:
    harmless, used next time."""
    while True:
        try:
            handle = lock_path.open("a")
        except OSError as exc:
            raise DbOpsError(f"Cannot write in the backup folder {lock_path.parent}: {exc.strerror}.") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise Held() from None
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


class ConditionalStore(Protocol):
    """What a lock object needs of object storage."""

    def put_if(self, name: str, text: str, etag: str | None) -> str | None: ...

    def read_versioned(self, name: str) -> tuple[str, str] | None: ...

    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    since: str  # ISO 8601, UTC
    token: str

    @classmethod
    def this_process(cls) -> "Holder":
        return cls(socket.gethostname(), os.getpid(), datetime.now(UTC).isoformat(timespec="seconds"), uuid.uuid4().hex)

    @classmethod
    def from_json(cls, text: str) -> "Holder | None":
        """None for a released lock, or one this code did not write."""
        try:
            holder = cls(**json.loads(text))
            written = isinstance(holder.pid, int) and datetime.fromisoformat(holder.since).tzinfo is not None
        except (ValueError, TypeError):
            return None
        return holder if written else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def is_stale(self, now: datetime) -> bool:
        if now - datetime.fromisoformat(self.since) > STALE_AFTER:
            return True
        return self.host == socket.gethostname() and not _process_alive(self.pid)

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}, since {self.since}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def object_lock(store: ConditionalStore, name: str):
    """Hold the lock object `name` while the block runs; raise Held when another run holds it."""
    me = Holder.this_process()
    etag = _take(store, name, me)
    try:
        yield
    finally:
        _release(store, name, etag)


def _take(store: ConditionalStore, name: str, me: Holder) -> str:
    for _ in range(3):  # a lock released, or taken over, between two requests: look again
        etag = store.put_if(name, me.to_json(), None)
        if etag is not None:
            return etag
        current = store.read_versioned(name)
        if current is None:
            continue
        holder = Holder.from_json(current[0])
        if holder is not None and not holder.is_stale(datetime.now(UTC)):
            raise Held(holder)
        etag = store.put_if(name, me.to_json(), current[1])  # only while it is still that stale one
        if etag is not None:
            return etag
    raise Held()


def _release(store: ConditionalStore, name: str, etag: str) -> None:
    """Delete the lock object, unless another run took it over as stale meanwhile. A failure here must
    not hide how the run ended: a key that may not delete marks the object released instead, and a lock
    that could not be released at all is taken over later by the stale rule."""
    with contextlib.suppress(DbOpsError):
        current = store.read_versioned(name)
        if current is None or current[1] != etag:
            return
        try:
            store.delete(name)
        except DbOpsError:
            store.put_if(name, RELEASED, etag)
