from django.conf import settings

from dbops.archive import list_backups
from dbops.management.base import InterruptibleCommand, human_size, table_lines


class Command(InterruptibleCommand):
    help = (
        "List the backups in BACKUP_DIR with database, server, time, size, compression and whether the checksum "
        "still matches."
    )

    def add_arguments(self, parser):
        parser.add_argument("database", nargs="?", help="Only the backups of this database.")

    def handle(self, *args, **options):
        folder = settings.BACKUP_DIR
        backups = list_backups(folder, options["database"])
        if not backups:
            self.stdout.write(f"No backups in {folder}.")
            return
        rows = [("FILE", "DATABASE", "SERVER", "CREATED (UTC)", "SIZE", "COMPRESSION", "KIND", "CHECKSUM")]
        rows += [
            (
                b.path.name,
                b.database,
                b.origin.server if b.origin else "?",
                b.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                human_size(b.size),
                (b.manifest and b.manifest.compression) or "-",
                b.kind,
                b.checksum_status(),
            )
            for b in backups
        ]
        for line in table_lines(rows):
            self.stdout.write(line)
        for backup in backups:
            if backup.manifest_problem:
                self.stderr.write(self.style.WARNING(f"Warning: {backup.manifest_problem}"))
