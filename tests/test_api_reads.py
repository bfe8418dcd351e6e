"""The fast read paths answer exactly what DRF's serializer and JSON renderer would."""
import json

import pytest
from django.core.management import call_command
from django.utils.translation import gettext_lazy
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer

from birds.models import Bird
from birds.renderers import FastJSONRenderer
from birds.serializers import BirdSerializer

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_fast_renderer_gives_drfs_bytes(data):
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)


def test_fast_renderer_escapes_like_drf():
    data = {"detail": [ErrorDetail("bad\x00\x1f\"\\ \u2028\u2029 é 🐦", code="x"), gettext_lazy("Not found.")]}
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)
    assert b"\\u2028" in FastJSONRenderer().render(data)


def test_fast_renderer_indents_like_drf_when_asked():
    data = [{"id": 1, "name": "Kea"}]
    media_type = "application/json; indent=2"
    assert FastJSONRenderer().render(data, media_type) == JSONRenderer().render(data, media_type)
    assert FastJSONRenderer().render(None) == b""


@pytest.mark.django_db
class TestReadsMatchTheSerializer:
    @pytest.fixture(autouse=True)
    def birds(self):
        call_command("seed_birds", "--count", "40", verbosity=0)
        Bird.objects.create(name="Ünïcode \u2028 \"quoted\" \\ bird", species="Avis Exempli")

    def test_list_and_every_detail(self, client):
        expected = json.loads(JSONRenderer().render(BirdSerializer(Bird.objects.order_by("id"), many=True).data))
        assert client.get("/birds").json() == expected
        for bird in expected:
            assert client.get(f"/birds/{bird['id']}").content == JSONRenderer().render(bird)

    def test_pages_and_filters(self, client):
        page = client.get("/birds?limit=5&offset=3&ordering=-name").json()["results"]
        birds = Bird.objects.order_by("-name", "id")[3:8]
        assert page == BirdSerializer(birds, many=True).data

    def test_a_detail_read_still_applies_filters(self, client):
        assert client.get("/birds/1?name=chickadee").status_code == 200
        assert client.get("/birds/1?name=grackle").status_code == 404
