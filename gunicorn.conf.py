"""gunicorn's configuration, read from the project folder (`gunicorn birdsite.wsgi`)."""
import os
import sys


def on_starting(server):
    """Read the settings once in the master, before any worker starts: a bad environment variable then
    stops the boot with one line naming it, instead of workers that fail one after another (or a site
    whose every request fails while /healthz answers)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "birdsite.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 -- reading one setting loads and checks them all
    except ImproperlyConfigured as exc:
        sys.exit(f"ImproperlyConfigured: {exc}")
