"""The list's query parameters, pages and cap; writes by token; validation; CORS; ETags; throttling."""
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.core.cache.backends import base as cache_base
from django.core.cache.backends import locmem
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from birds.models import Bird
from birds.throttling import AnonWindowThrottle
from tests.helpers import PROJECT_DIR, child_env

pytestmark = pytest.mark.django_db

CHICKADEE = {"id": 1, "name": "Black-Capped Chickadee", "species": "Poecile Atricapillus"}
GRACKLE = {"id": 2, "name": "Grackle", "species": "Quiscalus Quiscula"}
STARLING = {"id": 3, "name": "Common Starling", "species": "Sturnus Vulgaris"}
DOVE = {"id": 4, "name": "Mourning Dove", "species": "Zenaida Macroura"}


@pytest.fixture
def staff():
    return User.objects.create_user("keeper", password="x", is_staff=True)


def get(client, query):
    return client.get(f"/birds?{query}")


def ids(response):
    return [bird["id"] for bird in response.json()]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("species=sturnus vulgaris", [STARLING]),
        ("species=STURNUS VULGARIS", [STARLING]),
        ("species=Sturnus", []),
        ("name=dove", [DOVE]),
        ("name=E", [CHICKADEE, GRACKLE, DOVE]),
        ("search=zenaida", [DOVE]),
        ("search=common", [STARLING]),
        ("search=capped poecile", [CHICKADEE]),
        ("search=capped quiscula", []),
        ("name=o&species=zenaida macroura", [DOVE]),
        ("species=", [CHICKADEE, GRACKLE, STARLING, DOVE]),
    ],
)
def test_filters_return_the_matching_birds_as_a_plain_array(client, seeded, query, expected):
    response = get(client, query)
    assert response.status_code == 200
    assert response.json() == expected


@pytest.mark.parametrize(
    ("ordering", "expected_ids"),
    [
        ("id", [1, 2, 3, 4]),
        ("-id", [4, 3, 2, 1]),
        ("name", [1, 3, 2, 4]),
        ("-name", [4, 2, 3, 1]),
        ("species", [1, 2, 3, 4]),
        ("-species", [4, 3, 2, 1]),
    ],
)
def test_ordering(client, seeded, ordering, expected_ids):
    assert ids(get(client, f"ordering={ordering}")) == expected_ids


def test_ordering_breaks_ties_by_id(client, seeded):
    Bird.objects.create(name="Grackle", species="Quiscalus Major")
    assert ids(get(client, "ordering=-name,species")) == [4, 5, 2, 3, 1]
    assert ids(get(client, "ordering=name")) == [1, 3, 2, 5, 4]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("ordering=colour", "ordering", "Select a valid choice. colour is not one of the available choices."),
        ("ordering=name,-colour", "ordering", "Select a valid choice. -colour is not one of the available choices."),
        ("species=a%00b", "species", "Null characters are not allowed."),
        ("name=%00", "name", "Null characters are not allowed."),
        ("search=x%00", "search", "Null characters are not allowed."),
        ("limit=abc", "limit", "A valid integer is required."),
        ("limit=", "limit", "A valid integer is required."),
        ("offset=", "offset", "A valid integer is required."),
        ("limit=0", "limit", "Ensure this value is greater than or equal to 1."),
        ("limit=-5", "limit", "Ensure this value is greater than or equal to 1."),
        ("limit=2.5", "limit", "A valid integer is required."),
        ("offset=-1", "offset", "Ensure this value is greater than or equal to 0."),
        ("offset=x&limit=2", "offset", "A valid integer is required."),
        ("offset=9223372036854775808", "offset", "Ensure this value is less than or equal to 9223372036854775807."),
    ],
)
def test_bad_parameters_are_a_json_400_naming_the_parameter(client, seeded, query, field, message):
    response = get(client, query)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {field: [message]}


def test_limit_switches_to_pages(client, seeded):
    first = get(client, "limit=3")
    assert first.status_code == 200
    assert first.json() == {
        "count": 4,
        "next": "http://testserver/birds?limit=3&offset=3",
        "previous": None,
        "results": [CHICKADEE, GRACKLE, STARLING],
    }
    assert client.get(first.json()["next"]).json() == {
        "count": 4,
        "next": None,
        "previous": "http://testserver/birds?limit=3",
        "results": [DOVE],
    }


def test_pages_follow_filters_and_ordering(client, seeded):
    response = get(client, "name=e&ordering=-id&limit=2&offset=1")
    assert response.json() == {
        "count": 3,
        "next": None,
        "previous": "http://testserver/birds?limit=2&name=e&ordering=-id",
        "results": [GRACKLE, CHICKADEE],
    }


