import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from birds.models import Bird
from tests.helpers import TUTORIAL_BIRDS

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    client = APIClient()
    client.force_login(User.objects.create_user("keeper", password="x", is_staff=True))
    return client


@pytest.mark.parametrize("path", ["/birds", "/birds/"])
def test_list_is_the_tutorials_plain_array(client, seeded, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == TUTORIAL_BIRDS


@pytest.mark.parametrize("path", ["/birds/1", "/birds/1/"])
def test_detail_is_one_object(client, seeded, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == TUTORIAL_BIRDS[0]


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/birds/99", "No Bird matches the given query."),
        ("/birds/99/", "No Bird matches the given query."),
        ("/birds/not-a-number", "Not found."),
    ],
)
def test_missing_bird_is_a_json_404(client, seeded, path, detail):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": detail}


def test_browsable_api_renders_html(client, seeded):
    response = client.get("/birds", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Black-Capped Chickadee" in response.content
    assert b"Django REST framework" in response.content


def test_anonymous_writes_are_refused(client, seeded):
    assert client.post("/birds", {"name": "Robin", "species": "Turdus migratorius"}).status_code == 403
    assert client.delete("/birds/1").status_code == 403
    assert client.patch("/birds/1", {"name": "X"}, content_type="application/json").status_code == 403
    assert list(Bird.objects.values("id", "name", "species")) == TUTORIAL_BIRDS


def test_authenticated_non_staff_writes_are_refused(seeded):
    client = APIClient()
    client.force_login(User.objects.create_user("visitor", password="x"))
    assert client.post("/birds", {"name": "Robin", "species": "Turdus migratorius"}).status_code == 403
    assert Bird.objects.count() == 4


def test_staff_can_create_change_and_delete(staff_client, seeded):
    created = staff_client.post("/birds", {"name": "American Robin", "species": "Turdus Migratorius"}, format="json")
    assert created.status_code == 201
    new_id = created.json()["id"]
    assert created.json() == {"id": new_id, "name": "American Robin", "species": "Turdus Migratorius"}

    changed = staff_client.patch(f"/birds/{new_id}", {"name": "Robin"}, format="json")
    assert changed.json()["name"] == "Robin"

    assert staff_client.delete(f"/birds/{new_id}").status_code == 204
    assert staff_client.get(f"/birds/{new_id}").status_code == 404
