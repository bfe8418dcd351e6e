import dataclasses
import json

from django.core.management.base import CommandError

from dbops import operations
from dbops.errors import DbOpsError
from dbops.management.base import DatabaseCommand, human_size, table_lines


class Command(DatabaseCommand):
    help = (
        "Show the server version and the client tools chosen, every database of the instance (owner, "
        "encoding, size) and the tables of this database (rows, size): psql's \\l and \\dt+ in one."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--json", action="store_true", help="Print the same as JSON (sizes in bytes).")

    def handle(self, *args, **options):
        target = self.target(options)
        try:
            info = operations.describe(target)
        except DbOpsError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(dataclasses.asdict(info), indent=2))
            return
        self.stdout.write(f"{info.server} at {info.target}")
        self.stdout.write(f"Client tools: {info.client_tools}")
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING("Databases"))
        rows = [("NAME", "OWNER", "ENCODING", "SIZE")]
        rows += [(db.name, db.owner, db.encoding, size_text(db.size)) for db in info.databases]
        for line in table_lines(rows):
            self.stdout.write(f"  {line}")
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(f"Tables of {info.database}"))
        if not info.tables:
            self.stdout.write("  (no tables)")
            return
        rows = [("TABLE", "ROWS", "SIZE")]
        rows += [(table.name, str(table.rows), size_text(table.size)) for table in info.tables]
        for line in table_lines(rows):
            self.stdout.write(f"  {line}")


def size_text(size: int | None) -> str:
    return "?" if size is None else human_size(size)
