import dataclasses
import json

from django.core.management.base import CommandError

from dbops import verify
from dbops.encryption import identity_path_from_env
from dbops.errors import DbOpsError
from dbops.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Restore drill: restore the newest backup of the database (or PATH, a file or s3://BUCKET/KEY) into a "
        "scratch database created on the same instance (or on --url), compare every table's row count with the "
        "manifest, drop the scratch database. Exit code 0 only when they match."
    )
    runs_client_tools = True
    interrupted = "Interrupted: the drill's scratch database was dropped; nothing else was changed."

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="Backup to verify (default: the database's newest).")
        parser.add_argument(
            "--database",
            default="default",
            help='Django database alias whose backups and instance to use (default: "default").',
        )
        parser.add_argument(
            "--url", help="Create the scratch database on this PostgreSQL instance instead (e.g. localdb's URL)."
        )
        parser.add_argument("--json", action="store_true", help="Print the verdict as JSON.")

    def handle(self, *args, **options):
        target = self.target({"url": None, "database": options["database"]})
        scratch_instance = self.target(options) if options["url"] is not None else None  # "" is refused
        try:
            verdict = verify.verify(
                target, self.backup_location(), options["path"], scratch_instance, identity_path_from_env()
            )
        except DbOpsError as exc:  # the command's end says it again, as one line on standard error
            if options["json"]:
                self.stdout.write(json.dumps({"backup": options["path"], "matches": False, "error": str(exc)}))
            raise
        if options["json"]:
            self.stdout.write(json.dumps({**dataclasses.asdict(verdict), "differences": verdict.differences}))
        elif verdict.matches:
            self.stdout.write(
                self.style.SUCCESS(
                    f"OK: {verdict.backup} restored into a scratch database; {len(verdict.restored)} tables, "
                    f"{sum(verdict.restored.values())} rows, every count matches the manifest "
                    f"({verdict.seconds:.1f} s)."
                )
            )
        if not verdict.matches:
            raise CommandError(
                f"MISMATCH: {verdict.backup} restored, but row counts differ from its manifest: "
                + "; ".join(verdict.differences)
            )
