"""restore_db --swap and --undo (PostgreSQL): the archive is restored into a new database beside the target
and checked there; then the two swap names in one transaction, and the previous contents stay, as
<name>_before_<stamp>, until they are swapped back or dropped. The name exists at every instant."""

import contextlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg2 import sql

from . import postgres
from .connection import Target, needs_tls_tools
from .errors import DbOpsError
from .process import ctrl_c_deferred

KEPT_MARK = "_before_"
RESTORING_MARK = "_restoring_"
STAMP_FORMAT = "%Y%m%d%H%M%S"
# PostgreSQL names hold 63 bytes: the target's name is cut so that the mark and the stamp fit after it.
STEM_LENGTH = 63 - len(RESTORING_MARK) - len("20260101000000")
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})
LOCALE_PROVIDERS = {"c": "libc", "i": "icu", "b": "builtin"}
# Settings whose values are lists of names, each quoted on its own (GUC_LIST_QUOTE, as pg_dumpall knows).
LIST_SETTINGS = frozenset(
    {"search_path", "temp_tablespaces", "session_preload_libraries", "local_preload_libraries"}
)
LIST_ELEMENT = re.compile(r'\s*("(?:[^"]|"")*"|[^,]*?)\s*(?:,|$)')
ATTRIBUTES_QUERY = """
    SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
           {provider}, {locale}, {rules}, t.spcname, d.datconnlimit,
           coalesce((SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0),
                    '{{}}'),
           d.datacl IS NOT NULL,
           ARRAY(SELECT ARRAY[CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END,
                              a.privilege_type, a.is_grantable::text]
                 FROM aclexplode(d.datacl) a ORDER BY a.grantee, a.privilege_type),
           shobj_description(d.oid, 'pg_database'), pg_database_size(d.oid),
           (SELECT setting FROM pg_settings WHERE name = 'data_directory'),
           pg_tablespace_location(t.oid)
    FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = %s
"""
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
class DatabaseAttributes:
    """What CREATE and ALTER DATABASE give a database and a dump does not carry."""

    owner: str
    encoding: str
    collate: str
    ctype: str
    locale_provider: str  # pg_database's code: c (libc), i (icu), b (builtin)
    locale: str | None  # the ICU or builtin locale
    icu_rules: str | None
    tablespace: str
    connection_limit: int
    settings: tuple[str, ...]  # "name=value", as pg_db_role_setting holds them
    own_grants: bool  # False: the default privileges
    grants: tuple[tuple[str, str, bool], ...]  # (grantee, "" for PUBLIC; privilege; grantable)
    comment: str | None
    size: int
    data_directory: str | None  # the server's, when this role may read it (a superuser, pg_read_all_settings)
    tablespace_folder: str  # "" for the data directory's


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


@dataclass(frozen=True)
class Swapped:
    kept: KeptDatabase  # what the target held until the swap
    dropped: list[str]  # expired kept databases dropped afterwards


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
def swap_lock(target: Target, maintenance_db: str | None = None) -> Iterator[None]:
    """Held for a whole swap or undo (whatever connects to which database meanwhile): a second one is refused."""
    with postgres.maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
        cursor.execute(SWAP_LOCK_QUERY, [target.name])
        if not cursor.fetchone()[0]:
            raise DbOpsError(
                f"Another restore_db --swap or --undo of {target.masked} is running; try again when it has ended. "
                "Nothing was changed."
            )
        yield


def clean_up_killed_swap(target: Target, maintenance_db: str | None = None) -> list[str]:
    """What a swap killed outright (kill -9, a lost machine) left, undone: its new database dropped, and
    the connections it had stopped for the swap allowed again. Returns the databases dropped. Nothing
    is done while a swap of the target runs."""
    restoring, kept = kept_pattern(target.name, RESTORING_MARK), kept_pattern(target.name)
    try:
        with swap_lock(target, maintenance_db), postgres.maintenance_connection(target, maintenance_db) as conn:
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
                postgres.drop_database(target.with_database(name), maintenance_db)
    except DbOpsError:  # another swap runs, or this role may not: that one cleans up after itself
        return []
    return leftovers


def check(target: Target, maintenance_db: str | None = None) -> SwapPlan:
    """Refuse a swap this role cannot finish, before anything is touched; describe the target."""
    with postgres.maintenance_connection(target, maintenance_db) as conn:
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
                f"{role!r}: restore without --swap. Nothing was changed."
            )
        attributes = read_attributes(conn, target.name)
    return SwapPlan(target, attributes, free_space(target, attributes))


