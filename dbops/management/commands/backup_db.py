import sys
from pathlib import Path

from django.core.management.base import CommandError

from dbops import operations
from dbops.errors import DbOpsError
from dbops.management.base import DatabaseCommand, human_size, positive_int


class Command(DatabaseCommand):
    # Like dbshell: it needs no model, URL or template, and the project's checks (importing every
    # URL and the API's views) would add a quarter of a second to each backup.
    requires_system_checks = []
    help = (
        "Back up the database (pg_dump --format=custom --no-acl --no-owner, or SQLite's backup API) into "
        "BACKUP_DIR, verified by reading it back, with a manifest of row counts and a SHA-256."
    )
    interrupted = "Interrupted: no backup was written."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--output",
            "-o",
            help="File to write (default: BACKUP_DIR/<database>-<UTC time>.dump); "
            "'-' streams the archive to standard output.",
        )
        parser.add_argument(
            "--all", action="store_true", help="Back up every non-template database of the instance, one file each."
        )
        parser.add_argument("--jobs", "-j", type=positive_int, help="Dump with N parallel workers (directory format).")
        parser.add_argument(
            "--compress",
            help="Compression spec passed to pg_dump, e.g. gzip, gzip:9, zstd:5, none (default: zstd where "
            "pg_dump has it, else gzip).",
        )
        parser.add_argument(
            "--keep", type=positive_int, help="Afterwards delete all but the newest N backups of the database."
        )

    def handle(self, *args, **options):
        target = self.target(options)
        output, folder = options["output"], self.backup_folder()
        if options["all"] and output:
            raise CommandError("--all writes one file per database into BACKUP_DIR; drop --output.")
        try:
            if output == "-":
                operations.backup_to_stream(target, sys.stdout.buffer, options["compress"])
                return
            backup_options = {
                "jobs": options["jobs"],
                "compress": options["compress"],
                "keep": options["keep"],
                "on_table": self.progress(options["verbosity"]),
            }
            if options["all"]:
                outcome = operations.backup_all(target, folder, **backup_options)
            else:
                backup = operations.backup(target, folder, Path(output) if output else None, **backup_options)
                outcome = operations.BackupAllResult([backup], [])
        except DbOpsError as exc:
            raise CommandError(str(exc)) from exc
        for result in outcome.backups:
            self.report(result, options["verbosity"])
        if outcome.failures:
            total = len(outcome.backups) + len(outcome.failures)
            reasons = "; ".join(f"{failure.database} ({failure.reason})" for failure in outcome.failures)
            raise CommandError(f"Could not back up {len(outcome.failures)} of {total} databases: {reasons}.")

    def progress(self, verbosity):
        if verbosity < 2 and not self.stdout.isatty():
            return None
        return lambda table: self.stdout.write(f"  dumping {table}")

    def report(self, result, verbosity):
        manifest = result.manifest
        if verbosity >= 2:
            self.stdout.write(f"Server version {manifest.server_version}; used {result.tools_used}.")
        size = human_size(manifest.size) + (f", {manifest.compression}" if manifest.compression else "")
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up {manifest.source} to {result.path} ({size}, "
                f"{len(manifest.tables)} tables, {sum(manifest.tables.values())} rows, {result.seconds:.1f} s)."
            )
        )
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        for path in result.pruned:
            self.stdout.write(f"Deleted old backup {path}")
