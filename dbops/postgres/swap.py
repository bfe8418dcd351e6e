"""restore_db --swap and --undo (PostgreSQL): the archive is restored into a new database beside the target
and checked there; then the two swap names in one transaction, and the previous contents stay, as
<name>_before_<stamp>, until they are swapped back or dropped. The name exists at every instant."""

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg2 import sql

from .. import archive
from ..connection import Target, needs_tls_tools
from ..errors import DbOpsError, Interrupted
from ..facts import Loaded, compare_row_counts
from ..plans import RestorePlan
from ..process import ctrl_c_deferred
from ..retention import SAFETY_DAYS_DEFAULT
from .admin import drop_database, restore_lock
from .argv import needs_script_route
from .attributes import (
    DatabaseAttributes,
    create_statements,
    disk_folder,
    finish_statements,
    free_space,
    read_attributes,
)
from .catalog import inspect, row_counts
from .restore import load, restore_tools
from .session import maintenance_connection, one_line_errors

KEPT_MARK = "_before_"
RESTORING_MARK = "_restoring_"
STAMP_FORMAT = "%Y%m%d%H%M%S"
# PostgreSQL names hold 63 bytes: the target's name is cut so that the mark and the stamp fit after it.
STEM_LENGTH = 63 - len(RESTORING_MARK) - len("20260101000000")
# One swap of a target at a time: a session advisory lock in the maintenance database, keyed by the name.
SWAP_LOCK_QUERY = "SELECT pg_try_advisory_lock(hashtext('birdsite restore_db --swap ' || %s))"
UNUSED_DATABASES_QUERY = """
    SELECT d.datname, d.datallowconn FROM pg_database d
    WHERE d.datname LIKE %s AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.datid = d.oid)
"""
PRIVILEGE_QUERY = """
    SELECT r.rolsuper OR r.rolcreatedb, r.rolsuper OR pg_has_role(d.datdba, 'USAGE'), pg_get_userbyid(d.datdba)
    FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = %s
"""


@dataclass(frozen=True)
class SwapPlan:
    """The target as it is, checked for a swap before anything is touched."""

    target: Target
    attributes: DatabaseAttributes
    free_space: int | None  # on the disk that would hold the new database, when it can be known here

    def needed_space(self, archive_size: int) -> int:
        return self.attributes.size + archive_size


@dataclass(frozen=True)
class KeptDatabase:
    name: str
    kept_at: datetime
    size: int


def stamp(when: datetime) -> str:
    return when.strftime(STAMP_FORMAT)


def kept_name(database: str, when: datetime) -> str:
    return f"{database[:STEM_LENGTH]}{KEPT_MARK}{stamp(when)}"


def restoring_name(database: str, when: datetime) -> str:
    return f"{database[:STEM_LENGTH]}{RESTORING_MARK}{stamp(when)}"


def kept_pattern(database: str, mark: str = KEPT_MARK) -> re.Pattern:
    return re.compile(re.escape(database[:STEM_LENGTH] + mark) + r"(\d{14})")


def like_pattern(database: str, mark: str) -> str:
    return (database[:STEM_LENGTH] + mark).replace("_", r"\_") + "%"


@contextlib.contextmanager
def swap_lock(target: Target, maintenance_db: str | None = None) -> Iterator:
    """Held for a whole swap or undo (whatever connects to which database meanwhile): a second one is
    refused. Yields the maintenance connection that holds it."""
    with maintenance_connection(target, maintenance_db) as conn:
        with conn.cursor() as cursor:
            cursor.execute(SWAP_LOCK_QUERY, [target.name])
            if not cursor.fetchone()[0]:
                raise DbOpsError(
                    f"Another restore_db --swap or --undo of {target.masked} is running; try again when it has "
                    "ended. Nothing was changed."
                )
        yield conn


def clean_up_killed_swap(target: Target, maintenance_db: str | None = None) -> list[str]:
    """What a swap killed outright (kill -9, a lost machine) left, undone: its new database dropped, and
    the connections it had stopped for the swap allowed again. Returns the databases dropped. Nothing
    is done while a swap of the target runs."""
    restoring, kept = kept_pattern(target.name, RESTORING_MARK), kept_pattern(target.name)
    try:
        with swap_lock(target, maintenance_db) as conn:
            with conn.cursor() as cursor:
                cursor.execute(UNUSED_DATABASES_QUERY, [like_pattern(target.name, RESTORING_MARK)])
                leftovers = [name for name, _ in cursor.fetchall() if restoring.fullmatch(name)]
                cursor.execute(UNUSED_DATABASES_QUERY, [like_pattern(target.name, KEPT_MARK)])
                stopped = [name for name, allowed in cursor.fetchall() if kept.fullmatch(name) and not allowed]
                if leftovers:
                    stopped.append(target.name)
                for name in stopped:
                    cursor.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
            for name in leftovers:
                drop_database(target.with_database(name), maintenance_db)
    except DbOpsError:  # another swap runs, or this role may not: that one cleans up after itself
        return []
    return leftovers


