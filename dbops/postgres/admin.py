"""Database lifecycle on a PostgreSQL server: create and drop, reset (replace by an empty database without
the name ever going missing), the restore lock, and restore drills' scratch databases."""

import contextlib
import hashlib
import re
import secrets
from collections.abc import Iterator

import psycopg2
from psycopg2 import sql

from .. import cleanup
from ..connection import Target
from ..errors import DbOpsError
from ..facts import DatabaseState
from ..process import ctrl_c_deferred
from .attributes import create_statements, finish_statements, read_attributes
from .catalog import database_exists, inspect
from .session import MAINTENANCE_DATABASES, closing_session, connect, maintenance_connection, open_connection

SCRATCH_PREFIX = "verify_"  # restore drills' scratch databases
SWAP_ATTEMPTS = 3
# The advisory lock key that restore_db holds in the target database while it restores (any fixed
# bigint; this one spells "restore" in ASCII).
RESTORE_LOCK_KEY = 0x72657374_6F7265


def create_database(target: Target, maintenance_db: str | None = None, exist_ok: bool = False) -> bool:
    """Create the target database; False when it already exists and exist_ok says that is fine."""
    with maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
        if database_exists(conn, target.name):
            if exist_ok:
                return False
            raise DbOpsError(f"{target.masked} already exists.")
        cursor.execute(create_database_statement(target.name))
    return True


def drop_database(target: Target, maintenance_db: str | None = None) -> None:
    """Drop a database this run created (and nobody else uses yet), e.g. after its restore failed."""
    with maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
        force = sql.SQL(" WITH (FORCE)") if conn.server_version >= 130000 else sql.SQL("")
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(target.name)) + force)


@contextlib.contextmanager
def restore_lock(target: Target) -> Iterator:
    """One restore at a time into a database: a session advisory lock in it, which every client of
    the server sees, whatever machine or backup folder it restores from. It needs no privilege. Yields
    the lock's connection (autocommit), for the restore's own questions."""
    with connect(target) as conn:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [RESTORE_LOCK_KEY])
            if not cursor.fetchone()[0]:
                raise DbOpsError(
                    f"Another restore into {target.masked} is running; try again when it has ended. "
                    "Nothing was restored."
                )
        yield conn


def same_database(first: Target, second: Target) -> bool:
    """Whether two targets are one database, however their URLs spell it (127.0.0.1 or localhost,
    a proxy, a DNS alias): the first takes a random advisory lock, and the second cannot take it
    only if it is the same database of the same server. No privilege is needed, unlike
    pg_control_system()'s system_identifier, which copies and replicas of a server share anyway."""
    key = secrets.randbits(63)
    with connect(first) as held, held.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            probe = open_connection(second)
        except DbOpsError as exc:
            if f'database "{second.name}" does not exist' in str(exc):
                return False
            raise
        with closing_session(probe, second), probe.cursor() as probe_cursor:
            probe_cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            return not probe_cursor.fetchone()[0]


def create_database_statement(name: str, owner: str | None = None) -> sql.Composable:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner:
        statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    return statement


def recreate(target: Target, maintenance_db: str | None = None) -> str:
    """Replace the target database by an empty one with the same owner (ending its sessions), so that
    its name exists at every instant, whenever this process dies:

    1. the empty one is created under a temporary name (a role that could drop the database but not
       create it again fails here, before anything is changed);
    2. one transaction renames the target away and the empty one in;
    3. the old one is dropped.

    A reset that died between the steps left a database under one of the temporary names; this one
    first finishes (after 2) or undoes (before 2) it, and returns a line saying which ("" if none)."""
    refuse_reset(target, maintenance_db)
    with maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
        if conn.info.dbname == target.name:
            raise DbOpsError(
                f"Cannot drop {target.masked} while connected to it: no maintenance database (postgres, "
                "template1) is reachable; name one with --maintenance-db NAME."
            )
        notice = _finish_half_done_reset(cursor, conn.server_version, target)
        if not database_exists(conn, target.name):  # reset --create of a database that does not exist
            cursor.execute(create_database_statement(target.name))
            return notice
        create_replacement(cursor, target)
        swap_in_replacement(cursor, target)
        old = reset_names(target.name)[1]
        try:
            _drop_database(cursor, conn.server_version, old)
        except psycopg2.Error as exc:
            raise DbOpsError(
                f"{target.masked} is now empty, but its old contents, renamed {old!r}, could not be dropped: "
                f"{_first_line(target, exc)}. The next reset_db drops it (or: DROP DATABASE {old})."
            ) from None
    return notice


