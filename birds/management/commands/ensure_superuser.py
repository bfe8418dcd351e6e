import os

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

REQUIRED = ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_EMAIL", "DJANGO_SUPERUSER_PASSWORD")


class Command(BaseCommand):
    help = (
        "Create a superuser from DJANGO_SUPERUSER_USERNAME, _EMAIL and _PASSWORD when they are set "
        "and the user does not exist yet (for hosts with no shell, such as Render's free tier)."
    )

    def handle(self, *args, **options):
        missing = [name for name in REQUIRED if not os.environ.get(name)]
        if missing:
            self.stdout.write(f"No superuser created: {', '.join(missing)} not set.")
            return
        username = os.environ["DJANGO_SUPERUSER_USERNAME"]
        if get_user_model().objects.filter(username=username).exists():
            self.stdout.write(f"Superuser {username!r} already exists.")
            return
        call_command("createsuperuser", interactive=False, verbosity=0)
        self.stdout.write(self.style.SUCCESS(f"Created superuser {username!r}."))
