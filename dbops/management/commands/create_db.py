from dbops import operations
from dbops.management.base import DatabaseCommand, add_show_password_argument


class Command(DatabaseCommand):
    help = (
        "Create database NAME in the PostgreSQL instance that DATABASE_URL (or --url) points at, and print "
        "the DATABASE_URL an app should use for it."
    )
    interrupted = "Interrupted: db_info shows whether the database was created."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("name", help="Lowercase letters, digits and underscores, e.g. bird_app_db.")
        parser.add_argument(
            "--if-not-exists", action="store_true", help="An existing database is fine (exit code 0)."
        )
        add_show_password_argument(parser)

    def handle(self, *args, **options):
        instance, name = self.target(options), options["name"]
        result = operations.create_db(instance, name, if_not_exists=options["if_not_exists"])
        if result.created:
            self.stdout.write(self.style.SUCCESS(f"Created database {name}."))
        else:
            self.stdout.write(self.style.WARNING(f"Database {name} already exists; nothing was changed."))
        self.stdout.write(f"DATABASE_URL={result.target.url(options['show_password'])}")