def test_offset_past_the_end_gives_an_empty_page(client, seeded):
    assert get(client, "limit=2&offset=10").json()["results"] == []
    assert get(client, "offset=10").json() == []


def test_limit_above_the_cap_is_reduced_to_it(client, seeded, settings):
    settings.BIRDS_MAX_LIST = 3
    response = get(client, "limit=100")
    assert len(response.json()["results"]) == 3
    assert response.json()["next"] == "http://testserver/birds?limit=3&offset=3"


def test_plain_array_under_the_cap_has_no_link_header(client, seeded):
    response = client.get("/birds")
    assert response.json() == [CHICKADEE, GRACKLE, STARLING, DOVE]
    assert response["X-Total-Count"] == "4"
    assert "Link" not in response


def test_plain_array_past_the_cap_holds_the_first_birds_and_links_to_the_rest(client, seeded, settings):
    settings.BIRDS_MAX_LIST = 3
    first = client.get("/birds")
    assert first.json() == [CHICKADEE, GRACKLE, STARLING]
    assert first["X-Total-Count"] == "4"
    assert first["Link"] == '<http://testserver/birds?offset=3>; rel="next"'

    rest = client.get("/birds?offset=3")
    assert rest.json() == [DOVE]
    assert rest["X-Total-Count"] == "4"
    assert "Link" not in rest


def test_cap_counts_only_the_matching_birds(client, seeded, settings):
    settings.BIRDS_MAX_LIST = 2
    response = get(client, "name=e&ordering=-id")
    assert response.json() == [DOVE, GRACKLE]
    assert response["X-Total-Count"] == "3"
    assert response["Link"] == '<http://testserver/birds?name=e&offset=2&ordering=-id>; rel="next"'


def token_client(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_staff_token_can_create_change_and_delete(seeded, staff):
    client = token_client(Token.objects.create(user=staff).key)
    created = client.post("/birds", {"name": "American Robin", "species": "Turdus Migratorius"}, format="json")
    assert created.status_code == 201
    robin = created.json()["id"]
    assert client.put(f"/birds/{robin}", {"name": "Robin", "species": "Turdus"}, format="json").json() == {
        "id": robin, "name": "Robin", "species": "Turdus",
    }
    assert client.delete(f"/birds/{robin}").status_code == 204
    assert Bird.objects.count() == 4


def test_token_from_the_management_command_authenticates(seeded, staff, capsys):
    call_command("drf_create_token", "keeper")
    key = capsys.readouterr().out.split()[2]
    response = token_client(key).post("/birds", {"name": "Robin", "species": "Turdus"}, format="json")
    assert response.status_code == 201


def test_tokens_can_be_issued_in_the_admin(staff):
    staff.is_superuser = True
    staff.save()
    client = APIClient()
    client.force_login(staff)
    response = client.post("/admin/authtoken/tokenproxy/add/", {"user": staff.pk})
    assert response.status_code == 302
    assert Token.objects.filter(user=staff).exists()


@pytest.mark.parametrize(
    ("credentials", "status"),
    [("Token not-a-real-token", 403), ("Bearer whatever", 403)],
)
def test_unknown_tokens_cannot_write(seeded, credentials, status):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=credentials)
    assert client.post("/birds", {"name": "Robin", "species": "Turdus"}, format="json").status_code == status
    assert Bird.objects.count() == 4


