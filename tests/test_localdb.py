"""localdb: start, status, url, stop and start again, in a temporary folder (never the project's .pgdata/)."""

import os
import pwd
import socket
import stat
import struct
import subprocess
import sys
import time

import psutil
import psycopg2
import pytest

from dbops import localdb
from tests.helpers import PROJECT_DIR, child_env, manage


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "pgdata"
    yield folder
    if localdb.status(folder).running:
        localdb.stop(folder)


def run_localdb(action, data_dir, *options):
    result = manage("localdb", action, "--data-dir", str(data_dir), *options, env=child_env())
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_start_status_url_stop_and_start_again_keeps_the_data(data_dir):
    assert "is not set up yet" in run_localdb("status", data_dir)

    started = run_localdb("start", data_dir)
    url = run_localdb("url", data_dir, "--show-password").strip()
    port = url.split(":")[-1].split("/")[0]
    assert started.splitlines()[0] == f"Local PostgreSQL (data in {data_dir}) started on 127.0.0.1:{port}."
    assert f"DATABASE_URL=postgresql://postgres:****@127.0.0.1:{port}/birdsite" in started
    assert url.startswith("postgresql://postgres:") and url.endswith(f"@127.0.0.1:{port}/birdsite")
    settings_file = data_dir / "localdb.json"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    password = url.split(":")[2].split("@")[0]
    assert password in settings_file.read_text() and password not in started
    assert "is already running on" in run_localdb("start", data_dir)
    assert "is running on" in run_localdb("status", data_dir)

    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("SHOW listen_addresses")
        assert cursor.fetchone() == ("127.0.0.1",)
        cursor.execute("CREATE TABLE kept (word text); INSERT INTO kept VALUES ('still here')")
    conn.close()

    assert run_localdb("stop", data_dir).strip() == f"Local PostgreSQL (data in {data_dir}) stopped."
    assert "is already stopped" in run_localdb("stop", data_dir)
    assert "is stopped" in run_localdb("status", data_dir)
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(url, connect_timeout=2).close()

    run_localdb("start", data_dir)
    assert run_localdb("url", data_dir, "--show-password").strip() == url
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT word FROM kept")
        assert cursor.fetchall() == [("still here",)]
    conn.close()


def test_url_before_start_is_a_one_line_error(data_dir):
    result = manage("localdb", "url", "--data-dir", str(data_dir), env=child_env())
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"CommandError: No local PostgreSQL in {data_dir} yet: run `python manage.py localdb start` first."
    )


def test_a_port_taken_while_stopped_moves_the_server_and_says_so(data_dir):
    run_localdb("start", data_dir)
    run_localdb("stop", data_dir)
    old_url = run_localdb("url", data_dir).strip()
    old_port = int(old_url.split(":")[-1].split("/")[0])
    with socket.socket() as squatter:
        # As servers do: the stop may have left a connection in TIME_WAIT on the port (see below).
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        result = manage("localdb", "start", "--data-dir", str(data_dir), env=child_env())
    assert result.returncode == 0, result.stderr
    new_url = run_localdb("url", data_dir).strip()
    assert new_url != old_url
    assert f"Port {old_port} is taken by another program" in result.stderr
    assert f"DATABASE_URL={new_url}" in result.stdout


def test_connections_in_time_wait_do_not_move_the_port(data_dir):
    # A connection that the server closes first stays in TIME_WAIT on the server's port for a
    # minute. Ordinary disconnects do that now and then (the backend exits on the client's goodbye
    # and may close before the client does): the port must not look taken after a stop then.
    run_localdb("start", data_dir)
    url = run_localdb("url", data_dir, "--show-password").strip()
    port = int(url.split(":")[-1].split("/")[0])
    close_from_the_server_side(port)
    assert wait_for_time_wait(port), "no connection in TIME_WAIT to test with"
    run_localdb("stop", data_dir)

    result = manage("localdb", "start", "--data-dir", str(data_dir), env=child_env())
    assert result.returncode == 0, result.stderr
    assert "is taken" not in result.stderr
    assert run_localdb("url", data_dir, "--show-password").strip() == url


def close_from_the_server_side(port):
    """Send a startup packet of an unknown protocol version: the server answers FATAL and hangs up."""
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(struct.pack("!ii", 8, 0))
        while client.recv(4096):
            pass  # read all, so that closing sends a FIN, not a reset


def wait_for_time_wait(port, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = {c.status for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port}
        if psutil.CONN_TIME_WAIT in states:
            return True
        time.sleep(0.05)
    return False


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path):
    a_file = tmp_path / "pgdata"
    a_file.write_text("notes")
    for action in ("start", "status", "url"):
        result = manage("localdb", action, "--data-dir", str(a_file), env=child_env())
        assert result.returncode == 1
        assert result.stderr == (
            f"CommandError: {a_file} is a file: give --data-dir a folder (it is created when missing).\n"
        )
    assert a_file.read_text() == "notes"


# Run in a child: _server_account for the account name in argv[1], once a line arrives on stdin.
FIND_OR_CREATE_ACCOUNT = """
import sys
from dbops import cluster, errors
cluster.SERVER_USER_WHEN_ROOT = sys.argv[1]
sys.stdin.readline()
try:
    print(cluster._server_account().pw_uid)
except errors.DbOpsError as exc:
    print(exc)
"""


@pytest.fixture
def fresh_account_name():
    name = f"birdsite_t{os.getpid()}"
    yield name
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)


def find_or_create_account(name, processes, env=None):
    children = [
        subprocess.Popen(
            [sys.executable, "-c", FIND_OR_CREATE_ACCOUNT, name],
            cwd=PROJECT_DIR,
            env=env or child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for child in children:  # all started before any looks for the account
        child.stdin.write("go\n")
        child.stdin.flush()
    return [child.communicate(timeout=60) for child in children]


@pytest.mark.skipif(os.geteuid() != 0, reason="the server account is created only when running as root")
def test_servers_started_at_once_as_root_share_the_one_account_they_create(fresh_account_name):
    # What a test run's workers do on a fresh machine; before, all but one useradd failed, or a worker
    # ran initdb as a uid that another useradd's write had replaced ("could not look up effective user ID").
    results = find_or_create_account(fresh_account_name, processes=16)
    assert [stderr for _, stderr in results] == [""] * 16
    uid = pwd.getpwnam(fresh_account_name).pw_uid
    assert [stdout for stdout, _ in results] == [f"{uid}\n"] * 16


@pytest.mark.skipif(os.geteuid() != 0, reason="the server account is created only when running as root")
def test_a_server_account_that_cannot_be_created_is_one_line(fresh_account_name):
    [(stdout, stderr)] = find_or_create_account(fresh_account_name, 1, env=child_env(PATH="/nonexistent"))
    assert stderr == ""
    assert stdout == (
        f"PostgreSQL does not run as root, and the account to run it as ({fresh_account_name}) could not be "
        f"created: No such file or directory. Create it (useradd --system {fresh_account_name}) or run as "
        "another user.\n"
    )
