"""The README's "Restore on a new machine", run as written: a clean copy of the project, a fresh venv made
by the section's own lines, a bucket of age-encrypted backups made by the cron job's command, and a new,
empty PostgreSQL server. Only the placeholders (the bucket, the AWS_* values, USER:PASSWORD@NEW-HOST)
are filled in; HOME is a folder of the test's own, so `~/birdsite-backup-key.txt` is read as written.

The venv is built once per test session, with pip's own cache."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dbdata import create_app_data, snapshot
from tests.helpers import PROJECT_DIR, PROJECT_VARIABLES, child_env, copy_project, manage
from tests.servers import embedded_server

SECTION = "### Restore on a new machine"
CLONE_LINE = "git clone https://github.com/YOU/birdsite && cd birdsite"


def section_commands() -> list[str]:
    """The `$ ` lines of the section's console block, in order."""
    text = (PROJECT_DIR / "README.md").read_text()
    section = text[text.index(SECTION) :]
    block = section[section.index("```console\n") + len("```console\n") :]
    block = block[: block.index("```")]
    return [line[2:] for line in block.splitlines() if line.startswith("$ ")]


def split_at_first_export(commands: list[str]) -> tuple[list[str], list[str]]:
    first = next(i for i, line in enumerate(commands) if line.startswith("export "))
    return commands[:first], commands[first:]


def new_machine_env(home: Path) -> dict[str, str]:
    """A shell as on a new laptop: none of the project's variables, no venv of ours on PATH, its own HOME,
    and pip's cache where the developer's pip keeps it (so the session's one install downloads little)."""
    ours = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if key not in PROJECT_VARIABLES | {"VIRTUAL_ENV"}}
    env["PATH"] = os.pathsep.join(folder for folder in env.get("PATH", "").split(os.pathsep) if folder != ours)
    cache = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    env.update(HOME=str(home), PIP_CACHE_DIR=cache.stdout.strip() or str(Path.home() / ".cache" / "pip"))
    return env


def bash(script: str, cwd: Path, env: dict[str, str], timeout: int, stdin: str = ""):
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="session")
def new_machine(tmp_path_factory):
    """A clean copy of the project (git clone's files, as they are now) with the venv that the section's
    lines before its first `export` made; and the environment of that machine's shell."""
    root = tmp_path_factory.mktemp("new-machine")
    home, clone = root / "home", root / "birdsite"
    home.mkdir()
    copy_project(clone)
    install, _ = split_at_first_export(section_commands())
    assert install[0] == CLONE_LINE, "the section no longer starts with the clone this fixture stands in for"
    env = new_machine_env(home)
    built = bash("\n".join(install[1:]), clone, env, timeout=900)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return clone, env


def fill_in(line: str, values: dict[str, str], bucket: str, new_url: str) -> str:
    line = line.replace("s3://birdsite-backups/", f"s3://{bucket}/")
    line = re.sub(r"\b(AWS_[A-Z_]+)=\.\.\.", lambda match: f"{match[1]}={values[match[1]]}", line)
    return line.replace("postgres://USER:PASSWORD@NEW-HOST/bird_app_db", new_url)


def test_restore_on_a_new_machine_works_as_written(new_machine, pg_server, s3_server, tmp_path):
    clone, env = new_machine
    bucket = s3_server.new_bucket()
    identity = Path(env["HOME"]) / "birdsite-backup-key.txt"
    keygen = manage("generate_backup_key", "--output", str(identity))
    recipient = (keygen.stdout + keygen.stderr).split("BACKUP_AGE_RECIPIENTS: ")[1].split()[0]

    pg_server.execute("DROP DATABASE IF EXISTS bird_app_db WITH (FORCE)")
    pg_server.execute("CREATE DATABASE bird_app_db")
    try:
        create_app_data(pg_server, "bird_app_db")
        # The Render cron job's command, with the public key only.
        cron = child_env(
            DATABASE_URL=pg_server.url("bird_app_db"), BACKUP_DIR=f"s3://{bucket}/nightly",
            BACKUP_AGE_RECIPIENTS=recipient, **s3_server.env(),
        )  # fmt: skip
        made = manage("backup_db", "--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12", env=cron)
        assert made.returncode == 0 and ".dump.age" in made.stdout, made.stderr
        original = snapshot(pg_server, "bird_app_db")
    finally:
        pg_server.execute("DROP DATABASE IF EXISTS bird_app_db WITH (FORCE)")

    with embedded_server() as new_instance:
        new_url = new_instance.url("bird_app_db", scheme="postgres")
        values = s3_server.env()
        _, restoring = split_at_first_export(section_commands())
        script = "\n".join([". .venv/bin/activate", *(fill_in(line, values, bucket, new_url) for line in restoring)])
        ran = bash(script, clone, env, timeout=300, stdin="yes\n")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "bird_app_db-" in ran.stdout and "backup, encrypted" in ran.stdout  # list_backups' table
        assert "The backup was taken from bird_app_db on 127.0.0.1:" in ran.stdout
        assert "Restored s3://" in ran.stdout and "(tables and row counts match the manifest)" in ran.stdout
        assert snapshot(new_instance, "bird_app_db") == original
