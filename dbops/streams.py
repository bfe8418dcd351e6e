"""Byte streams that a backup passes through: hashed as they go, teed to a checker, handed between threads.

Everything is read and written in blocks of BLOCK_SIZE, so memory stays bounded whatever the archive's size.
"""

import hashlib
import queue
from collections.abc import Callable
from pathlib import Path
from typing import IO

BLOCK_SIZE = 1 << 20


class HashingWriter:
    """Counts and hashes what goes through to sink: the stored bytes' SHA-256 without reading them again."""

    def __init__(self, sink: IO[bytes]):
        self.sink = sink
        self.size = 0
        self._digest = hashlib.sha256()

    def write(self, data) -> int:
        self._digest.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        self.sink.flush()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class HashingReader:
    """Counts and hashes what is read from source."""

    def __init__(self, source: IO[bytes]):
        self.source = source
        self.size = 0
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(BLOCK_SIZE if size is None or size < 0 else size)
        self._digest.update(data)
        self.size += len(data)
        return data

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class TeeReader:
    """Reads source and gives a copy of every block to tee (a checker's stdin), as `tee` does.

    A tee that stops reading (the checker failed) is dropped: its own exit status says why."""

    def __init__(self, source: IO[bytes], tee: IO[bytes]):
        self.source = source
        self.tee: IO[bytes] | None = tee

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(BLOCK_SIZE if size is None or size < 0 else size)
        if self.tee is not None and data:
            try:
                self.tee.write(data)
            except BrokenPipeError:
                self.tee = None
        return data


def feed_when_whole(path: Path, sink: IO[bytes], verify: Callable[[str], None]) -> None:
    """Write the file to sink while hashing it, holding its last block back until the whole file's
    SHA-256 is known: a consumer that needs every byte (pg_restore finishing its one transaction) can
    never finish on a file that does not match, and the file is read once."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        held = source.read(BLOCK_SIZE)
        digest.update(held)
        while block := source.read(BLOCK_SIZE):
            digest.update(block)
            sink.write(held)
            held = block
    verify(digest.hexdigest())  # raises when the file is not what it should be
    sink.write(held)


def copy_stream(source: IO[bytes], sink: IO[bytes]) -> None:
    while block := source.read(BLOCK_SIZE):
        sink.write(block)


class ByteChannel:
    """A bounded hand-over from a writing thread to a reading one (an uploader that pulls with read()).

    The writer ends with close() (the reader sees the end) or fail() (the reader gets an error instead of a
    short stream, so a half-written archive is never taken for a whole one)."""

    def __init__(self, blocks_in_flight: int = 4):
        self._blocks: queue.Queue = queue.Queue(maxsize=blocks_in_flight)
        self._pending = b""
        self._ended = False
        self._reader_gone: str | None = None

    # --- the writing side ---
    def write(self, data) -> int:
        if data:
            self._put(bytes(data))
        return len(data)

    def _put(self, item) -> None:
        while True:
            if self._reader_gone is not None:
                raise ChannelBroken(self._reader_gone)
            try:
                self._blocks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def flush(self) -> None:
        """Nothing is buffered on this side."""

    def close(self) -> None:
        self._put(None)

    def fail(self, reason: str) -> None:
        if self._reader_gone is None:
            self._put(ChannelBroken(reason))

    # --- the reading side ---
    def abandon(self, reason: str) -> None:
        """The reader stopped (its upload failed): the writer's next write raises instead of waiting."""
        self._reader_gone = reason

    def read(self, size: int = -1) -> bytes:
        wanted = BLOCK_SIZE if size is None or size < 0 else size
        parts, have = [self._pending] if self._pending else [], len(self._pending)
        while have < wanted and not self._ended:
            block = self._blocks.get()
            if isinstance(block, ChannelBroken):
                raise block
            if block is None:
                self._ended = True
            else:
                parts.append(block)
                have += len(block)
        data = b"".join(parts)  # one copy, not one per block
        self._pending = data[wanted:]
        return data[:wanted] if len(data) > wanted else data


class ChannelBroken(OSError):
    """The writing side failed: what was read so far is not a whole stream."""
