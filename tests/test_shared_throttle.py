"""Several instances behind Render's proxy: one anonymous budget shared through Redis, counted by the
client's real address, and reads that keep working when Redis goes away."""
import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import redis
from rest_framework.test import APIClient

from birds.seeding import seed_birds
from birds.throttling import AnonWindowThrottle
from dbops.cluster import free_port
from tests.helpers import PROJECT_DIR, child_env
from tests.live_site import gunicorn

LIMIT = 6


@pytest.fixture
def redis_url(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("Debian's redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield server, url
    server.kill()
    server.wait(timeout=10)


@contextmanager
def site_env(pg_server, template, redis_url, num_proxies):
    """The environment of instances on one new copy of the site's database (template) and one Redis,
    behind num_proxies proxies."""
    with pg_server.database("shared", template=template.name) as database:
        env = child_env(
            DATABASE_URL=pg_server.url(database), REDIS_URL=redis_url, THROTTLE_ANON_RATE=f"{LIMIT}/minute",
            DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="127.0.0.1", NUM_PROXIES=num_proxies,
        )
        yield env


@pytest.fixture
def two_instances(pg_server, site_template, redis_url):
    """Two separately started gunicorns (2 workers each) on one database and one Redis."""
    server, url = redis_url
    with site_env(pg_server, site_template, url, num_proxies=1) as env, gunicorn(env) as first, gunicorn(env) as second:
        yield server, [first, second]


def status(url, client="198.51.100.7", forged=None):
    # What Render's proxy sends on: whatever the client claimed, then the address it saw.
    chain = ", ".join(filter(None, [forged, client]))
    request = urllib.request.Request(
        f"{url}/birds/1", headers={"X-Forwarded-For": chain, "X-Forwarded-Proto": "https"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_anonymous_limit_holds_across_instances_and_forged_headers(two_instances):
    _, instances = two_instances
    urls = [url for url, _ in instances]
    # Every request claims another address; each instance has two workers: still one budget.
    statuses = [status(urls[n % 2], forged=f"10.0.0.{n}") for n in range(LIMIT + 4)]
    assert statuses == [200] * LIMIT + [429] * 4
    # Another client has a budget of its own.
    assert status(urls[0], client="203.0.113.9") == 200


def test_the_limit_holds_for_requests_that_arrive_at_once(two_instances):
    _, instances = two_instances
    urls = [url for url, _ in instances] * 20 * LIMIT
    # Four workers counting at the same moment: none may overwrite another's count. (DRF's own throttle,
    # which reads and writes back a list of timestamps, let too many through in 2 runs of 3.)
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda url: status(url, client="192.0.2.44"), urls))
    assert sorted(statuses) == [200] * LIMIT + [429] * (len(urls) - LIMIT)


def test_reads_keep_working_when_redis_goes_away(two_instances):
    server, instances = two_instances
    server.kill()
    server.wait(timeout=10)
    statuses = [status(url) for url, _ in instances for _ in range(LIMIT + 2)]
    assert statuses == [200] * (2 * (LIMIT + 2))
    for _, log in instances:
        log.seek(0)
        assert "Anonymous throttling skipped: the cache at REDIS_URL did not answer" in log.read().decode()


def test_forwarded_entries_that_are_no_addresses_count_as_the_connection(pg_server, site_template, redis_url):
    # Behind Render's two proxies the entry two from the right is the client. A chain of two with made-up
    # entries there did not come through them: every such request is the one connection's.
    with site_env(pg_server, site_template, redis_url[1], num_proxies=2) as env, gunicorn(env) as (url, log):
        statuses = [status(url, client="203.0.113.7", forged=f"x{n}") for n in range(LIMIT + 4)]
        assert statuses == [200] * LIMIT + [429] * 4
        # Render's own chain still counts each client by the address its edge saw.
        assert [status(url, client=f"198.51.100.{n}, 104.22.17.40") for n in range(3)] == [200] * 3
        log.seek(0)
        warnings = log.read().decode().count("X-Forwarded-For held an entry that is not an IP address")
    assert warnings in {1, 2}  # once in each worker that met one


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("num_proxies", "chains"),
    [
        # Render: the client's forged entries, the client (appended by Cloudflare), Cloudflare's edge.
        (2, ["6.6.6.1, 198.51.100.7, 104.22.17.40", "6.6.6.2, 198.51.100.7, 104.23.0.1"]),
        # No proxy counted: X-Forwarded-For is ignored, the connection's address counts.
        (0, ["6.6.6.1", "6.6.6.2"]),
    ],
)
def test_forged_forwarded_for_does_not_reset_the_count(settings, monkeypatch, num_proxies, chains):
    seed_birds()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
    # DRF reads the rates once, when the throttle class is defined.
    monkeypatch.setattr(AnonWindowThrottle, "THROTTLE_RATES", {"anon": "3/minute"})
    client = APIClient()
    statuses = [client.get("/birds/1", HTTP_X_FORWARDED_FOR=chains[n % 2]).status_code for n in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def cache_and_proxies(**environment):
    script = (
        "import json, django; from django.conf import settings; django.setup();"
        "print(json.dumps([settings.CACHES['default']['BACKEND'], settings.REST_FRAMEWORK['NUM_PROXIES']]))"
    )
    env = child_env(**environment)
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    return json.loads(result.stdout)


def test_redis_url_shares_the_cache_and_render_counts_two_proxies():
    assert cache_and_proxies() == ["django.core.cache.backends.locmem.LocMemCache", 0]
    assert cache_and_proxies(REDIS_URL="redis://kv:6379", NUM_PROXIES="1") == [
        "django.core.cache.backends.redis.RedisCache", 1,
    ]
    render = cache_and_proxies(RENDER="true", SECRET_KEY="x" * 50)
    assert render == ["django.core.cache.backends.locmem.LocMemCache", 2]
