"""The site as an attacker meets it: gunicorn with the production settings (DEBUG off, a strong key),
behind Render's two proxies (NUM_PROXIES=2), over plain HTTP on the loopback address."""
import logging
import re
import secrets
import subprocess
from datetime import timedelta
from urllib.parse import quote

import pytest
import requests
from axes.models import AccessAttempt
from django.db.models import F

from dbops.cluster import free_port
from tests.helpers import PROJECT_DIR, manage
from tests.live_site import gunicorn, live_site, production_over_http, run_manage

RENDER_EDGE = "104.22.17.40"
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:", "object-src": "'none'", "base-uri": "'none'", "form-action": "'self'",
    "frame-ancestors": "'none'",
}


@pytest.fixture(scope="module")
def site(pg_server, site_project, site_template):
    with live_site(pg_server, site_project, site_template, **production_over_http(NUM_PROXIES="2")) as site:
        yield site


def get(site, path, client="198.51.100.7", **headers):
    # What Render's proxies send on: the client's address, then their edge's.
    headers = {"X-Forwarded-For": f"{client}, {RENDER_EDGE}", **headers}
    return requests.get(f"{site.url}{path}", headers=headers, allow_redirects=False, timeout=10)


def admin_login(site, username, password, client, next_url=None):
    """Log in at /admin/login/ as a browser at the client's address would: the answer to the form."""
    form = get(site, "/admin/login/", client=client)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    query = "" if next_url is None else f"?next={quote(next_url)}"
    return requests.post(
        f"{site.url}/admin/login/{query}",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        # Set explicitly: the cookie is Secure, which a cookie jar keeps from plain HTTP.
        cookies={"csrftoken": form.cookies["csrftoken"]},
        headers={"X-Forwarded-For": f"{client}, {RENDER_EDGE}"},
        allow_redirects=False, timeout=10,
    )


def logged_in(response):
    return response.status_code == 302 and "sessionid" in response.cookies


def locked_out(response):
    return response.status_code == 429 and "Account locked: too many login attempts" in response.text


def test_wrong_admin_passwords_lock_the_username_and_the_address_until_unlocked(site):
    keeper, right = site.staff_username, site.staff_password
    # One address guessing at five usernames is locked out, even with a right password...
    guesses = [admin_login(site, f"guess{n}", "wrong", client="203.0.113.5") for n in range(5)]
    assert [response.status_code for response in guesses] == [200, 200, 200, 200, 429]
    assert locked_out(admin_login(site, keeper, right, client="203.0.113.5"))
    # ...while the same user behind the same proxies, at another address, gets in.
    assert logged_in(admin_login(site, keeper, right, client="203.0.113.6"))

    # Five wrong passwords for one username, from five addresses: that username is locked everywhere.
    guesses = [admin_login(site, keeper, "wrong", client=f"192.0.2.{n}") for n in range(5)]
    assert [response.status_code for response in guesses] == [200, 200, 200, 200, 429]
    assert locked_out(admin_login(site, keeper, right, client="198.51.100.99"))

    # Unlocked as the README says: the username, then the address, which stayed locked until then.
    run_manage("axes_reset_username", keeper, env=site.env)
    assert logged_in(admin_login(site, keeper, right, client="198.51.100.99"))
    assert locked_out(admin_login(site, keeper, right, client="203.0.113.5"))
    run_manage("axes_reset_ip", "203.0.113.5", env=site.env)
    assert logged_in(admin_login(site, keeper, right, client="203.0.113.5"))
    assert "AXES: Locking out" in site.log_text()
    assert right not in site.log_text()


@pytest.mark.django_db
def test_a_lockout_ends_with_the_cool_off(client, django_user_model):
    password = secrets.token_urlsafe(16)
    django_user_model.objects.create_superuser("keeper", "keeper@example.com", password)

    def log_in(password):
        return client.post("/admin/login/", {"username": "keeper", "password": password}).status_code

    assert [log_in("wrong") for _ in range(5)] == [200, 200, 200, 200, 429]
    # The attempts as if made 14 minutes ago: still locked; 15 minutes ago: the cool-off is over.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=14))
    assert log_in(password) == 429
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=15))
    assert log_in(password) == 302


def test_an_unsafe_next_after_logging_in_leads_to_the_admin(site):
    response = admin_login(
        site, site.staff_username, site.staff_password, client="198.51.100.20", next_url="https://evil.example/"
    )
    assert logged_in(response)
    assert response.headers["Location"] == "/admin/"


