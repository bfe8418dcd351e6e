#!/usr/bin/env python3
"""`seed_birds --count 100000` against a raw COPY of the same rows, side by side in one run.

    .venv/bin/python bench/seed.py              # 3 rounds of each on an embedded PostgreSQL (~20 s)

Raw COPY: the 100,000 rows, already formatted in memory, sent with psycopg2's copy_expert into an empty
table: the least any seeder can do. seed_birds: the same call the command makes (fixture, sequence reset,
generating the names, COPY in batches), also into an emptied table. The command's wall time, with Python
and Django starting, is shown too. The table goes to stdout and into bench/RESULTS.md.
"""
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from tests.helpers import child_env  # noqa: E402
from tests.servers import embedded_server  # noqa: E402

COUNT = 100_000
ROUNDS = 3


def main():
    with embedded_server() as server, server.database("seedbench") as name:
        url = server.url(name)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT_DIR,
                       env=child_env(DATABASE_URL=url), check=True)
        os.environ.update(DATABASE_URL=url, ENV_FILE=os.devnull, DJANGO_SETTINGS_MODULE="birdsite.settings", DEBUG="1")
        import django

        django.setup()
        from birds.generated import generated_birds
        from birds.seeding import seed_birds

        rows = "".join(f"{bird_name}\t{species}\n" for bird_name, species in generated_birds(COUNT))
        raw, ours, command = [], [], []
        for _ in range(ROUNDS):
            empty_table(server, name)
            raw.append(timed(lambda: raw_copy(server, name, rows)))
            empty_table(server, name)
            ours.append(timed(lambda: seed_birds(count=COUNT)))
            empty_table(server, name)
            command.append(timed(lambda: subprocess.run(
                [sys.executable, "manage.py", "seed_birds", "--count", str(COUNT)], cwd=PROJECT_DIR,
                env=child_env(DATABASE_URL=url), check=True, stdout=subprocess.DEVNULL)))
    raw_s, ours_s, command_s = (statistics.median(times) for times in (raw, ours, command))
    report = "\n".join([
        f"{COUNT:,} birds, median of {ROUNDS} rounds, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| raw COPY | seed_birds(count=...) | seed_birds / raw COPY | `manage.py seed_birds --count` (with start-up) |",
        "|---:|---:|---:|---:|",
        f"| {raw_s:.2f} s | {ours_s:.2f} s | **{ours_s / raw_s:.2f}x** | {command_s:.2f} s |",
    ]) + "\n"
    print(report)
    write_results(report)


def timed(work):
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def empty_table(server, database):
    server.execute("TRUNCATE birds RESTART IDENTITY", database=database)


def raw_copy(server, database, rows):
    connection = server.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.copy_expert("COPY birds (name, species) FROM STDIN", io.StringIO(rows))
    finally:
        connection.close()


def write_results(report):
    sys.path.insert(0, str(PROJECT_DIR / "bench"))
    from api import write_block

    write_block("seed.py", "seed", report)


if __name__ == "__main__":
    main()
