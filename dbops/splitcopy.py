"""Dealing one restore's table data out to several sessions, so that even a single big table loads
on every core: pg_restore --jobs gives each table to one worker, and one COPY runs on one core.

pg_restore's data script (--section=data, plain SQL) is a series of statements and COPY blocks;
each block is "COPY name (columns) FROM stdin;", one line per row, then a line "\\.". In COPY's text
format a newline inside a value is written "\\n" and a backslash "\\\\", so a row is exactly one line and
a line "\\." can only be the end of a block. The splitter sends every session the COPY line and the
end line, and each of them a share of the rows, whole lines in chunks. Statements that set up a
session (SET, set_config, psql's backslash commands) go to every session.

Any other statement (a sequence's setval, a large object, the INSERTs of a dump made with --inserts)
may span lines, and a line inside one of its strings may read like a COPY line or a setting: from the
first such statement on, the rest of the script goes whole to the first session, as it came. pg_dump
writes it after every table's COPY block, so a COPY dump's rows are still dealt out.
"""

from collections.abc import Callable, Sequence

CHUNK_SIZE = 1 << 18  # rows are dealt in chunks of about this many bytes: small enough to keep every session busy
END_OF_COPY = b"\\.\n"
SESSION_SETUP = (b"SET ", b"SELECT pg_catalog.set_config(", b"\\")
COMMENT = b"--"


class TruncatedScript(ValueError):
    """The script ended inside a COPY block: its producer stopped early."""


class CopySplitter:
    """Feed it the script in pieces of any size; it writes each session's share through sinks.

    Each piece is scanned once: only a last, unfinished line is kept back for the next one."""

    def __init__(
        self,
        sinks: Sequence[Callable[[bytes], object]],
        keep_line: Callable[[bytes], bool] = lambda line: True,
        chunk_size: int = CHUNK_SIZE,
    ):
        self._sinks, self._keep_line, self._chunk_size = list(sinks), keep_line, chunk_size
        self._unfinished = b""  # always starts at the start of a line
        self._in_copy = False
        self._first_only = False  # once a statement that may span lines has come
        self._next_sink = 0

    def feed(self, data: bytes) -> None:
        script = self._unfinished + data if self._unfinished else bytes(data)
        position = 0
        while True:
            done = self._rows(script, position) if self._in_copy else self._statement(script, position)
            if done == position:
                break
            position = done
        self._unfinished = script[position:]

    def close(self) -> None:
        """The script has ended: pass on its last line, and refuse a script cut short."""
        if self._in_copy:
            raise TruncatedScript("pg_restore's data script ended inside a table's rows")
        if self._unfinished:
            self._statement_line(self._unfinished)
            self._unfinished = b""

    def _statement(self, script: bytes, position: int) -> int:
        """Pass on one whole line of statements; returns where the next starts."""
        end = script.find(b"\n", position)
        if end < 0:
            return position
        self._statement_line(script[position : end + 1])
        return end + 1

    def _rows(self, script: bytes, position: int) -> int:
        """Deal out the whole rows from position on, and end the block if its end is there."""
        end = _end_of_rows(script, position)
        rows_end = max(end if end >= 0 else script.rfind(b"\n", position) + 1, position)
        while rows_end - position > self._chunk_size:
            # Whole lines of about a chunk; a row longer than a chunk goes whole.
            cut = script.rfind(b"\n", position, position + self._chunk_size) + 1
            cut = cut or script.find(b"\n", position + self._chunk_size) + 1
            self._deal(script, position, cut)
            position = cut
        self._deal(script, position, rows_end)
        if end < 0:
            return rows_end
        self._broadcast(END_OF_COPY)
        self._in_copy = False
        return end + len(END_OF_COPY)

    def _statement_line(self, line: bytes) -> None:
        if not self._keep_line(line):
            return
        if self._first_only:
            self._sinks[0](line)
        elif line.startswith(b"COPY ") and line.rstrip().endswith(b" FROM stdin;"):
            self._broadcast(line)
            self._in_copy = True
        elif line.startswith(SESSION_SETUP):
            self._broadcast(line)
        else:
            if line.strip() and not line.startswith(COMMENT):
                self._first_only = True
            self._sinks[0](line)

    def _deal(self, script: bytes, start: int, end: int) -> None:
        """Whole lines of rows, script[start:end], to the next session."""
        if end > start:
            self._sinks[self._next_sink](memoryview(script)[start:end])
            self._next_sink = (self._next_sink + 1) % len(self._sinks)

    def _broadcast(self, line: bytes) -> None:
        for sink in self._sinks:
            sink(line)


def _end_of_rows(script: bytes, position: int) -> int:
    """Where the line "\\." starts, from position (the start of a line) on, or -1."""
    if script.startswith(END_OF_COPY, position):
        return position
    # Looking for one byte is several times faster than for several, and most pieces of rows hold
    # no backslash at all; the end's own backslash is the first or a later one.
    backslash = script.find(b"\\", position)
    if backslash < 0:
        return -1
    found = script.find(b"\n" + END_OF_COPY, max(backslash - 1, position))
    return found + 1 if found >= 0 else -1
