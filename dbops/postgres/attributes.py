"""What CREATE and ALTER DATABASE give a database and a dump does not carry (owner, locale, tablespace,
settings, grants, comment), read from a database to make another like it (restore_db --swap, reset_db)."""

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql

from ..connection import Target

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
