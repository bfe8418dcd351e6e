from django.conf import settings
from django.core.management.base import BaseCommand

from dbops.archive import list_backups
from dbops.management.base import human_size, table_lines


class Command(BaseCommand):
    help = (
        "List the backups in BACKUP_DIR with database, time, size, compression and whether the checksum "
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
        rows = [("FILE", "DATABASE", "CREATED (UTC)", "SIZE", "COMPRESSION", "KIND", "CHECKSUM")]
        rows += [
            (
                b.path.name,
                b.database,
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
