"""Settings for birdsite, read from the environment (12-factor).

Every variable is listed in the README's "Environment variables" table.
A `.env` file in the project root (or the file ENV_FILE names) is read first; real environment
variables win.
"""
import os
from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from birdsite import env
from dbops.s3 import S3_TIMEOUT_DEFAULT

BASE_DIR = Path(__file__).resolve().parent.parent

load_dotenv(os.environ.get("ENV_FILE", BASE_DIR / ".env"), override=False)


env_bool = env.boolean


def env_list(name):
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


ON_RENDER = "RENDER" in os.environ
# Off unless asked for: a deployment that forgets DEBUG=0 must not show tracebacks and settings.
# `dev.py run` and the tests turn it on for themselves.
DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
KEY_GENERATOR_COMMAND = "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`"
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG off (the default) a secret key is required: set the SECRET_KEY "
            f"environment variable (for example to the output of {KEY_GENERATOR_COMMAND}), or DEBUG=1 on your "
            "own machine."
        )
    # Only for local development with DEBUG on; never used when DEBUG is off.
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105
elif not DEBUG and (
    len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH
    or len(set(SECRET_KEY)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
    or SECRET_KEY.startswith(SECRET_KEY_INSECURE_PREFIX)
):
    # Django's check (security.W009) only warns, and only under `check --deploy`: sessions, password
    # resets and CSRF tokens signed with a guessable key are forged, so refuse to start.
    raise ImproperlyConfigured(
        f"SECRET_KEY is too weak: it needs at least {SECRET_KEY_MIN_LENGTH} characters, "
        f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} of them different, and no {SECRET_KEY_INSECURE_PREFIX!r} prefix. "
        f"Set a new one, for example the output of {KEY_GENERATOR_COMMAND}."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
RENDER_EXTERNAL_HOSTNAME = os.environ.get("RENDER_EXTERNAL_HOSTNAME")
if RENDER_EXTERNAL_HOSTNAME:
    ALLOWED_HOSTS.append(RENDER_EXTERNAL_HOSTNAME)
    CSRF_TRUSTED_ORIGINS.append(f"https://{RENDER_EXTERNAL_HOSTNAME}")
if DEBUG and not ALLOWED_HOSTS:
    ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "axes",
    "dbops",
    "birds",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Above anything that may answer early, so that those answers carry the CORS headers too.
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # ETag on every GET, and 304 for a matching If-None-Match.
    "django.middleware.http.ConditionalGetMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# The admin's login: after AXES_FAILURE_LIMIT failures for one username, or from one address (the
# throttle's, see birds/clients.py), logins are refused (429) for the cool-off, even with the right
# password. Unlock earlier with `manage.py axes_reset` (see the README's "Security notes").
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A right password forgets the failures of that username and address: the owner's typos do not add up.
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "birds.clients.client_address"
# A login whose `next` is missing or points elsewhere lands here (Django's default is /accounts/profile/).
LOGIN_REDIRECT_URL = "admin:index"

# Scripts from this site's own files only: no inline script, no other origin, no eval. Styles may be
# inline: the admin's and DRF's templates use style attributes and <style> elements, and CSS cannot run
# script. Swagger UI draws its icons from data: URLs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

ROOT_URLCONF = "birdsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "birdsite.wsgi.application"

# DATABASE_URL in Render's style (postgres:// or postgresql://); unset means the embedded SQLite file.
DATABASES = {"default": env.database("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that does not answer should fail a request, not hang it.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 10)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["birds.permissions.IsStaffOrReadOnly"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "birds.renderers.FastJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # JSON only: form encodings cannot say what the schema says (e.g. a body that is not an object).
    "DEFAULT_PARSER_CLASSES": ["birds.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "birds.parsers.api_exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["birds.throttling.AnonWindowThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": env.throttle_rate("THROTTLE_ANON_RATE", "120/minute")},
    # How many proxies append to X-Forwarded-For in front of the app; the throttle counts requests by the
    # address the outermost one saw, so a client cannot pick its own. 0: the connection's address.
    # Render: its Cloudflare edge appends the client, then its load balancer appends the edge (see README).
    "NUM_PROXIES": env.integer("NUM_PROXIES", 2 if ON_RENDER else 0),
}

# With REDIS_URL (Render Key Value, or any Redis or Valkey) the cache, and so the anonymous throttle's
# counts, is shared by every worker of every instance; without it each gunicorn worker counts on its own.
REDIS_URL = env.redis_url("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A cache that does not answer must not hold requests up: the throttle then lets them through.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }

# The bird API (see the README's "The API").
BIRDS_MAX_LIST = env.integer("BIRDS_MAX_LIST", 1000, minimum=1)
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
# Without these a frontend on another origin cannot read the list's paging headers.
CORS_EXPOSE_HEADERS = ["Link", "X-Total-Count", "ETag", "Retry-After"]
SPECTACULAR_SETTINGS = {
    "TITLE": "Birdsite API",
    "DESCRIPTION": "Birds: read by anyone, changed by staff users (session or `Authorization: Token ...`).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the drf-spectacular-sidecar package, so the docs need no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "birds.schema.forbid_null_characters",
    ],
}

# Where backup_db writes and restore_db looks: a folder, or s3://BUCKET/PREFIX (see the README's
# "Database operations" and "Backups off the machine").
BACKUP_DIR = env.backup_dir("BACKUP_DIR", str(BASE_DIR / "backups"))
# Object storage's own variables, which boto3 reads itself: checked here so that a typo fails the deploy.
BACKUP_S3_TIMEOUT = env.integer("BACKUP_S3_TIMEOUT", S3_TIMEOUT_DEFAULT, minimum=1)
env.http_url("AWS_ENDPOINT_URL")
env.http_url("AWS_ENDPOINT_URL_S3")
# Render's API, for db_info's expiry check of a free database (dbops/render.py); the key is read there.
RENDER_API_URL = env.http_url("RENDER_API_URL") or "https://api.render.com/v1"
RENDER_API_TIMEOUT = env.integer("RENDER_API_TIMEOUT", 10, minimum=1)

if not DEBUG:
    # Render (and most hosts) terminate TLS at a proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    # Health checks come from inside the platform over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz/?$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"one_line_warning": {"()": "birdsite.logs.OneLineWarning"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.log_level("LOG_LEVEL", "INFO")},
    "loggers": {
        # boto3 says at INFO where it found the credentials: noise in every backup command's output.
        **{name: {"level": "WARNING"} for name in ("boto3", "botocore", "s3transfer")},
        # django-axes says at INFO that it starts (every command) and what it does for each failed login;
        # failures and lockouts themselves are WARNINGs.
        "axes": {"level": "WARNING"},
        # Anyone can send a bad Host: a line each, not a traceback at ERROR.
        "django.security.DisallowedHost": {"filters": ["one_line_warning"]},
    },
}
