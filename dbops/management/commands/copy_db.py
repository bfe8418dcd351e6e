from django.core.management.base import CommandError

from dbops import copy
from dbops.management.base import ConfirmingCommand, add_show_password_argument, add_url_arguments, url_target

TARGET_STATES = {
    copy.Action.CREATE: "a new database",
    copy.Action.COPY: "empty so far",
    copy.Action.OVERWRITE: "replacing its tables",
}


class Command(ConfirmingCommand):
    help = (
        "Copy a PostgreSQL database to another instance or name (pg_dump streamed into pg_restore, verified "
        "by row counts), or with --all every database of an instance that holds tables, e.g. before a free "
        "instance expires. Prints the new DATABASE_URL of each."
    )
    runs_client_tools = True
    interrupted = "Interrupted: nothing was copied; the source is never changed."

    def add_arguments(self, parser):
        add_url_arguments(parser, "--from", "source", "Database to copy (only read).", required=True)
        add_url_arguments(parser, "--to", "target", "Database to copy into (created if missing).", required=True)
        parser.add_argument(
            "--all",
            action="store_true",
            help="Copy every database of the --from instance that holds tables into the --to instance, same names.",
        )
        add_show_password_argument(parser)
        self.add_confirmation_arguments(parser)

    def handle(self, *args, **options):
        source, target = url_target(options["source"], "--from"), url_target(options["target"], "--to")
        plan = copy.plan_copy(source, target, all_databases=options["all"])
        overwritten = [item for item in plan.copies if item.action is copy.Action.OVERWRITE]
        if overwritten:
            listing = "\n".join(
                f"  {item.target.masked} ({item.target_table_count} tables): {item.why}" for item in overwritten
            )
            self.confirm(
                "These target databases already hold tables; copying replaces every table that the source "
                f"also has:\n{listing}",
                options["interactive"],
            )
        failures = list(plan.failures)
        copied = []
        for item in plan.copies:
            try:
                self.copy(item, options["verbosity"])
            except copy.CopyFailed as exc:
                if not options["all"]:
                    raise
                failures.append(exc.failure)
            else:
                copied.append(item)
        if copied:
            self.stdout.write("")
            self.stdout.write("DATABASE_URL for each copied database:")
        for item in copied:
            self.stdout.write(f"  {item.target.name}: {item.target.url(options['show_password'])}")
        if failures:
            reasons = "; ".join(f"{failure.database} ({failure.reason})" for failure in failures)
            raise CommandError(
                f"Could not copy {len(failures)} of {len(failures) + len(copied)} databases: {reasons}. "
                "The sources were not changed, and the databases listed above are complete; run the same "
                "command again to retry: those already copied and verified are skipped."
            )

    def copy(self, item, verbosity):
        rows = sum(item.source_tables.values())
        if item.action is copy.Action.SKIP:
            self.stdout.write(
                f"{item.source.name}: skipped, {item.target.masked} already holds its {len(item.source_tables)} "
                "tables with the same rows and schema (row counts, hashes of every row and pg_dump --schema-only "
                "match)."
            )
            return
        self.stdout.write(
            f"{item.source.name}: copying {len(item.source_tables)} tables, about {rows} rows, to "
            f"{item.target.masked} ({TARGET_STATES[item.action]}) ..."
        )
        result = copy.copy_database(item)
        self.stdout.write(
            self.style.SUCCESS(
                f"{item.source.name}: copied and verified, {len(result.tables)} tables, "
                f"{sum(result.tables.values())} rows, {result.seconds:.1f} s."
            )
        )
        if verbosity >= 2:
            self.stdout.write(f"  used {result.tools_used}")
