"""Bodies that used to get a 500 or Django's HTML page: a JSON 400 from the real site (gunicorn)."""
import json
import urllib.error
import urllib.request

import pytest

from tests.live_site import live_site, production_over_http


@pytest.fixture(scope="module")
def site(pg_server, site_project, site_template):
    with live_site(pg_server, site_project, site_template, **production_over_http()) as site:
        yield site


def staff_post(site, body: bytes):
    request = urllib.request.Request(
        f"{site.url}/birds", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {site.staff_token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_json_nested_100000_deep_is_a_400(site):
    status, content_type, body = staff_post(site, b"[" * 100_000 + b"]" * 100_000)
    assert (status, content_type) == (400, "application/json")
    assert json.loads(body) == {"detail": "JSON parse error - nested too deeply."}


def test_a_body_over_the_limit_is_a_json_400(site):
    status, content_type, body = staff_post(site, json.dumps({"name": "x" * 3_000_000, "species": "y"}).encode())
    assert (status, content_type) == (400, "application/json")
    assert json.loads(body) == {"detail": "The request body is larger than 2621440 bytes, the most the API reads."}


def test_a_bird_still_posts(site):
    status, _, body = staff_post(site, json.dumps({"name": "Wren", "species": "Troglodytes"}).encode())
    assert status == 201 and json.loads(body)["name"] == "Wren"
