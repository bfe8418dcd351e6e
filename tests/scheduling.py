"""How pytest-xdist deals the tests out to its workers (tests/conftest.py installs it for --dist load)."""
from xdist.scheduler import LoadScopeScheduling

# Modules whose module-scoped fixtures take seconds to build (a live site served by gunicorn, a big
# database and its archives, TLS servers of two versions). Their tests go to one worker together, so
# each fixture is built once rather than once on every worker.
MODULES_ON_ONE_WORKER = frozenset(
    f"tests/{name}.py"
    for name in (
        "test_api_bodies", "test_api_fuzz", "test_browser", "test_site_security", "test_interrupts", "test_tls"
    )
)


class LoadKeepingCostlyModulesTogether(LoadScopeScheduling):
    """--dist load, one test at a time to whichever worker is free, except for MODULES_ON_ONE_WORKER,
    each dealt out whole. xdist's own --dist loadgroup would do this with marks, but it renames items in a
    way pytest 9 no longer sees; LoadScopeScheduling deals out the largest units first."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if module in MODULES_ON_ONE_WORKER else nodeid
