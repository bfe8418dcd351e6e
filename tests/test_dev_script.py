"""dev.py's folder in RAM for the tests' temporary files: used, removed afterwards, and a killed run's
removed at the next; never where the shell chose TMPDIR."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dev
from dbops.cleanup import host_id


@pytest.fixture
def memory_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(dev, "MEMORY_FOLDER", tmp_path)
    monkeypatch.setattr(dev, "TESTS_TEMP_ROOM", 0)
    monkeypatch.delenv("TMPDIR", raising=False)
    return tmp_path


def ended_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_tests_get_a_folder_of_their_own_that_is_removed_afterwards(memory_folder):
    with dev.tests_temp_folder() as env:
        folder = Path(env["TMPDIR"])
        assert folder.parent == memory_folder and folder.is_dir()
        (folder / "cluster").mkdir()
    assert list(memory_folder.iterdir()) == []


def test_a_killed_runs_folder_goes_at_the_next_run_and_a_running_ones_stays(memory_folder):
    killed = memory_folder / f"{dev.TESTS_TEMP_PREFIX}p{ended_pid()}h{host_id()}-abc"
    running = memory_folder / f"{dev.TESTS_TEMP_PREFIX}p{os.getppid()}h{host_id()}-def"
    for folder in (killed, running):
        (folder / "data").mkdir(parents=True)
    with dev.tests_temp_folder():
        assert not killed.exists()
        assert running.exists()
    assert running.exists()


def test_a_tmpdir_set_in_the_shell_is_kept(memory_folder, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(memory_folder / "chosen"))
    with dev.tests_temp_folder() as env:
        assert env == {}
    assert list(memory_folder.iterdir()) == []


def test_without_room_in_ram_the_system_temp_folder_is_used(memory_folder, monkeypatch):
    monkeypatch.setattr(dev, "TESTS_TEMP_ROOM", 1 << 60)
    with dev.tests_temp_folder() as env:
        assert env == {}
