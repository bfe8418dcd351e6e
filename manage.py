#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import gc
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "birdsite.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
        # The interpreter's last garbage collection at exit would walk every object Django loaded, to free
        # memory the exit frees anyway: about 50 ms of each command (a twentieth of a backup_db run).
        gc.freeze()
    except ImproperlyConfigured as exc:
        if "--traceback" in sys.argv:
            raise
        # A setting read from the environment is wrong: say which, in one line, as commands do.
        sys.exit(f"ImproperlyConfigured: {exc}")


if __name__ == "__main__":
    main()
