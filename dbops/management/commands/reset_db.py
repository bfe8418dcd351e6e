from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from dbops import operations
from dbops.errors import Interrupted
from dbops.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = "Drop the database and create it empty (SQLite: replace the file with an empty one)."
    interrupted = "Interrupted: nothing was dropped."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        self.add_confirmation_arguments(parser)
        parser.add_argument(
            "--create", action="store_true", help="Create the database when it does not exist (else an error)."
        )
        parser.add_argument("--migrate", action="store_true", help="Run migrations afterwards.")
        parser.add_argument("--seed", action="store_true", help="Run seed_birds afterwards (needs --migrate).")
        parser.add_argument(
            "--maintenance-db", help="Database to connect to while dropping (default: postgres, else template1)."
        )

    def handle(self, *args, **options):
        target, alias = self.target(options), options["database"]
        if options["seed"] and not options["migrate"]:
            raise CommandError("--seed needs the tables that --migrate creates: add --migrate.")
        if options["url"] and options["migrate"]:
            raise CommandError("--migrate and --seed work on a Django database: use --database ALIAS, not --url.")
        state = operations.check_reset(target, options["maintenance_db"], create=options["create"])
        if state.exists:
            self.confirm(
                f"You are about to DROP {target.masked} with all its data ({state.table_count} tables) "
                "and create it empty. This cannot be undone.",
                options["interactive"],
            )
        if not options["url"]:
            connections[alias].close()
        notice = operations.reset(target, options["maintenance_db"])
        if notice:
            self.stdout.write(notice)
        done = "Reset" if state.exists else "Created"
        self.stdout.write(self.style.SUCCESS(f"{done} {target.masked}: it is now empty."))
        if options["migrate"]:
            try:
                call_command("migrate", database=alias, interactive=False, verbosity=options["verbosity"])
            except KeyboardInterrupt:
                raise Interrupted(
                    f"Interrupted while migrating after the reset: {target.masked} holds just the migrations that "
                    "had finished; run migrate again."
                ) from None
        if options["seed"]:
            call_command("seed_birds", database=alias, verbosity=options["verbosity"])
