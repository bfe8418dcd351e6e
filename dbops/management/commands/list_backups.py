import re
from datetime import timedelta

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS

from dbops import archive
from dbops.connection import target_from_alias
from dbops.errors import DbOpsError
from dbops.management.base import InterruptibleCommand, backup_location, human_size, table_lines

DURATION = re.compile(r"(\d+)\s*([mhd])")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class Command(InterruptibleCommand):
    help = (
        "List the backups in BACKUP_DIR (a folder or s3://BUCKET/PREFIX) with database, server, time, size, "
        "compression and whether the checksum (for objects: the size) still matches. --max-age makes it a check "
        "for cron and monitors."
    )

    def add_arguments(self, parser):
        parser.add_argument("database", nargs="?", help="Only the backups of this database.")
        parser.add_argument(
            "--max-age",
            type=duration,
            metavar="AGE",
            help="Exit non-zero when the newest backup of the database (default: the default alias's) is older "
            "than AGE, e.g. 26h, 90m, 2d, or when there is none.",
        )

    def handle(self, *args, **options):
        location, database = backup_location(), options["database"]
        if options["max_age"] is not None and database is None:
            database = default_database_label()
        try:
            backups = archive.list_backups(location, database)
            self.show(backups, location)
            if options["max_age"] is not None:
                self.check_age(backups, database, options["max_age"])
        except DbOpsError as exc:
            raise CommandError(str(exc)) from exc

    def show(self, backups, location):
        if not backups:
            self.stdout.write(f"No backups in {location.url}.")
            return
        rows = [("FILE", "DATABASE", "SERVER", "CREATED (UTC)", "SIZE", "COMPRESSION", "KIND", "CHECKSUM")]
        rows += [
            (
                b.name,
                b.database,
                b.origin.server if b.origin else "?",
                b.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                human_size(b.size),
                (b.manifest and b.manifest.compression) or "-",
                b.kind + (", encrypted" if b.name.endswith(".age") else ""),
                b.checksum_status(),
            )
            for b in backups
        ]
        for line in table_lines(rows):
            self.stdout.write(line)
        for backup in backups:
            if backup.manifest_problem:
                self.stderr.write(self.style.WARNING(f"Warning: {backup.manifest_problem}"))
        orphans = [b.name for b in backups if b.manifest is None and not b.manifest_problem]
        if orphans:
            self.stderr.write(
                self.style.WARNING(
                    f"{len(orphans)} archive(s) without a manifest (an interrupted backup, or a file put there "
                    "by hand): they restore, but unchecked."
                )
            )

    def check_age(self, backups, database, max_age):
        newest = next((b for b in backups if b.kind == archive.KIND_BACKUP), None)
        if newest is None:
            raise DbOpsError(f"No backup of {database!r}: the newest should be at most {max_age_text(max_age)} old.")
        age = archive.utc_now() - newest.created_at
        if age > max_age:
            raise DbOpsError(
                f"The newest backup of {database!r} ({newest.name}) is {max_age_text(age)} old, older than "
                f"{max_age_text(max_age)}."
            )
        self.stdout.write(f"The newest backup of {database!r} is {max_age_text(age)} old: fresh enough.")


def duration(text: str) -> timedelta:
    match = DURATION.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(text)
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def max_age_text(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def default_database_label() -> str:
    try:
        return target_from_alias(DEFAULT_DB_ALIAS).label
    except DbOpsError as exc:
        raise CommandError(str(exc)) from exc
