import pytest
from django.db import connections

from dbops.cluster import free_port

pytestmark = pytest.mark.django_db


def test_healthz_is_ok_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_does_not_answer(client, db_engine):
    original = connections["default"]
    unreachable = dict(original.settings_dict)
    if db_engine == "postgresql":
        unreachable["PORT"] = free_port()  # nothing listens there: connection refused
    else:
        unreachable["NAME"] = "/nonexistent-folder/db.sqlite3"
    broken = original.__class__(unreachable, "default")
    connections["default"] = broken
    try:
        response = client.get("/healthz/")
    finally:
        broken.close()
        connections["default"] = original
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}
