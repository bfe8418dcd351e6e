"""Running client tools: argv lists only (no shell), secrets only in the environment, errors as one line."""

import contextlib
import os
import subprocess
import threading
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


def run_pipeline(
    commands: Sequence[Command],
    *,
    scrub: Callable[[str], str] = str,
    keep_line: Callable[[bytes], bool] | None = None,
    feed: Callable[[IO[bytes]], None] | None = None,
) -> None:
    """Run commands like a shell pipeline, without a shell: each one's output is the next one's input.

    keep_line, when given, filters the last pipe line by line in this process. feed, when given,
    writes the first command's input from a thread of this process; an error it raises is the
    pipeline's error. Nothing is kept on disk. When one command fails, the error is its own, not the
    broken pipe it causes upstream.
    """
    stages: list[tuple[Command, subprocess.Popen, deque, threading.Thread]] = []
    helpers: list[threading.Thread] = []
    feed_errors: list[BaseException] = []
    upstream = None  # the previous command's standard output
    try:
        for position, command in enumerate(commands):
            is_last = position == len(commands) - 1
            relayed = is_last and keep_line is not None and upstream is not None
            fed = position == 0 and feed is not None
            try:
                process = subprocess.Popen(
                    command.argv,
                    env={**os.environ, **command.env},
                    stdin=subprocess.PIPE if relayed or fed else (upstream or subprocess.DEVNULL),
                    stdout=subprocess.DEVNULL if is_last else subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            except OSError as exc:
                raise DbOpsError(f"Cannot run {command.program}: {exc.strerror}.") from exc
            if fed:
                helpers.append(_start_thread(_feed, feed, process.stdin, feed_errors))
            if relayed:
                helpers.append(_start_thread(_relay, upstream, process.stdin, keep_line))
            elif upstream is not None:
                upstream.close()  # the next command holds the only read end, so a failure reaches upstream
            upstream = process.stdout
            recent = deque(maxlen=STDERR_LINES_KEPT)
            stages.append((command, process, recent, _start_thread(_collect_lines, process.stderr, recent)))
    finally:
        if len(stages) < len(commands):  # one did not start: stop the others
            if upstream is not None:
                upstream.close()
            for _, process, _, _ in stages:
                process.kill()
        for _, process, _, reader in stages:
            process.wait()
            reader.join()
        for helper in helpers:
            helper.join()
    if feed_errors:
        raise feed_errors[0]
    failures = [
        f"{command.program} failed: {error_summary(recent)}"
        for command, process, recent, _ in stages
        if process.returncode != 0
    ]
    if failures:
        consequences = ("Broken pipe", "could not write to output file")
        causes = [failure for failure in failures if not any(text in failure for text in consequences)]
        raise DbOpsError(scrub((causes or failures)[0]))


def _start_thread(function, *args) -> threading.Thread:
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    return thread


def _feed(feed: Callable[[IO[bytes]], None], sink: IO[bytes], errors: list[BaseException]) -> None:
    try:
        with sink:
            feed(sink)
    except BrokenPipeError:
        pass  # the command stopped reading; its own error says why
    except BaseException as exc:  # handed to the pipeline's thread, which raises it
        errors.append(exc)


def _collect_lines(stream: IO[bytes], lines: deque, on_line: Callable[[str], None] | None = None) -> None:
    with stream:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if on_line:
                on_line(line)


def _relay(source: IO[bytes], sink: IO[bytes], keep_line: Callable[[bytes], bool]) -> None:
    with source:
        try:
            sink.writelines(line for line in source if keep_line(line))
        except BrokenPipeError:
            pass  # the consumer stopped; its own error says why
        finally:
            with contextlib.suppress(BrokenPipeError):
                sink.close()


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
        """End it without a verdict: the caller is failing for another reason."""
        self.process.kill()
        with contextlib.suppress(DbOpsError):
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
    """Start command for the with block to talk to; it must succeed by the block's end, or is killed."""
    try:
        process = subprocess.Popen(
            command.argv,
            env={**os.environ, **command.env},
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.DEVNULL if stdout is None else stdout,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise DbOpsError(f"Cannot run {command.program}: {exc.strerror}.") from exc
    running = Running(command, process, scrub, None)
    running._reader = _start_thread(_collect_lines, process.stderr, running.recent, on_stderr_line)
    try:
        yield running
    except BaseException:
        running.stop()
        raise
    running.finish()

