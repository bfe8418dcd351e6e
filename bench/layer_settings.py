"""The site's settings, serving bench/layer_views.py; its middleware only with BENCH_MIDDLEWARE set."""
import os

from birdsite.settings import *  # noqa: F403 (the site's settings, two of them changed)
from birdsite.settings import MIDDLEWARE

ROOT_URLCONF = "bench.layer_views"
MIDDLEWARE = MIDDLEWARE if os.environ.get("BENCH_MIDDLEWARE") else []
