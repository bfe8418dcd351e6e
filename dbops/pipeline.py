"""Commands run like a shell pipeline, without a shell: each one's output is the next one's input, through
pipes only (nothing on disk), with this process relaying, filtering or feeding a pipe where asked."""

import contextlib
import fcntl
import os
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import IO

from .errors import DbOpsError
from .process import (
    SECONDS_TO_STOP,
    STDERR_LINES_KEPT,
    Command,
    collect_lines,
    error_summary,
    start,
    start_thread,
    stop,
)
from .streams import copy_stream

PIPE_SIZE = 1 << 20  # bytes a relayed pipe holds (Linux's default, without privileges, allows 1 MiB)


def run_pipeline(
    commands: Sequence[Command],
    *,
    scrub: Callable[[str], str] = str,
    filter_lines: Callable[[Iterable[bytes]], Iterable[bytes]] | None = None,
    feed: Callable[[IO[bytes]], None] | None = None,
    ending: bytes | None = None,
) -> None:
    """Run commands like a shell pipeline, without a shell: each one's output is the next one's input.

    filter_lines, when given, rewrites the last pipe's lines in this process. feed, when given,
    writes the first command's input from a thread of this process; an error it raises is the
    pipeline's error. ending, when given, is written to the last command's input after everything
    before it has ended successfully, and only then: psql's COMMIT after a script that arrived whole.
    Nothing is kept on disk. When one command fails, the error is its own, not the broken pipe it
    causes upstream."""
    stages: list[tuple[Command, subprocess.Popen, deque, threading.Thread]] = []
    helpers: list[threading.Thread] = []
    feed_errors: list[BaseException] = []
    relay_errors: list[Exception] = []
    upstream = None  # the previous command's standard output
    try:
        for position, command in enumerate(commands):
            is_last = position == len(commands) - 1
            relayed = is_last and (filter_lines is not None or ending is not None) and upstream is not None
            fed = position == 0 and feed is not None
            stdin = subprocess.PIPE if relayed or fed else (upstream or subprocess.DEVNULL)
            stdout = subprocess.DEVNULL if is_last else subprocess.PIPE
            process = start(command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
            if fed:
                helpers.append(start_thread(_feed, feed, process.stdin, feed_errors))
            if relayed:
                last_words = _ending_once_succeeded(ending, [stage[1] for stage in stages], list(helpers), feed_errors)
                helpers.append(start_thread(_relay, upstream, process.stdin, filter_lines, relay_errors, last_words))
            elif upstream is not None:
                upstream.close()  # the next command holds the only read end, so a failure reaches upstream
            upstream = process.stdout
            recent = deque(maxlen=STDERR_LINES_KEPT)
            stages.append((command, process, recent, start_thread(collect_lines, process.stderr, recent)))
        _wait_for(stages, helpers)
    except BaseException:
        # One did not start, or Ctrl-C: stop the others.
        _stop_pipeline(upstream, [process for _, process, _, _ in stages], helpers)
        raise
    if feed_errors:
        raise feed_errors[0]
    failure = _first_failure(commands, stages, relay_errors)
    if failure:
        raise DbOpsError(scrub(failure))



def _ending_once_succeeded(
    ending: bytes | None, before: list[subprocess.Popen], fed_by: list[threading.Thread], feed_errors: list
) -> Callable[[], bytes | None]:
    """For the relay: ending, once the feeding threads and every command before the last have ended well; else None."""

    def ending_once_upstream_succeeded() -> bytes | None:
        for helper in fed_by:
            helper.join()
        succeeded = not feed_errors and all(process.wait() == 0 for process in before)
        return ending if succeeded else None

    return ending_once_upstream_succeeded



def _wait_for(stages: list[tuple[Command, subprocess.Popen, deque, threading.Thread]], helpers: list[threading.Thread]):
    for _, process, _, reader in stages:
        process.wait()
        reader.join()
    for helper in helpers:
        helper.join()



def _stop_pipeline(upstream: IO[bytes] | None, processes: list[subprocess.Popen], helpers: list[threading.Thread]):
    if upstream is not None:
        upstream.close()
    stop(processes)
    for helper in helpers:  # its pipes end with the tools; let it finish before this process does
        helper.join(timeout=SECONDS_TO_STOP)



def _first_failure(commands: Sequence[Command], stages: list, relay_errors: list[Exception]) -> str:
    """The failure that caused the others ("" if none): not the broken pipe that one command's end makes upstream."""
    failures = [
        f"{command.program} failed: {error_summary(recent)}"
        for command, process, recent, _ in stages
        if process.returncode != 0
    ]
    failures += [f"passing {commands[-2].program}'s output on failed: {exc}" for exc in relay_errors]
    if not failures:
        return ""
    consequences = ("Broken pipe", "could not write to output file")
    causes = [failure for failure in failures if not any(text in failure for text in consequences)]
    return (causes or failures)[0]



def _feed(feed: Callable[[IO[bytes]], None], sink: IO[bytes], errors: list[BaseException]) -> None:
    try:
        with sink:
            feed(sink)
    except BrokenPipeError:
        pass  # the command stopped reading; its own error says why
    except BaseException as exc:  # handed to the pipeline's thread, which raises it
        errors.append(exc)



def _relay(
    source: IO[bytes],
    sink: IO[bytes],
    filter_lines: Callable[[Iterable[bytes]], Iterable[bytes]] | None,
    errors: list,
    ending: Callable[[], bytes | None],
) -> None:
    try:
        # Inside the try: a stop that comes at once closes source before this thread has opened it.
        with source:
            if filter_lines is None:
                _splice_all(source, sink)
            else:
                sink.writelines(filter_lines(source))
            if (last_words := ending()) is not None:
                sink.write(last_words)
    except BrokenPipeError:
        pass  # the consumer stopped; its own error says why
    except (OSError, ValueError) as exc:  # a pipe closed under it: never end with half a script unsaid
        errors.append(exc)
    finally:
        with contextlib.suppress(OSError, ValueError):
            sink.close()



def enlarge_pipe(pipe: IO[bytes]) -> None:
    """A larger pipe means fewer reads, writes and switches between the processes at its ends; where
    the system cannot (not Linux), the default one works too."""
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def _splice_all(source: IO[bytes], sink: IO[bytes]) -> None:
    """Move everything from one pipe to the other inside the kernel, where the system can (Linux): a
    restore's data then never passes through this process's memory."""
    enlarge_pipe(sink)
    if not hasattr(os, "splice"):
        copy_stream(source, sink)
        return
    while os.splice(source.fileno(), sink.fileno(), PIPE_SIZE):
        pass

