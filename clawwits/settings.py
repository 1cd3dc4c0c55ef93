"""ClawWits settings, driven entirely by environment variables.

With nothing set, the product runs embedded: SQLite, a local-memory cache, Celery tasks run
eagerly in-process, the built-in `local` provider. `DATABASE_URL` and `REDIS_URL` switch to the
production services. Every variable read here is in README.md's configuration table.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from clawwits.env import (
    ConfigError,
    celery_broker_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    parse_database_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CLAWWITS_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in var/secret.key.

    Every process of one installation reads the same file, so JWTs and CSRF tokens stay valid
    across workers and restarts without anyone having to invent a key for a local run.
    """
    key = env_str("SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret.key"
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    try:
        with path.open("x") as handle:
            handle.write(key)
    except FileExistsError:
        # Another process won the race: use its key so all processes agree.
        return path.read_text().strip()
    path.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "accounts",
    "apikeys",
    "wits",
    "gateway",
]

MIDDLEWARE = [
    # clawwits.fastlane: an API-key call to the AI routes is answered here, by what the rest of
    # this list and DRF would do for it; anything else goes on down the list unchanged.
    "clawwits.fastlane.FastLaneMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "clawwits.middleware.ApiBodyLimitMiddleware",
    # clawwits.lanes: the stock middleware, passed straight through by /v1 calls made with an
    # API key (they need no session, cookie JWT, messages or page language). CSRF and frame
    # options stay stock: `check --deploy` looks for them by name.
    "clawwits.lanes.SessionMiddleware",
    "clawwits.lanes.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "clawwits.lanes.AuthenticationMiddleware",
    "clawwits.lanes.JWTCookieMiddleware",
    "clawwits.lanes.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "clawwits.lanes.RatelimitMiddleware",
    "clawwits.middleware.ApiErrorMiddleware",
]

ROOT_URLCONF = "clawwits.urls"
WSGI_APPLICATION = "clawwits.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/dashboard"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # `{% load formatting %}`: locale-aware numbers, money and the usage chart.
            "libraries": {"formatting": "clawwits.templatetags.formatting"},
        },
    },
]

# --- Database -------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    _db = parse_database_url(DATABASE_URL)
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _db = parse_database_url(f"sqlite:///{VAR_DIR / 'db.sqlite3'}")

_default_db: dict = {
    "ENGINE": _db.engine,
    "NAME": _db.name,
    "USER": _db.user,
    "PASSWORD": _db.password,
    "HOST": _db.host,
    "PORT": _db.port,
    "OPTIONS": dict(_db.options),
    # ATOMIC_REQUESTS stays off: the upstream call runs between two short ledger transactions,
    # never inside one.
    "ATOMIC_REQUESTS": False,
}
if _db.engine.endswith("postgresql"):
    # pgbouncer in transaction mode cannot keep a server-side cursor across statements.
    _default_db["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DB_DISABLE_SERVER_SIDE_CURSORS", False)
    # The ledger's statements bind their parameters on the server and are prepared after a few
    # runs on a connection (Django's own queries bind on the client and are never prepared).
    # pgbouncer before 1.21 in transaction mode cannot keep prepared statements: switch off.
    _default_db["OPTIONS"]["prepare_threshold"] = (
        5 if env_bool("DB_PREPARED_STATEMENTS", True) else None
    )
    if env_bool("DB_POOL", False):
        # A pool keeps connection count bounded however many greenlets or threads a worker runs.
        _default_db["OPTIONS"]["pool"] = {
            "min_size": env_int("DB_POOL_MIN", 1, minimum=0),
            "max_size": env_int("DB_POOL_MAX", 8, minimum=1),
            "timeout": env_float("DB_POOL_TIMEOUT_S", 10.0, minimum=0.1),
        }
    else:
        _default_db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
        # A health check is one more round trip on every request; without it a connection
        # broken by a database restart fails one request per worker and is then replaced.
        _default_db["CONN_HEALTH_CHECKS"] = env_bool("DB_HEALTH_CHECKS", False)
else:
    # WAL + a busy timeout let the embedded web process and its background jobs share the file.
    _default_db["OPTIONS"].update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DATABASES = {"default": _default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, Redis, Celery --------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cw",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # The embedded default has no shared cache: django-ratelimit's login/signup limits are then
    # per process. That is the documented trade-off of the no-services mode, so its two checks
    # are silenced only here; with REDIS_URL set they run and would fail loudly.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

CELERY_BROKER_URL = celery_broker_url(REDIS_URL) if REDIS_URL else "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
RECONCILE_INTERVAL_S = env_int("RECONCILE_INTERVAL_S", 60, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "reconcile-open-reservations": {
        "task": "wits.tasks.reconcile",
        "schedule": float(RECONCILE_INTERVAL_S),
    },
    "redeliver-overdue-webhooks": {
        "task": "accounts.tasks.redeliver_webhooks",
        "schedule": 60.0,
    },
}

# --- Auth, sessions, security ---------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SECURE_COOKIES = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

JWT_ACCESS_COOKIE = "cw_access"
JWT_REFRESH_COOKIE = "cw_refresh"
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_ACCESS_TTL_S", 900, minimum=30)),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=env_int("JWT_REFRESH_TTL_S", 14 * 86400, minimum=60)
    ),
    # The cookie session refreshes access tokens without rotating the refresh token: parallel
    # requests of one page would otherwise race to rotate it and log the user out.
    "ROTATE_REFRESH_TOKENS": False,
    "BLACKLIST_AFTER_ROTATION": False,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

