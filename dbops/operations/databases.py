"""Whole databases: describe, reset, create, and restore_db --swap / --undo, each asked of the target's engine."""

import re
from dataclasses import dataclass, replace

from .. import render
from ..connection import Target
from ..engine import KeptDatabase, SwapPlan, SwapResult, UndoResult, engine_for
from ..errors import DbOpsError, Interrupted
from ..facts import DatabaseState, InstanceInfo
from ..plans import RestorePlan
from ..process import ctrl_c_deferred

# Names that work unquoted in every hand-written psql command, as the tutorials write them.
PLAIN_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_reset(target: Target, maintenance_db: str | None = None, create: bool = False) -> DatabaseState:
    """Refuse what reset must never drop or could not recreate, before anyone is asked to confirm;
    describe the rest."""
    return engine_for(target).check_reset(target, maintenance_db, create)


def reset(target: Target, maintenance_db: str | None = None) -> str:
    """Replace by an empty database; a stop signal waits until it is done. Returns what was done to a
    half-done earlier reset ("" if there was none)."""
    try:
        with ctrl_c_deferred():
            return engine_for(target).recreate(target, maintenance_db)
    except KeyboardInterrupt:
        raise Interrupted(f"Interrupted after the reset had finished: {target.masked} is now empty.") from None


def inspect(target: Target) -> DatabaseState:
    return engine_for(target).inspect(target)


def describe(target: Target) -> InstanceInfo:
    """The instance and its databases; with RENDER_API_KEY, also the Render instance it is (and its expiry)."""
    return replace(engine_for(target).describe(target), render=render.instance_of(target.host))


@dataclass(frozen=True)
class CreateResult:
    target: Target
    created: bool


def create_db(instance: Target, name: str, if_not_exists: bool = False) -> CreateResult:
    """CREATE DATABASE name in the instance that the instance target's server runs."""
    engine = engine_for(instance)
    if not engine.can_create_databases:
        raise DbOpsError(
            "create_db creates a database inside a PostgreSQL instance; a SQLite database is just a file "
            "(DATABASE_URL=sqlite:///path/to/file.sqlite3 creates it on first use)."
        )
    check_database_name(name)
    target = instance.with_database(name)
    # Connect through the database the URL names (it exists, and the user may connect to it),
    # unless that is the one to create.
    maintenance_db = instance.name if instance.name != name else None
    created = engine.create_database(target, maintenance_db, exist_ok=if_not_exists)
    return CreateResult(target, created)


def check_database_name(name: str) -> None:
    """Refuse names that would need "double quotes" ever after; quoting them here would be easy."""
    if PLAIN_DATABASE_NAME.fullmatch(name):
        return
    suggestion = re.sub(r"[^a-z0-9_]", "_", name.lower()).lstrip("0123456789")[:63] or "app_db"
    raise DbOpsError(
        f"Refusing the database name {name!r}: use lowercase letters, digits and underscores, starting with "
        "a letter or underscore, at most 63 characters. Other names can be created (quoted), but every "
        "hand-written psql or SQL command would then need \"double quotes\" around them: unquoted, a hyphen "
        f"is a syntax error and capitals turn into lowercase. Try {suggestion!r}."
    )


def check_swap(target: Target, maintenance_db: str | None = None) -> SwapPlan:
    """Refuse, before anything is touched, a swap that this engine or role cannot do; the swap's plan."""
    return engine_for(target).check_swap(target, maintenance_db)


def clean_up_killed_swap(target: Target, maintenance_db: str | None = None) -> list[str]:
    """Every restore_db first undoes what a swap killed outright left (its new database, the target's
    connections stopped); the databases it dropped."""
    return engine_for(target).clean_up_killed_swap(target, maintenance_db)


def check_swap_space(swap_plan: SwapPlan, plan: RestorePlan) -> int:
    """Refuse a swap that the server's disk cannot hold, where its free space can be known; the archive's size."""
    return engine_for(plan.target).check_swap_space(swap_plan, plan)


def restore_by_swap(plan: RestorePlan, swap_plan: SwapPlan, jobs: int | None, maintenance_db: str | None,
                    safety_days: int) -> SwapResult:
    """Restore into a new database made like the target, check it against the manifest, then swap it in.
    Any failure or Ctrl-C before the swap drops the new database: the target is untouched."""
    return engine_for(plan.target).restore_by_swap(plan, swap_plan, jobs, maintenance_db, safety_days)


def undo_swap(target: Target, maintenance_db: str | None = None) -> UndoResult:
    """Swap the newest <name>_before_<stamp> back in; what the target holds is kept in its turn."""
    return engine_for(target).undo_swap(target, maintenance_db)


def kept_databases(target: Target) -> list[KeptDatabase]:
    """db_info's and list_backups' view of what swaps kept of the target (none on SQLite)."""
    return engine_for(target).kept_databases(target)