def check(target: Target, maintenance_db: str | None = None) -> SwapPlan:
    """Refuse a swap this role cannot finish, before anything is touched; describe the target."""
    with maintenance_connection(target, maintenance_db) as conn:
        _refuse_connected_to(conn, target)
        with conn.cursor() as cursor:
            cursor.execute(PRIVILEGE_QUERY, [target.name])
            row = cursor.fetchone()
        if row is None:
            raise DbOpsError(f"{target.masked} does not exist; restore without --swap (add --create).")
        may_create, may_rename, owner = row
        role = conn.info.user
        if not may_create:
            raise DbOpsError(
                f"--swap creates a new database, and the role {role!r} has no CREATEDB privilege: restore without "
                f"--swap (in place, after a safety backup), or have a superuser run ALTER ROLE {role} CREATEDB. "
                "Nothing was changed."
            )
        if not may_rename:
            raise DbOpsError(
                f"--swap renames {target.masked}, which only its owner {owner!r} may do, and you connect as "
                f"{role!r}: restore without -- Nothing was changed."
            )
        attributes = read_attributes(conn, target.name)
    return SwapPlan(target, attributes, free_space(target, attributes))


def _refuse_connected_to(conn, target: Target) -> None:
    if conn.info.dbname == target.name:
        raise DbOpsError(
            f"--swap renames {target.masked}, which cannot be done from a session in it, and no maintenance "
            "database (postgres, template1) is reachable: name one with --maintenance-db NAME. Nothing was changed."
        )


def refuse_without_space(plan: SwapPlan, archive_size: int) -> None:
    needed = plan.needed_space(archive_size)
    if plan.free_space is not None and plan.free_space < needed:
        raise DbOpsError(
            f"--swap needs about {needed / 1e6:.1f} MB more on the server's disk ({plan.target.name}'s "
            f"{plan.attributes.size / 1e6:.1f} MB plus the archive's {archive_size / 1e6:.1f} MB), and "
            f"{disk_folder(plan.attributes)} has {plan.free_space / 1e6:.1f} MB free: restore without --swap, or free "
            "some space. Nothing was changed."
        )


@contextlib.contextmanager
def new_database(plan: SwapPlan, when: datetime, conn, maintenance_db: str | None = None) -> Iterator[Target]:
    """The database to restore into, made like the target over conn (a maintenance connection); dropped
    again, over a connection of its own, when the block fails. A block that ends well has swapped it in
    (a kill -9 leaves it to clean_up_killed_swap)."""
    new = plan.target.with_database(restoring_name(plan.target.name, when))
    try:
        with conn.cursor() as cursor:
            for statement in create_statements(new.name, plan.attributes, conn.server_version):
                cursor.execute(statement)
        yield new
    except BaseException:
        with ctrl_c_deferred():
            drop_database(new, maintenance_db)
        raise


def parallel_jobs(plan: RestorePlan, jobs: int) -> int | None:
    """jobs, unless the pg_restore that fits the archive would send a server older than 17 the
    transaction_timeout it rejects: such a restore goes through the one-transaction script instead."""
    major = plan.state.server_major
    tools = restore_tools(major, needs_tls_tools(plan.target), plan.backup.path, plan.archive_format)
    return None if needs_script_route(major, tools) else jobs


def finish(new: Target, attributes: DatabaseAttributes, conn) -> None:
    with conn.cursor() as cursor:
        for statement in finish_statements(new.name, attributes):
            cursor.execute(statement)


def swap_in(target: Target, replacement: str, when: datetime, conn) -> str:
    """Over conn (a maintenance connection), end the target's sessions (no new ones meanwhile) and, in one
    transaction, rename the target to <name>_before_<stamp> and the replacement to the target's name.
    Returns the kept name. On any failure before the commit nothing is renamed (the caller defers Ctrl-C
    over it: it takes moments)."""
    kept = kept_name(target.name, when)
    rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
    with conn.cursor() as cursor:
        _refuse_connected_to(conn, target)
        with connections_held_off(cursor, target.name):
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [target.name],
            )
            conn.autocommit = False
            try:
                cursor.execute(rename.format(sql.Identifier(target.name), sql.Identifier(kept)))
                cursor.execute(rename.format(sql.Identifier(replacement), sql.Identifier(target.name)))
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                conn.autocommit = True
    return kept


