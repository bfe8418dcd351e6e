#!/usr/bin/env python3
"""backup_db and restore_db against the raw tools they wrap, side by side, on a ~460 MB database.

    .venv/bin/python bench/backup.py [--rounds 3] [--rows 1430000] [--compress gzip]

Starts an embedded PostgreSQL 18 and a moto S3 server on loopback, generates the database, then in
each round times, one right after the other (in the opposite order every other round):
  raw `pg_dump --format=custom` with backup_db's compression (or --compress's, on both sides), and
  with pg_dump's own default (the tutorial's command) | the same checks as backup_db's by hand in a
  shell, without Python | Python and Django starting backup_db alone | backup_db to a local folder;
  raw `pg_restore --single-transaction` of backup_db's archive into an empty database | restore_db's
  data path by hand (`pg_restore -f - | psql`) | restore_db --no-safety-backup of the same archive;
and backup_db into object storage (the upload's share is that time minus the local backup's) and
encrypted with age, with the peak memory (RSS) of the backup_db process itself. Prints medians and
ratios as Markdown. Every command starts after a CHECKPOINT and a sync, so none pays for writing out
what the one before it wrote. The machines are shared and noisy: compare the ratios, which are
measured side by side; the load average is printed with them.
"""

import argparse
import os
import shlex
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


def generated_database(server, rows):
    """A new database of the server holding GENERATE's rows, and its size in bytes."""
    source = server.create_database("bench")
    print(f"Generating {rows} rows ...", flush=True)
    server.execute(GENERATE.replace("ROWS", str(rows)), database=source)
    server.execute("VACUUM ANALYZE", database=source)
    size = server.execute(f"SELECT pg_database_size('{source}')")[0][0]
    print(f"Database size {size / 1e6:.0f} MB", flush=True)
    return source, size


def print_table(figures, rows, compared_with):
    """A Markdown table of (label, kind, reference kind) rows: medians, and the median of the per-round
    ratios to the reference, measured side by side."""
    print()
    print(f"| what | seconds | ratio to {compared_with} (median of per-round ratios) |")
    print("| --- | --- | --- |")
    for label, kind, reference in rows:
        ratio = statistics.median(o / r for o, r in zip(figures[kind], figures[reference], strict=True))
        print(f"| {label} | {statistics.median(figures[kind]):.2f} | {ratio:.3f} |")


def timed(server, argv, env, memory=False):
    """Wall seconds of a command, and the peak RSS of that process alone (MB) when memory is asked.

    A CHECKPOINT and a sync first: a restore leaves about a gigabyte of WAL and dirty pages, and a dump
    a 100 MB file in the page cache; whichever command came next paid for writing them out (0.3 s)."""
    server.execute("CHECKPOINT")
    os.sync()
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


def time_in_turn(server, commands, figures, memory, backwards):
    """Time each command of {kind: (argv, env)}, in the opposite order every other round, so neither side
    is always the one that runs first."""
    for kind in reversed(commands) if backwards else commands:
        argv, env = commands[kind]
        seconds, peak = timed(server, argv, env, memory=kind in memory)
        figures[kind].append(seconds)
        if kind in memory:
            memory[kind].append(peak)