def test_a_weak_superuser_password_is_refused_without_echoing_it(site):
    env = dict(site.env, DJANGO_SUPERUSER_USERNAME="warden", DJANGO_SUPERUSER_EMAIL="warden@example.com")
    weak = manage("ensure_superuser", env=dict(env, DJANGO_SUPERUSER_PASSWORD="123"))
    assert weak.returncode == 1
    assert weak.stderr == (
        "CommandError: DJANGO_SUPERUSER_PASSWORD is too weak: This password is too short. It must contain at "
        "least 8 characters. This password is too common. This password is entirely numeric. No superuser "
        "created; set a stronger password and run it again.\n"
    )
    assert "123" not in weak.stdout + weak.stderr
    strong = manage("ensure_superuser", env=dict(env, DJANGO_SUPERUSER_PASSWORD=secrets.token_urlsafe(16)))
    assert strong.stdout == "Created superuser 'warden'.\n", strong.stderr


@pytest.mark.parametrize(
    "path", ["/birds", "/birds/1", "/birds/99", "/no-such-page", "/healthz", "/admin/login/", "/api/docs/",
             "/api/docs/?script", "/api/schema/"],
)
def test_every_page_has_a_content_security_policy(site, path):
    response = get(site, path)
    directives = dict(directive.split(" ", 1) for directive in response.headers["Content-Security-Policy"].split("; "))
    assert directives == CONTENT_SECURITY_POLICY
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_the_docs_load_their_start_up_script_from_a_file(site):
    page = get(site, "/api/docs/")
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, flags=re.DOTALL)
    assert [body.strip() for _, body in scripts] == ["", "", ""]
    assert [attributes for attributes, _ in scripts][-1] == ' src="/api/docs/?script="'
    script = get(site, "/api/docs/?script=")
    assert script.headers["Content-Type"] == "application/javascript"
    assert "SwaggerUIBundle(" in script.text


PUBLIC_DESCRIPTION = "Birds: anyone may read them; staff users may add, change and delete them."


def test_the_api_describes_itself_without_implementation_notes(site):
    options = requests.options(f"{site.url}/birds", timeout=10).json()
    assert options["description"] == PUBLIC_DESCRIPTION
    schema = get(site, "/api/schema/?format=json").json()
    descriptions = {operation["description"] for path in schema["paths"].values() for operation in path.values()}
    assert descriptions == {PUBLIC_DESCRIPTION}
    browsable = get(site, "/birds", Accept="text/html").text
    assert PUBLIC_DESCRIPTION in browsable
    assert "values()" not in browsable


def test_a_bad_host_is_one_warning_line_not_a_traceback(site):
    before = site.log_text()
    for _ in range(3):
        assert get(site, "/birds", Host="evil.example").status_code == 400
    logged = site.log_text()[len(before):]
    assert logged.splitlines() == [
        "Invalid HTTP_HOST header: 'evil.example'. You may need to add 'evil.example' to ALLOWED_HOSTS."
    ] * 3


def test_a_bad_host_is_logged_at_warning(client, caplog):
    with caplog.at_level(logging.INFO, logger="django.security"):
        assert client.get("/birds", HTTP_HOST="evil.example").status_code == 400
    assert [(record.levelname, record.exc_info) for record in caplog.records] == [("WARNING", None)]


def test_debug_is_off_unless_asked_for(site):
    env = dict(site.env)
    del env["DEBUG"]
    with gunicorn(env) as (url, _log):
        response = requests.get(f"{url}/no-such-page", timeout=10)
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


# Named ids: a generated key in the test's name would differ between pytest-xdist's workers.
@pytest.mark.parametrize(
    "key",
    ["too-short", "ab" * 30, "django-insecure-" + secrets.token_urlsafe(50)],
    ids=["too-short", "repeated", "django-insecure"],
)
def test_a_weak_secret_key_is_refused_at_start_up(site, key):
    env = dict(site.env, SECRET_KEY=key)
    check = manage("check", env=env)
    refusal = (
        "ImproperlyConfigured: SECRET_KEY is too weak: it needs at least 50 characters, 5 of them different, "
        "and no 'django-insecure-' prefix. Set a new one, for example the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
    )
    assert (check.returncode, check.stderr) == (1, refusal + "\n")
    server = subprocess.run(
        ["gunicorn", "--bind", f"127.0.0.1:{free_port()}", "birdsite.wsgi"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60,
    )
    assert server.returncode == 1
    assert server.stderr.splitlines()[-1] == refusal
    assert "Traceback" not in server.stderr