def reset_names(name: str) -> tuple[str, str]:
    """The temporary names of a reset of database name: its empty replacement, and itself once replaced."""
    stem = f"{name[:40]}_reset_{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    return f"{stem}_new", f"{stem}_old"


def create_replacement(cursor, target: Target) -> None:
    """Create the target's empty replacement under its temporary name, made like the target (owner too):
    what CREATE and ALTER DATABASE gave it (locale, who may connect, comment, settings...) is not in template1."""
    attributes = read_attributes(cursor.connection, target.name)
    new = reset_names(target.name)[0]
    create, *alterations = [
        *create_statements(new, attributes, cursor.connection.server_version),
        # Nothing is restored into it, so its settings and connection limit need not wait: it gets the name complete.
        *finish_statements(new, attributes),
    ]
    try:
        cursor.execute(create)
        try:
            for statement in alterations:
                cursor.execute(statement)
        except psycopg2.Error:
            _drop_database(cursor, cursor.connection.server_version, new)
            raise
    except psycopg2.Error as exc:
        raise DbOpsError(
            f"Could not create an empty database to replace {target.masked}, so nothing was dropped: "
            f"{_first_line(target, exc)}"
        ) from None


def swap_in_replacement(cursor, target: Target) -> None:
    """Rename the target away and its replacement in, in one transaction: the name never goes missing."""
    new, old = reset_names(target.name)
    rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
    for attempt in range(SWAP_ATTEMPTS):
        # A renamed database may have no sessions; a new one may connect meanwhile, hence the attempts.
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [target.name],
        )
        try:
            cursor.execute("BEGIN")
            cursor.execute(rename.format(sql.Identifier(target.name), sql.Identifier(old)))
            cursor.execute(rename.format(sql.Identifier(new), sql.Identifier(target.name)))
            cursor.execute("COMMIT")
            return
        except psycopg2.Error as exc:
            cursor.execute("ROLLBACK")
            if isinstance(exc, psycopg2.errors.ObjectInUse) and attempt < SWAP_ATTEMPTS - 1:
                continue
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(new)))
            raise DbOpsError(
                f"Could not replace {target.masked}; nothing was changed: {_first_line(target, exc)}"
            ) from None


def _finish_half_done_reset(cursor, server_version_num: int, target: Target) -> str:
    new, old = reset_names(target.name)
    cursor.execute("SELECT datname FROM pg_database WHERE datname IN (%s, %s)", [new, old])
    found = {name for (name,) in cursor.fetchall()}
    done = []
    if old in found:  # the swap was committed: the target is the empty database already
        _drop_database(cursor, server_version_num, old)
        done.append(f"finished a reset of {target.name} that was stopped before it dropped the old contents")
    if new in found:  # stopped before the swap: the target was never touched
        cursor.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(new)))
        done.append(f"dropped the empty database {new!r} of a reset of {target.name} that was stopped before it")
    return f"First {' and '.join(done)}." if done else ""


def _drop_database(cursor, server_version_num: int, name: str) -> None:
    if server_version_num < 130000:  # no DROP DATABASE ... WITH (FORCE) yet
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        cursor.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
    else:
        cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _first_line(target: Target, exc: Exception) -> str:
    return target.scrub(str(exc)).strip().splitlines()[0]


