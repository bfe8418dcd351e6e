"""Replace the birds table with the contents of a fixture file, plus generated birds, atomically."""
import io
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core import serializers
from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.core.serializers.base import DeserializationError
from django.db import connections, transaction

from .generated import generated_birds
from .models import Bird

DEFAULT_FIXTURE = settings.BASE_DIR / "fixtures" / "birds.json"
# Generated birds are written this many at a time, so memory stays flat whatever the count.
BATCH_SIZE = 10_000


class SeedError(Exception):
    pass


@dataclass(frozen=True)
class SeedResult:
    deleted: int
    loaded: int
    skipped_existing: int = 0
    generated: int = 0

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


def seed_birds(
    fixture: Path = DEFAULT_FIXTURE,
    using: str = "default",
    if_empty: bool = False,
    count: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> SeedResult:
    """Delete every bird, load the fixture and reset the id sequence, then add `count` generated birds
    after the fixture's, all in one transaction. on_progress(done, count) follows after each batch."""
    if count < 0:
        raise SeedError(f"The number of birds to generate must be 0 or more, not {count}.")
    birds = read_fixture(fixture)
    with transaction.atomic(using=using):
        existing = Bird.objects.using(using).select_for_update().count() if if_empty else 0
        if existing:
            return SeedResult(deleted=0, loaded=0, skipped_existing=existing)
        deleted, _ = Bird.objects.using(using).all().delete()
        for bird in birds:
            bird.save(using=using, force_insert=True)
        _reset_id_sequence(using)
        _add_generated_birds(count, using, on_progress or (lambda done, total: None))
    return SeedResult(deleted=deleted, loaded=len(birds), generated=count)


def _reset_id_sequence(using: str) -> None:
    # Fixtures carry explicit ids, so PostgreSQL's sequence must move past them or the next
    # bird created would collide with id 1.
    connection = connections[using]
    statements = connection.ops.sequence_reset_sql(no_style(), [Bird])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def _add_generated_birds(count: int, using: str, on_progress: Callable[[int, int], None]) -> None:
    write_batch = BATCH_WRITERS.get(connections[using].vendor, _insert_batch)
    birds = generated_birds(count)
    done = 0
    while batch := list(itertools.islice(birds, BATCH_SIZE)):
        write_batch(batch, using)
        done += len(batch)
        on_progress(done, count)


def _copy_batch(batch: Iterable[tuple[str, str]], using: str) -> None:
    # COPY is PostgreSQL's bulk path, several times faster than INSERTs. The text format needs tabs,
    # newlines and backslashes escaped; generated names hold none.
    rows = io.StringIO("".join(f"{name}\t{species}\n" for name, species in batch))
    connection = connections[using]
    table = connection.ops.quote_name(Bird._meta.db_table)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f"COPY {table} (name, species) FROM STDIN", rows)


def _insert_batch(batch: Iterable[tuple[str, str]], using: str) -> None:
    Bird.objects.using(using).bulk_create(Bird(name=name, species=species) for name, species in batch)


BATCH_WRITERS = {"postgresql": _copy_batch}
