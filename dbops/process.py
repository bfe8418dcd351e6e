"""Running client tools: argv lists only (no shell), secrets only in the environment, errors as one line.

Every tool runs in a process group of its own, so a Ctrl-C at the terminal reaches this process
only; whatever stops this process (Ctrl-C, SIGTERM, SIGHUP, an error) first stops the tools and waits
for them: no tool outlives the command. Tools create their files private (umask 077).

How this process stops is one policy, installed by manage.py before anything else: SIGTERM (docker
stop, timeout, a cron job's limit) and SIGHUP (a dropped ssh session) raise Stopped, a
KeyboardInterrupt, where the program is, exactly as Ctrl-C does; so each of them takes every path
written for Ctrl-C, and the command exits with 128 + the signal's number.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, NoReturn

from .errors import DbOpsError

STDERR_LINES_KEPT = 50
SECONDS_TO_STOP = 5  # after SIGTERM, before SIGKILL
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The stop signals this process has received, first first: what its exit code reports, and how a
# library that swallows the KeyboardInterrupt (pyrage's "EncryptError: KeyboardInterrupt") is seen through.
_received: list[int] = []


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM or SIGHUP), raised where the program was."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)


def install_stop_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP raise Stopped from now on; one that is ignored (nohup, a background
    job) stays ignored, as the one who started this process asked."""
    for signal_number in STOP_SIGNALS:
        if signal.getsignal(signal_number) is not signal.SIG_IGN:
            signal.signal(signal_number, _stop)


def _stop(signal_number: int, _frame) -> None:
    _received.append(signal_number)
    raise Stopped(signal_number)


def stop_exit_code() -> int:
    """128 + the first stop signal received, as shells report it; 130 (SIGINT) for a KeyboardInterrupt
    that no signal raised."""
    return 128 + (_received[0] if _received else signal.SIGINT)


def silence_standard_output() -> None:
    """Point standard output at /dev/null, its reader having gone: what is still buffered goes nowhere."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def end_quietly_after_broken_pipe() -> NoReturn:
    """Standard output's reader has gone: end quietly with 128 + SIGPIPE, as other command-line tools do."""
    silence_standard_output()
    raise SystemExit(128 + signal.SIGPIPE)


def stop_received() -> bool:
    """Whether a stop signal has arrived: an error raised meanwhile may be the interrupt that Python
    wrapped (an exception in __set_name__ becomes a RuntimeError) or a library swallowed."""
    return bool(_received)


def raise_if_stopped() -> None:
    """Raise Stopped again when a stop signal arrived: for a library error that wrapped the exception."""
    if _received:
        raise Stopped(_received[-1])


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
    process = start(
        command,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    recent = deque(maxlen=STDERR_LINES_KEPT)
    with stopped_on_error([process]), process.stderr:
        for line in process.stderr:
            recent.append(line.rstrip("\n"))
            if on_stderr_line:
                on_stderr_line(line.rstrip("\n"))
        process.wait()
    if process.returncode != 0:
        raise DbOpsError(scrub(f"{command.program} failed: {error_summary(recent)}"))


def capture(command: Command, *, scrub: Callable[[str], str] = str) -> str:
    """Run command and return its standard output."""
    process = start(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
    )
    with stopped_on_error([process]):
        output, errors = process.communicate()
    if process.returncode != 0:
        raise DbOpsError(scrub(f"{command.program} failed: {error_summary(errors.splitlines())}"))
    return output


def start(command: Command, **popen_options) -> subprocess.Popen:
    """Start a tool in a process group of its own, creating files private; see the module's docstring."""
    try:
        return subprocess.Popen(
            command.argv, env={**os.environ, **command.env}, process_group=0, umask=0o077, **popen_options
        )
    except OSError as exc:
        raise DbOpsError(f"Cannot run {command.program}: {exc.strerror}.") from exc


@contextlib.contextmanager
def stopped_on_error(processes: list[subprocess.Popen]):
    """Stop the processes (and their own children) when anything, Ctrl-C included, ends the block early."""
    try:
        yield
    except BaseException:
        stop(processes)
        raise


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each process group, as pg_ctl does, then SIGKILL what has not ended within a few seconds.

    A second Ctrl-C meanwhile waits: leaving a tool running is what this must never do."""
    with ctrl_c_deferred():
        running = [process for process in processes if process.poll() is None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=SECONDS_TO_STOP)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()


def _signal_group(process: subprocess.Popen, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal_number)


@contextlib.contextmanager
def ctrl_c_deferred():
    """Hold a stop signal (Ctrl-C, SIGTERM, SIGHUP) back until the block ends, then raise Stopped: for
    steps that must not stop half-way, such as swapping a database for an empty one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []

    def hold(signal_number, _frame):
        _received.append(signal_number)
        held.append(signal_number)

    previous = {
        number: signal.signal(number, hold) for number in STOP_SIGNALS if signal.getsignal(number) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if held:
        raise Stopped(held[0])


def start_thread(function, *args) -> threading.Thread:
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    return thread


def collect_lines(stream: IO[bytes], lines: deque, on_line: Callable[[str], None] | None = None) -> None:
    with stream:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if on_line:
                on_line(line)


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


class Running:
    """A started tool whose stderr is collected by a thread; finish() waits and raises on failure."""

    def __init__(self, command: Command, process: subprocess.Popen, scrub: Callable[[str], str], reader):
        self.command, self.process, self.scrub, self._reader = command, process, scrub, reader
        self.recent: deque = deque(maxlen=STDERR_LINES_KEPT)

    @property
    def stdin(self) -> IO[bytes]:
        return self.process.stdin

    @property
    def stdout(self) -> IO[bytes]:
        return self.process.stdout

    def finish(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(BrokenPipeError):
                    stream.close()
        self.process.wait()
        self._reader.join()
        if self.process.returncode != 0:
            raise DbOpsError(self.scrub(f"{self.command.program} failed: {error_summary(self.recent)}"))

    def stop(self) -> None:
        """End it without a verdict: the caller is failing for another reason (Ctrl-C included)."""
        stop([self.process])
        with contextlib.suppress(DbOpsError, BrokenPipeError):
            self.finish()


@contextlib.contextmanager
def spawned(
    command: Command,
    *,
    stdin: IO | int | None = None,
    stdout: IO | int | None = None,
    scrub: Callable[[str], str] = str,
    on_stderr_line: Callable[[str], None] | None = None,
):
    """Start command for the with block to talk to; it must succeed by the block's end, or is stopped."""
    process = start(
        command,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        stdout=subprocess.DEVNULL if stdout is None else stdout,
        stderr=subprocess.PIPE,
    )
    running = Running(command, process, scrub, None)
    running._reader = start_thread(collect_lines, process.stderr, running.recent, on_stderr_line)
    try:
        yield running
    except BaseException:
        running.stop()
        raise
    running.finish()

