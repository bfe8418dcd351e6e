"""Replace the birds table with the contents of a fixture file, atomically."""
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core import serializers
from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.core.serializers.base import DeserializationError
from django.db import connections, transaction

from .models import Bird

DEFAULT_FIXTURE = settings.BASE_DIR / "fixtures" / "birds.json"


class SeedError(Exception):
    pass


@dataclass(frozen=True)
class SeedResult:
    deleted: int
    loaded: int
    skipped_existing: int = 0

    @property
    def skipped(self):
        return self.skipped_existing > 0


def read_fixture(path: Path) -> list[Bird]:
    """Parse a Django JSON fixture that holds only birds; raise SeedError on anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SeedError(f"Fixture {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SeedError(f"Cannot read fixture {path}: {exc}") from exc
    try:
        objects = [item.object for item in serializers.deserialize("json", text)]
    except DeserializationError as exc:
        reason = str(exc.__cause__ or exc).splitlines()[0]
        raise SeedError(f"Fixture {path} is not a valid birds fixture: {reason}.") from exc
    others = sorted({obj._meta.label for obj in objects if not isinstance(obj, Bird)})
    if others:
        raise SeedError(f"Fixture {path} holds objects other than birds ({', '.join(others)}).")
    if not objects:
        raise SeedError(f"Fixture {path} holds no birds.")
    for bird in objects:
        try:
            bird.full_clean(validate_unique=False)
        except ValidationError as exc:
            raise SeedError(f"Fixture {path} holds an invalid bird: {'; '.join(exc.messages)}") from exc
        _refuse_nul_characters(bird, path)
    return objects


def _refuse_nul_characters(bird: Bird, path: Path) -> None:
    # PostgreSQL text cannot hold NUL, and the driver raises a plain ValueError for it mid-transaction.
    for field in bird._meta.concrete_fields:
        value = getattr(bird, field.attname)
        if isinstance(value, str) and "\x00" in value:
            raise SeedError(f"Fixture {path} holds a NUL character in the {field.name} of bird {bird.pk}.")


def seed_birds(fixture: Path = DEFAULT_FIXTURE, using: str = "default", if_empty: bool = False) -> SeedResult:
    """Delete every bird and load the fixture in one transaction; reset the id sequence after."""
    birds = read_fixture(fixture)
    with transaction.atomic(using=using):
        existing = Bird.objects.using(using).select_for_update().count() if if_empty else 0
        if existing:
            return SeedResult(deleted=0, loaded=0, skipped_existing=existing)
        deleted, _ = Bird.objects.using(using).all().delete()
        for bird in birds:
            bird.save(using=using, force_insert=True)
        _reset_id_sequence(using)
    return SeedResult(deleted=deleted, loaded=len(birds))


def _reset_id_sequence(using: str) -> None:
    # Fixtures carry explicit ids, so PostgreSQL's sequence must move past them or the next
    # bird created would collide with id 1.
    connection = connections[using]
    statements = connection.ops.sequence_reset_sql(no_style(), [Bird])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
