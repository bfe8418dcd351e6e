import shlex
from pathlib import Path

from django.core.management.base import CommandError

from dbops import operations
from dbops.encryption import identity_path_from_env, recipients_from_env
from dbops.errors import DbOpsError, Interrupted
from dbops.management.base import DatabaseCommand, human_size, positive_int
from dbops.retention import SAFETY_DAYS_DEFAULT


class Command(DatabaseCommand):
    help = (
        "Restore a backup into the database, in one transaction, after a safety backup of what is there. "
        "Without PATH, restores the newest backup of the database from this server in BACKUP_DIR (a folder or "
        "s3://BUCKET/PREFIX); --latest-of DATABASE takes the newest of that name from any server (a new instance). "
        "Encrypted backups are decrypted with the age identity file that BACKUP_AGE_IDENTITY names. --swap restores "
        "beside the database instead and swaps it in (--undo swaps back)."
    )
    runs_client_tools = True
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
            help="Restore with N parallel workers: in place, not atomic (needs the safety backup); with --swap, "
            "atomic all the same (default there: one per core).",
        )
        parser.add_argument(
            "--maintenance-db",
            help="Database to connect to for --create, --swap and --undo (default: postgres, else template1).",
        )
        route = parser.add_mutually_exclusive_group()
        route.add_argument(
            "--swap",
            action="store_true",
            help="Restore into a new database beside the target (in parallel), check it, then swap the names in "
            "one transaction; the previous contents stay as NAME_before_STAMP (no safety backup). Needs CREATEDB "
            "and about the database's size plus the archive's in free disk on the instance.",
        )
        route.add_argument(
            "--undo",
            action="store_true",
            help="Swap the newest NAME_before_STAMP that --swap kept back in (what the target holds is kept in turn).",
        )

    def handle(self, *args, **options):
        target, location = self.target(options), self.backup_location()
        maintenance_db = options["maintenance_db"]
        for name in operations.clean_up_killed_swap(target, maintenance_db):
            self.stdout.write(
                f"Cleaned up after a restore_db --swap that was killed: dropped its unfinished new database "
                f"{name}; {target.name} accepts connections."
            )
        if options["undo"]:
            return self.undo(target, options)
        swap_plan = operations.check_swap(target, maintenance_db) if options["swap"] else None
        plan = operations.plan_restore(
            target,
            options["path"],
            location,
            create=options["create"],
            identity=identity_path_from_env(),
            latest_of=options["latest_of"],
            safety_backup=options["safety_backup"] and swap_plan is None,
            recipients=recipients_from_env(),
        )
        self.confirm_plan(plan, swap_plan, options["interactive"])
        if swap_plan is not None:
            return self.swap(plan, swap_plan, options)
        result = self.restore_in_place(plan, location, options)
        route = "in parallel, then checked" if options["jobs"] else "in one transaction"
        after = ", after a safety backup" if result.safety_backup else ""
        self.stdout.write(f"Route: in place, {route}{after} (without --swap).")
        if result.safety_backup:
            self.stdout.write(f"Safety backup of the previous contents: {result.safety_backup}")
        for where in result.pruned:
            what = "manifest whose archive was gone" if where.endswith(".json") else "expired safety backup"
            self.stdout.write(f"Deleted {what} {where}")
        self.report_dropped(result.dropped_databases)
        self.report_restored(plan, result, options)
        if result.prune_failure:
            raise CommandError(f"Could not delete expired safety backups: {result.prune_failure}")

    def confirm_plan(self, plan, swap_plan, interactive: bool) -> None:
        holding = f"{plan.state.table_count} tables" if plan.state.exists else "it does not exist yet"
        lines = [
            f"You are about to overwrite {plan.target.masked} ({holding}) with {plan.backup.where} "
            f"({plan.archive_format} format).",
            *plan.notices,
        ]
        try:
            if swap_plan is not None:
                lines.append(swap_prompt(swap_plan, operations.check_swap_space(swap_plan, plan)))
            self.confirm("\n".join(lines), interactive)
        except BaseException:  # refused, cancelled, or Ctrl-C at the prompt: the download goes
            plan.backup.cleanup()
            raise

    def restore_in_place(self, plan, location, options):
        """The restore; when it leaves the target changed but not as planned, the line that puts it back."""
        try:
            return operations.restore(
                plan, location, jobs=options["jobs"], maintenance_db=options["maintenance_db"],
                safety_days=SAFETY_DAYS_DEFAULT,
            )
        except operations.RestoredWithDifferences as exc:
            raise DbOpsError(f"{exc}{self.put_back(exc.safety_backup, options)}") from exc
        except operations.RestoreInterrupted as exc:
            if not exc.half_restored:
                raise
            raise Interrupted(f"{exc}{self.put_back(exc.safety_backup, options)}") from None

    def report_restored(self, plan, result, options):
        checked = " (tables and row counts match the manifest)" if plan.manifest else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {plan.backup.where} into {plan.target.masked}: {len(result.tables)} tables, "
                f"{sum(result.tables.values())} rows{checked}, {result.seconds:.1f} s."
            )
        )
        if options["verbosity"] >= 2:
            self.stdout.write(f"Used {result.tools_used}.")
            for table, count in sorted(result.tables.items()):
                self.stdout.write(f"  {table}: {count} rows")

    def swap(self, plan, swap_plan, options):
        jobs, maintenance_db = options["jobs"], options["maintenance_db"]
        result = operations.restore_by_swap(plan, swap_plan, jobs, maintenance_db, SAFETY_DAYS_DEFAULT)
        jobs = f"{result.jobs} parallel jobs" if result.jobs else "one job (this archive and server allow no more)"
        self.stdout.write(
            f"Route: swap. Restored into a new database with {jobs}, checked it, then swapped the names in one "
            "transaction."
        )
        self.report_kept(result.kept, result.dropped, options)
        self.report_restored(plan, result, options)

    def undo(self, target, options):
        if options["path"] or options["latest_of"] or options["create"]:
            raise CommandError("--undo swaps back what --swap kept: give no backup, --latest-of or --create.")
        self.confirm(
            f"You are about to swap {target.masked} back to what it held before the last restore_db --swap.",
            options["interactive"],
        )
        result = operations.undo_swap(target, options["maintenance_db"])
        self.stdout.write(
            f"Route: undo. Swapped {result.restored.name} ({result.table_count} tables) back in as {target.name}, "
            "in one transaction."
        )
        self.report_kept(result.kept, [], options)
        self.stdout.write(self.style.SUCCESS(f"{target.masked} holds what it held before the last swap."))

    def report_dropped(self, dropped):
        for name in dropped:
            self.stdout.write(f"Dropped the database {name}, kept by a swap more than {SAFETY_DAYS_DEFAULT} days ago.")

    def report_kept(self, kept, dropped, options):
        self.report_dropped(dropped)
        self.stdout.write(
            f"The previous contents are kept as the database {kept.name} ({human_size(kept.size)} of the "
            f"instance's disk): restore_db --undo swaps them back; restore_db drops them after {SAFETY_DAYS_DEFAULT} "
            f"days; drop them now with: {self.drop_command(kept.name, options)}"
        )
        self.stdout.write(
            "Django's persistent connections (CONN_MAX_AGE) to the old database fail once per worker after the "
            "swap, as after a database restart; the next request reconnects."
        )

    def drop_command(self, name: str, options) -> str:
        statement = ["-c", f"DROP DATABASE {name}"]
        if options["url"]:  # the user puts the password back in place of ****
            return shlex.join(["psql", self.target(options).masked, *statement])
        where = ["--database", options["database"]] if options["database"] != "default" else []
        return shlex.join(["python", "manage.py", "dbshell", *where, "--", *statement])

    def put_back(self, safety_backup: str | None, options) -> str:
        return f" Put it back with: {self.restore_command(safety_backup, options)}" if safety_backup else ""

    def restore_command(self, path: Path, options) -> str:
        if options["url"]:
            where = ["--url", self.target(options).masked]  # the user puts the password back in place of ****
        else:
            where = ["--database", options["database"]] if options["database"] != "default" else []
        return shlex.join(["python", "manage.py", "restore_db", str(path), *where, "--noinput"])


def swap_prompt(swap_plan, archive_size: int) -> str:
    needed = swap_plan.needed_space(archive_size)
    free = "" if swap_plan.free_space is None else f" (its disk has {human_size(swap_plan.free_space)} free)"
    return (
        f"--swap restores into a new database beside it and keeps the previous contents: the instance needs about "
        f"{human_size(needed)} more disk ({human_size(swap_plan.attributes.size)} for the database, "
        f"{human_size(archive_size)} for the archive){free}, and must have it: a hosted instance whose disk "
        "fills can stop accepting writes."
    )
