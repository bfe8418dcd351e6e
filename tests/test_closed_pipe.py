"""Output into a pipe whose reader has gone (`manage.py localdb status | head -0`, `copy_db ... | head -2`
once head has its lines): the command ends quietly with 141 (128 + SIGPIPE) as other command-line tools
do, without a BrokenPipeError traceback, whether Python buffers its output (a user's shell) or not."""

import os
import subprocess
import sys

import pytest

from tests.helpers import PROJECT_DIR, child_env

BUFFERING = {"buffered": {}, "unbuffered": {"PYTHONUNBUFFERED": "1"}}


@pytest.fixture(params=BUFFERING, ids=list(BUFFERING))
def output_env(request):
    env = child_env(**BUFFERING[request.param])
    if request.param == "buffered":
        del env["PYTHONUNBUFFERED"]
    return env


def manage_into_a_closed_pipe(*args, env):
    reader, writer = os.pipe()
    os.close(reader)  # the reader has gone before the first line
    try:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, stdout=writer, stderr=subprocess.PIPE,
            text=True, timeout=120,
        )
    finally:
        os.close(writer)


def test_localdb_status_into_a_closed_pipe_ends_quietly(tmp_path, output_env):
    result = manage_into_a_closed_pipe("localdb", "status", "--data-dir", str(tmp_path / "pgdata"), env=output_env)
    assert (result.returncode, result.stderr) == (141, "")


def test_copy_db_into_a_closed_pipe_ends_quietly(pg_server, app_db, output_env):
    target = f"{app_db}_copy"
    try:
        result = manage_into_a_closed_pipe(
            "copy_db", "--from", pg_server.url(app_db), "--to", pg_server.url(target), "--noinput", env=output_env
        )
        assert (result.returncode, result.stderr) == (141, "")
    finally:
        pg_server.drop_database(target)