# Per client IP, with django-ratelimit on the shared cache.
AUTH_RATELIMIT = env_str("AUTH_RATELIMIT", "10/m")
# Proxies in front of the app that append to X-Forwarded-For; 0: the client is REMOTE_ADDR.
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0)
RATELIMIT_IP_META_KEY = "clawwits.clientip.client_ip"
RATELIMIT_VIEW = "accounts.views.ratelimited"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apikeys.authentication.ApiKeyAuthentication",
        "accounts.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["clawwits.jsonbody.StrictJSONParser"],
    "EXCEPTION_HANDLER": "clawwits.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "clawwits.negotiation.JsonOnly",
    "UNAUTHENTICATED_USER": None,
}

# --- API limits ------------------------------------------------------------------------------

API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 4 * 1024 * 1024, minimum=1024)
API_MAX_MESSAGES = env_int("API_MAX_MESSAGES", 2048, minimum=1)
API_MAX_TEXT_CHARS = env_int("API_MAX_TEXT_CHARS", 1_000_000, minimum=1)
API_MAX_EMBEDDING_INPUTS = env_int("API_MAX_EMBEDDING_INPUTS", 2048, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
APIKEY_LAST_USED_INTERVAL_S = 60

# --- Wits ------------------------------------------------------------------------------------

WITS_WELCOME_GRANT = env_int("WITS_WELCOME_GRANT", 100_000, minimum=0)
# Longer than any request can live (provider read timeouts x routes, long streams): a reservation
# still open after this is treated as abandoned by a crashed process and reconciled.
WITS_RESERVATION_TTL_S = env_int("WITS_RESERVATION_TTL_S", 3600, minimum=60)
WITS_CURRENCY = env_str("WITS_CURRENCY", "VND").upper()
if WITS_CURRENCY not in {"VND", "USD"}:
    raise ConfigError(f"WITS_CURRENCY must be VND or USD, got {WITS_CURRENCY!r}")
WITS_LOW_BALANCE_DEFAULT = env_int("WITS_LOW_BALANCE_DEFAULT", 10_000, minimum=0)
# Concurrent reserves (and settlements) on one wallet in one process run as one statement of up
# to this many (group commit, PostgreSQL only); 1 runs each alone.
WITS_BATCH_MAX = env_int("WITS_BATCH_MAX", 32, minimum=1)

# --- Payments --------------------------------------------------------------------------------

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = env_str("STRIPE_API_BASE")  # only for pointing the SDK at a local fake
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
BANK_TRANSFER_INSTRUCTIONS = env_str(
    "BANK_TRANSFER_INSTRUCTIONS", "Transfer the amount with the order code as the reference."
)

# --- Gateway ---------------------------------------------------------------------------------

GATEWAY_BREAKER_FAILURES = env_int("GATEWAY_BREAKER_FAILURES", 3, minimum=1)
GATEWAY_BREAKER_COOLDOWN_S = env_float("GATEWAY_BREAKER_COOLDOWN_S", 30.0, minimum=0.0)
GATEWAY_CACHE_TTL_S = env_int("GATEWAY_CACHE_TTL_S", 3600, minimum=0)
GATEWAY_CONFIG_TTL_S = env_float("GATEWAY_CONFIG_TTL_S", 5.0, minimum=0.0)
WEBHOOK_ALLOW_LOOPBACK = env_bool("WEBHOOK_ALLOW_LOOPBACK", False)
# Attempts per webhook event, the wait after the first failed one (doubling, capped at an hour),
# and the per-attempt network timeout.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOK_RETRY_BASE_S = env_float("WEBHOOK_RETRY_BASE_S", 30.0, minimum=0.0)
WEBHOOK_TIMEOUT_S = env_float("WEBHOOK_TIMEOUT_S", 10.0, minimum=0.5)

# --- I18n, static ----------------------------------------------------------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("vi", "Tiếng Việt")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Languages whose format files declare no grouping (vi) group by three like English: intcomma
# and the page filters then write 1.234.567 in Vietnamese. USE_THOUSAND_SEPARATOR stays off,
# so plain {{ number }} in form values and data attributes is never grouped.
NUMBER_GROUPING = 3
# The language switcher (/i18n/setlang/) remembers the choice in this cookie for a year.
LANGUAGE_COOKIE_AGE = 365 * 86400
LANGUAGE_COOKIE_SECURE = SECURE_COOKIES
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every process otherwise
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Request lines can carry API keys in headers of bad requests: never log them.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}
