"""WSGI entry point: `gunicorn birdsite.wsgi`."""
import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "birdsite.settings")

# No garbage collection while Django starts, as in manage.py; the birds app turns it back on.
gc.disable()
application = get_wsgi_application()
