"""What every database command shares: one way to end (errors, stop signals, clean-up), the target
options and flush-style confirmation."""

import argparse
import contextlib
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from dbops import cleanup, tools
from dbops.connection import Target, target_from_alias, target_from_url
from dbops.errors import DbOpsError, Interrupted
from dbops.process import stop_exit_code, stop_received
from dbops.retention import SAFETY_DAYS_DEFAULT, RetentionPolicy
from dbops.storage import BackupLocation, location_for


class InterruptibleCommand(BaseCommand):
    """Every way the command ends is handled here, so a new command inherits it:

    - a DbOpsError is one line (CommandError), exit code 1;
    - Ctrl-C, SIGTERM or SIGHUP (manage.py makes them all a KeyboardInterrupt) ends it with one line
      saying what state things are in, and exit code 128 + the signal (130, 143, 129). The operations
      raise Interrupted with that line where they know more than `interrupted`;
    - standard output closed early (`| head -1`) ends it quietly (manage.py);
    - what it spooled is removed on every exit, and what killed commands left is removed first.
    """

    interrupted = "Interrupted; nothing was changed."
    # Like dbshell: these commands need no URLconf or app checks, whose imports (the whole API) cost
    # a third of a second and tens of MB on every backup and restore.
    requires_system_checks = []
    # Whether it may run pg_dump, pg_restore or psql: their folders are then probed while it starts.
    runs_client_tools = False

    def execute(self, *args, **options):
        probing = tools.probed_meanwhile() if self.runs_client_tools else contextlib.nullcontext()
        try:
            with cleanup.command_scope(), probing:
                return super().execute(*args, **options)
        except KeyboardInterrupt as exc:
            message = str(exc) if isinstance(exc, Interrupted) else self.interrupted
            raise CommandError(message, returncode=stop_exit_code()) from None
        except DbOpsError as exc:
            raise CommandError(str(exc)) from exc
        except Exception:
            if not stop_received():
                raise
            raise CommandError(self.interrupted, returncode=stop_exit_code()) from None


class ConfirmingCommand(InterruptibleCommand):
    """A command that may destroy data: --noinput, and flush-style confirmation otherwise."""

    def add_confirmation_arguments(self, parser):
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )

    def confirm(self, question: str, interactive: bool) -> None:
        """Ask like flush does: anything but "yes" cancels, and nothing is changed."""
        if not interactive:
            return
        try:
            answer = input(f"{question}\nType 'yes' to continue, or 'no' to cancel: ")
        except EOFError:
            answer = ""
        except KeyboardInterrupt:
            raise Interrupted("Cancelled; nothing was changed.") from None
        if answer.strip().lower() != "yes":
            raise CommandError("Cancelled; nothing was changed.")


class DatabaseCommand(ConfirmingCommand):
    def add_arguments(self, parser):
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help='Django database alias to work on (default: "default", i.e. DATABASE_URL).',
        )
        add_url_arguments(
            where, "--url", "url", "Work on this database URL instead (postgres://, postgresql:// or sqlite:///)."
        )

    def target(self, options) -> Target:
        if options["url"] is not None:  # --url "" (an unset shell variable) must not mean DATABASE_URL
            return url_target(options["url"])
        return target_from_alias(options["database"])

    def backup_location(self) -> BackupLocation:
        return backup_location()


class UrlFromEnvironment(argparse.Action):
    """--url-env NAME: the URL is read from the environment variable NAME, so that its password stays
    out of the command line (which `ps` shows to every user of the machine)."""

    def __call__(self, parser, namespace, name, option_string=None):
        value = os.environ.get(name, "")
        if not value.strip():
            parser.error(f"argument {option_string}: the environment variable {name} is not set (or empty).")
        setattr(namespace, self.dest, value)


def add_url_arguments(parser, option: str, dest: str, help: str, required: bool = False) -> None:
    """OPTION URL, and OPTION-env NAME to read the URL from an environment variable instead."""
    group = parser.add_mutually_exclusive_group(required=required) if required else parser
    group.add_argument(option, dest=dest, metavar="URL", help=help)
    group.add_argument(
        f"{option}-env",
        dest=dest,
        metavar="NAME",
        action=UrlFromEnvironment,
        help=f"Like {option}, with the URL read from the environment variable NAME (keeps the password out of ps).",
    )


def backup_location() -> BackupLocation:
    """BACKUP_DIR: a folder or s3://BUCKET/PREFIX."""
    return location_for(settings.BACKUP_DIR)


def url_target(url: str, option: str = "--url") -> Target:
    if not url.strip():
        raise CommandError(
            f"{option} is empty (an unset shell variable?): give the database URL, e.g. "
            f"{option} postgresql://user:password@host:5432/bird_app_db."
        )
    return target_from_url(url)


def add_show_password_argument(parser) -> None:
    parser.add_argument(
        "--show-password",
        action="store_true",
        help="Print DATABASE_URLs with the password (masked as **** otherwise).",
    )


def table_lines(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as left-aligned columns; the first row is the heading."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def add_retention_arguments(parser) -> None:
    parser.add_argument(
        "--keep", type=positive_int, help="Afterwards delete all but the newest N backups of the database."
    )
    for period, unit in (("daily", "day"), ("weekly", "ISO week"), ("monthly", "month")):
        parser.add_argument(
            f"--keep-{period}",
            type=positive_int,
            metavar="N",
            help=f"Keep the newest backup of each of the last N {unit}s that have one (restic's rule).",
        )
    parser.add_argument(
        "--keep-safety-days",
        type=positive_int,
        metavar="DAYS",
        help=f"Delete restore_db's safety backups older than this (default {SAFETY_DAYS_DEFAULT}).",
    )


RETENTION_OPTIONS = ("keep", "keep_daily", "keep_weekly", "keep_monthly", "keep_safety_days")


def retention_policy(options) -> RetentionPolicy:
    return RetentionPolicy(options["keep"], options["keep_daily"], options["keep_weekly"], options["keep_monthly"])


def safety_days(options) -> int:
    return options["keep_safety_days"] or SAFETY_DAYS_DEFAULT


def retention_options_given(options) -> list[str]:
    """The retention options on the command line, as the user typed them (--keep-daily)."""
    return ["--" + name.replace("_", "-") for name in RETENTION_OPTIONS if options[name] is not None]


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def human_size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def kept_database_lines(database: str, kept) -> list[str]:
    """db_info's and list_backups' table of the previous contents that restore_db --swap kept."""
    if not kept:
        return []
    rows = [("NAME", "KEPT AT (UTC)", "SIZE")]
    rows += [(each.name, each.kept_at.strftime("%Y-%m-%d %H:%M:%S"), human_size(each.size)) for each in kept]
    return [
        f"Previous contents of {database} kept by restore_db --swap (restore_db --undo swaps the newest back; "
        f"restore_db drops them after {SAFETY_DAYS_DEFAULT} days; DROP DATABASE NAME frees the disk now):",
        *(f"  {line}" for line in table_lines(rows)),
    ]
