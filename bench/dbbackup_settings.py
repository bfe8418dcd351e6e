"""A bare Django project holding django-dbbackup with its defaults, for bench/against_dbbackup.py.

It runs in dbbackup's own venv (bench/.venv-dbbackup); the bench says which database and folder."""

import os

SECRET_KEY = os.environ.get("BENCH_SECRET_KEY", "")  # dbbackup signs nothing; Django wants one set
INSTALLED_APPS = ["dbbackup"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["BENCH_DATABASE"],
        "USER": os.environ["BENCH_USER"],
        "PASSWORD": os.environ["BENCH_PASSWORD"],
        "HOST": os.environ["BENCH_HOST"],
        "PORT": os.environ["BENCH_PORT"],
    }
}
STORAGES = {
    "dbbackup": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ["BENCH_DBBACKUP_DIR"]},
    }
}
USE_TZ = True
