import contextlib
import json
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from birds.models import Bird

pytestmark = pytest.mark.django_db

EXPECTED = [
    (1, "Black-Capped Chickadee", "Poecile Atricapillus"),
    (2, "Grackle", "Quiscalus Quiscula"),
    (3, "Common Starling", "Sturnus Vulgaris"),
    (4, "Mourning Dove", "Zenaida Macroura"),
]


def birds():
    return list(Bird.objects.values_list("id", "name", "species"))


def seed(*args):
    out = StringIO()
    call_command("seed_birds", *args, stdout=out)
    return out.getvalue()


def test_seeding_twice_gives_the_same_four_birds():
    assert "Seeded 4 birds" in seed()
    output = seed()
    assert "deleted 4 existing" in output
    assert birds() == EXPECTED


def test_seeding_replaces_edited_and_extra_birds():
    seed()
    Bird.objects.filter(id=1).update(name="Renamed")
    Bird.objects.create(name="Extra", species="Extra extra")
    seed()
    assert birds() == EXPECTED


def test_a_bird_created_after_seeding_gets_the_next_id(pg_only):
    seed()
    seed()
    assert Bird.objects.create(name="American Robin", species="Turdus Migratorius").id == 5


def test_if_empty_seeds_an_empty_table():
    assert "Seeded 4 birds" in seed("--if-empty")
    assert birds() == EXPECTED


def test_if_empty_leaves_existing_birds_alone():
    Bird.objects.create(name="Only one", species="Unus")
    output = seed("--if-empty")
    assert "already holds 1 birds; nothing seeded" in output
    assert list(Bird.objects.values_list("name", flat=True)) == ["Only one"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"model": "birds.bird", "pk": 1, "fields": {"name": "A"', "is not a valid birds fixture"),
        ('[{"model": "auth.group", "pk": 1, "fields": {"name": "A"}}]', "holds objects other than birds (auth.Group)"),
        ('[{"model": "birds.bird", "pk": 1, "fields": {"name": "", "species": "x"}}]', "holds an invalid bird"),
        ("[]", "holds no birds"),
        (
            '[{"model": "birds.bird", "pk": 3, "fields": {"name": "Ow\\u0000l", "species": "x"}}]',
            "holds a NUL character in the name of bird 3.",
        ),
    ],
)
def test_a_bad_fixture_is_a_clear_error_and_leaves_the_table_unchanged(tmp_path, content, message):
    seed()
    Bird.objects.create(name="Kept", species="Keep me")
    before = birds()
    fixture = tmp_path / "bad.json"
    fixture.write_text(content)
    with pytest.raises(CommandError, match=re.escape(message)):
        seed("--fixture", str(fixture))
    assert birds() == before


def test_missing_fixture_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match=r"does not exist\. Nothing was changed\."):
        seed("--fixture", str(tmp_path / "nope.json"))


def test_another_fixture_can_be_loaded(tmp_path):
    fixture = tmp_path / "two.json"
    fixture.write_text(json.dumps([
        {"model": "birds.bird", "pk": 7, "fields": {"name": "Kea", "species": "Nestor Notabilis"}},
        {"model": "birds.bird", "pk": 9, "fields": {"name": "Kaka", "species": "Nestor Meridionalis"}},
    ]))
    assert "Seeded 2 birds" in seed("--fixture", str(fixture))
    assert birds() == [(7, "Kea", "Nestor Notabilis"), (9, "Kaka", "Nestor Meridionalis")]


def test_count_adds_generated_birds_after_the_fixtures():
    output = seed("--count", "25")
    assert "Seeded 4 birds" in output and "and 25 generated birds" in output
    rows = birds()
    assert rows[:4] == EXPECTED
    assert [row[0] for row in rows] == list(range(1, 30))
    for bird in Bird.objects.filter(id__gt=4):
        bird.full_clean()
        assert len(bird.name.split()) >= 2 and len(bird.species.split()) == 2
    assert len({(name, species) for _, name, species in rows[4:]}) == 25


def test_count_twice_gives_the_same_birds_and_no_more():
    seed("--count", "30")
    first = [row[1:] for row in birds()]
    seed("--count", "30")
    # Compared without ids: SQLite does not reuse the ids of deleted rows.
    assert [row[1:] for row in birds()] == first


def test_count_writes_in_batches_and_shows_progress_on_a_terminal(monkeypatch):
    import os
    import pty

    monkeypatch.setattr("birds.seeding.BATCH_SIZE", 10)
    controller, terminal = pty.openpty()
    with os.fdopen(terminal, "w") as screen:
        call_command("seed_birds", "--count", "25", stdout=screen)
    written = b""
    # One read may return only part of what was written: read until the closed terminal says EIO.
    with contextlib.suppress(OSError):
        while chunk := os.read(controller, 65536):
            written += chunk
    shown = written.decode()
    os.close(controller)
    assert [line.strip() for line in shown.splitlines() if "generated" in line][:3] == [
        "generated 10 of 25 birds", "generated 20 of 25 birds", "generated 25 of 25 birds",
    ]
    assert Bird.objects.count() == 29
    # Without a terminal only the result is printed.
    assert "generated 10 of" not in seed("--count", "25")


def test_a_negative_count_is_a_clear_error_and_changes_nothing():
    seed()
    Bird.objects.create(name="Kept", species="Keep me")
    before = birds()
    with pytest.raises(CommandError, match=r"must be 0 or more, not -1\. Nothing was changed\."):
        seed("--count", "-1")
    assert birds() == before


def test_if_empty_with_count_leaves_existing_birds_alone():
    Bird.objects.create(name="Only one", species="Unus")
    assert "nothing seeded" in seed("--if-empty", "--count", "10")
    assert Bird.objects.count() == 1
