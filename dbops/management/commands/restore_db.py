import shlex
from pathlib import Path

from django.core.management.base import CommandError

from dbops import operations
from dbops.encryption import identity_path_from_env, recipients_from_env
from dbops.errors import Interrupted
from dbops.management.base import DatabaseCommand, positive_int
from dbops.retention import SAFETY_DAYS_DEFAULT


class Command(DatabaseCommand):
    help = (
        "Restore a backup into the database, in one transaction, after a safety backup of what is there. "
        "Without PATH, restores the newest backup of the database from this server in BACKUP_DIR (a folder or "
        "s3://BUCKET/PREFIX); --latest-of DATABASE takes the newest of that name from any server (a new instance). "
        "Encrypted backups are decrypted with the age identity file that BACKUP_AGE_IDENTITY names."
    )
    interrupted = "Interrupted: nothing was restored; the target is as it was."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        self.add_confirmation_arguments(parser)
        parser.add_argument(
            "path",
            nargs="?",
            help="Backup to restore, a file or s3://BUCKET/KEY: custom, directory or tar archive, plain SQL, "
            "or SQLite file, age-encrypted or not.",
        )
        parser.add_argument(
            "--latest-of",
            metavar="DATABASE",
            help="Restore the newest backup of a database of this name in BACKUP_DIR, from whichever server it "
            "came (a new instance has no backups of its own).",
        )
        parser.add_argument("--create", action="store_true", help="Create the target database when it does not exist.")
        parser.add_argument(
            "--no-safety-backup",
            action="store_false",
            dest="safety_backup",
            help="Do not back up the target before overwriting it.",
        )
        parser.add_argument(
            "--jobs",
            "-j",
            type=positive_int,
            help="Restore with N parallel workers (not atomic; needs the safety backup).",
        )
        parser.add_argument(
            "--maintenance-db", help="Database to connect to for --create (default: postgres, else template1)."
        )

    def handle(self, *args, **options):
        target, location = self.target(options), self.backup_location()
        plan = operations.plan_restore(
            target,
            options["path"],
            location,
            create=options["create"],
            identity=identity_path_from_env(),
            latest_of=options["latest_of"],
            safety_backup=options["safety_backup"],
            recipients=recipients_from_env(),
        )
        holding = f"{plan.state.table_count} tables" if plan.state.exists else "it does not exist yet"
        try:
            self.confirm(
                "\n".join(
                    [
                        f"You are about to overwrite {target.masked} ({holding}) with {plan.backup.where} "
                        f"({plan.archive_format} format).",
                        *plan.notices,
                    ]
                ),
                options["interactive"],
            )
        except BaseException:  # cancelled, or Ctrl-C at the prompt: the download goes
            plan.backup.cleanup()
            raise
        try:
            result = operations.restore(
                plan,
                location,
                jobs=options["jobs"],
                maintenance_db=options["maintenance_db"],
                safety_days=SAFETY_DAYS_DEFAULT,
            )
        except operations.RestoredWithDifferences as exc:
            raise CommandError(f"{exc}{self.put_back(exc.safety_backup, options)}") from exc
        except operations.RestoreInterrupted as exc:
            if not exc.half_restored:
                raise
            raise Interrupted(f"{exc}{self.put_back(exc.safety_backup, options)}") from None
        if result.safety_backup:
            self.stdout.write(f"Safety backup of the previous contents: {result.safety_backup}")
        for where in result.pruned:
            what = "manifest whose archive was gone" if where.endswith(".json") else "expired safety backup"
            self.stdout.write(f"Deleted {what} {where}")
        checked = " (tables and row counts match the manifest)" if plan.manifest else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {plan.backup.where} into {target.masked}: {len(result.tables)} tables, "
                f"{sum(result.tables.values())} rows{checked}, {result.seconds:.1f} s."
            )
        )
        if options["verbosity"] >= 2:
            self.stdout.write(f"Used {result.tools_used}.")
            for table, count in sorted(result.tables.items()):
                self.stdout.write(f"  {table}: {count} rows")
        if result.prune_failure:
            raise CommandError(f"Could not delete expired safety backups: {result.prune_failure}")

    def put_back(self, safety_backup: str | None, options) -> str:
        return f" Put it back with: {self.restore_command(safety_backup, options)}" if safety_backup else ""

    def restore_command(self, path: Path, options) -> str:
        if options["url"]:
            where = ["--url", self.target(options).masked]  # the user puts the password back in place of ****
        else:
            where = ["--database", options["database"]] if options["database"] != "default" else []
        return shlex.join(["python", "manage.py", "restore_db", str(path), *where, "--noinput"])
