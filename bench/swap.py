#!/usr/bin/env python3
"""restore_db --swap and --undo against today's restore_db, side by side, on a ~460 MB database.

    .venv/bin/python bench/swap.py [--rounds 3] [--rows 1430000]

Starts an embedded PostgreSQL 18, generates the database as bench/backup.py does, backs it up with
backup_db (its defaults: a custom archive, zstd:1), then in each round times, one right after the other
(in the opposite order every other round, each after a CHECKPOINT and a sync), every check kept:
  `restore_db` (today's route: a safety backup, then one transaction) into a non-empty target (a copy
  of the database) | `restore_db --swap` (default jobs: one per core) into a non-empty target | the
  same into an empty target | `restore_db --swap --jobs 1` into an empty target (how it scales with
  cores) | `restore_db --undo` of the first swap.
Prints medians and the ratios (median of per-round ratios) with the load average. The machine is
shared and noisy: compare the ratios, which are measured side by side.
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from bench.backup import GENERATE, manage, time_in_turn  # noqa: E402
from tests.helpers import child_env  # noqa: E402
from tests.servers import embedded_server  # noqa: E402

KINDS = {
    "today": "`restore_db` into a non-empty target (safety backup, one transaction)",
    "swap": "`restore_db --swap` into a non-empty target",
    "swap_empty": "`restore_db --swap` into an empty target",
    "swap_1job": "`restore_db --swap --jobs 1` into an empty target",
    "undo": "`restore_db --undo` (of the swap into the non-empty target)",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_430_000)
    options = parser.parse_args()
    with embedded_server() as server, tempfile.TemporaryDirectory(prefix="bench-swap-") as scratch:
        source = server.create_database("bench")
        print(f"Generating {options.rows} rows ...", flush=True)
        server.execute(GENERATE.replace("ROWS", str(options.rows)), database=source)
        server.execute("VACUUM ANALYZE", database=source)
        size = server.execute(f"SELECT pg_database_size('{source}')")[0][0]
        env = child_env(BACKUP_DIR=Path(scratch) / "backups")
        archive = Path(scratch) / "bench.dump"
        time_in_turn(server, {"backup": (manage("backup_db", "--url", server.url(source), "--output",
                                                str(archive)), env)}, {"backup": []}, {}, False)
        figures = {kind: [] for kind in KINDS}
        for round_number in range(1, options.rounds + 1):
            names = {kind: f"{kind}_{round_number}" for kind in ("today", "swap", "swap_empty", "swap_1job")}
            for kind, name in names.items():
                template = f" TEMPLATE {source}" if kind in ("today", "swap") else ""
                server.execute(f"CREATE DATABASE {name}{template}")

            extra = {"today": [], "swap": ["--swap"], "swap_empty": ["--swap"], "swap_1job": ["--swap", "--jobs", "1"]}
            restores = {
                kind: (manage("restore_db", str(archive), "--url", server.url(names[kind]), "--noinput", *args), env)
                for kind, args in extra.items()
            }
            time_in_turn(server, restores, figures, {}, backwards=round_number % 2 == 0)
            undo = {"undo": (manage("restore_db", "--undo", "--url", server.url(names["swap"]), "--noinput"), env)}
            time_in_turn(server, undo, figures, {}, backwards=False)
            kept_by_swaps = f"%\\_{round_number}\\_before\\_%"
            kept = server.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [kept_by_swaps])
            for name in [*names.values(), *(name for (name,) in kept)]:
                server.drop_database(name)
            print(f"round {round_number}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in figures.items())
                  + f"; load average {os.getloadavg()[0]:.2f}", flush=True)
        report(options, size, archive.stat().st_size, figures)


def report(options, size, archive_size, figures):
    median = {kind: statistics.median(values) for kind, values in figures.items()}

    def ratio(ours, other):
        return statistics.median(o / r for o, r in zip(figures[ours], figures[other], strict=True))

    print()
    print(f"Database {size / 1e6:.0f} MB ({options.rows} rows), archive {archive_size / 1e6:.0f} MB (custom, zstd:1), "
          f"{options.rounds} rounds, {os.cpu_count()} cores, medians; load average "
          f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} at the end:")
    print()
    print("| what | seconds | ratio to today's `restore_db` | ratio to the swap with --jobs 1 |")
    print("| --- | --- | --- | --- |")
    for kind, label in KINDS.items():
        print(f"| {label} | {median[kind]:.2f} | {ratio(kind, 'today'):.3f} | {ratio(kind, 'swap_1job'):.3f} |")


if __name__ == "__main__":
    main()