def _refuse_connected_to(conn, target: Target) -> None:
    if conn.info.dbname == target.name:
        raise DbOpsError(
            f"--swap renames {target.masked}, which cannot be done from a session in it, and no maintenance "
            "database (postgres, template1) is reachable: name one with --maintenance-db NAME. Nothing was changed."
        )


def read_attributes(conn, name: str) -> DatabaseAttributes:
    version = conn.server_version
    query = ATTRIBUTES_QUERY.format(
        provider="d.datlocprovider::text" if version >= 150000 else "'c'",
        locale="d.datlocale" if version >= 170000 else "d.daticulocale" if version >= 150000 else "NULL",
        rules="d.daticurules" if version >= 160000 else "NULL",
    )
    with conn.cursor() as cursor:
        cursor.execute(query, [name])
        row = cursor.fetchone()
    *head, settings, own_grants, grants, comment, size, data_directory, tablespace_folder = row
    grants = tuple((grantee, privilege, grantable == "true") for grantee, privilege, grantable in grants)
    return DatabaseAttributes(
        *head, tuple(settings), own_grants, grants, comment, size, data_directory, tablespace_folder
    )


def free_space(target: Target, attributes: DatabaseAttributes) -> int | None:
    """Free bytes on the disk of the target's tablespace, where the server's data folder is on this machine
    (a local server whose data_directory this role may read); None where it cannot be known (a hosted one)."""
    local = target.host in LOCAL_HOSTS or target.host.startswith("/")
    data_directory = attributes.data_directory
    if not (local and data_directory and (Path(data_directory) / "PG_VERSION").is_file()):
        return None
    return shutil.disk_usage(disk_folder(attributes)).free


def disk_folder(attributes: DatabaseAttributes) -> str:
    return attributes.tablespace_folder or attributes.data_directory or ""


def refuse_without_space(plan: SwapPlan, archive_size: int) -> None:
    needed = plan.needed_space(archive_size)
    if plan.free_space is not None and plan.free_space < needed:
        raise DbOpsError(
            f"--swap needs about {needed / 1e6:.1f} MB more on the server's disk ({plan.target.name}'s "
            f"{plan.attributes.size / 1e6:.1f} MB plus the archive's {archive_size / 1e6:.1f} MB), and "
            f"{disk_folder(plan.attributes)} has {plan.free_space / 1e6:.1f} MB free: restore without --swap, or free "
            "some space. Nothing was changed."
        )


def create_statements(name: str, attributes: DatabaseAttributes, server_version: int) -> list[sql.Composable]:
    """CREATE DATABASE like the target (from template0, as pg_dump's documentation advises), its
    grants and comment; settings and the connection limit come after the restore (see finish_statements)."""
    create = sql.SQL(
        "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}"
    )
    statement = create.format(
        sql.Identifier(name),
        sql.Identifier(attributes.owner),
        sql.Literal(attributes.encoding),
        sql.Literal(attributes.collate),
        sql.Literal(attributes.ctype),
    )
    if attributes.tablespace != "pg_default":  # naming the default needs a privilege on it that owners lack
        statement += sql.SQL(" TABLESPACE {}").format(sql.Identifier(attributes.tablespace))
    if server_version >= 150000:
        provider = LOCALE_PROVIDERS[attributes.locale_provider]
        statement += sql.SQL(" LOCALE_PROVIDER {}").format(sql.SQL(provider))
        if attributes.locale and provider != "libc":
            statement += sql.SQL(f" {provider.upper()}_LOCALE {{}}").format(sql.Literal(attributes.locale))
    if attributes.icu_rules:
        statement += sql.SQL(" ICU_RULES {}").format(sql.Literal(attributes.icu_rules))
    statements = [statement, *grant_statements(name, attributes)]
    if attributes.comment is not None:
        comment = sql.SQL("COMMENT ON DATABASE {} IS {}")
        statements.append(comment.format(sql.Identifier(name), sql.Literal(attributes.comment)))
    return statements


def grant_statements(name: str, attributes: DatabaseAttributes) -> list[sql.Composable]:
    if not attributes.own_grants:
        return []
    database = sql.Identifier(name)
    statements = [
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC, {}").format(database, sql.Identifier(attributes.owner))
    ]
    for grantee, privilege, grantable in attributes.grants:
        to = sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC")
        option = sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL("")
        statements.append(sql.SQL("GRANT {} ON DATABASE {} TO {}").format(sql.SQL(privilege), database, to) + option)
    return statements


def finish_statements(name: str, attributes: DatabaseAttributes) -> list[sql.Composable]:
    """What would hinder the restore itself (default_transaction_read_only, a connection limit below
    its --jobs), set once it is done."""
    database = sql.Identifier(name)
    statements = [setting_statement(name, config) for config in attributes.settings]
    limit = sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}")
    return [*statements, limit.format(database, sql.Literal(attributes.connection_limit))]


