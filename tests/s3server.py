"""A real S3-compatible server for the tests: moto's standalone server on a free loopback port."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import boto3

from dbops.cluster import free_port

REGION = "us-east-1"
ADMIN_KEY = ("AKIAIOSFODNN7EXAMPLE", "admin-secret")  # moto accepts any key until authentication starts


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def env(self, **overrides) -> dict[str, str]:
        """The standard variables every S3 tool reads."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            **overrides,
        }

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
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


@contextmanager
def moto_server(authenticated: bool = False):
    """moto's server in its own process. authenticated: after setting up a user with an access key and a
    bucket, every request is checked against moto's IAM, so wrong credentials are refused as by AWS."""
    port = free_port()
    env = dict(os.environ)
    if authenticated:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"  # create user, access key, policy and bucket; then check
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        access_key, secret_key = ADMIN_KEY
        if authenticated:
            access_key, secret_key = create_user_key(endpoint)
        yield S3Server(endpoint, access_key, secret_key)
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


def create_user_key(endpoint: str) -> tuple[str, str]:
    options = {"endpoint_url": endpoint, "region_name": REGION}
    admin = dict(zip(("aws_access_key_id", "aws_secret_access_key"), ADMIN_KEY, strict=True))
    iam = boto3.client("iam", **options, **admin)
    iam.create_user(UserName="backups")
    key = iam.create_access_key(UserName="backups")["AccessKey"]
    iam.put_user_policy(
        UserName="backups",
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}]}
        ),
    )
    boto3.client("s3", **options, **admin).create_bucket(Bucket="birds-authenticated")
    return key["AccessKeyId"], key["SecretAccessKey"]


def limited_key(server: S3Server, actions: list[str]) -> S3Server:
    """The same authenticated server seen through a new key that may do only these actions (e.g. no
    s3:DeleteObject), as a bucket-scoped token of R2 or B2 may."""
    iam = boto3.client(
        "iam", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
    )
    user = f"limited-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    statement = {"Effect": "Allow", "Action": actions, "Resource": "*"}
    iam.put_user_policy(
        UserName=user, PolicyName="s3", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )
    return S3Server(server.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