def check_reset(target: Target, maintenance_db: str | None = None, create: bool = False) -> DatabaseState:
    """Everything reset needs, checked before anyone is asked to confirm; describe the database."""
    refuse_reset(target, maintenance_db)
    state = inspect(target)
    if not state.exists:
        if create:
            return state
        raise DbOpsError(
            f"{target.masked} does not exist (is the name right?); nothing was changed. "
            "Add --create to create it empty."
        )
    with maintenance_connection(target, maintenance_db) as conn:
        missing = missing_reset_privileges(conn, target.name)
    if missing:
        raise DbOpsError(f"Cannot reset {target.masked}: {missing}. Nothing was changed.")
    return state


def missing_reset_privileges(conn, name: str) -> str:
    """What the connected role lacks to drop database name and create it again with its owner ("" if nothing)."""
    # Creating a database for another owner takes the right to SET ROLE to it (16+), membership before.
    can_become = "SET" if conn.server_version >= 160000 else "MEMBER"
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT r.rolsuper, r.rolcreatedb, pg_has_role(d.datdba, 'USAGE'), "
            "d.datdba = r.oid OR pg_has_role(d.datdba, %s), pg_get_userbyid(d.datdba) "
            "FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = %s",
            [can_become, name],
        )
        row = cursor.fetchone()
        role = conn.info.user
    if row is None or row[0]:
        return ""
    _, createdb, owns, can_own, owner = row
    if not owns:
        return f"only its owner {owner!r} or a superuser may drop it, and you connect as {role!r}"
    if not createdb:
        return (
            f"the role {role!r} may drop it but has no CREATEDB privilege to create it again "
            f"(a superuser can grant it: ALTER ROLE {role} CREATEDB)"
        )
    if not can_own:
        return f"the role {role!r} may not create a database owned by {owner!r} (GRANT {owner} TO {role})"
    return ""


def refuse_reset(target: Target, maintenance_db: str | None) -> None:
    protected = {*MAINTENANCE_DATABASES, "template0", *([maintenance_db] if maintenance_db else [])}
    if target.name in protected:
        raise DbOpsError(
            f"Refusing to drop {target.name!r}: it is a maintenance database. Point DATABASE_URL or --url at "
            "the app's own database (e.g. .../bird_app_db)."
        )


@contextlib.contextmanager
def scratch_database(instance: Target, label: str) -> Iterator[Target]:
    """A new, empty database on the instance for a restore drill, dropped afterwards whatever happens.

    Its name carries the owner's tag, so the next drill drops those that killed (-9) drills left."""
    stem = re.sub(r"[^a-z0-9_]", "_", label.lower())[:30]
    scratch = instance.with_database(f"{SCRATCH_PREFIX}{stem}_{cleanup.owner_tag()}_{secrets.token_hex(4)}")
    with maintenance_connection(instance) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user")
        if not cursor.fetchone()[0]:
            raise DbOpsError(
                f"A restore drill restores into a scratch database, and the role {conn.info.user!r} may not create "
                f"databases on {instance.masked} (no CREATEDB). Run the drill on a server of your own instead: "
                '`python manage.py localdb start`, then `python manage.py verify_backup --url "$(python manage.py '
                'localdb url --show-password)"`. Nothing was changed.'
            )
    drop_stale_scratch_databases(instance)
    create_database(scratch)
    try:
        yield scratch
    finally:
        with ctrl_c_deferred():
            drop_database(scratch)


def drop_stale_scratch_databases(instance: Target) -> list[str]:
    """Drop the scratch databases of drills of this machine whose process has ended."""
    with maintenance_connection(instance) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        names = [name for (name,) in cursor.fetchall() if name.startswith(SCRATCH_PREFIX)]
    stale = [name for name in names if cleanup.left_by_dead_process(name)]
    for name in stale:
        with contextlib.suppress(DbOpsError):  # another role's: not this drill's to fail over
            drop_database(instance.with_database(name))
    return stale
