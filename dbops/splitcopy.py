"""Dealing one restore's table data out to several sessions, so that even a single big table loads
on every core: pg_restore --jobs gives each table to one worker, and one COPY runs on one core.

pg_restore's data script (--section=data, plain SQL) is a series of statements and COPY blocks;
each block is "COPY name (columns) FROM stdin;", one line per row, then a line "\\.". In COPY's text
format a newline inside a value is written "\\n" and a backslash "\\\\", so a row is exactly one line and
a line "\\." can only be the end of a block. The splitter sends every session the COPY line and the
end line, and each of them a share of the rows, whole lines in chunks. Statements that set up a
session (SET, set_config, psql's backslash commands) go to every session; any other statement (a
sequence's setval, a large object) to the first only, in its order.
"""

from collections.abc import Callable, Sequence

CHUNK_SIZE = 1 << 18  # rows are dealt in chunks of about this many bytes: small enough to keep every session busy
END_OF_COPY = b"\\.\n"
SESSION_SETUP = (b"SET ", b"SELECT pg_catalog.set_config(", b"\\")


class TruncatedScript(ValueError):
    """The script ended inside a COPY block: its producer stopped early."""


class CopySplitter:
    """Feed it the script in pieces of any size; it writes each session's share through sinks."""

    def __init__(
        self,
        sinks: Sequence[Callable[[bytes], object]],
        keep_line: Callable[[bytes], bool] = lambda line: True,
        chunk_size: int = CHUNK_SIZE,
    ):
        self._sinks, self._keep_line, self._chunk_size = list(sinks), keep_line, chunk_size
        self._pending = bytearray()
        self._in_copy = False
        self._next_sink = 0

    def feed(self, data: bytes) -> None:
        self._pending += data
        while self._step():
            pass

    def close(self) -> None:
        """The script has ended: pass on its last line, and refuse a script cut short."""
        if self._in_copy:
            raise TruncatedScript("pg_restore's data script ended inside a table's rows")
        if self._pending:
            self._statement_line(bytes(self._pending))
            self._pending.clear()

    def _step(self) -> bool:
        """Pass on what can be passed on now; False when more input is needed."""
        if not self._in_copy:
            end = self._pending.find(b"\n")
            if end < 0:
                return False
            line = bytes(self._pending[: end + 1])
            del self._pending[: end + 1]
            self._statement_line(line)
            return True
        end = self._end_of_rows()
        rows = end if end >= 0 else len(self._pending)
        if rows > self._chunk_size:  # a chunk of whole lines; none yet while one row longer than that arrives
            cut = self._pending.rfind(b"\n", 0, self._chunk_size) + 1 or self._pending.find(b"\n", self._chunk_size) + 1
            return self._deal(cut)
        if end < 0:
            return False
        self._deal(end)
        del self._pending[: len(END_OF_COPY)]
        self._broadcast(END_OF_COPY)
        self._in_copy = False
        return True

    def _statement_line(self, line: bytes) -> None:
        if not self._keep_line(line):
            return
        if line.startswith(b"COPY ") and line.rstrip().endswith(b" FROM stdin;"):
            self._broadcast(line)
            self._in_copy = True
        elif line.startswith(SESSION_SETUP):
            self._broadcast(line)
        else:
            self._sinks[0](line)

    def _end_of_rows(self) -> int:
        """Where the line "\\." starts in the pending rows, or -1."""
        if self._pending.startswith(END_OF_COPY):
            return 0
        found = self._pending.find(b"\n" + END_OF_COPY)
        return found + 1 if found >= 0 else -1

    def _deal(self, size: int) -> bool:
        """The first size bytes of pending rows (whole lines) to the next session; False for none."""
        if not size:
            return False
        self._sinks[self._next_sink](bytes(self._pending[:size]))
        del self._pending[:size]
        self._next_sink = (self._next_sink + 1) % len(self._sinks)
        return True

    def _broadcast(self, line: bytes) -> None:
        for sink in self._sinks:
            sink(line)