@contextlib.contextmanager
def connections_held_off(cursor, name: str) -> Iterator[None]:
    """No new session may open in database name during the block (ALLOW_CONNECTIONS false, which
    binds superusers too); allowed again afterwards, whatever the database is called by then."""
    cursor.execute("SELECT oid FROM pg_database WHERE datname = %s", [name])
    (oid,) = cursor.fetchone()
    cursor.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
    try:
        yield
    finally:
        with ctrl_c_deferred():
            cursor.execute("SELECT datname FROM pg_database WHERE oid = %s", [oid])
            (now_named,) = cursor.fetchone()
            cursor.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(now_named)))


def kept_databases(target: Target, maintenance_db: str | None = None, session=None) -> list[KeptDatabase]:
    """The target's previous contents that swaps kept, newest first; asked over session (a connection to
    any database of the instance) when given."""
    pattern = kept_pattern(target.name)
    connection = contextlib.nullcontext(session) if session else maintenance_connection(target, maintenance_db)
    # one_line_errors: over session too, a kept database without CONNECT (pg_database_size) is one line.
    with one_line_errors(target), connection as conn, conn.cursor() as cursor:
        query = "SELECT datname, pg_database_size(oid) FROM pg_database WHERE datname LIKE %s"
        cursor.execute(query, [like_pattern(target.name, KEPT_MARK)])
        rows = cursor.fetchall()
    kept = [
        KeptDatabase(name, datetime.strptime(match[1], STAMP_FORMAT).replace(tzinfo=UTC), size)
        for name, size in rows
        if (match := pattern.fullmatch(name))
    ]
    return sorted(kept, key=lambda each: each.kept_at, reverse=True)


def drop_expired(
    target: Target, days: int, maintenance_db: str | None = None, kept: list[KeptDatabase] | None = None
) -> list[str]:
    """Drop the kept databases of the target older than days (the safety backups' rule), of kept when the
    caller listed them already: then nothing connects unless one is to go."""
    limit = datetime.now(UTC) - timedelta(days=days)
    listed = kept_databases(target, maintenance_db) if kept is None else kept
    doomed = [each.name for each in listed if each.kept_at < limit]
    for name in doomed:
        drop_database(target.with_database(name), maintenance_db)
    return doomed


def swap_time(kept: list[KeptDatabase]) -> datetime:
    """Now, or a second after the newest of the kept databases' stamps: names never clash (a swap and its
    undo within one second), and the newest stamp is always the last swap's."""
    now = datetime.now(UTC).replace(microsecond=0)
    return max(now, kept[0].kept_at + timedelta(seconds=1)) if kept else now


@dataclass(frozen=True)
class SwapResult:
    kept: KeptDatabase  # what the target held before, under its new name
    tables: dict[str, int]
    seconds: float
    tools_used: str
    jobs: int | None
    dropped: list[str] = field(default_factory=list)  # kept databases older than the safety rule


def check_swap_space(swap_plan: SwapPlan, plan: RestorePlan) -> int:
    """Refuse a swap that the server's disk cannot hold, where its free space can be known; the archive's size."""
    archive_size = archive.size_of(plan.backup.path)
    refuse_without_space(swap_plan, archive_size)
    return archive_size


def swap_jobs(archive_format: str, jobs: int | None) -> int | None:
    """pg_restore --jobs reads directory archives and custom files in parallel: one worker per core by default."""
    if archive_format not in (archive.DIRECTORY, archive.CUSTOM):
        return None
    return jobs or os.cpu_count() or 1


def restore_by_swap(
    plan: RestorePlan,
    swap_plan: SwapPlan,
    jobs: int | None = None,
    maintenance_db: str | None = None,
    safety_days: int = SAFETY_DAYS_DEFAULT,
) -> SwapResult:
    """Restore into a new database made like the target, check it against the manifest, then swap it in.
    Any failure or Ctrl-C before the swap drops the new database: the target is untouched."""
    started = time.monotonic()
    target = plan.target
    try:
        swapped = _swap_in_restored(plan, swap_plan, swap_jobs(plan.archive_format, jobs), maintenance_db)
    except BaseException:
        plan.backup.cleanup()
        raise
    try:
        plan.backup.cleanup()
        dropped = drop_expired(target, safety_days, maintenance_db, swapped.kept_before)
    except DbOpsError as exc:
        raise DbOpsError(
            f"{target.masked} holds the backup (what it held is the database {swapped.kept}), but the kept databases "
            f"past the safety rule could not be dropped: {str(exc).rstrip('.')}."
        ) from None
    except KeyboardInterrupt:
        raise Interrupted(_after_the_swap(target, swapped.kept)) from None
    kept, loaded = KeptDatabase(swapped.kept, swapped.when, swap_plan.attributes.size), swapped.loaded
    return SwapResult(kept, loaded.tables, time.monotonic() - started, loaded.tools_used, swapped.jobs, dropped)


