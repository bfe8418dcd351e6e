"""Which Render PostgreSQL instance a database lives in, and when a free one expires (Render's REST API).

Render's free PostgreSQL expires 30 days after it was created and is deleted, with every database in
it, 14 days later. The API says when: GET /v1/postgres/{id} has `expiresAt` (free plan only). The
request and response shapes follow Render's own client (render-oss/cli, pkg/client/types_gen.go:
PostgresDetail, Error). One read-only GET with the key in the Authorization header: the standard
library's urllib is enough, and the key never reaches argv or a message.
"""

import json
import math
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings

from .errors import DbOpsError

GRACE_PERIOD = timedelta(days=14)  # after expiry, before Render deletes the instance
LONGEST_RETRY_AFTER = 60  # seconds; a longer rate-limit wait is reported instead of slept through
# Render's ids: "dpg-" and 20 characters, with a letter suffix on primaries (render-oss/cli,
# pkg/validate/id.go, IsPostgresID). The Internal URL's host is the id; the External URL's host is
# the id followed by ".REGION-postgres.render.com".
POSTGRES_HOST = re.compile(r"(?P<id>dpg-[a-z0-9]{20}(?:-[a-z]+)?)(?:\.[a-z0-9-]+-postgres\.render\.com)?\.?")
MOVE_HINT = (
    "move its databases to a new instance now (README, \"Moving to a new instance before a free database "
    "expires\": copy_db --all)"
)


@dataclass(frozen=True)
class ApiSettings:
    key: str
    url: str
    timeout: float


@dataclass(frozen=True)
class RenderInstance:
    """A Render PostgreSQL instance as the API describes it (expires_at None: a paid plan)."""

    id: str
    name: str
    plan: str
    version: str
    region: str
    status: str
    expires_at: datetime | None

    def time_left(self, now: datetime) -> timedelta | None:
        return None if self.expires_at is None else self.expires_at - now

    def days_left(self, now: datetime) -> int | None:
        left = self.time_left(now)
        return None if left is None else math.floor(left / timedelta(days=1))

    def summary(self, now: datetime) -> str:
        where = f"Render instance {self.name} ({self.id}, plan {self.plan}, PostgreSQL {self.version}, {self.region})"
        if self.expires_at is None:
            return f"{where}: does not expire."
        if self.expires_at <= now:
            return f"{where}: expired on {day(self.expires_at)}; Render deletes it on {day(self.deletion_at)}."
        return f"{where}: expires on {day(self.expires_at)}, in {plural(self.days_left(now), 'day')}."

    @property
    def deletion_at(self) -> datetime | None:
        return None if self.expires_at is None else self.expires_at + GRACE_PERIOD


def instance_of(host: str, environ: Mapping[str, str] = os.environ) -> RenderInstance | None:
    """The Render instance behind a database host, or None without RENDER_API_KEY or for another host."""
    postgres_id = instance_id(host)
    api = api_settings(environ)
    if postgres_id is None or api is None:
        return None
    return fetch_instance(postgres_id, api)


def expiry_line(host: str, within: timedelta, now: datetime, environ: Mapping[str, str] = os.environ) -> str:
    """`db_info --expires-within`: one line, or DbOpsError when the instance expires within that time."""
    postgres_id = instance_id(host)
    if postgres_id is None:
        raise DbOpsError(
            f"The database host {host or '(none)'} is not a Render PostgreSQL host (dpg-...): there is no Render "
            "expiry to check."
        )
    api = api_settings(environ)
    if api is None:
        raise DbOpsError(
            "--expires-within asks Render's API: set RENDER_API_KEY to an API key from the Render dashboard "
            "(Account Settings > API Keys)."
        )
    return check_expiry(fetch_instance(postgres_id, api), within, now)


def instance_id(host: str) -> str | None:
    """The Render instance id in a database host name, or None for a host that is not Render's."""
    match = POSTGRES_HOST.fullmatch(host.lower())
    return match["id"] if match else None


def api_settings(environ: Mapping[str, str] = os.environ) -> ApiSettings | None:
    """RENDER_API_KEY (None: not set), with the settings' RENDER_API_URL and RENDER_API_TIMEOUT."""
    key = environ.get("RENDER_API_KEY", "").strip()
    if not key:
        return None
    return ApiSettings(key, settings.RENDER_API_URL.rstrip("/"), settings.RENDER_API_TIMEOUT)


