#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import gc
import os
import sys
import traceback


def main():
    # Django's start-up builds some hundred thousand objects that live as long as the process, and next to
    # no garbage: collecting while it runs took a third of a command's start (0.41 against 0.28 s). The
    # last app to be ready turns the collector back on (birds/apps.py).
    gc.disable()
    # First of all, so that a SIGTERM or SIGHUP during Django's start-up is a Ctrl-C too (dbops.process).
    from dbops.process import (
        end_quietly_after_broken_pipe,
        install_stop_signals,
        silence_standard_output,
        stop_exit_code,
        stop_received,
    )

    install_stop_signals()
    try:
        run(sys.argv)
        # Now, so that a reader gone early (`| head -1`) shows as a BrokenPipeError handled below, not
        # in the interpreter's last flush as a traceback.
        sys.stdout.flush()
    except BrokenPipeError:
        # Standard output's reader has gone (`| head -1`): nothing more can be said there.
        end_quietly_after_broken_pipe()
    except (KeyboardInterrupt, Exception) as exc:
        # The project's commands say in their own line what state they leave; this is start-up, or
        # one of Django's commands. Python may have wrapped the interrupt (__set_name__: RuntimeError).
        if "--traceback" in sys.argv or not (isinstance(exc, KeyboardInterrupt) or stop_received()):
            raise
        sys.stderr.write(f"{interrupted_line(exc)}\n")
        sys.exit(stop_exit_code())
    except SystemExit:
        # A command's error is on standard error, with its exit code; what it had printed before may
        # find standard output closed too.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence_standard_output()
        raise


def run(argv):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "birdsite.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(argv)
        # The interpreter's last garbage collection at exit would walk every object Django loaded, to free
        # memory the exit frees anyway: about 50 ms of each command (a twentieth of a backup_db run).
        gc.freeze()
    except ImproperlyConfigured as exc:
        if "--traceback" in argv:
            raise
        # A setting read from the environment is wrong: say which, in one line, as commands do.
        sys.exit(f"ImproperlyConfigured: {exc}")


def interrupted_line(exc: BaseException) -> str:
    """Whether the interrupt came before any command ran (Django's start-up), which changes nothing."""
    base = sys.modules.get("django.core.management.base")
    execute = getattr(getattr(base, "BaseCommand", None), "execute", None)
    frames = [frame.f_code for frame, _ in traceback.walk_tb(exc.__traceback__)]
    if execute is not None and execute.__code__ in frames:
        return "Interrupted before the command finished."
    return "Interrupted while starting; nothing was changed."


if __name__ == "__main__":
    main()
