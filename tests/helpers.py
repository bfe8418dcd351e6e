import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent

# The birds the API lists after seed_birds (the tutorial's four).
TUTORIAL_BIRDS = [
    {"id": 1, "name": "Black-Capped Chickadee", "species": "Poecile Atricapillus"},
    {"id": 2, "name": "Grackle", "species": "Quiscalus Quiscula"},
    {"id": 3, "name": "Common Starling", "species": "Sturnus Vulgaris"},
    {"id": 4, "name": "Mourning Dove", "species": "Zenaida Macroura"},
]


# Variables of the developer's shell that would change what a child Django process sees.
PROJECT_VARIABLES = {
    "DATABASE_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "RENDER",
    "RENDER_EXTERNAL_HOSTNAME",
    "BACKUP_DIR",
    "PG_BIN_DIR",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "DJANGO_SUPERUSER_USERNAME",
    "DJANGO_SUPERUSER_EMAIL",
    "DJANGO_SUPERUSER_PASSWORD",
    "BIRDS_MAX_LIST",
    "CORS_ALLOWED_ORIGINS",
    "THROTTLE_ANON_RATE",
    "NUM_PROXIES",
    "REDIS_URL",
    "BACKUP_AGE_RECIPIENTS",
    "BACKUP_AGE_IDENTITY",
    "BACKUP_S3_TIMEOUT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "RENDER_API_KEY",
    "RENDER_API_URL",
    "RENDER_API_TIMEOUT",
}


def child_env(**overrides):
    """A clean environment for a child process: no project variables and no .env, DEBUG on as in
    development, plus overrides."""
    env = {key: value for key, value in os.environ.items() if key not in PROJECT_VARIABLES}
    env.update(ENV_FILE=os.devnull, DJANGO_SETTINGS_MODULE="birdsite.settings", PYTHONUNBUFFERED="1", DEBUG="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The suite starts Python some 450 times (manage.py, gunicorn). Where PYTHONDONTWRITEBYTECODE keeps
    # __pycache__ out of the work tree, each start would compile the project again (0.46 s a start
    # instead of 0.33); its bytecode goes into the venv instead.
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env["PYTHONPYCACHEPREFIX"] = str(Path(sys.prefix) / "pycache")
    env.update({key: str(value) for key, value in overrides.items()})
    return env


# git ls-files options for the work tree's files as a developer sees them: new files not yet added too.
WORK_TREE = ("--cached", "--others", "--exclude-standard")


def copy_project(destination: Path, *git_ls_files_options: str) -> Path:
    """Copy the project's files that `git ls-files` lists (with these options) into destination, as they are
    in the work tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", *git_ls_files_options], cwd=PROJECT_DIR, capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (PROJECT_DIR / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_DIR / name, destination / name)
    return destination


def manage(*args, env=None, timeout=120, input=None, cwd=PROJECT_DIR):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


# The capabilities that let root read and write whatever the permissions say.
PERMISSION_BYPASSING_CAPABILITIES = "-dac_override,-dac_read_search"


def manage_with_file_permissions(*args, env=None, timeout=120):
    """manage.py as a user whom file permissions bind: ourselves, or as root (CI) root without the
    capabilities that bypass them (setpriv), so that a folder without write permission is one."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv (util-linux): file permissions cannot be tested")
        prefix = [
            "setpriv",
            f"--inh-caps={PERMISSION_BYPASSING_CAPABILITIES}",
            f"--bounding-set={PERMISSION_BYPASSING_CAPABILITIES}",
            "--",
        ]
    return subprocess.run(
        [*prefix, sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