def setting_statement(database: str, config: str) -> sql.Composable:
    name, _, value = config.partition("=")
    values = list_elements(value) if name.lower() in LIST_SETTINGS else [value]
    return sql.SQL("ALTER DATABASE {} SET {} TO {}").format(
        sql.Identifier(database),
        sql.SQL(".").join(sql.Identifier(part) for part in name.split(".")),
        sql.SQL(", ").join(sql.Literal(each) for each in values),
    )


def list_elements(value: str) -> list[str]:
    """'"$user", public' as the list ['$user', 'public']."""
    elements = [match.group(1) for match in LIST_ELEMENT.finditer(value) if match.group(0)]
    return [e[1:-1].replace('""', '"') if e.startswith('"') else e for e in elements]


@contextlib.contextmanager
def new_database(plan: SwapPlan, when: datetime, maintenance_db: str | None = None) -> Iterator[Target]:
    """The database to restore into, made like the target; dropped again unless the block swaps it in
    (it then no longer has its name)."""
    new = plan.target.with_database(restoring_name(plan.target.name, when))
    with postgres.maintenance_connection(plan.target, maintenance_db) as conn, conn.cursor() as cursor:
        try:
            for statement in create_statements(new.name, plan.attributes, conn.server_version):
                cursor.execute(statement)
        except BaseException:
            with ctrl_c_deferred():
                postgres.drop_database(new, maintenance_db)
            raise
    try:
        yield new
    finally:
        with ctrl_c_deferred():
            postgres.drop_database(new, maintenance_db)


def parallel_jobs(target: Target, archive_path: Path, archive_format: str, jobs: int) -> int | None:
    """jobs, unless the pg_restore that fits the archive would send a server older than 17 the
    transaction_timeout it rejects: such a restore goes through the one-transaction script instead."""
    with postgres.connect(target) as conn:
        major, _ = postgres.server_version(conn)
    tools = postgres.restore_tools(major, needs_tls_tools(target), archive_path, archive_format)
    return None if postgres.needs_script_route(major, tools) else jobs


def finish(new: Target, attributes: DatabaseAttributes, maintenance_db: str | None = None) -> None:
    with postgres.maintenance_connection(new, maintenance_db) as conn, conn.cursor() as cursor:
        for statement in finish_statements(new.name, attributes):
            cursor.execute(statement)


def swap_in(target: Target, replacement: str, when: datetime, maintenance_db: str | None = None) -> str:
    """End the target's sessions (no new ones meanwhile) and, in one transaction, rename the target to
    <name>_before_<stamp> and the replacement to the target's name. Returns the kept name. On any
    failure before the commit nothing is renamed (the caller defers Ctrl-C over it: it takes moments)."""
    kept = kept_name(target.name, when)
    rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
    with postgres.maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
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


def kept_databases(target: Target, maintenance_db: str | None = None) -> list[KeptDatabase]:
    """The target's previous contents that swaps kept, newest first."""
    pattern = kept_pattern(target.name)
    with postgres.maintenance_connection(target, maintenance_db) as conn, conn.cursor() as cursor:
        query = "SELECT datname, pg_database_size(oid) FROM pg_database WHERE datname LIKE %s"
        cursor.execute(query, [like_pattern(target.name, KEPT_MARK)])
        rows = cursor.fetchall()
    kept = [
        KeptDatabase(name, datetime.strptime(match[1], STAMP_FORMAT).replace(tzinfo=UTC), size)
        for name, size in rows
        if (match := pattern.fullmatch(name))
    ]
    return sorted(kept, key=lambda each: each.kept_at, reverse=True)


def drop_expired(target: Target, days: int, maintenance_db: str | None = None) -> list[str]:
    """Drop the kept databases of the target older than days (the safety backups' rule)."""
    limit = datetime.now(UTC) - timedelta(days=days)
    doomed = [each.name for each in kept_databases(target, maintenance_db) if each.kept_at < limit]
    for name in doomed:
        postgres.drop_database(target.with_database(name), maintenance_db)
    return doomed


def swap_time(target: Target, maintenance_db: str | None = None) -> datetime:
    """Now, or a second after the newest kept database's stamp: names never clash (a swap and its undo
    within one second), and the newest stamp is always the last swap's."""
    now = datetime.now(UTC).replace(microsecond=0)
    kept = kept_databases(target, maintenance_db)
    return max(now, kept[0].kept_at + timedelta(seconds=1)) if kept else now
