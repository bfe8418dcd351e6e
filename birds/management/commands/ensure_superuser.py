import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

REQUIRED = ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_EMAIL", "DJANGO_SUPERUSER_PASSWORD")


class Command(BaseCommand):
    help = (
        "Create a superuser from DJANGO_SUPERUSER_USERNAME, _EMAIL and _PASSWORD when they are set "
        "and the user does not exist yet (for hosts with no shell, such as Render's free tier). The "
        "password must pass AUTH_PASSWORD_VALIDATORS."
    )

    def handle(self, *args, **options):
        missing = [name for name in REQUIRED if not os.environ.get(name)]
        if missing:
            self.stdout.write(f"No superuser created: {', '.join(missing)} not set.")
            return
        username = os.environ["DJANGO_SUPERUSER_USERNAME"]
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Superuser {username!r} already exists.")
            return
        # createsuperuser --noinput skips the validators that its prompt applies.
        candidate = User(username=username, email=os.environ["DJANGO_SUPERUSER_EMAIL"])
        try:
            validate_password(os.environ["DJANGO_SUPERUSER_PASSWORD"], user=candidate)
        except ValidationError as exc:
            raise CommandError(
                f"DJANGO_SUPERUSER_PASSWORD is too weak: {' '.join(exc.messages)} No superuser created; set a "
                "stronger password and run it again."
            ) from None
        call_command("createsuperuser", interactive=False, verbosity=0)
        self.stdout.write(self.style.SUCCESS(f"Created superuser {username!r}."))
