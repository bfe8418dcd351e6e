"""What the engines report back, whichever engine it is."""

import re
from dataclasses import dataclass, field

from .errors import DbOpsError
from .render import RenderInstance


@dataclass(frozen=True)
class DatabaseState:
    exists: bool
    table_count: int
    server_version: str
    system_identifier: str = ""  # PostgreSQL's cluster identifier, when readable

    @property
    def server_major(self) -> int:
        return int(re.match(r"\d+", self.server_version)[0])


@dataclass(frozen=True)
class DumpFacts:
    server_version: str
    dump_version: str
    tables: dict[str, int]
    tools_used: str
    fingerprints: dict[str, str] = field(default_factory=dict)  # what postgres.table_fingerprints says
    system_identifier: str = ""


@dataclass(frozen=True)
class Loaded:
    """What a restore's load did: the tools it used, and the tables' row counts when it took them
    inside its own transaction, before committing (None: the caller counts after)."""

    tools_used: str
    tables: dict[str, int] | None = None


@dataclass(frozen=True)
class DatabaseSummary:
    """One database of an instance, as psql's \\l shows it (size None: no CONNECT privilege on it)."""

    name: str
    owner: str
    encoding: str
    size: int | None


@dataclass(frozen=True)
class TableSummary:
    """One table, as psql's \\dt+ shows it, with its exact row count (size None: the engine cannot say)."""

    name: str
    rows: int
    size: int | None


@dataclass(frozen=True)
class InstanceInfo:
    """What db_info reports: the server, every database on it, and the tables of the target database."""

    target: str
    database: str
    server: str
    client_tools: str
    databases: list[DatabaseSummary]
    tables: list[TableSummary]
    render: RenderInstance | None = None  # with RENDER_API_KEY, for a database on Render


@dataclass(frozen=True)
class DatabaseFailure:
    """One database of an --all run that could not be backed up or copied, and why; the others go on."""

    database: str
    reason: str


def row_count_differences(
    expected: dict[str, int], actual: dict[str, int], expected_in: str, actual_in: str, exact: bool = False
) -> list[str]:
    """Every expected table with its count; with exact, no other table either."""
    differences = [
        f"{table}: {count} {expected_in}, {actual.get(table, 'none')} {actual_in}"
        for table, count in sorted(expected.items())
        if actual.get(table) != count
    ]
    if exact:
        differences += [
            f"{table}: not {expected_in}, {count} {actual_in}" for table, count in sorted(actual.items())
            if table not in expected
        ]
    return differences


def compare_row_counts(
    expected: dict[str, int],
    actual: dict[str, int],
    expected_in: str = "in the backup",
    actual_in: str = "after restoring",
    exact: bool = False,
) -> None:
    differences = row_count_differences(expected, actual, expected_in, actual_in, exact)
    if differences:
        raise DbOpsError("Row counts differ: " + "; ".join(differences))
