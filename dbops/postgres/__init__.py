"""The PostgreSQL engine: pg_dump, pg_restore and psql driven as (argv, env), psycopg2 for questions.

argv (pure command lines) <- session (connections) <- catalog (questions) <- dump, restore, admin
<- swap; this module is the engine's face, the one that operations reaches through dbops.engine."""

from pathlib import Path

from .. import archive
from ..connection import Target
from ..facts import Loaded
from ..plans import DumpOptions, LoadRequest
from . import dump as dumping
from . import restore as restoring
from . import swap
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
    script_lines,
)
from .catalog import (
    describe,
    fingerprints,
    inspect,
    large_objects,
    list_databases,
    row_counts,
    schema_difference,
    server_version,
    table_fingerprints,
)
from .dump import stream_copy
from .restore import check_restorable
from .session import connect, connect_arguments, maintenance_connection


class PostgresEngine:
    """dbops.engine.Engine for PostgreSQL servers."""

    name = "PostgreSQL"
    archive_formats = frozenset({archive.CUSTOM, archive.DIRECTORY, archive.TAR, archive.SQL})
    can_create_databases = True

    @staticmethod
    def backup_format(jobs: int | None, compress: str | None) -> str:
        return archive.DIRECTORY if jobs else archive.CUSTOM  # pg_dump --jobs writes directories only

    inspect = staticmethod(inspect)
    describe = staticmethod(describe)
    list_databases = staticmethod(list_databases)
    row_counts = staticmethod(row_counts)

    @staticmethod
    def dump(target: Target, output: Path, options: DumpOptions):
        return dumping.dump(target, output, options.archive_format, options.jobs, options.compress, options.on_table)

    @staticmethod
    def dump_stream(target: Target, consume, options: DumpOptions):
        return dumping.dump_stream(target, consume, options.compress, options.on_table)

    stream_dump = staticmethod(dumping.stream_dump)
    check_restorable = staticmethod(check_restorable)

    @staticmethod
    def load(target: Target, request: LoadRequest, session=None) -> Loaded:
        backup = request.backup
        return restoring.load(
            target,
            backup.path,
            request.archive_format,
            request.jobs,
            backup.unchecked_sha256,
            request.expected_tables,
            session,
        )

    restore_lock = staticmethod(restore_lock)
    check_reset = staticmethod(check_reset)
    recreate = staticmethod(recreate)
    create_database = staticmethod(create_database)
    drop_database = staticmethod(drop_database)
    scratch_database = staticmethod(scratch_database)
    check_swap = staticmethod(swap.check)
    check_swap_space = staticmethod(swap.check_swap_space)
    restore_by_swap = staticmethod(swap.restore_by_swap)
    undo_swap = staticmethod(swap.undo_swap)
    clean_up_killed_swap = staticmethod(swap.clean_up_killed_swap)
    kept_databases = staticmethod(swap.kept_databases)
    drop_expired_kept = staticmethod(swap.drop_expired)


ENGINE = PostgresEngine()
__all__ = [
    "ENGINE",
    "check_reset",
    "check_restorable",
    "connect",
    "connect_arguments",
    "create_database",
    "create_replacement",
    "default_compression",
    "describe",
    "drop_database",
    "fingerprints",
    "inspect",
    "large_objects",
    "list_databases",
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
    "row_counts",
    "same_database",
    "schema_difference",
    "scratch_database",
    "script_line_filter",
    "script_lines",
    "server_version",
    "stream_copy",
    "swap_in_replacement",
    "table_fingerprints",
]
