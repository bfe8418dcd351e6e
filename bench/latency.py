#!/usr/bin/env python3
"""restore_db against django-dbbackup 5.4's dbrestore of a small database over a slow link: connections count.

    .venv/bin/python bench/latency.py [--rounds 5] [--delay-ms 25]

A laptop restoring through a Render External URL is tens of milliseconds from the server, so every
connection (TCP, then TLS and SCRAM: several round trips) and every statement costs that much, where the
loopback benches above see nothing. Starts an embedded PostgreSQL 18 and, in this process, a TCP proxy in
front of it that delays every chunk by --delay-ms each way (no bandwidth limit; 25 ms is a 50 ms round
trip). Backs up a small database (7,000 rows) with backup_db and with dbbackup (its venv as
bench/against_dbbackup.py makes it), then in each round, through the proxy, each into a fresh copy of
the target (in the opposite order every other round): `dbrestore --noinput` | `restore_db
--no-safety-backup` | `restore_db --swap`. Prints medians, the ratios to dbrestore (median of the
per-round ratios) and the sessions each opened (pg_stat_database.sessions around the run). Plain TCP:
over TLS each connection costs two round trips more.
"""

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from bench.against_dbbackup import dbbackup_env, dbbackup_python  # noqa: E402
from bench.backup import manage  # noqa: E402
from dbops.cluster import free_port  # noqa: E402
from dbops.tools import tools_for_server  # noqa: E402
from tests.helpers import child_env  # noqa: E402
from tests.servers import embedded_server  # noqa: E402

SMALL_DATABASE = """
CREATE TABLE birds (id serial PRIMARY KEY, name text NOT NULL, species text);
INSERT INTO birds (name, species) SELECT 'bird ' || g, 'species ' || (g % 97) FROM generate_series(1, 7000) g;
"""
KINDS = {
    "dbrestore": "`dbrestore --noinput` (django-dbbackup 5.4, defaults)",
    "restore": "`restore_db --no-safety-backup`",
    "swap": "`restore_db --swap`",
}


async def _relay(reader, writer, delay):
    """Forward what reader sends to writer, each chunk delay seconds after it arrived."""
    chunks = asyncio.Queue()

    async def read():
        while data := await reader.read(1 << 16):
            await chunks.put((time.monotonic() + delay, data))
        await chunks.put((time.monotonic() + delay, b""))

    async def write():
        while True:
            due, data = await chunks.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(read(), write())
    except OSError:
        pass
    finally:
        writer.close()


@contextlib.contextmanager
def delaying_proxy(upstream_port: int, delay: float):
    """A loopback port that reaches upstream_port with delay seconds added each way; yields the port."""
    port, loop = free_port(), asyncio.new_event_loop()

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(_relay(client_reader, server_writer, delay), _relay(server_reader, client_writer, delay))

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = asyncio.run_coroutine_threadsafe(asyncio.start_server(handle, "127.0.0.1", port), loop).result()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(proxy.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def sessions(server) -> int:
    time.sleep(0.3)  # a session is counted when its backend has ended
    return int(server.execute("SELECT sum(sessions) FROM pg_stat_database")[0][0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=25)
    options = parser.parse_args()
    python = dbbackup_python()
    with (
        embedded_server() as server,
        tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch,
        delaying_proxy(server.port, options.delay_ms / 1000) as port,
    ):
        work = Path(scratch)
        source = server.create_database("source")
        server.execute(SMALL_DATABASE, database=source)
        bin_dir = tools_for_server(server.major_version(), False).bin_dir
        ours_dir, theirs_dir = work / "backup_db", work / "dbbackup"
        theirs_dir.mkdir()
        for argv, env in (
            (manage("backup_db", "--url", server.url(source)), child_env(BACKUP_DIR=ours_dir)),
            ([str(python), "manage.py", "dbbackup"], dbbackup_env(server, bin_dir, source, theirs_dir)),
        ):
            subprocess.run(argv, env=env, cwd=PROJECT_DIR, check=True, capture_output=True)
        (ours,) = ours_dir.glob("*.dump")

        def far(database):  # the target's URL through the proxy
            return server.url(database).replace(f":{server.port}/", f":{port}/")

        def command(kind, database):
            if kind == "dbrestore":
                env = dict(dbbackup_env(server, bin_dir, database, theirs_dir), DATABASE_URL=far(database))
                return [str(python), "manage.py", "dbrestore", "--noinput"], env
            route = "--swap" if kind == "swap" else "--no-safety-backup"
            return manage("restore_db", str(ours), "--url", far(database), "--noinput", route), child_env(
                BACKUP_DIR=ours_dir
            )

        seconds, opened = {kind: [] for kind in KINDS}, {kind: [] for kind in KINDS}
        for round_number in range(options.rounds):
            order = list(KINDS) if round_number % 2 == 0 else list(reversed(KINDS))
            for kind in order:
                target = server.create_database(kind, template=source)
                argv, env = command(kind, target)
                before = sessions(server)
                started = time.monotonic()
                subprocess.run(argv, env=env, cwd=PROJECT_DIR, check=True, capture_output=True)
                seconds[kind].append(time.monotonic() - started)
                opened[kind].append(sessions(server) - before - 1)  # less the count's own
                for (kept,) in server.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{target}%"]):
                    server.drop_database(kept)
        report(options, seconds, opened)


def report(options, seconds, opened):
    theirs = seconds["dbrestore"]
    ratios = {kind: statistics.median(s / d for s, d in zip(v, theirs, strict=True)) for kind, v in seconds.items()}
    print(
        f"\n{options.rounds} rounds, {options.delay_ms:g} ms each way (a {2 * options.delay_ms:g} ms round trip), "
        f"a 7,000-row database, load average at the end {os.getloadavg()[0]:.2f}:\n"
    )
    print("| what | seconds (median) | ratio to `dbrestore` | sessions it opened |")
    print("| --- | --- | --- | --- |")
    for kind, label in KINDS.items():
        counts = sorted(set(opened[kind]))
        print(
            f"| {label} | {statistics.median(seconds[kind]):.2f} | {ratios[kind]:.3f} | "
            f"{', '.join(str(count) for count in counts)} |"
        )


if __name__ == "__main__":
    main()
