import argparse
import re
from datetime import timedelta

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS

from dbops import archive, operations
from dbops.errors import DbOpsError
from dbops.management.base import DatabaseCommand, human_size, table_lines

DURATION = re.compile(r"(\d+)\s*([mhd])")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MAX_AGE = timedelta(days=36500)


class Command(DatabaseCommand):
    help = (
        "List the backups in BACKUP_DIR (a folder or s3://BUCKET/PREFIX) with database, server, time, size, "
        "compression and whether the checksum (for objects: the size) still matches. --max-age makes it a check "
        "for cron and monitors."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "database_name",
            nargs="?",
            metavar="database",
            help="Only the backups of this database (with --max-age: this database on the --database/--url server).",
        )
        parser.add_argument(
            "--max-age",
            type=duration,
            metavar="AGE",
            help="Exit non-zero when the newest backup of the database from its server (--database ALIAS or "
            "--url URL; default: the default alias's) is older than AGE, e.g. 26h, 90m, 2d, or when there is none.",
        )

    def handle(self, *args, **options):
        location, name, max_age = self.backup_location(), options["database_name"], options["max_age"]
        target = self.target(options) if max_age is not None or self.target_given(options) else None
        if target is not None and name is not None:
            target = target.with_database(name)
        try:
            backups = archive.list_backups(location, target.label if target else name)
            self.show(backups, location)
            if max_age is not None:
                self.stdout.write(str(operations.check_freshness(backups, target, max_age, location.url)))
        except DbOpsError as exc:
            raise CommandError(str(exc)) from exc

    @staticmethod
    def target_given(options) -> bool:
        return options["url"] is not None or options["database"] != DEFAULT_DB_ALIAS

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


def duration(text: str) -> timedelta:
    """26h, 90m, 2d: at most MAX_AGE, so that "now minus the age" stays a date."""
    match = DURATION.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(text)
    try:
        age = timedelta(**{UNITS[match[2]]: int(match[1])})
    except OverflowError:
        age = MAX_AGE + timedelta(days=1)
    if age > MAX_AGE:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {MAX_AGE.days} days")
    return age
