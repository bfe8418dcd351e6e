import dataclasses
import json
from datetime import UTC, datetime

from dbops import operations, render
from dbops.management.base import DatabaseCommand, human_size, kept_database_lines, table_lines
from dbops.management.commands.list_backups import duration


class Command(DatabaseCommand):
    help = (
        "Show the server version and the client tools chosen, every database of the instance (owner, "
        "encoding, size) and the tables of this database (rows, size): psql's \\l and \\dt+ in one. With "
        "RENDER_API_KEY, also the Render instance and, for a free one, when it expires."
    )
    runs_client_tools = True

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--json", action="store_true", help="Print the same as JSON (sizes in bytes).")
        parser.add_argument(
            "--expires-within",
            type=duration,
            metavar="AGE",
            help="Only ask Render's API (RENDER_API_KEY): exit non-zero when the database's free Render instance "
            "expires within AGE (e.g. 7d) or has expired. For cron jobs and CI.",
        )

    def handle(self, *args, **options):
        target, within = self.target(options), options["expires_within"]
        now = datetime.now(UTC)
        if within is not None:
            self.stdout.write(render.expiry_line(target.host, within, now))
            return
        info = operations.describe(target)
        kept = operations.kept_databases(target)
        if options["json"]:
            result = info_as_json(info, now)
            result["kept_by_swap"] = [dict(name=k.name, kept_at=k.kept_at.isoformat(), size=k.size) for k in kept]
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(f"{info.server} at {info.target}")
        if info.render is not None:
            self.stdout.write(info.render.summary(now))
        self.stdout.write(f"Client tools: {info.client_tools}")
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING("Databases"))
        rows = [("NAME", "OWNER", "ENCODING", "SIZE")]
        rows += [(db.name, db.owner, db.encoding, size_text(db.size)) for db in info.databases]
        for line in table_lines(rows):
            self.stdout.write(f"  {line}")
        for line in kept_database_lines(info.database, kept):
            self.stdout.write(line)
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(f"Tables of {info.database}"))
        if not info.tables:
            self.stdout.write("  (no tables)")
            return
        rows = [("TABLE", "ROWS", "SIZE")]
        rows += [(table.name, str(table.rows), size_text(table.size)) for table in info.tables]
        for line in table_lines(rows):
            self.stdout.write(f"  {line}")


def info_as_json(info, now: datetime) -> dict:
    result = dataclasses.asdict(info)
    if info.render is not None:
        result["render"].update(
            expires_at=info.render.expires_at and info.render.expires_at.isoformat(),
            deletes_at=info.render.deletion_at and info.render.deletion_at.isoformat(),
            days_left=info.render.days_left(now),
        )
    return result


def size_text(size: int | None) -> str:
    return "?" if size is None else human_size(size)