def shell(*commands):
    """A shell pipeline of argv lists that fails when any part fails, as the raw tools are chained by hand."""
    return ["bash", "-o", "pipefail", "-c", " | ".join(shlex.join(argv) for argv in commands)]


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
    parser.add_argument("--compress", help="compression for both sides (default: backup_db's, zstd:1 here)")
    options = parser.parse_args()
    with embedded_server() as server, moto_server() as s3, tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = Path(scratch)
        source, size = generated_database(server, options.rows)
        bucket = s3.new_bucket()
        pg_env = dict(os.environ, PGPASSWORD=server.password)
        connection = ["-h", server.host, "-p", str(server.port), "-U", server.user, "--no-password"]
        tools = tools_for_server(server.major_version(), False)
        bin_dir, compress = tools.bin_dir, options.compress or default_compression(tools, CUSTOM)
        kinds = ("raw_dump", "tutorial_dump", "shell_dump", "startup", "backup", "raw_restore", "shell_restore",
                 "restore", "backup_s3", "backup_age")
        figures = {key: [] for key in kinds}
        memory = {"backup": [], "backup_s3": []}
        for round_number in range(1, options.rounds + 1):
            raw_file = work / f"raw-{round_number}.dump"
            folder = work / f"backups-{round_number}"
            local_env = child_env(BACKUP_DIR=folder)
            pg_dump = [str(bin_dir / "pg_dump"), *connection, "--format=custom"]
            raw_dump = [*pg_dump, "--file", str(raw_file), source]
            same = [*raw_dump, f"--compress={compress}"]
            dump_to_stdout = [*pg_dump, f"--compress={compress}", source]
            read_back = [str(bin_dir / "pg_restore"), "--file=/dev/null"]
            backup = manage("backup_db", "--url", server.url(source), f"--compress={compress}")
            dumps = {
                "tutorial_dump": (raw_dump, pg_env),
                "raw_dump": (same, pg_env),
                "shell_dump": (shell(dump_to_stdout, ["tee", str(raw_file)], read_back), pg_env),
                "startup": (manage("backup_db", "--version"), local_env),
                "backup": (backup, local_env),
            }
            time_in_turn(server, dumps, figures, memory, backwards=round_number % 2 == 0)
            (ours,) = folder.glob("*.dump")

            targets = {kind: server.create_database(kind) for kind in ("raw", "shell", "ours")}
            restore_options = ["--single-transaction", "--no-owner", "--no-acl", "--exit-on-error"]
            raw_restore = [str(bin_dir / "pg_restore"), *connection, *restore_options, "--dbname", targets["raw"],
                           str(ours)]
            script = [str(bin_dir / "pg_restore"), *restore_options, "--file=-", str(ours)]
            psql = [str(bin_dir / "psql"), *connection, "--quiet", "--no-psqlrc", "--set=ON_ERROR_STOP=1",
                    "--dbname", targets["shell"]]
            restore = manage("restore_db", str(ours), "--url", server.url(targets["ours"]), "--noinput",
                             "--no-safety-backup")
            restores = {
                "raw_restore": (raw_restore, pg_env),
                "shell_restore": (shell(script, psql), pg_env),
                "restore": (restore, local_env),
            }
            time_in_turn(server, restores, figures, memory, backwards=round_number % 2 == 0)
            for name in targets.values():
                server.drop_database(name)

            s3_env = child_env(BACKUP_DIR=f"s3://{bucket}/round-{round_number}", **s3.env())
            age_env = child_env(BACKUP_DIR=work / f"age-{round_number}",
                                BACKUP_AGE_RECIPIENTS="age1ymhxayn6knwsnzaw6fpvrpp382f02qm8qdhe36ngldjhhumeypksexgfqs")
            time_in_turn(server, {"backup_s3": (backup, s3_env), "backup_age": (backup, age_env)}, figures, memory,
                         backwards=round_number % 2 == 0)
            raw_file.unlink()
            print(f"round {round_number}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in figures.items())
                  + f"; load average {os.getloadavg()[0]:.2f}", flush=True)
        report(options, size, ours.stat().st_size, figures, memory, f"{tools.describe()}, --compress={compress}")


def report(options, size, archive_size, figures, memory, tools):
    rows = [
        ("raw `pg_dump --format=custom`, same compression", "raw_dump", "raw_dump"),
        ("raw `pg_dump --format=custom`, pg_dump's default (the tutorial's)", "tutorial_dump", "raw_dump"),
        ("the same checks by hand, no Python: `pg_dump \\| tee FILE \\| pg_restore -f /dev/null`", "shell_dump",
         "raw_dump"),
        ("Python and Django starting `backup_db` alone (`backup_db --version`)", "startup", "raw_dump"),
        ("`backup_db` to a local folder", "backup", "raw_dump"),
        ("raw `pg_restore --single-transaction` of backup_db's archive", "raw_restore", "raw_restore"),
        ("restore_db's data path by hand, no Python: `pg_restore -1 -f - \\| psql`", "shell_restore", "raw_restore"),
        ("`restore_db --no-safety-backup`", "restore", "raw_restore"),
        ("`backup_db` to S3 (moto on loopback)", "backup_s3", "raw_dump"),
        ("`backup_db` to a local folder, age-encrypted", "backup_age", "raw_dump"),
    ]
    print()
    print(f"Database {size / 1e6:.0f} MB ({options.rows} rows), archive {archive_size / 1e6:.0f} MB, "
          f"{options.rounds} rounds, medians; {tools}:")
    print_table(figures, rows, "raw")
    upload = statistics.median(figures["backup_s3"]) - statistics.median(figures["backup"])
    print(f"| of which the upload (S3 minus local) | {upload:.2f} | |")
    print()
    print(f"Peak RSS of the backup_db process: local {max(memory['backup']):.0f} MB, "
          f"S3 {max(memory['backup_s3']):.0f} MB.")


if __name__ == "__main__":
    main()
