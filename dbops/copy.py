"""copy_db: move databases to another PostgreSQL instance (a free instance expires) or another name.

Data streams from pg_dump into pg_restore, so no full copy lands on local disk. Each database is
restored in one transaction and then checked table by table against the source's row counts and
fingerprints (a hash of every row, postgres.table_fingerprints) in the snapshot that pg_dump
copied. A database is only skipped when its fingerprints, its schema and its large objects match.
The source is only ever read. With --all, a database that cannot be copied does not stop the others.
"""

import time
from dataclasses import dataclass
from enum import StrEnum

from . import postgres
from .connection import Target
from .errors import DbOpsError, Interrupted
from .facts import DatabaseFailure, compare_row_counts
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
    SKIP = "skip"  # it already holds the source's rows, schema and large objects: copied before


@dataclass(frozen=True)
class DatabaseCopy:
    source: Target
    target: Target
    action: Action
    source_tables: dict[str, int]
    target_table_count: int
    why: str = ""  # for OVERWRITE: how the target differs from the source


@dataclass(frozen=True)
class CopyPlan:
    copies: list[DatabaseCopy]
    failures: list[DatabaseFailure]  # databases of --all that could not be looked at (no CONNECT, a table not readable)


class CopyFailed(DbOpsError):
    def __init__(self, item: DatabaseCopy, reason: str):
        self.failure = DatabaseFailure(item.source.name, reason)
        super().__init__(
            f"Copying database {item.source.name!r} ({item.source.masked} to {item.target.masked}) failed: "
            f"{reason}. The source was not changed. Run the same command again to retry: "
            "databases already copied and verified are skipped."
        )


@dataclass(frozen=True)
class CopyResult:
    tables: dict[str, int]
    seconds: float
    tools_used: str


def plan_copy(source: Target, target: Target, all_databases: bool = False) -> CopyPlan:
    """Look at both sides, changing nothing: what would be created, copied, overwritten or skipped.

    With all_databases, every non-template database of the source instance that holds tables is
    copied to a database of the same name on the target instance; the URLs' database names only say
    where to connect. A database that cannot be looked at is then a failure of the plan, not the end
    of it; a single database raises."""
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
    copies, failures = [], []
    for source_db, target_db in pairs:
        try:
            same = postgres.same_database(source_db, target_db)
            item = None if same else _plan_database(source_db, target_db, skip_empty=all_databases)
        except DbOpsError as exc:
            if not all_databases:
                raise
            failures.append(DatabaseFailure(source_db.name, str(exc).rstrip(".")))
            continue
        if same:
            raise DbOpsError(
                f"{source_db.masked} and {target_db.masked} are one database (the server says so): "
                "give the copy another name or instance."
            )
        if item is not None:
            copies.append(item)
    if not copies and not failures:
        raise DbOpsError(f"No database of the instance at {source.masked} holds tables: nothing to copy.")
    return CopyPlan(copies, failures)


def _plan_database(source: Target, target: Target, skip_empty: bool) -> DatabaseCopy | None:
    """None for an empty database when skip_empty (--all's "postgres"): nothing an app would miss."""
    source_tables = postgres.row_counts(source)
    if skip_empty and not source_tables:
        return None
    state = postgres.inspect(target)
    if not state.exists:
        return DatabaseCopy(source, target, Action.CREATE, source_tables, 0)
    if not state.table_count:
        return DatabaseCopy(source, target, Action.COPY, source_tables, 0)
    why = _difference(source, target, source_tables)
    action = Action.OVERWRITE if why else Action.SKIP
    return DatabaseCopy(source, target, action, source_tables, state.table_count, why)


def _difference(source: Target, target: Target, source_tables: dict[str, int]) -> str:
    """How the target differs from the source ("" when it holds the same rows, schema and large objects).
    The cheap checks first: row counts, then hashes of the rows (rows changed in place keep their counts),
    then the schema (an index, a view, a constraint, a default or a function created since the last copy),
    then the large objects, read whole (neither rows nor pg_dump --schema-only hold them)."""
    if postgres.row_counts(target) != source_tables or postgres.fingerprints(target) != postgres.fingerprints(source):
        return "it holds other rows than the source"
    schema = postgres.schema_difference(source, target)
    if schema:
        return f"its schema differs from the source's ({schema})"
    return _large_object_difference(source, target)


def _large_object_difference(source: Target, target: Target) -> str:
    """Empty only when both sides' large objects were read and are equal: one that could not be read
    might differ, and copying again costs less than a stale copy."""
    source_objects, target_objects = postgres.large_objects(source), postgres.large_objects(target)
    if source_objects is None or target_objects is None:
        return "its large objects could not all be read to compare with the source's (lo_get needs SELECT on each)"
    return "its large objects differ from the source's" if source_objects != target_objects else ""


def copy_database(item: DatabaseCopy) -> CopyResult:
    """Copy one planned database (not one planned as SKIP) and verify it. A failure names the database;
    the source is only read, and a restore that fails leaves the target database as it was."""
    started, facts = time.monotonic(), None
    try:
        if item.action is Action.CREATE:
            postgres.create_database(item.target, exist_ok=True)
        facts = postgres.stream_copy(item.source, item.target)
        compare_row_counts(facts.tables, postgres.row_counts(item.target), "in the source", "in the copy")
        compare_fingerprints(facts.fingerprints, postgres.fingerprints(item.target))
    except DbOpsError as exc:
        raise CopyFailed(item, str(exc).rstrip(".")) from exc
    except KeyboardInterrupt:
        if item.action is Action.CREATE:
            with ctrl_c_deferred():
                postgres.drop_database(item.target)
        raise Interrupted(_stopped_copy(item, committed=facts is not None)) from None
    return CopyResult(facts.tables, time.monotonic() - started, facts.tools_used)


def _stopped_copy(item: DatabaseCopy, committed: bool) -> str:
    """What a stop left: a new database goes whatever it holds; an existing one holds the copy once committed."""
    if committed and item.action is not Action.CREATE:
        state = "holds the copy, committed but not yet compared with the source"
        return (
            f"Interrupted while checking the copy of {item.source.name!r}: {item.target.masked} {state}; the source "
            "was not changed. Databases copied before it are complete."
        )
    was = "(it did not exist)" if item.action is Action.CREATE else "before"
    return (
        f"Interrupted: the copy of {item.source.name!r} was rolled back, so {item.target.masked} is as it was {was}; "
        "the source was not changed. Databases copied before it are complete."
    )


def compare_fingerprints(source: dict[str, str], copied: dict[str, str]) -> None:
    differences = [
        f"{name}: {fingerprint} in the source, {copied.get(name, 'missing')} in the copy"
        for name, fingerprint in sorted(source.items())
        if copied.get(name) != fingerprint
    ]
    if differences:
        raise DbOpsError("The copy's contents differ from the source's: " + "; ".join(differences))
