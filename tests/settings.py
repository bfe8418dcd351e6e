"""The test process's settings: the project's, in development mode (DEBUG on, which needs no SECRET_KEY),
as `dev.py run` has them. Child processes get DEBUG from tests.helpers.child_env."""
import os

os.environ["DEBUG"] = "1"

from birdsite.settings import *  # noqa: F403
