#!/usr/bin/env python3
"""CPU per request of `/birds/<id>`, layer by layer, from the bare WSGI app to the site.

    .venv/bin/python bench/layers.py          # ~1 min; --no-write only prints

Each layer is served in-process (no gunicorn, no wrk) by a fresh Python process that calls the WSGI app
directly, 5 x 2,000 times for random ids of 1,000 birds in an embedded PostgreSQL, and reports its own
CPU time per request (the best of the 5 rounds). The views of the intermediate layers are in
bench/layer_views.py. Where the site's time goes, without the noise of a shared machine's scheduler.
"""
import argparse
import io
import os
import random
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from api import database, seed, site_env, write_block  # noqa: E402 (after the project folder is importable)

# (label, URL path with {id}, settings module, middleware on)
LAYERS = [
    ("bare WSGI app, psycopg2 (bench/bare_app.py)", "/birds/{id}", None, False),
    ("Django, a view that answers fixed bytes", "/fixed/{id}", "bench.layer_settings", False),
    ("Django, a view with one SQL query through `connection.cursor()`", "/sql/{id}", "bench.layer_settings", False),
    ("Django, the same view asking the ORM (`.values().get(pk=)`)", "/orm/{id}", "bench.layer_settings", False),
    ("DRF `APIView`, the SQL query, no authentication/permission/throttle", "/drf-bare/{id}",
     "bench.layer_settings", False),
    ("DRF `APIView`, the SQL query, the site's authentication/permission/throttle", "/drf/{id}",
     "bench.layer_settings", False),
    ("the site's viewset (ORM), no middleware", "/birds/{id}", "bench.layer_settings", False),
    ("the site: viewset and its 10 middleware", "/birds/{id}", "birdsite.settings", True),
    ("for scale: the SQL-query view with the site's middleware", "/sql/{id}", "bench.layer_settings", True),
]
ROUNDS, CALLS = 5, 2_000


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    parser.add_argument("--measure", nargs=2, metavar=("PATH", "APP"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        print(measure(*options.measure))
        return
    with database() as database_url:
        seed(1_000, database_url)
        rows = [(label, path, run_layer(path, module, middleware, database_url))
                for label, path, module, middleware in LAYERS]
    report = table(rows)
    print(report)
    if not options.no_write:
        write_block("layers.py", "cpu", report)


def run_layer(path, settings_module, middleware, database_url):
    env = site_env(database_url, None)
    if settings_module:
        env.update(DJANGO_SETTINGS_MODULE=settings_module, BENCH_MIDDLEWARE="1" if middleware else "")
    app = "django" if settings_module else "bare"
    result = subprocess.run([sys.executable, __file__, "--measure", path, app], env=env, check=True,
                            capture_output=True, text=True, cwd=BENCH_DIR.parent)
    return float(result.stdout)


def measure(path, app):
    """Microseconds of this process's CPU per request, the best of ROUNDS rounds."""
    application = wsgi_application(app)
    for _ in range(CALLS // 4):
        call(application, path)
    best = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(CALLS):
            call(application, path)
        best.append((time.process_time() - started) / CALLS * 1e6)
    return min(best)


def wsgi_application(app):
    if app == "bare":
        from bench.bare_app import application

        return application
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def call(application, path):
    statuses = []
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path.format(id=random.randint(1, 1_000)),  # noqa: S311 (ids, not secrets)
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_ACCEPT": "*/*", "HTTP_X_FORWARDED_PROTO": "https",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
    }
    body = b"".join(application(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["200 OK"] and body.startswith(b"{"), (path, statuses, body[:200])


def table(rows):
    site = next(cpu for label, _, cpu in rows if label.startswith("the site:"))
    lines = [f"`/birds/<id>` served in-process, 1,000 birds, CPU per request (best of {ROUNDS} x {CALLS:,}), "
             f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}", "",
             "| layer | URL | CPU per request | share of the site's |", "|---|---|---:|---:|"]
    lines += [f"| {label} | `{path}` | {cpu:,.0f} us | {cpu / site:.0%} |" for label, path, cpu in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
