"""Connections to a PostgreSQL server (psycopg2, with the client tools' TLS options), and how their
failures read: one line naming the masked target."""

import contextlib
import re
from collections.abc import Iterator

import psycopg2

from ..connection import DEFAULT_CONNECT_TIMEOUT, Target, connection_options
from ..errors import DbOpsError

MAINTENANCE_DATABASES = ("postgres", "template1")


@contextlib.contextmanager
def connect(target: Target, database: str | None = None) -> Iterator:
    """A psycopg2 connection; failures, connecting or later, become one line naming the masked target."""
    conn = open_connection(target, database)
    with closing_session(conn, target.with_database(database) if database else target):
        yield conn


def connect_arguments(target: Target, database: str | None = None) -> dict:
    """psycopg2.connect's keyword arguments: the same TLS options the client tools get."""
    options = connection_options(target)
    return {
        "host": target.host or None,
        "port": target.port,
        "user": target.user or None,
        "password": target.password or None,
        "dbname": database or target.name,
        **options,
        "connect_timeout": int(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
    }


def open_connection(target: Target, database: str | None = None):
    try:
        return psycopg2.connect(**connect_arguments(target, database))
    except psycopg2.Error as exc:
        shown = target.with_database(database) if database else target
        raise DbOpsError(f"Cannot connect to {shown.masked}: {connection_error_reason(exc, target)}") from None


@contextlib.contextmanager
def closing_session(conn, shown: Target) -> Iterator:
    try:
        with one_line_errors(shown):
            yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def one_line_errors(shown: Target) -> Iterator[None]:
    """psycopg2's failures in the block as one line naming the masked target: for questions asked over a
    session that someone else opened and closes."""
    try:
        yield
    except psycopg2.Error as exc:
        raise DbOpsError(f"{shown.masked}: {shown.scrub(str(exc)).strip().splitlines()[0]}") from None


def connection_error_reason(exc: Exception, target: Target) -> str:
    text = target.scrub(str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    reason = re.sub(r"^connection to server at .*? failed: ", "", reason)
    reason = reason.replace("FATAL:  ", "")
    if "timeout expired" in reason:
        reason = f"the server did not answer within {target.options.get('connect_timeout', DEFAULT_CONNECT_TIMEOUT)} s"
    return reason


@contextlib.contextmanager
def maintenance_connection(target: Target, maintenance_db: str | None = None) -> Iterator:
    """A connection to a database other than the target: --maintenance-db, else postgres, else template1."""
    candidates = [maintenance_db] if maintenance_db else [*MAINTENANCE_DATABASES, target.name]
    for name in candidates:
        try:
            conn = open_connection(target, database=name)
            break
        except DbOpsError as exc:
            if "does not exist" not in str(exc) and "permission denied" not in str(exc):
                raise
            last_error = exc
    else:
        raise DbOpsError(f"{last_error} (choose another maintenance database with --maintenance-db NAME)")
    conn.autocommit = True
    with closing_session(conn, target.with_database(name)):
        yield conn
