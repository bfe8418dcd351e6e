"""This project's settings plus django-dbbackup with its defaults, for bench/against_dbbackup.py.

A user who picks django-dbbackup adds it to their project, so it starts as this project does. It runs
in dbbackup's own venv (bench/.venv-dbbackup); the bench says which database (DATABASE_URL) and folder."""

import os

from birdsite.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "dbbackup"]  # noqa: F405
STORAGES = {
    **STORAGES,  # noqa: F405
    "dbbackup": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ["BENCH_DBBACKUP_DIR"]},
    },
}
