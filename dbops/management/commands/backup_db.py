import sys
from pathlib import Path

from django.core.management.base import CommandError

from dbops import operations
from dbops.encryption import recipients_from_env
from dbops.management.base import (
    DatabaseCommand,
    add_retention_arguments,
    human_size,
    positive_int,
    retention_options_given,
    retention_policy,
    safety_days,
)


class Command(DatabaseCommand):
    help = (
        "Back up the database (pg_dump --format=custom --no-acl --no-owner, or SQLite's backup API) into "
        "BACKUP_DIR (a folder or s3://BUCKET/PREFIX), verified while it is written, with a manifest of row "
        "counts and a SHA-256; encrypted with age to BACKUP_AGE_RECIPIENTS when set."
    )
    runs_client_tools = True
    interrupted = "Interrupted: no backup was written."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--output",
            "-o",
            help="Local file to write (default: BACKUP_DIR/<database>-<UTC time>.dump); "
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
        add_retention_arguments(parser)
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Back up nothing and delete nothing: show which backups the --keep options would delete.",
        )

    def handle(self, *args, **options):
        self.check_options(options)
        target = self.target(options)
        output, location = options["output"], self.backup_location()
        retention = retention_policy(options)
        if options["dry_run"]:
            if output:
                self.stdout.write(f"A backup to {output} would delete no backup (only BACKUP_DIR's expire).")
                return
            preview = operations.preview_pruning(target, location, retention, options["all"], safety_days(options))
            self.report_preview(preview)
            return
        if output == "-":
            operations.backup_to_stream(target, sys.stdout.buffer, options["compress"], recipients_from_env())
            return
        backup_options = operations.BackupOptions(
            jobs=options["jobs"],
            compress=options["compress"],
            retention=retention,
            on_table=self.progress(options["verbosity"]),
            recipients=recipients_from_env(),
            safety_days=safety_days(options),
        )
        if options["all"]:
            outcome = operations.backup_all(target, location, backup_options)
        elif output:
            outcome = operations.BackupAllResult([operations.backup_to_file(target, Path(output), backup_options)], [])
        else:
            outcome = operations.BackupAllResult([operations.backup(target, location, backup_options)], [])
        for result in outcome.backups:
            self.report(result, options["verbosity"])
        errors = [f"Could not delete old backups: {result.prune_failure}" for result in outcome.backups
                  if result.prune_failure]
        if outcome.failures:
            total = len(outcome.backups) + len(outcome.failures)
            reasons = "; ".join(f"{failure.database} ({failure.reason})" for failure in outcome.failures)
            errors.insert(0, f"Could not back up {len(outcome.failures)} of {total} databases: {reasons}.")
        if errors:
            raise CommandError(" ".join(errors))

    @staticmethod
    def check_options(options):
        output = options["output"]
        if options["all"] and output:
            raise CommandError("--all writes one file per database into BACKUP_DIR; drop --output.")
        retention = retention_options_given(options)
        if output and retention:
            raise CommandError(
                f"{' and '.join(retention)} {'deletes' if len(retention) == 1 else 'delete'} old backups in "
                f"BACKUP_DIR, and --output writes a file outside it: drop {' and '.join(retention)}, or drop "
                "--output to back up into BACKUP_DIR."
            )

    def progress(self, verbosity):
        if verbosity < 2 and not self.stdout.isatty():
            return None
        return lambda table: self.stdout.write(f"  dumping {table}")

    def report(self, result, verbosity):
        manifest = result.manifest
        if verbosity >= 2:
            self.stdout.write(f"Server version {manifest.server_version}; used {result.tools_used}.")
        size = human_size(manifest.size) + (f", {manifest.compression}" if manifest.compression else "")
        encrypted = f", encrypted to {len(manifest.recipients)} age key(s)" if manifest.encrypted else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up {manifest.source} to {result.where} ({size}, "
                f"{len(manifest.tables)} tables, {sum(manifest.tables.values())} rows{encrypted}, "
                f"{result.seconds:.1f} s)."
            )
        )
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        for where in result.pruned:
            self.stdout.write(f"Deleted old backup {where}")

    def report_preview(self, preview):
        for database, doomed in preview.items():
            if not doomed:
                self.stdout.write(f"{database}: a backup now would delete no backup.")
            for where in doomed:
                self.stdout.write(f"Would delete {where}")
