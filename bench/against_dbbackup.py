#!/usr/bin/env python3
"""backup_db and restore_db against django-dbbackup 5.4's dbbackup and dbrestore, side by side, on a ~460 MB database.

    .venv/bin/python bench/against_dbbackup.py [--rounds 3] [--rows 1430000]

django-dbbackup runs with its defaults (for PostgreSQL its PgDumpBinaryConnector: `pg_dump
--format=custom` into its storage, a local folder; `pg_restore --single-transaction --clean
--if-exists` of the newest backup there), added to this project as a user who picked it would
(bench/dbbackup_settings.py: the project's settings plus dbbackup), through manage.py, in a venv of its
own that this script makes on first use (bench/.venv-dbbackup, from bench/requirements-dbbackup.txt:
the project's requirements plus django-dbbackup; never a project dependency), with the same PostgreSQL
18 client tools first on PATH as backup_db uses. backup_db and restore_db run with their defaults and
every check.

Starts an embedded PostgreSQL 18, generates the database as bench/backup.py does, then in each round
times, one right after the other (in the opposite order every other round, each after a CHECKPOINT
and a sync): raw `pg_dump --format=custom` (its default compression) | dbbackup | backup_db; then,
each into an empty database of its own: raw `pg_restore --single-transaction` of backup_db's archive |
dbrestore --noinput (of dbbackup's) | restore_db --no-safety-backup | restore_db --swap (of backup_db's);
then Python and Django starting each command alone (--version). Every restored database is checked to hold all the
rows. Prints medians, the ratios of the targets (median of the per-round ratios: restore_db /
dbrestore at most 1, backup_db / dbbackup at most 0.5) and the load average. The machine is shared:
compare the ratios, which are measured side by side.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from bench.backup import generated_database, manage, print_table, time_in_turn  # noqa: E402
from dbops.tools import tools_for_server  # noqa: E402
from tests.helpers import child_env  # noqa: E402
from tests.servers import embedded_server  # noqa: E402

BENCH_DIR = PROJECT_DIR / "bench"
DBBACKUP_VENV = BENCH_DIR / ".venv-dbbackup"
DBBACKUP_REQUIREMENTS = BENCH_DIR / "requirements-dbbackup.txt"


def dbbackup_python() -> Path:
    """dbbackup's venv, made from its pinned requirements the first time."""
    python = DBBACKUP_VENV / "bin" / "python"
    if not python.exists():
        print(f"Creating {DBBACKUP_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DBBACKUP_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(DBBACKUP_REQUIREMENTS)], check=True)
    return python


def dbbackup_env(server, bin_dir, database, folder):
    return child_env(
        DJANGO_SETTINGS_MODULE="bench.dbbackup_settings",
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        DATABASE_URL=server.url(database),
        BENCH_DBBACKUP_DIR=folder,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_430_000)
    options = parser.parse_args()
    python = dbbackup_python()
    with embedded_server() as server, tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = Path(scratch)
        source, size = generated_database(server, options.rows)
        pg_env = dict(os.environ, PGPASSWORD=server.password)
        connection = ["-h", server.host, "-p", str(server.port), "-U", server.user, "--no-password"]
        tools = tools_for_server(server.major_version(), False)
        bin_dir = tools.bin_dir
        kinds = ("raw_dump", "dbbackup", "backup", "raw_restore", "dbrestore", "restore", "swap", "their_startup",
                 "our_startup")
        figures = {kind: [] for kind in kinds}
        for round_number in range(1, options.rounds + 1):
            backwards = round_number % 2 == 0
            ours_dir, theirs_dir = work / f"backup_db-{round_number}", work / f"dbbackup-{round_number}"
            theirs_dir.mkdir()
            raw_file = work / f"raw-{round_number}.dump"
            dumps = {
                "raw_dump": ([str(bin_dir / "pg_dump"), *connection, "--format=custom", "--file", str(raw_file),
                              source], pg_env),
                "dbbackup": ([str(python), "manage.py", "dbbackup"],
                             dbbackup_env(server, bin_dir, source, theirs_dir)),
                "backup": (manage("backup_db", "--url", server.url(source)), child_env(BACKUP_DIR=ours_dir)),
            }
            time_in_turn(server, dumps, figures, {}, backwards)
            (ours,) = ours_dir.glob("*.dump")
            (theirs,) = theirs_dir.glob("*.psql.bin")
            raw_file.unlink()

            targets = {kind: server.create_database(kind) for kind in ("raw", "dbrestore", "ours", "swap")}
            restores = {
                "raw_restore": ([str(bin_dir / "pg_restore"), *connection, "--single-transaction", "--no-owner",
                                 "--no-acl", "--exit-on-error", "--dbname", targets["raw"], str(ours)], pg_env),
                "dbrestore": ([str(python), "manage.py", "dbrestore", "--noinput"],
                              dbbackup_env(server, bin_dir, targets["dbrestore"], theirs_dir)),
                "restore": (manage("restore_db", str(ours), "--url", server.url(targets["ours"]), "--noinput",
                                   "--no-safety-backup"), child_env(BACKUP_DIR=ours_dir)),
                "swap": (manage("restore_db", str(ours), "--url", server.url(targets["swap"]), "--noinput", "--swap"),
                         child_env(BACKUP_DIR=ours_dir)),
            }
            time_in_turn(server, restores, figures, {}, backwards)
            startups = {
                "their_startup": ([str(python), "manage.py", "dbrestore", "--version"],
                                  dbbackup_env(server, bin_dir, source, theirs_dir)),
                "our_startup": (manage("restore_db", "--version"), child_env(BACKUP_DIR=ours_dir)),
            }
            time_in_turn(server, startups, figures, {}, backwards)
            for name in targets.values():
                (rows,) = server.execute("SELECT count(*) FROM observations", database=name)[0]
                if rows != options.rows:
                    raise SystemExit(f"{name} holds {rows} rows after its restore, not {options.rows}")
                server.drop_database(name)
            for (kept,) in server.execute("SELECT datname FROM pg_database WHERE datname LIKE '%\\_before\\_%'"):
                server.drop_database(kept)  # what the swap kept of the empty target
            print(f"round {round_number}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in figures.items())
                  + f"; load average {os.getloadavg()[0]:.2f}", flush=True)
        sizes = {"backup_db": ours.stat().st_size, "dbbackup": theirs.stat().st_size}
        report(options, size, sizes, figures, tools.describe())


def report(options, size, sizes, figures, tools):
    rows = [
        ("raw `pg_dump --format=custom` (pg_dump's default compression)", "raw_dump", "dbbackup"),
        ("`dbbackup` (django-dbbackup 5.4, defaults)", "dbbackup", "dbbackup"),
        ("`backup_db` (defaults, every check)", "backup", "dbbackup"),
        ("raw `pg_restore --single-transaction` of backup_db's archive", "raw_restore", "dbrestore"),
        ("`dbrestore --noinput` (django-dbbackup 5.4, defaults) of dbbackup's", "dbrestore", "dbrestore"),
        ("`restore_db --no-safety-backup` of backup_db's", "restore", "dbrestore"),
        ("`restore_db --swap` (default jobs) of backup_db's", "swap", "dbrestore"),
        ("Python and Django starting `dbrestore` alone (`dbrestore --version`)", "their_startup", "their_startup"),
        ("Python and Django starting `restore_db` alone (`restore_db --version`)", "our_startup", "their_startup"),
    ]
    print()
    print(f"Database {size / 1e6:.0f} MB ({options.rows} rows); archives: backup_db {sizes['backup_db'] / 1e6:.0f} MB, "
          f"dbbackup {sizes['dbbackup'] / 1e6:.0f} MB; {options.rounds} rounds, medians; {tools}; "
          f"load average at the end {', '.join(f'{load:.2f}' for load in os.getloadavg())}:")
    print_table(figures, rows, "django-dbbackup's")


if __name__ == "__main__":
    main()
