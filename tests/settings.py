"""The test process's settings: the project's, in development mode (DEBUG on, which needs no SECRET_KEY),
as `dev.py run` has them. Child processes get DEBUG from tests.helpers.child_env."""
import os

os.environ["DEBUG"] = "1"

from birdsite.settings import *  # noqa: F403

# Django's advice for test suites: its default hasher takes a third of a second for each password it
# sets or checks, by design. The site under test in a child process (gunicorn, manage.py) keeps it.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
