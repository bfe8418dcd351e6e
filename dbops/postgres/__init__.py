"""The PostgreSQL engine: pg_dump, pg_restore and psql driven as (argv, env), psycopg2 for questions.

argv (pure command lines) <- session (connections) <- catalog (questions) <- dump, restore, admin
<- swap; this module is the engine's face, the one that operations reaches through dbops.engine."""

from .. import archive
from .admin import (
    check_reset,
    create_database,
    create_replacement,
    drop_database,
    recreate,
    restore_lock,
    same_database,
    scratch_database,
    swap_in_replacement,
)
from .argv import (
    default_compression,
    needs_script_route,
    pg_dump_command,
    pg_dump_schema_command,
    pg_restore_command,
    pg_restore_list_command,
    pg_restore_read_command,
    pg_restore_script_command,
    psql_script_command,
    script_line_filter,
)
from .catalog import (
    describe,
    fingerprints,
    inspect,
    list_databases,
    row_counts,
    schema_difference,
    server_version,
    table_fingerprints,
)
from .dump import dump, dump_stream, stream_copy, stream_dump
from .restore import check_restorable, load, restore_tools
from .session import connect, connect_arguments, maintenance_connection

ENGINE_NAME = "PostgreSQL"
ARCHIVE_FORMATS = frozenset({archive.CUSTOM, archive.DIRECTORY, archive.TAR, archive.SQL})

__all__ = [
    "ARCHIVE_FORMATS",
    "ENGINE_NAME",
    "check_reset",
    "check_restorable",
    "connect",
    "connect_arguments",
    "create_database",
    "create_replacement",
    "default_compression",
    "describe",
    "drop_database",
    "dump",
    "dump_stream",
    "fingerprints",
    "inspect",
    "list_databases",
    "load",
    "maintenance_connection",
    "needs_script_route",
    "pg_dump_command",
    "pg_dump_schema_command",
    "pg_restore_command",
    "pg_restore_list_command",
    "pg_restore_read_command",
    "pg_restore_script_command",
    "psql_script_command",
    "recreate",
    "restore_lock",
    "restore_tools",
    "row_counts",
    "same_database",
    "schema_difference",
    "scratch_database",
    "script_line_filter",
    "server_version",
    "stream_copy",
    "stream_dump",
    "swap_in_replacement",
    "table_fingerprints",
]