def test_non_staff_token_cannot_write(seeded):
    visitor = User.objects.create_user("visitor", password="x")
    client = token_client(Token.objects.create(user=visitor).key)
    assert client.post("/birds", {"name": "Robin", "species": "Turdus"}, format="json").status_code == 403
    assert client.get("/birds/1").json() == CHICKADEE


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"name": "", "species": "Turdus"}, {"name": ["This field may not be blank."]}),
        ({"name": "   ", "species": "Turdus"}, {"name": ["This field may not be blank."]}),
        ({"name": "\x1e", "species": "Turdus"}, {"name": ["This field may not be blank."]}),
        ({"name": "\ufeff", "species": "Turdus"}, {"name": ["Enter some text, without NUL characters."]}),
        ({"name": "R" * 201, "species": "T" * 201}, {
            "name": ["Ensure this field has no more than 200 characters."],
            "species": ["Ensure this field has no more than 200 characters."],
        }),
        ({"name": "Ro\x00bin", "species": "Turdus"}, {
            "name": ["Enter some text, without NUL characters.", "Null characters are not allowed."],
        }),
        ({"name": 5, "species": ["Turdus"]}, {"name": ["Not a valid string."], "species": ["Not a valid string."]}),
    ],
)
def test_invalid_birds_are_a_400_with_field_messages(seeded, staff, body, errors):
    client = token_client(Token.objects.create(user=staff).key)
    response = client.post("/birds", body, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert client.patch("/birds/1", body, format="json").json() == errors
    assert Bird.objects.count() == 4


def test_writes_take_json_only(seeded, staff):
    client = token_client(Token.objects.create(user=staff).key)
    response = client.post("/birds", "name=Robin&species=Turdus", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json() == {"detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.'}


def test_creating_needs_every_field(seeded, staff):
    client = token_client(Token.objects.create(user=staff).key)
    response = client.post("/birds", {"species": "Turdus"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["This field is required."]}


def test_malformed_json_is_a_json_400(seeded, staff):
    client = token_client(Token.objects.create(user=staff).key)
    response = client.post("/birds", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


def test_exactly_200_characters_are_accepted(seeded, staff):
    client = token_client(Token.objects.create(user=staff).key)
    response = client.post("/birds", {"name": "N" * 200, "species": "S" * 200}, format="json")
    assert response.status_code == 201


def test_cors_allows_only_the_configured_origins(client, seeded, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://frontend.example"]
    allowed = client.get("/birds", HTTP_ORIGIN="https://frontend.example")
    assert allowed["Access-Control-Allow-Origin"] == "https://frontend.example"
    assert {"Link", "X-Total-Count"} <= {h.strip() for h in allowed["Access-Control-Expose-Headers"].split(",")}
    preflight = client.options(
        "/birds", HTTP_ORIGIN="https://frontend.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )
    assert preflight.status_code == 200
    assert "authorization" in preflight["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in client.get("/birds", HTTP_ORIGIN="https://evil.example")


def test_cors_allows_nothing_by_default(client, seeded):
    response = client.get("/birds", HTTP_ORIGIN="https://frontend.example")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.parametrize("path", ["/birds", "/birds/1", "/birds?name=e&limit=2"])
def test_unchanged_reads_answer_304_to_their_etag(client, seeded, staff, path):
    first = client.get(path)
    etag = first["ETag"]
    again = client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""

    Bird.objects.filter(pk=1).update(name="Chickadee")
    changed = client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag


def test_anonymous_requests_past_the_rate_get_429_with_retry_after(client, seeded, settings):
    limit = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["anon"].split("/")[0])
    statuses = [client.get("/birds/1").status_code for _ in range(limit)]
    assert statuses == [200] * limit
    throttled = client.get("/birds/1")
    assert throttled.status_code == 429
    assert throttled.json()["detail"].startswith("Request was throttled.")
    assert 0 < int(throttled["Retry-After"]) <= 60


def test_a_throttled_client_is_served_again_once_retry_after_has_passed(client, seeded, monkeypatch):
    # A clock of the test's own, for the throttle and for the cache's expiry alike: no sleeping, no races.
    now = [1_800_000_000.0]
    clock = SimpleNamespace(time=lambda: now[0])
    monkeypatch.setattr(locmem, "time", clock)
    monkeypatch.setattr(cache_base, "time", clock)
    monkeypatch.setattr(AnonWindowThrottle, "timer", staticmethod(clock.time))
    # DRF reads the rates once, when the throttle class is defined.
    monkeypatch.setattr(AnonWindowThrottle, "THROTTLE_RATES", {"anon": "2/minute"})
    assert [client.get("/birds/1").status_code for _ in range(3)] == [200, 200, 429]
    now[0] += 20
    throttled = client.get("/birds/1")
    assert throttled.status_code == 429
    assert throttled["Retry-After"] == "40"
    now[0] += 40
    assert [client.get("/birds/1").status_code for _ in range(3)] == [200, 200, 429]


def test_staff_are_not_throttled(seeded, staff, settings):
    limit = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["anon"].split("/")[0])
    client = token_client(Token.objects.create(user=staff).key)
    assert {client.get("/birds/1").status_code for _ in range(limit + 1)} == {200}


def test_api_settings_come_from_the_environment():
    script = (
        "import json, django; from django.conf import settings; django.setup();"
        "print(json.dumps([settings.BIRDS_MAX_LIST, settings.CORS_ALLOWED_ORIGINS,"
        " settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['anon']]))"
    )
    env = child_env(BIRDS_MAX_LIST="50", CORS_ALLOWED_ORIGINS="https://a.example, https://b.example",
                    THROTTLE_ANON_RATE="10/second")
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    assert json.loads(result.stdout) == [50, ["https://a.example", "https://b.example"], "10/second"]


@pytest.mark.parametrize("path", ["/birds/1.5", "/birds/1/feathers", "/nowhere"])
def test_unknown_urls_are_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
