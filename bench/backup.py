#!/usr/bin/env python3
"""backup_db and restore_db against the raw tools they wrap, side by side, on a ~460 MB database.

    .venv/bin/python bench/backup.py [--rounds 3] [--rows 1430000]

Starts an embedded PostgreSQL 18 and a moto S3 server on loopback, generates the database, then in
each round times, one right after the other:
  raw `pg_dump --format=custom` with backup_db's compression (the overhead of backup_db's checks),
  and with pg_dump's own default (the tutorial's command) | backup_db to a local folder,
  raw `pg_restore --single-transaction` of backup_db's archive into an empty database |
  restore_db --no-safety-backup of the same archive into one,
and backup_db into object storage (the upload's share is that time minus the local backup's),
with the peak memory (RSS) of the backup_db process itself. Prints medians and ratios as Markdown.
Every command starts after a CHECKPOINT, so none pays for writing out what the one before it wrote.
The machines are shared and noisy: compare the ratios, which are measured side by side; the load
average is printed with them.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from dbops.archive import CUSTOM  # noqa: E402
from dbops.postgres import default_compression  # noqa: E402
from dbops.tools import tools_for_server  # noqa: E402
from tests.helpers import child_env  # noqa: E402
from tests.s3server import moto_server  # noqa: E402
from tests.servers import embedded_server  # noqa: E402

GENERATE = """
CREATE TABLE observations (
  id bigserial PRIMARY KEY, bird_id int NOT NULL, seen_at timestamptz NOT NULL, place text,
  notes text, details jsonb
);
INSERT INTO observations (bird_id, seen_at, place, notes, details)
SELECT g % 500, '2020-01-01'::timestamptz + g * interval '1 minute', 'site-' || (g % 9000),
       repeat(md5(g::text), 2) || ' ' || md5((g * 7)::text),
       jsonb_build_object('n', g, 'count', g % 17, 'tag', md5((g * 3)::text))
