"""What the engines report back, whichever engine it is."""

from dataclasses import dataclass


@dataclass(frozen=True)
class DatabaseState:
    exists: bool
    table_count: int
    server_version: str


@dataclass(frozen=True)
class DumpFacts:
    server_version: str
    dump_version: str
    tables: dict[str, int]
    tools_used: str