def fetch_instance(
    postgres_id: str, api: ApiSettings, sleep: Callable[[float], None] = time.sleep
) -> RenderInstance:
    """GET /postgres/{id}; a rate limit (429) is waited out once, as its Retry-After says."""
    try:
        return parse_instance(get_json(f"{api.url}/postgres/{postgres_id}", api))
    except RateLimited as limited:
        if limited.retry_after > LONGEST_RETRY_AFTER:
            raise DbOpsError(limited.message) from None
        sleep(limited.retry_after)
    try:
        return parse_instance(get_json(f"{api.url}/postgres/{postgres_id}", api))
    except RateLimited as limited:
        raise DbOpsError(limited.message) from None


class RateLimited(Exception):
    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after
        self.message = (
            f"Render's API is rate-limiting this API key (429) even after waiting as it asked: try again in "
            f"{plural(retry_after, 'second')}."
        )


def get_json(url: str, api: ApiSettings) -> dict:
    request = urllib.request.Request(  # noqa: S310 (the URL is Render's API or RENDER_API_URL)
        url, headers={"Authorization": f"Bearer {api.key}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=api.timeout) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise http_error(exc, url) from None
    except (TimeoutError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)  # urllib wraps a connect timeout, not one while reading
        if isinstance(reason, TimeoutError):
            raise DbOpsError(f"Render's API did not answer within {api.timeout:g} s ({api.url}).") from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise DbOpsError(untrusted_certificate_message(api.url, reason.verify_message)) from None
        raise DbOpsError(f"Could not reach Render's API at {api.url}: {reason}.") from None
    except (ValueError, UnicodeDecodeError):
        raise DbOpsError(f"Render's API answered {url} with something that is not JSON.") from None


def untrusted_certificate_message(url: str, why: str) -> str:
    return (
        f"Could not verify the certificate of Render's API at {url} ({why}): this Python trusts no certificate "
        "authority that vouches for it. With Python from python.org on macOS, run \"Install Certificates.command\" "
        "(in its folder under Applications) once; elsewhere install the system's CA certificates (apt install "
        "ca-certificates), or set SSL_CERT_FILE to a file of trusted CA certificates."
    )


def http_error(exc: urllib.error.HTTPError, url: str) -> Exception:
    if exc.code == 401:
        return DbOpsError(
            "Render refused RENDER_API_KEY (401 Unauthorized): create an API key in the Render dashboard "
            "(Account Settings > API Keys) and set RENDER_API_KEY to it."
        )
    if exc.code == 404:
        postgres_id = url.rsplit("/", 1)[-1]
        return DbOpsError(
            f"Render has no PostgreSQL instance {postgres_id} for this API key (404): is the key from the "
            "workspace that owns the database?"
        )
    if exc.code == 429:
        return RateLimited(retry_after_seconds(exc.headers.get("Retry-After")))
    return DbOpsError(f"Render's API answered {exc.code} {exc.reason} for {url}.")


def retry_after_seconds(value: str | None) -> int:
    """Retry-After in seconds (a number, or an HTTP date); 1 when absent or unreadable."""
    if value is None:
        return 1
    if value.strip().isdigit():
        return int(value.strip())
    try:
        return max(0, math.ceil((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()))
    except (TypeError, ValueError):
        return 1


def parse_instance(body: dict) -> RenderInstance:
    try:
        expires = body.get("expiresAt")
        return RenderInstance(
            id=body["id"],
            name=body["name"],
            plan=body["plan"],
            version=str(body["version"]),
            region=body["region"],
            status=body["status"],
            expires_at=datetime.fromisoformat(expires) if expires else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DbOpsError(f"Render's API described the instance in a form this tool does not know ({exc}).") from None


def check_expiry(instance: RenderInstance, within: timedelta, now: datetime) -> str:
    """The line for `db_info --expires-within`; DbOpsError when the instance expires within that time."""
    summary = instance.summary(now)
    left = instance.time_left(now)
    if left is not None and left <= within:
        raise DbOpsError(f"{summary.rstrip('.')}: {MOVE_HINT}.")
    return summary


def day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
