import gc

from django.apps import AppConfig


class BirdsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "birds"

    def ready(self):
        # The last app in INSTALLED_APPS: Django's start-up is over. manage.py and birdsite/wsgi.py keep the
        # collector off during it; what it built stays for good, so later collections need not walk it.
        gc.freeze()
        gc.enable()
