"""Typed readers of the environment variables the settings use, each validated once at start-up.

A bad value fails `manage.py check` (so build.sh) and gunicorn's boot with one line naming the
variable and what it accepts, instead of a 500 on every request that /healthz cannot see. No reader
echoes a value: a URL holds a password.
"""
import os
import re
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from dbops.connection import URL_DOES_NOT_PARSE, check_connect_timeout, has_unencoded_password
from dbops.errors import DbOpsError
from dbops.storage import location_for

THROTTLE_RATE = re.compile(r"[1-9]\d*/(s|sec|second|m|min|minute|h|hour|d|day)s?")
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def setting(name: str) -> str | None:
    """The variable's value, None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def invalid(name: str, accepted: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name} is not valid: it must be {accepted}.")


def boolean(name: str, default: bool) -> bool:
    """1/true/yes/on or 0/false/no/off; anything else (SECURE_SSL_REDIRECT=ture) is not taken for off."""
    value = setting(name)
    if value is None:
        return default
    if value.lower() not in TRUE | FALSE:
        raise invalid(name, "1, true, yes or on, or 0, false, no or off")
    return value.lower() in TRUE


def integer(name: str, default: int, minimum: int = 0) -> int:
    value = setting(name)
    if value is None:
        return default
    if not value.isdigit() or int(value) < minimum:
        raise invalid(name, f"a whole number of at least {minimum}")
    return int(value)


def throttle_rate(name: str, default: str) -> str:
    """DRF's "N/period", with a period DRF knows (it reads the first letter: "5/fortnight" fails every request)."""
    value = os.environ.get(name, default).strip()
    if not THROTTLE_RATE.fullmatch(value):
        raise invalid(name, "a number of requests per second, minute, hour or day, e.g. 120/minute")
    return value


def redis_url(name: str) -> str:
    value = setting(name)
    if value is None:
        return ""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in {"redis", "rediss", "unix"} or not (parts.hostname or parts.path):
        raise invalid(name, "a Redis URL: redis://[:PASSWORD@]HOST:PORT/DB, rediss://... (TLS) or unix:///PATH")
    return value


def http_url(name: str) -> str | None:
    value = setting(name)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise invalid(name, "an http:// or https:// URL with a host, e.g. https://ACCOUNT.r2.cloudflarestorage.com")
    return value


def log_level(name: str, default: str) -> str:
    value = (setting(name) or default).upper()
    if value not in LOG_LEVELS:
        raise invalid(name, f"one of {', '.join(LOG_LEVELS)}")
    return value


def backup_dir(name: str, default: str) -> str:
    value = setting(name) or default
    try:
        location_for(value)
    except DbOpsError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None
    return value


def database(name: str, default: str) -> dict:
    """DATABASE_URL in Render's style (postgres:// or postgresql://), or the default's."""
    url = os.environ.get(name, default)
    if not url.strip():
        raise invalid(name, "a database URL (postgresql://USER:PASSWORD@HOST:PORT/DATABASE), or unset for SQLite")
    try:
        config = dj_database_url.parse(url, conn_max_age=600, conn_health_checks=False)
    except ValueError as exc:  # never the URL itself in the message: it holds the password
        reason = "it does not parse as a URL" if isinstance(exc, dj_database_url.ParseError) else str(exc).rstrip(".")
        raise ImproperlyConfigured(
            f"{name} is not a valid database URL: {reason}. Expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE, "
            "with any @ : / ? # [ ] % in the password percent-encoded."
        ) from None
    if config.get("ENGINE") != "django.db.backends.sqlite3" and has_unencoded_password(url):
        raise ImproperlyConfigured(f"{name}: {URL_DOES_NOT_PARSE}")
    try:
        check_connect_timeout(config.get("OPTIONS", {}), name)
    except DbOpsError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    return config
