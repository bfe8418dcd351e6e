from django.apps import AppConfig


class BirdsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "birds"
