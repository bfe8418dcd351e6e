"""Object storage as a backup location: a prefix in an S3-compatible bucket, driven by boto3.

boto3 reads the standard AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL (R2, B2, MinIO)
and AWS_DEFAULT_REGION itself, so no secret passes through this code. An object is spooled to a
private local file (in cleanup's spool folder, never the shared temporary folder), then uploaded in
parts that become visible only when the upload completes (a failed upload is aborted).
"""

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from typing import IO
from urllib.parse import urlsplit

from . import archive, cleanup, locks
from .errors import DbOpsError

S3_TIMEOUT_DEFAULT = 20  # seconds to connect, and to wait for an answer, before a request is retried
S3_ATTEMPTS = 3
# Multipart upload parts; S3 allows 10,000 parts, so objects up to about 80 GB.
S3_PART_SIZE = 8 << 20
S3_UPLOAD_THREADS = 2
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# What a conditional request answers when its condition does not hold (or, for If-Match, the object is gone).
CONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404"}


class S3Bucket:
    """A prefix in an S3-compatible bucket (AWS S3, Cloudflare R2, Backblaze B2, MinIO)."""

    def __init__(self, bucket: str, prefix: str):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    @classmethod
    def from_url(cls, url: str) -> "S3Bucket":
        return cls(*split_s3_url(url))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def where(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    @functools.cached_property
    def client(self):
        import boto3  # imported on first use: commands that never touch object storage stay quick to start
        from botocore.config import Config

        timeout = s3_timeout()
        config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"mode": "standard", "max_attempts": S3_ATTEMPTS},
            request_checksum_calculation="when_required",
        )
        with self.errors():
            return boto3.session.Session().client("s3", config=config)

    def transfer_config(self):
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=S3_PART_SIZE,
            multipart_chunksize=S3_PART_SIZE,
            max_concurrency=S3_UPLOAD_THREADS,
            use_threads=True,
            preferred_transfer_client="classic",
        )

    def prepare(self) -> None:
        """Fail early, before a database is dumped, when the bucket or the credentials are wrong.

        A listing, not HEAD: its error says which (HEAD's answer has no body, so only "403")."""
        with self.errors():
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key(""), MaxKeys=1)

    def sizes(self) -> dict[str, int]:
        start = f"{self.prefix}/" if self.prefix else ""
        found = {}
        with self.errors():
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found[item["Key"][len(start) :]] = item["Size"]
        return found

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[IO[bytes]]:
        """What is written is spooled to a private local file (cleanup.spool_folder), then uploaded in parts
        when the block ends without an error. Uploading from a file keeps memory low whatever the size (a
        stream's parts would be held in memory); an upload that fails is aborted, so no object appears."""
        with cleanup.spool_folder("upload") as spool:
            path = spool / name
            with archive.create_private(path) as stream:
                yield stream
            with self.errors(name, "write to"):
                self.client.upload_file(str(path), self.bucket, self.key(name), Config=self.transfer_config())

    @contextlib.contextmanager
    def reader(self, name: str) -> Iterator[IO[bytes]]:
        with self.errors(name):
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"]
            try:
                yield body
            finally:
                body.close()

    def read_text(self, name: str) -> str | None:
        found = self.read_versioned(name)
        return None if found is None else found[0]

    def read_versioned(self, name: str) -> tuple[str, str] | None:
        """The object's text and ETag, or None when there is none."""
        from botocore.exceptions import ClientError

        with self.errors(name):
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
            except ClientError as exc:
                if error_code(exc) in {"NoSuchKey", "404"}:
                    return None
                raise
            return answer["Body"].read().decode(), answer["ETag"]

    def write_text(self, name: str, text: str) -> None:
        with self.errors(name, "write to"):
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=text.encode())

    def delete(self, name: str) -> None:
        with self.errors(name, "delete from"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def local_path(self, name: str) -> None:
        return None

    def put_if(self, name: str, text: str, etag: str | None) -> str | None:
        """Write text only where no object has the name (etag None), or where it is still the version etag:
        the new object's ETag, or None when the condition did not hold (another run wrote first)."""
        from botocore.exceptions import ClientError

        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        with self.errors(name, "write to"):
            try:
                put = self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=text.encode(), **condition)
            except ClientError as exc:
                if error_code(exc) in CONDITION_FAILED:
                    return None
                raise
            return put["ETag"]

    def lock(self, name: str) -> contextlib.AbstractContextManager:
        return locks.object_lock(self, name)

    @contextlib.contextmanager
    def errors(self, name: str | None = None, doing: str = "read and write") -> Iterator[None]:
        """boto3's exceptions become one line naming the location (never a key or a secret); doing says
        what an access denied was denied ("delete from": the key may not delete from this bucket)."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise self.error(exc, name, doing) from None
        except S3UploadFailedError as exc:  # boto3 wraps the ClientError of a failed upload in its own
            raise self.error(exc.__context__ or exc, name, doing) from None

    def error(self, exc: BaseException, name: str | None = None, doing: str = "read and write") -> DbOpsError:
        where = self.where(name) if name else self.url
        return DbOpsError(f"Backup location {where}: {s3_reason(exc, self, doing)}.")

    @property
    def endpoint(self) -> str:
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


def s3_reason(exc: BaseException, location: S3Bucket, doing: str = "read and write") -> str:
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, NoCredentialsError):
        return "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return f"{location.endpoint} did not answer within {s3_timeout()} s"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach {location.endpoint} (is AWS_ENDPOINT_URL right?)"
    if isinstance(exc, ClientError):
        code = error_code(exc)
        reasons = {
            "NoSuchBucket": f"the bucket {location.bucket!r} does not exist",
            "404": "not found (does the bucket exist?)",
            "NoSuchKey": "no such backup",
            "InvalidAccessKeyId": "the server does not know this AWS_ACCESS_KEY_ID",
            "Unauthorized": "the server does not know this AWS_ACCESS_KEY_ID",  # R2's answer
            "SignatureDoesNotMatch": "AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID",
            "AccessDenied": f"access denied: the key may not {doing} this bucket",
            "403": "access denied: wrong credentials, or the key may not use this bucket",
        }
        return reasons.get(code, f"{code}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": "))
    return " ".join(str(exc).split()) or type(exc).__name__


def error_code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def s3_timeout() -> int:
    from django.conf import settings

    return settings.BACKUP_S3_TIMEOUT


def split_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of s3://BUCKET/KEY, refusing what S3 would refuse less clearly."""
    parts = urlsplit(url)
    shown = mask_location(url)
    if parts.scheme.lower() != "s3" or not url.lower().startswith("s3://"):
        raise DbOpsError(f"Malformed object storage URL {shown}: write s3://BUCKET/PREFIX.")
    if "@" in parts.netloc:
        raise DbOpsError(
            f"Malformed object storage URL {shown}: put no credentials in it; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY instead."
        )
    if not BUCKET_NAME.fullmatch(parts.netloc) or parts.query or parts.fragment:
        raise DbOpsError(
            f"Malformed object storage URL {shown}: write s3://BUCKET/PREFIX, with a bucket name of 3-63 "
            "lowercase letters, digits, dots and hyphens."
        )
    return parts.netloc, parts.path.strip("/")


def mask_location(text: str) -> str:
    """A location as messages may show it: any user:secret@ part replaced."""
    return re.sub(r"^(\w+://)[^/@]*@", r"\1****@", str(text))

