"""dbops.cleanup: what counts as a dead process's leftover, and the private spool folders."""

import os
import shutil
import stat
import subprocess
import sys

import pytest

from dbops import cleanup
from tests.helpers import PROJECT_DIR


@pytest.fixture
def dead_pid():
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def spool_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / cleanup.SPOOL_FOLDER_NAME


def test_only_a_tag_of_an_ended_process_of_this_machine_is_stale(dead_pid):
    host = cleanup.host_id()
    other_host = "000000" if host != "000000" else "ffffff"
    assert cleanup.left_by_dead_process(f".x.dump.partial-p{dead_pid}h{host}")
    assert not cleanup.left_by_dead_process(f".x.dump.partial-{cleanup.owner_tag()}")
    assert not cleanup.left_by_dead_process(f".x.dump.partial-p{dead_pid}h{other_host}")
    assert not cleanup.left_by_dead_process(f"verify_p{dead_pid}h{host}_{cleanup.owner_tag()}_0a1b2c3d")
    assert not cleanup.left_by_dead_process("verify_bird_app_db_0a1b2c3d")


def test_a_spool_folder_is_private_and_goes_however_the_block_ends(spool_home):
    with pytest.raises(KeyboardInterrupt), cleanup.spool_folder("download") as folder:
        (folder / "archive.dump").write_bytes(b"rows")
        modes = {stat.S_IMODE(path.stat().st_mode) for path in (spool_home, folder)}
        raise KeyboardInterrupt
    assert modes == {0o700}
    assert list(spool_home.iterdir()) == []


def test_a_command_removes_the_spool_folders_of_ended_processes_only(spool_home, dead_pid):
    spool_home.mkdir(parents=True)
    dead = spool_home / f"upload-p{dead_pid}h{cleanup.host_id()}-0a1b2c3d"
    alive = spool_home / f"upload-p{os.getppid()}h{cleanup.host_id()}-0a1b2c3d"
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "archive.dump").write_bytes(b"rows")
    with cleanup.command_scope():
        assert not dead.exists() and alive.exists()
    assert alive.exists()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv (util-linux) to run as a user id without a passwd entry",
)
def test_without_a_home_folder_spooling_is_one_line_and_a_command_still_runs():
    # A container's arbitrary user id, without HOME: nowhere private to spool into.
    script = (
        "from dbops import cleanup\n"
        "with cleanup.command_scope():\n"
        "    try:\n"
        "        cleanup.spool_root()\n"
        "    except cleanup.DbOpsError as exc:\n"
        "        print(exc)\n"
    )
    env = {key: value for key, value in os.environ.items() if key not in {"HOME", "XDG_CACHE_HOME"}}
    result = subprocess.run(
        ["setpriv", "--reuid=54321", "--regid=54321", "--clear-groups", sys.executable, "-c", script],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=True,
    )
    assert result.stdout == (
        "No folder to spool temporary files into: set XDG_CACHE_HOME (or HOME) to a private folder.\n"
    )