FROM generate_series(1, ROWS) AS g;
CREATE INDEX observations_bird ON observations (bird_id, seen_at);
"""


def timed(server, argv, env, memory=False):
    """Wall seconds of a command, and the peak RSS of that process alone (MB) when memory is asked.

    A CHECKPOINT first: a restore leaves about a gigabyte of WAL and dirty pages, and whichever command
    came next paid about 0.3 s for writing them out."""
    server.execute("CHECKPOINT")
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    if memory:
        watcher = threading.Thread(target=watch_rss, args=(process, peak), daemon=True)
        watcher.start()
    _, stderr = process.communicate()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {stderr.decode()[-2000:]}")
    return seconds, peak[0] / 1e6


def watch_rss(process, peak):
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            peak[0] = max(peak[0], watched.memory_info().rss)
        except psutil.Error:
            return
        time.sleep(0.02)


def manage(*args):
    return [sys.executable, "manage.py", *args]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_430_000)
    options = parser.parse_args()
    with embedded_server() as server, moto_server() as s3, tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = Path(scratch)
        source = server.create_database("bench")
        print(f"Generating {options.rows} rows ...", flush=True)
        server.execute(GENERATE.replace("ROWS", str(options.rows)), database=source)
        server.execute("VACUUM ANALYZE", database=source)
        size = server.execute(f"SELECT pg_database_size('{source}')")[0][0]
        print(f"Database size {size / 1e6:.0f} MB", flush=True)
        bucket = s3.new_bucket()
        pg_env = dict(os.environ, PGPASSWORD=server.password)
        connection = ["-h", server.host, "-p", str(server.port), "-U", server.user, "--no-password"]
        tools = tools_for_server(server.major_version(), False)
        bin_dir, compress = tools.bin_dir, default_compression(tools, CUSTOM)
        kinds = ("raw_dump", "tutorial_dump", "backup", "raw_restore", "restore", "backup_s3", "backup_age")
        figures = {key: [] for key in kinds}
        memory = {"backup": [], "backup_s3": []}
        for round_number in range(1, options.rounds + 1):
            raw_file = work / f"raw-{round_number}.dump"
            folder = work / f"backups-{round_number}"
            local_env = child_env(BACKUP_DIR=folder)
            raw_dump = [str(bin_dir / "pg_dump"), *connection, "--format=custom", "--file", str(raw_file), source]
            figures["tutorial_dump"].append(timed(server, raw_dump, pg_env)[0])
            same = [*raw_dump, f"--compress={compress}"] if compress else raw_dump
            figures["raw_dump"].append(timed(server, same, pg_env)[0])
            seconds, peak = timed(server, manage("backup_db", "--url", server.url(source)), local_env, memory=True)
            figures["backup"].append(seconds)
            memory["backup"].append(peak)
            (ours,) = folder.glob("*.dump")

            raw_target, our_target = server.create_database("raw"), server.create_database("ours")
            raw_restore = [str(bin_dir / "pg_restore"), *connection, "--single-transaction", "--no-owner", "--no-acl",
                           "--exit-on-error", "--dbname", raw_target, str(ours)]
            figures["raw_restore"].append(timed(server, raw_restore, pg_env)[0])
            figures["restore"].append(
                timed(server, manage("restore_db", str(ours), "--url", server.url(our_target), "--noinput",
                             "--no-safety-backup"), local_env)[0]
            )
            server.drop_database(raw_target)
            server.drop_database(our_target)

            s3_env = child_env(BACKUP_DIR=f"s3://{bucket}/round-{round_number}", **s3.env())
            seconds, peak = timed(server, manage("backup_db", "--url", server.url(source)), s3_env, memory=True)
            figures["backup_s3"].append(seconds)
            memory["backup_s3"].append(peak)
            age_env = child_env(BACKUP_DIR=work / f"age-{round_number}",
                                BACKUP_AGE_RECIPIENTS="age1ymhxayn6knwsnzaw6fpvrpp382f02qm8qdhe36ngldjhhumeypksexgfqs")
            figures["backup_age"].append(timed(server, manage("backup_db", "--url", server.url(source)), age_env)[0])
            raw_file.unlink()
            print(f"round {round_number}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in figures.items())
                  + f"; load average {os.getloadavg()[0]:.2f}", flush=True)
        report(options, size, ours.stat().st_size, figures, memory, f"{tools.describe()}, --compress={compress}")


def report(options, size, archive_size, figures, memory, tools):
    median = {key: statistics.median(values) for key, values in figures.items()}
    ratios = lambda ours, raw: statistics.median(o / r for o, r in zip(figures[ours], figures[raw], strict=True))  # noqa: E731
    print()
    print(f"Database {size / 1e6:.0f} MB ({options.rows} rows), archive {archive_size / 1e6:.0f} MB, "
          f"{options.rounds} rounds, medians; {tools}:")
    print()
    print("| what | seconds | ratio to raw (median of per-round ratios) |")
    print("| --- | --- | --- |")
    print(f"| raw `pg_dump --format=custom`, same compression | {median['raw_dump']:.1f} | 1 |")
    print(f"| raw `pg_dump --format=custom`, pg_dump's default (the tutorial's) | {median['tutorial_dump']:.1f} | "
          f"{ratios('tutorial_dump', 'raw_dump'):.3f} |")
    print(f"| `backup_db` to a local folder | {median['backup']:.1f} | {ratios('backup', 'raw_dump'):.3f} |")
    print(f"| raw `pg_restore --single-transaction` of backup_db's archive | {median['raw_restore']:.1f} | 1 |")
    print(f"| `restore_db --no-safety-backup` | {median['restore']:.1f} | {ratios('restore', 'raw_restore'):.3f} |")
    print(f"| `backup_db` to S3 (moto on loopback) | {median['backup_s3']:.1f} | "
          f"{ratios('backup_s3', 'raw_dump'):.3f} |")
    print(f"| of which the upload (S3 minus local) | {median['backup_s3'] - median['backup']:.1f} | |")
    print(f"| `backup_db` to a local folder, age-encrypted | {median['backup_age']:.1f} | "
          f"{ratios('backup_age', 'raw_dump'):.3f} |")
    print()
    print(f"Peak RSS of the backup_db process: local {max(memory['backup']):.0f} MB, "
          f"S3 {max(memory['backup_s3']):.0f} MB.")


if __name__ == "__main__":
    main()
