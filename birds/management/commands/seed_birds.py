from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from birds.seeding import DEFAULT_FIXTURE, SeedError, seed_birds
from dbops.process import stop_exit_code


class Command(BaseCommand):
    help = (
        "Replace all birds with the ones in a fixture (default: fixtures/birds.json), plus --count "
        "generated birds, in one transaction, so running it twice never duplicates data."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE, help="Fixture file to load.")
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Seed only when the birds table is empty (safe to run on every deploy).",
        )
        parser.add_argument(
            "--count", type=int, default=0, metavar="N",
            help="Also add N generated birds with realistic names after the fixture's (demos, load tests).",
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help='Database alias to seed (default: "default").'
        )

    def handle(self, *args, **options):
        fixture = options["fixture"]
        try:
            result = seed_birds(
                fixture, using=options["database"], if_empty=options["if_empty"], count=options["count"],
                on_progress=self.progress(options["verbosity"]),
            )
        except SeedError as exc:
            raise CommandError(f"{exc} Nothing was changed.") from exc
        except DatabaseError as exc:
            raise CommandError(f"Seeding failed, nothing was changed: {exc}".strip()) from exc
        except KeyboardInterrupt:
            # 128 + the signal, like every database command; the transaction was rolled back.
            raise CommandError("Interrupted: nothing was changed.", returncode=stop_exit_code()) from None
        if result.skipped:
            self.stdout.write(
                f"The birds table already holds {result.skipped_existing} birds; nothing seeded (--if-empty)."
            )
            return
        generated = f" and {result.generated} generated birds" if result.generated else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {result.loaded} birds from {fixture}{generated} (deleted {result.deleted} existing)."
            )
        )

    def progress(self, verbosity):
        if verbosity < 2 and not self.stdout.isatty():
            return None
        return lambda done, total: self.stdout.write(f"  generated {done} of {total} birds")
