#!/usr/bin/env python3
"""The bird API against the limit of its stack, side by side in one run.

    .venv/bin/python bench/api.py              # 4, 1,000 and 10,000 birds, four endpoints (~3 min)
    .venv/bin/python bench/api.py --load       # also 60 s at 64 connections on /birds/<id>, worker memory
    .venv/bin/python bench/api.py --profile    # only py-spy's top frames of a site worker under wrk
    .venv/bin/python bench/api.py --redis      # the site's cache (so its throttle) in a local redis-server

It starts an embedded PostgreSQL, seeds it with `seed_birds --count`, and serves it twice with gunicorn
(2 workers on loopback): the site with production settings (DEBUG off, throttling on with a huge rate)
and bench/bare_app.py, a WSGI app with no framework. Both must answer every URL with the same body
before `wrk` (Debian's package) drives them. The tables go to stdout and into bench/RESULTS.md,
between the `<!-- api.py KIND -->` markers of the run's kind.
"""
import argparse
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

import psutil  # noqa: E402 (after the project folder is importable)

from dbops.cluster import free_port  # noqa: E402
from tests.helpers import child_env  # noqa: E402
from tests.servers import embedded_server  # noqa: E402

RESULTS = PROJECT_DIR / "bench" / "RESULTS.md"
RANDOM_BIRD = PROJECT_DIR / "bench" / "random_bird.lua"
BIN = Path(sys.executable).parent
SIZES = [4, 1_000, 10_000]
# High enough that no request is refused, so the throttle's bookkeeping runs on every request.
HUGE_RATE = "100000000/minute"
# Render's proxy ends TLS and says so; without it the site (DEBUG off) would redirect to https.
PROXY_HEADER = "X-Forwarded-Proto: https"


@dataclass(frozen=True)
class Measure:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx answers plus socket errors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per endpoint and app (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--sizes", type=lambda text: [int(n) for n in text.split(",")], default=SIZES,
                        help="table sizes, comma-separated (default 4,1000,10000)")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class for both apps (default sync)")
    parser.add_argument("--load", action="store_true", help="also 60 s at 64 connections on /birds/<id>")
    parser.add_argument("--profile", action="store_true", help="only profile a site worker with py-spy")
    parser.add_argument("--redis", action="store_true", help="run the site with REDIS_URL (a local redis-server)")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave RESULTS.md alone")
    options = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (Debian/Ubuntu) or brew install wrk.")
    with ExitStack() as stack:
        database_url = stack.enter_context(database())
        redis_url = stack.enter_context(redis_server()) if options.redis else None
        site = stack.enter_context(gunicorn("birdsite.wsgi", site_env(database_url, redis_url), options.worker_class))
        bare = stack.enter_context(gunicorn("bench.bare_app:application", child_env(DATABASE_URL=database_url),
                                            options.worker_class))
        if options.profile:
            report = profile(site, database_url, options)
            kind = "profile"
        else:
            report = compare(site, bare, database_url, options)
            kind = "redis" if options.redis else "compare"
            if options.load:
                report += "\n" + load(site, bare, database_url)
    print(report)
    if not options.no_write:
        write_block("api.py", kind, report)


@contextmanager
def database():
    with embedded_server() as server, server.database("bench") as name:
        url = server.url(name)
        manage("migrate", "--no-input", database_url=url)
        yield url


def site_env(database_url, redis_url):
    settings = {"DATABASE_URL": database_url, "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50),
                "ALLOWED_HOSTS": "127.0.0.1", "THROTTLE_ANON_RATE": HUGE_RATE, "LOG_LEVEL": "WARNING"}
    if redis_url:
        settings["REDIS_URL"] = redis_url
    return child_env(**settings)


def manage(*args, database_url):
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=child_env(DATABASE_URL=database_url),
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def seed(size, database_url):
    return manage("seed_birds", "--count", str(size - 4), database_url=database_url)


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen

    def workers(self):
        return psutil.Process(self.process.pid).children()


@contextmanager
def gunicorn(app, env, worker_class):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [BIN / "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", worker_class, app]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, cwd=PROJECT_DIR, env=env, stdout=log, stderr=log)
        try:
            wait_until_answering(process, url, log)
            yield Server(url, process)
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_until_answering(process, url, log):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            sys.exit(f"gunicorn exited: {log.read().decode(errors='replace')}")
        try:
            fetch(url, "/birds")
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within 30 seconds")


def fetch(url, path):
    # Our own loopback servers only.
    request = urllib.request.Request(url + path, headers=dict([PROXY_HEADER.split(": ")]))  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.read()


def endpoints(size):
    """(label, path, wrk script arguments) for a table of `size` birds."""
    return [
        ("/birds", "/birds", ()),
        ("/birds?limit=100", "/birds?limit=100", ()),
        ("/birds/<random id>", "/birds/", ("-s", str(RANDOM_BIRD), "--", str(size))),
        ("/birds?search=dove", "/birds?search=dove", ()),
    ]


def assert_same_answers(site, bare, size):
    for path in ["/birds", "/birds?limit=100", f"/birds/{(size + 1) // 2}", "/birds?search=dove"]:
        # Links name the server they came from; the rest must be the same bytes.
        ours = fetch(site.url, path).replace(site.url.replace("http", "https").encode(), b"")
        limit = fetch(bare.url, path).replace(bare.url.replace("http", "https").encode(), b"")
        if ours != limit:
            sys.exit(f"The apps answer {path} differently:\n{ours[:300]!r}\n{limit[:300]!r}")


def wrk(server, path, script_args=(), connections=16, seconds=5):
    script, after = [], []
    if script_args:
        script, after = list(script_args[:2]), list(script_args[2:])
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", PROXY_HEADER,
            *script, server.url + path, *after]
    output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return parse_wrk(output)


