"""A PostgreSQL server of our own: initdb, start, stop, for local development and tests.

It listens on loopback TCP only (no Unix socket, whose path length limit a deep project folder
can exceed) and requires a password. PostgreSQL refuses to run as root, so when we are root the
server runs as an unprivileged system user.
"""

import contextlib
import fcntl
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import DbOpsError

SERVER_USER_WHEN_ROOT = "embedded_postgres"


@dataclass(frozen=True)
class LocalCluster:
    data_dir: Path
    bin_dir: Path
    port: int
    superuser: str = "postgres"
    host: str = "127.0.0.1"
    also_listen_on: tuple[str, ...] = ()

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def initialise(self, password: str) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        account = _server_account()
        if account:
            _allow_traversal(self.bin_dir, self.data_dir)
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
        with tempfile.NamedTemporaryFile("w", prefix="pwfile-", delete=False) as pwfile:
            pwfile.write(password + "\n")
        try:
            if account:
                os.chown(pwfile.name, account.pw_uid, account.pw_gid)
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser,
                f"--pwfile={pwfile.name}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            )
        finally:
            os.unlink(pwfile.name)

    def require_tls(self, cert_file: Path, key_file: Path) -> None:
        """Accept TLS connections only, as a hosted database does: ssl on with this certificate, and
        pg_hba.conf lines for TLS connections alone (from any address the server listens on)."""
        account = _server_account()
        for source, name in ((cert_file, "server.crt"), (key_file, "server.key")):
            copy = self.data_dir / name
            shutil.copyfile(source, copy)
            copy.chmod(0o600)  # the server refuses a key that others may read
            if account:
                os.chown(copy, account.pw_uid, account.pw_gid)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        (self.data_dir / "pg_hba.conf").write_text("hostssl all all all scram-sha-256\n")

    def start(self, timeout: int = 60) -> None:
        addresses = ",".join((self.host, *self.also_listen_on))
        server_options = f"-c listen_addresses={addresses} -p {self.port} -c unix_socket_directories="
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            server_options,
            "-w",
            "-t",
            str(timeout),
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def is_running(self) -> bool:
        status = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"],
            capture_output=True,
            **_run_as(),
        )
        return status.returncode == 0

    def _run(self, program: str, *args: str) -> None:
        argv = [str(self.bin_dir / program), *args]
        result = subprocess.run(argv, capture_output=True, text=True, **_run_as())
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise DbOpsError(f"{program} failed: {(result.stderr or result.stdout).strip()} {log}".strip())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _run_as() -> dict:
    """subprocess arguments that drop root for the server account (group too: root's group bits
    would otherwise deny the folders that we opened to others)."""
    account = _server_account()
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _server_account() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVER_USER_WHEN_ROOT)
    # Servers started at once (a test run's workers, on a fresh machine) would run useradd at once:
    # all but one fail, or each is left believing in a uid that another's write replaced. One creates
    # the account; the others wait, then find it.
    with open(Path(tempfile.gettempdir()) / "birdsite-server-account.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(SERVER_USER_WHEN_ROOT)
        _create_system_account(SERVER_USER_WHEN_ROOT)
        return pwd.getpwnam(SERVER_USER_WHEN_ROOT)


def _create_system_account(name: str) -> None:
    try:
        subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else exc.strerror
        raise DbOpsError(
            f"PostgreSQL does not run as root, and the account to run it as ({name}) could not be created: "
            f"{reason}. Create it (useradd --system {name}) or run as another user."
        ) from None


def _allow_traversal(*paths: Path) -> None:
    # The server user must reach the binaries and the data folder through folders root owns
    # (a clone under /root, say); add only the search bit, never read, to each parent.
    for path in paths:
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