@dataclass(frozen=True)
class _Swapped:
    kept: str  # the target's previous contents, under this name
    when: datetime
    loaded: Loaded  # with the new database's row counts
    jobs: int | None
    kept_before: list[KeptDatabase]  # what earlier swaps had kept, listed under the swap lock


def _swap_in_restored(plan: RestorePlan, swap_plan: SwapPlan, jobs: int | None, maintenance_db: str | None) -> _Swapped:
    """The restore beside the target, its check, and the swap; on any failure or stop before the swap the
    new database goes, and the line says so."""
    target, kept = plan.target, None
    try:
        check_swap_space(swap_plan, plan)
        if jobs:
            jobs = parallel_jobs(plan, jobs)
        # The swap lock's connection also lists the kept databases, and creates, finishes and swaps in the new one.
        with swap_lock(target, maintenance_db) as maintenance:
            kept_before = kept_databases(target, session=maintenance)
            when = swap_time(kept_before)
            with new_database(swap_plan, when, maintenance, maintenance_db) as new:
                with restore_lock(target):
                    loaded = _load_beside(new, plan, jobs)
                    tables = row_counts(new) if loaded.tables is None else loaded.tables
                    if plan.manifest is not None:
                        compare_row_counts(plan.manifest.tables, tables, exact=True)
                    finish(new, swap_plan.attributes, maintenance)
                with ctrl_c_deferred():  # the swap itself takes moments: it happens whole or not at all
                    kept = swap_in(target, new.name, when, maintenance)
    except DbOpsError as exc:
        raise DbOpsError(
            f"{str(exc).rstrip('.')}. Nothing was swapped: {target.masked} is untouched (the new database was dropped)."
        ) from None
    except KeyboardInterrupt:
        if kept is None:
            raise Interrupted(
                f"Interrupted: nothing was restored; {target.masked} is untouched (the new database was dropped)."
            ) from None
        raise Interrupted(_after_the_swap(target, kept)) from None
    return _Swapped(kept, when, Loaded(loaded.tools_used, tables), jobs, kept_before)


def _after_the_swap(target: Target, kept: str) -> str:
    return f"Interrupted after the swap: {target.masked} holds the backup; what it held is the database {kept}."


def _load_beside(new: Target, plan: RestorePlan, jobs: int | None) -> Loaded:
    """Load the new database; in parallel, the archive's SHA-256 is taken meanwhile (pg_restore --jobs
    reads the file itself), which is safe here: a mismatch drops the new database before any swap."""
    path, expected = plan.backup.path, plan.backup.unchecked_sha256
    if not (jobs and expected):
        return load(new, path, plan.archive_format, jobs, expected)
    hashed: list[str] = []
    # A daemon: after a failure or Ctrl-C it ends with the process, whatever it is reading.
    hasher = threading.Thread(target=lambda: hashed.append(archive.sha256_of(path)), daemon=True)
    hasher.start()
    loaded = load(new, path, plan.archive_format, jobs)
    hasher.join()
    archive.check_sha256(path, expected, hashed[0] if hashed else None)  # None: read again, for its error
    return loaded


@dataclass(frozen=True)
class UndoResult:
    restored: KeptDatabase  # the kept database swapped back in
    kept: KeptDatabase  # what the target held until the undo, now kept in turn
    table_count: int


def undo_swap(target: Target, maintenance_db: str | None = None) -> UndoResult:
    """Swap the newest <name>_before_<stamp> back in; what the target holds is kept in its turn."""
    swap_plan = check(target, maintenance_db)
    kept = kept_databases(target, maintenance_db)
    if not kept:
        raise DbOpsError(
            f"No database kept by restore_db --swap for {target.masked} (none named "
            f"{target.name[: STEM_LENGTH]}{KEPT_MARK}<stamp>): nothing to undo."
        )
    newest = kept[0]
    table_count = inspect(target.with_database(newest.name)).table_count
    when = swap_time(kept)
    try:
        with swap_lock(target, maintenance_db) as maintenance, ctrl_c_deferred():
            now_kept = swap_in(target, newest.name, when, maintenance)
    except KeyboardInterrupt:
        raise Interrupted(
            f"Interrupted after the undo: {target.masked} holds what {newest.name} held; what it held is kept."
        ) from None
    except DbOpsError as exc:
        raise DbOpsError(f"{str(exc).rstrip('.')}. Nothing was swapped: {target.masked} is untouched.") from None
    return UndoResult(newest, KeptDatabase(now_kept, when, swap_plan.attributes.size), table_count)