def parse_wrk(output):
    def number(pattern):
        match = re.search(pattern, output)
        return float(match[1]) if match else 0.0

    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return Measure(
        requests_per_second=number(r"Requests/sec:\s+([\d.]+)"),
        p50_ms=latency_ms(output, "50%"),
        p99_ms=latency_ms(output, "99%"),
        requests=int(number(r"(\d+) requests in")),
        errors=int(number(r"Non-2xx or 3xx responses: (\d+)")) + socket_errors,
    )


def latency_ms(output, percentile):
    match = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)\b", output)
    if not match:
        return 0.0
    return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]


def compare(site, bare, database_url, options):
    lines = [
        f"wrk -t2 -c{options.connections} -d{options.seconds}s, gunicorn --workers 2 "
        f"--worker-class {options.worker_class}, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| birds | endpoint | site req/s | site p50 / p99 ms | site errors | bare req/s | bare p50 / p99 ms "
        "| bare errors | site/bare |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in options.sizes:
        seconds = seed(size, database_url)
        print(f"{size} birds seeded in {seconds:.1f} s", file=sys.stderr)
        assert_same_answers(site, bare, size)
        for label, path, script_args in endpoints(size):
            for server in (site, bare):  # warm up: connections, caches
                wrk(server, path, script_args, options.connections, 1)
            ours = wrk(site, path, script_args, options.connections, options.seconds)
            limit = wrk(bare, path, script_args, options.connections, options.seconds)
            lines.append(
                f"| {size:,} | `{label}` | {ours.requests_per_second:,.0f} | {ours.p50_ms:.1f} / {ours.p99_ms:.1f} "
                f"| {ours.errors} | {limit.requests_per_second:,.0f} | {limit.p50_ms:.1f} / {limit.p99_ms:.1f} "
                f"| {limit.errors} | **{ours.requests_per_second / limit.requests_per_second:.2f}x** |"
            )
            print(lines[-1], file=sys.stderr)
    return "\n".join(lines) + "\n"


def load(site, bare, database_url, seconds=60, connections=64):
    size = 10_000
    seed(size, database_url)
    _, path, script_args = endpoints(size)[2]
    # Warmed up under this very load, so that what the earlier runs (lists of 1,000 birds) left in the
    # workers' memory has settled and only growth under this load is compared.
    wrk(site, path, script_args, connections, 15)
    before = {worker.pid: worker.memory_info().rss for worker in site.workers()}
    ours = wrk(site, path, script_args, connections, seconds)
    after = {worker.pid: worker.memory_info().rss for worker in site.workers()}
    lines = [
        f"Load: wrk -t2 -c{connections} -d{seconds}s on `/birds/<random id>`, {size:,} birds, site only",
        "",
        "| req/s | p50 / p99 ms | requests | errors | worker memory before → after (MiB) |",
        "|---:|---:|---:|---:|---|",
        f"| {ours.requests_per_second:,.0f} | {ours.p50_ms:.1f} / {ours.p99_ms:.1f} | {ours.requests:,} "
        f"| {ours.errors} | " + ", ".join(
            f"{before[pid] / 2**20:.1f} → {after[pid] / 2**20:.1f} ({(after[pid] - before[pid]) / before[pid]:+.1%})"
            if pid in before else f"new worker {pid}: {after[pid] / 2**20:.1f}"
            for pid in after
        ) + " |",
    ]
    return "\n".join(lines) + "\n"


def profile(site, database_url, options, seconds=10):
    """py-spy's view of one site worker: the frames holding the most samples, by inclusive share."""
    seed(1_000, database_url)
    sections = []
    for label, path, script_args in [endpoints(1_000)[2], endpoints(1_000)[0]]:
        worker = site.workers()[0]
        with tempfile.NamedTemporaryFile(suffix=".txt") as raw:
            spy = subprocess.Popen([BIN / "py-spy", "record", "--format", "raw", "--rate", "250", "--duration",
                                    str(seconds), "--output", raw.name, "--pid", str(worker.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wrk(site, path, script_args, options.connections, seconds)
            spy.wait(timeout=60)
            sections.append(top_frames(label, Path(raw.name).read_text()))
    return "\n".join(sections)


def top_frames(label, collapsed, count=30):
    inclusive, own, total = {}, {}, 0
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        samples = int(samples)
        total += samples
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples
    lines = [f"py-spy, one worker, `{label}` with 1,000 birds: {total} samples (gunicorn's own frames left out)",
             "", "| inclusive | own | function (file) |", "|---:|---:|---|"]
    ranked = [item for item in sorted(inclusive.items(), key=lambda item: -item[1]) if "gunicorn/" not in item[0]]
    for frame, samples in ranked[:count]:
        lines.append(f"| {samples / total:.1%} | {own.get(frame, 0) / total:.1%} | `{shorten(frame)}` |")
    lines += ["", "Most own time:", "", "| own | function (file) |", "|---:|---|"]
    for frame, samples in sorted(own.items(), key=lambda item: -item[1])[:12]:
        lines.append(f"| {samples / total:.1%} | `{shorten(frame)}` |")
    return "\n".join(lines) + "\n"


def shorten(frame):
    return re.sub(r"\(.*?site-packages/", "(", frame).replace(str(PROJECT_DIR) + "/", "")


@contextmanager
def redis_server():
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", folder], stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def write_block(script, kind, report):
    """Put report, with the command that made it, between RESULTS.md's markers for this script and kind."""
    start, end = f"<!-- {script} {kind} -->", f"<!-- /{script} {kind} -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    command = f".venv/bin/python bench/{script} {' '.join(sys.argv[1:])}".rstrip()
    block = f"{start}\nCommand: `{command}`\n\n{report}{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + f"\n\n{block}\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
