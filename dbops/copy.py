"""copy_db: move databases to another PostgreSQL instance (a free instance expires) or another name.

Data streams from pg_dump into pg_restore, so no full copy lands on local disk. Each database is
restored in one transaction and then checked table by table against the source's row counts and
fingerprints (a hash of every row, postgres.table_fingerprints) in the snapshot that pg_dump
copied. A database is only skipped when its fingerprints match. The source is only ever read.
"""

import time
from dataclasses import dataclass
from enum import StrEnum

from . import postgres
from .connection import Target
from .errors import DbOpsError, Interrupted
from .operations import compare_row_counts
from .process import ctrl_c_deferred

# Backups of one engine do not restore into the other; Django's own serialisation moves the data.
SQLITE_TO_POSTGRESQL_ADVICE = (
    "copy_db cannot copy between SQLite and PostgreSQL (their backups do not convert). Move the data with "
    "Django: with DATABASE_URL set to the source, `python manage.py dumpdata --natural-foreign --natural-primary "
    "--exclude contenttypes --exclude auth.permission --output data.json`; then with DATABASE_URL set to the "
    "target, `python manage.py migrate` and `python manage.py loaddata data.json`."
)


class Action(StrEnum):
    CREATE = "create"  # the target database does not exist yet
    COPY = "copy"  # it exists and holds no tables
    OVERWRITE = "overwrite"  # it holds tables: only with the user's confirmation
    SKIP = "skip"  # it already holds every table with the source's rows: copied before


@dataclass(frozen=True)
class DatabaseCopy:
    source: Target
    target: Target
    action: Action
    source_tables: dict[str, int]
    target_table_count: int


@dataclass(frozen=True)
class CopyResult:
    tables: dict[str, int]
    seconds: float
    tools_used: str


def plan_copy(source: Target, target: Target, all_databases: bool = False) -> list[DatabaseCopy]:
    """Look at both sides, changing nothing: what would be created, copied, overwritten or skipped.

    With all_databases, every non-template database of the source instance that holds tables is
    copied to a database of the same name on the target instance; the URLs' database names only say
    where to connect."""
    if source.is_sqlite and target.is_sqlite:
        raise DbOpsError(
            "copy_db copies PostgreSQL databases; copy a SQLite database with `python manage.py backup_db --url "
            "SOURCE`, then `python manage.py restore_db BACKUP --url TARGET`."
        )
    if source.is_sqlite or target.is_sqlite:
        raise DbOpsError(SQLITE_TO_POSTGRESQL_ADVICE)
    if all_databases:
        pairs = [(source.with_database(name), target.with_database(name)) for name in postgres.list_databases(source)]
    else:
        pairs = [(source, target)]
    plan = []
    for source_db, target_db in pairs:
        if postgres.same_database(source_db, target_db):
            raise DbOpsError(
                f"{source_db.masked} and {target_db.masked} are one database (the server says so): "
                "give the copy another name or instance."
            )
        tables = postgres.row_counts(source_db)
        if all_databases and not tables:
            continue  # "postgres" and other empty databases: nothing an app would miss
        plan.append(_plan_database(source_db, target_db, tables))
    if not plan:
        raise DbOpsError(f"No database of the instance at {source.masked} holds tables: nothing to copy.")
    return plan


def _plan_database(source: Target, target: Target, source_tables: dict[str, int]) -> DatabaseCopy:
    state = postgres.inspect(target)
    if not state.exists:
        action = Action.CREATE
    elif not state.table_count:
        action = Action.COPY
    elif postgres.row_counts(target) == source_tables and _same_contents(source, target):
        action = Action.SKIP
    else:
        action = Action.OVERWRITE
    return DatabaseCopy(source, target, action, source_tables, state.table_count)


def _same_contents(source: Target, target: Target) -> bool:
    # Equal row counts are cheap to check first; rows changed in place keep them.
    return postgres.fingerprints(target) == postgres.fingerprints(source)


def copy_database(item: DatabaseCopy) -> CopyResult:
    """Copy one planned database (not one planned as SKIP) and verify it. A failure names the database;
    the source is only read, and a restore that fails leaves the target database as it was."""
    started = time.monotonic()
    try:
        if item.action is Action.CREATE:
            postgres.create_database(item.target, exist_ok=True)
        facts = postgres.stream_copy(item.source, item.target)
        compare_row_counts(facts.tables, postgres.row_counts(item.target), "in the source", "in the copy")
        compare_fingerprints(facts.fingerprints, postgres.fingerprints(item.target))
    except DbOpsError as exc:
        raise DbOpsError(
            f"Copying database {item.source.name!r} ({item.source.masked} to {item.target.masked}) failed: "
            f"{str(exc).rstrip('.')}. The source was not changed. Run the same command again to retry: "
            "databases already copied and verified are skipped."
        ) from exc
    except KeyboardInterrupt:
        if item.action is Action.CREATE:
            with ctrl_c_deferred():
                postgres.drop_database(item.target)
        raise Interrupted(
            f"Interrupted: the copy of {item.source.name!r} was rolled back, so {item.target.masked} is as it was "
            f"{'(it did not exist)' if item.action is Action.CREATE else 'before'}; the source was not changed. "
            "Databases copied before it are complete."
        ) from None
    return CopyResult(facts.tables, time.monotonic() - started, facts.tools_used)


def compare_fingerprints(source: dict[str, str], copied: dict[str, str]) -> None:
    differences = [
        f"{name}: {fingerprint} in the source, {copied.get(name, 'missing')} in the copy"
        for name, fingerprint in sorted(source.items())
        if copied.get(name) != fingerprint
    ]
    if differences:
        raise DbOpsError("The copy's contents differ from the source's: " + "; ".join(differences))
