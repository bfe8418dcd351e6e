import argparse
import re
import shlex
from datetime import timedelta

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS

from dbops.listing import list_backups
from dbops.management.base import DatabaseCommand, human_size, kept_database_lines, table_lines
from dbops.manifest import KIND_BACKUP

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
        name, max_age = options["database_name"], options["max_age"]
        target = self.target(options) if max_age is not None or self.target_given(options) else None
        if target is not None and name is not None:
            target = target.with_database(name)
        listing = list_backups(self.backup_location(), target, name, max_age)
        if listing.warning:
            self.stderr.write(self.style.WARNING(f"Warning: {listing.warning}"))
        self.show(listing.backups, listing.url, listing.origin)
        if target is not None:
            for line in kept_database_lines(target.name, listing.kept):
                self.stdout.write(line)
        self.report_lost_archives(listing.lost)
        if listing.stale:
            raise CommandError(listing.stale)
        if listing.freshness is not None:
            self.stdout.write(str(listing.freshness))

    @staticmethod
    def target_given(options) -> bool:
        return options["url"] is not None or options["database"] != DEFAULT_DB_ALIAS

    def show(self, backups, url, origin):
        if not backups:
            self.stdout.write(f"No backups in {url}.")
            return
        header = ("FILE", "DATABASE", "SERVER", "CREATED (UTC)", "SIZE", "COMPRESSION", "KIND", "CHECKSUM")
        rows = [header + (("THIS SERVER",) if origin else ())]
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
            + ((same_server(b, origin),) if origin else ())
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
        if origin is None:
            self.suggest_restore(backups)

    def suggest_restore(self, backups):
        """A new instance has no backups of its own: the line that restores the newest of each database
        (on standard error, as hints go, so that standard output stays the table)."""
        newest = {}
        for backup in backups:
            if backup.kind == KIND_BACKUP:
                newest.setdefault(backup.database, backup)
        for database in sorted(newest):
            line = shlex.join(["python", "manage.py", "restore_db", "--latest-of", database])
            self.stderr.write(
                f"Restore the newest backup of {database}, from any server, with: {line} "
                "(onto a new instance: add --url URL --create)"
            )

    def report_lost_archives(self, lost):
        if lost:
            names = ", ".join(b.name for b in lost)
            self.stderr.write(
                self.style.WARNING(
                    f"{len(lost)} manifest(s) whose archive is gone (deleted by hand or by a bucket's lifecycle "
                    f"rule): {names}. They cannot be restored; backup_db's --keep options remove them."
                )
            )


def same_server(backup, origin) -> str:
    if backup.origin is None:
        return "? (no manifest)"
    return f"yes, by {backup.origin.server_match(origin)}" if backup.is_from(origin) else "no"


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
