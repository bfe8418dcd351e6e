"""dbops.cleanup: what counts as a dead process's leftover, and the private spool folders."""

import os
import stat
import subprocess

import pytest

from dbops import cleanup


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
