"""schemathesis against /api/schema/: every operation, anonymous and as staff, no 5xx and nothing
that disagrees with the schema."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live_site import live_site, production_over_http

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture(scope="module")
def site(pg_server, site_project, site_template):
    with live_site(pg_server, site_project, site_template, **production_over_http()) as site:
        yield site


def fuzz(site, tmp_path, *headers):
    result = subprocess.run(
        [
            SCHEMATHESIS, "run", f"{site.url}/api/schema/", "--checks", "all", "--max-examples", "25",
            "--seed", "5", "--no-color", *headers,
        ],
        # In tmp_path, where schemathesis also keeps its cache.
        cwd=tmp_path, capture_output=True, text=True, timeout=420,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]


def test_anonymous_fuzzing_finds_no_errors(site, tmp_path):
    fuzz(site, tmp_path)


def test_staff_fuzzing_finds_no_errors(site, tmp_path):
    # ignored_auth sends made-up session cookies next to the valid token, and the token rightly wins;
    # the anonymous run checks that made-up credentials alone change nothing.
    fuzz(site, tmp_path, "--header", f"Authorization: Token {site.staff_token}", "--exclude-checks", "ignored_auth")
