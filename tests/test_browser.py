"""The site in headless Chromium (Debian's package, driven by Playwright), served as in production: the
browsable API, the OpenAPI docs without any CDN, and adding a bird in the admin, each under the site's
Content-Security-Policy without a violation. Screenshots go to each test's tmp_path."""
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.live_site import live_site, production_over_http

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
)


@pytest.fixture(scope="module")
def site(pg_server, site_project, site_template):
    # Chromium takes 127.0.0.1 for a secure origin: the Secure session and CSRF cookies work over HTTP.
    with live_site(pg_server, site_project, site_template, **production_over_http()) as site:
        yield site


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site):
    """A fresh browser tab that records every host it asks for; the test fails on any page's script
    error or Content-Security-Policy violation, and on any page without the policy."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    page.hosts_requested = set()
    page.on("request", lambda request: page.hosts_requested.add(urlsplit(request.url).netloc))
    problems = []

    def on_console(message):
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    def on_response(response):
        if response.request.resource_type == "document" and "content-security-policy" not in response.headers:
            problems.append(f"no Content-Security-Policy: {response.url}")

    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", on_console)
    page.on("response", on_response)
    yield page
    context.close()
    assert problems == []


def test_browsable_api_lists_the_birds(page, site, tmp_path):
    page.goto(f"{site.url}/birds")
    page.get_by_role("heading", name="Bird List").wait_for()
    assert page.get_by_text("Black-Capped Chickadee").is_visible()
    page.screenshot(path=tmp_path / "birds.png", full_page=True)
    # The OPTIONS button is a form that only the page's script can send.
    page.get_by_role("button", name="OPTIONS").click()
    page.get_by_text("OPTIONS /birds").wait_for()
    assert page.get_by_text('"Birds: anyone may read them; staff users may add, change and delete them."').is_visible()
    page.screenshot(path=tmp_path / "birds-options.png", full_page=True)


def test_docs_render_every_operation_from_this_site_alone(page, site, tmp_path):
    page.goto(f"{site.url}/api/docs/")
    operations = page.locator(".opblock-summary")
    operations.first.wait_for()
    summaries = {" ".join(text.split()[:2]) for text in operations.all_inner_texts()}
    assert summaries == {
        "GET /birds/", "POST /birds/", "GET /birds/{id}/", "PUT /birds/{id}/", "PATCH /birds/{id}/",
        "DELETE /birds/{id}/",
    }
    page.screenshot(path=tmp_path / "docs.png", full_page=True)

    # Trying an operation out fetches it from the page.
    page.locator(".opblock-summary", has_text="GET/birds/{id}/").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_placeholder("id").fill("1")
    page.get_by_role("button", name="Execute").click()
    answer = page.locator(".live-responses-table tbody .response")
    answer.wait_for()
    assert answer.locator(".response-col_status").inner_text() == "200"
    assert "Black-Capped Chickadee" in answer.locator(".highlight-code").inner_text()
    page.screenshot(path=tmp_path / "docs-tried.png", full_page=True)
    assert page.hosts_requested == {urlsplit(site.url).netloc}


def test_staff_adds_a_bird_in_the_admin_and_the_api_shows_it(page, site, tmp_path):
    page.goto(f"{site.url}/admin/")
    page.get_by_label("Username").fill(site.staff_username)
    page.get_by_label("Password").fill(site.staff_password)
    page.screenshot(path=tmp_path / "login.png")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Site administration").wait_for()
    page.screenshot(path=tmp_path / "admin.png")

    page.locator("#content-main #birds-bird").get_by_role("link", name="Birds").click()
    page.get_by_role("heading", name="Select bird to change").wait_for()
    assert page.locator("#result_list").get_by_text("Black-Capped Chickadee").is_visible()
    page.screenshot(path=tmp_path / "bird-list.png", full_page=True)

    page.get_by_role("link", name="Add bird").click()
    page.get_by_label("Name").fill("Northern Cardinal")
    page.get_by_label("Species").fill("Cardinalis Cardinalis")
    page.screenshot(path=tmp_path / "add-bird.png")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was added successfully").wait_for()
    assert page.locator("#result_list").get_by_text("Northern Cardinal").is_visible()
    page.screenshot(path=tmp_path / "added.png")

    page.goto(f"{site.url}/birds")
    page.get_by_role("heading", name="Bird List").wait_for()
    assert page.get_by_text('"Northern Cardinal"').is_visible()
    page.screenshot(path=tmp_path / "birds-after.png", full_page=True)
