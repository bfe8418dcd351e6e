"""Running client tools: argv lists only (no shell), secrets only in the environment, errors as one line."""

import os
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

from .errors import DbOpsError

STDERR_LINES_KEPT = 50


@dataclass(frozen=True)
class Command:
    """A tool invocation: argv without secrets and the environment additions that carry them."""

    argv: list[str]
    env: dict[str, str]

    @property
    def program(self) -> str:
        return os.path.basename(self.argv[0])


def run(
    command: Command,
    *,
    scrub: Callable[[str], str] = str,
    stdin: IO | None = None,
    stdout: IO | int | None = None,
    on_stderr_line: Callable[[str], None] | None = None,
) -> None:
    """Run command to completion; raise DbOpsError with its most telling stderr line when it fails.

    stderr is read line by line as the tool writes it, so progress (pg_dump --verbose) can be shown.
    """
    try:
        process = subprocess.Popen(
            command.argv,
            env={**os.environ, **command.env},
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise DbOpsError(f"Cannot run {command.program}: {exc.strerror}.") from exc
    recent = deque(maxlen=STDERR_LINES_KEPT)
    for line in process.stderr:
        recent.append(line.rstrip("\n"))
        if on_stderr_line:
            on_stderr_line(line.rstrip("\n"))
    process.wait()
    if process.returncode != 0:
        raise DbOpsError(scrub(f"{command.program} failed: {error_summary(recent)}"))


def capture(command: Command, *, scrub: Callable[[str], str] = str) -> str:
    """Run command and return its standard output."""
    result = subprocess.run(
        command.argv,
        env={**os.environ, **command.env},
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise DbOpsError(scrub(f"{command.program} failed: {error_summary(result.stderr.splitlines())}"))
    return result.stdout


def error_summary(lines: Sequence[str]) -> str:
    """The line that says what went wrong: the first error, not the last of a cascade."""
    meaningful = [line.strip() for line in lines if line.strip()]
    for marker in ("FATAL:", "ERROR:", "error:"):
        for line in meaningful:
            if marker in line:
                return _tidy(line)
    return _tidy(meaningful[-1]) if meaningful else "no error message"


def _tidy(line: str) -> str:
    for prefix in ("pg_dump: ", "pg_restore: ", "psql: ", "error: ", "from TOC entry"):
        line = line.removeprefix(prefix)
    return " ".join(line.split())
