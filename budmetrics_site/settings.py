"""Settings, read once from the environment (django-environ).

Every variable is listed in the README's configuration table. Unset variables give the
embedded defaults: chDB in a local directory, SQLite, local-memory cache. A malformed
value stops start-up with one line naming the variable (see ``_fail``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

TIME_BUCKETS = ("1m", "5m", "15m", "30m", "1h", "6h", "12h", "1d", "1w")

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _fail(variable: str, problem: str) -> None:
    """Stop start-up with one clear line; a traceback would bury the variable's name."""
    sys.stderr.write(f"Configuration error: {variable} {problem}\n")
    raise SystemExit(2)


def _int(variable: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env.str(variable, default=str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        _fail(variable, f"must be a whole number, got {raw!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        _fail(variable, f"must be at least {minimum}{upper}, got {value}")
    return value


def _bool(variable: str, default: bool) -> bool:
    raw = env.str(variable, default="true" if default else "false").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off", ""}:
        return False
    _fail(variable, f"must be true or false, got {raw!r}")
    return default  # unreachable; keeps type checkers calm


def _choice(variable: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.str(variable, default=default).strip()
    if value not in allowed:
        _fail(variable, f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


# --- Core Django ---------------------------------------------------------------------------
DEBUG_MODE = _bool("DEBUG_MODE", False)
DEBUG = DEBUG_MODE
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG_MODE and env.str("DJANGO_ENV", default="development") == "production":
        _fail("SECRET_KEY", "must be set when DJANGO_ENV=production")
    SECRET_KEY = "insecure-development-key-change-me"  # noqa: S105 - development default only
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
JSON_LOGS = _bool("JSON_LOGS", env.str("DJANGO_ENV", default="development") == "production")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "clickhouse_backend",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "analytics",
    "blocking",
    "geo",
    "console",
]

MIDDLEWARE = [
    "budmetrics_site.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "budmetrics_site.urls"
WSGI_APPLICATION = "budmetrics_site.wsgi.application"
APPEND_SLASH = False

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

LANGUAGE_CODE = "en-us"
# UTC everywhere: chDB's session zone follows the process TZ that Django sets from this.
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when it is missing
# WhiteNoise serves the admin and API-docs assets (drf-spectacular-sidecar) straight from
# the installed apps, so the docs work without DEBUG and without a collectstatic step.
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Databases -----------------------------------------------------------------------------
CLICKHOUSE_HOST = env.str("CLICKHOUSE_HOST", default="").strip()
CLICKHOUSE_PORT = _int("CLICKHOUSE_PORT", 8123, minimum=1, maximum=65535)
CLICKHOUSE_DATABASE = env.str("CLICKHOUSE_DATABASE", default="budmetrics").strip()
if not CLICKHOUSE_DATABASE.replace("_", "").isalnum():
    _fail("CLICKHOUSE_DATABASE", f"must be letters, digits and _, got {CLICKHOUSE_DATABASE!r}")
CLICKHOUSE_USER = env.str("CLICKHOUSE_USER", default="default")
CLICKHOUSE_PASSWORD = env.str("CLICKHOUSE_PASSWORD", default="")
CLICKHOUSE_SECURE = _bool("CLICKHOUSE_SECURE", False)
CLICKHOUSE_POOL_SIZE = _int("CLICKHOUSE_POOL_SIZE", 10, minimum=1)
CLICKHOUSE_POOL_TIMEOUT = _int("CLICKHOUSE_POOL_TIMEOUT", 30, minimum=1)
CLICKHOUSE_EMBEDDED_PATH = env.str(
    "CLICKHOUSE_EMBEDDED_PATH", default=str(BASE_DIR / "var" / "chdb")
).strip()
# At most 20 years: TTL arithmetic is on DateTime, which ends in 2106.
CLICKHOUSE_RETENTION_DAYS = _int("CLICKHOUSE_RETENTION_DAYS", 365, minimum=1, maximum=7300)
CLICKHOUSE_CLUSTER = env.str("CLICKHOUSE_CLUSTER", default="").strip()
if CLICKHOUSE_CLUSTER and not CLICKHOUSE_CLUSTER.replace("_", "").isalnum():
    _fail("CLICKHOUSE_CLUSTER", f"must be letters, digits and _, got {CLICKHOUSE_CLUSTER!r}")
CLICKHOUSE_EMBEDDED = not CLICKHOUSE_HOST

QUERY_TIMEOUT = _int("QUERY_TIMEOUT", 30, minimum=1)
MAX_QUERY_TIME_RANGE = _int("MAX_QUERY_TIME_RANGE", 90, minimum=1)
DEFAULT_TIME_BUCKET = _choice("DEFAULT_TIME_BUCKET", "1h", TIME_BUCKETS)
MAX_RESULT_SIZE = _int("MAX_RESULT_SIZE", 10000, minimum=1)
# Largest request body read, in bytes; over it: 413 (Django's own knob for this).
DATA_UPLOAD_MAX_MEMORY_SIZE = _int("MAX_REQUEST_BODY_BYTES", 2_621_440, minimum=1024)
LOG_QUERIES = _bool("LOG_QUERIES", False)

_clickhouse_options: dict = {
    # Applied to every query the connection runs; the analytics layer adds readonly and
    # result caps per query.
    # async_insert off: chDB turns it on by default, and a write must be visible to the
    # next read (demo traffic, tests).
    "settings": {"max_execution_time": QUERY_TIMEOUT, "async_insert": 0},
    # Timezone-aware UTC datetimes out of DateTime64(3, 'UTC'), as Django's USE_TZ expects.
    "tz_mode": "aware",
}
if CLICKHOUSE_EMBEDDED:
    _clickhouse_options["dsn"] = f"chdb://{CLICKHOUSE_EMBEDDED_PATH}"
else:
    _clickhouse_options.update(
        {
            "secure": CLICKHOUSE_SECURE,
            "connect_timeout": CLICKHOUSE_POOL_TIMEOUT,
            # The HTTP read must outlive the server-side limit, so the server's timeout
            # error (mapped to 504) arrives instead of a client socket error.
            "send_receive_timeout": QUERY_TIMEOUT + 5,
            "pool_size": CLICKHOUSE_POOL_SIZE,
        }
    )

try:
    _default_db = env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
except Exception as exc:  # noqa: BLE001 - django-environ raises many types for a bad URL
    _fail("DATABASE_URL", f"is not a database URL ({exc})")

if not str(_default_db.get("ENGINE", "")).startswith("django.db.backends."):
    _fail("DATABASE_URL", "must be a postgres://, sqlite:/// or mysql:// URL")
# Keep Django database connections open between requests (seconds), checked before reuse.
_default_db.setdefault("CONN_MAX_AGE", _int("DATABASE_CONN_MAX_AGE", 60, minimum=0))
_default_db.setdefault("CONN_HEALTH_CHECKS", True)
if _default_db.get("ENGINE", "").endswith("sqlite3"):
    Path(_default_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)

DATABASES = {
    "default": _default_db,
    "clickhouse": {
        "ENGINE": "budmetrics_site.clickhouse",
        "NAME": CLICKHOUSE_DATABASE,
        "HOST": CLICKHOUSE_HOST,
        "PORT": CLICKHOUSE_PORT if CLICKHOUSE_HOST else "",
        "USER": CLICKHOUSE_USER if CLICKHOUSE_HOST else "",
        "PASSWORD": CLICKHOUSE_PASSWORD,
        "OPTIONS": _clickhouse_options,
        "TEST": {"NAME": f"test_{CLICKHOUSE_DATABASE}"},
    },
}
DATABASE_ROUTERS = ["budmetrics_site.routers.ClickHouseRouter"]

# --- Cache ---------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="").strip()
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    _fail("REDIS_URL", f"must start with redis://, rediss:// or unix://, got {REDIS_URL!r}")
CACHE_TTL = _int("CACHE_TTL", 300, minimum=1)
CACHE_ENABLED = _bool("CACHE_ENABLED", True)
# Answers whose range reaches "now" are cached this long, so new traffic shows up quickly.
CACHE_RECENT_TTL = _int("CACHE_RECENT_TTL", 30, minimum=1)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "TIMEOUT": CACHE_TTL,
            "KEY_PREFIX": "budmetrics",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "TIMEOUT": CACHE_TTL,
        }
    }

# Default dashboard views (analytics/dashboards.py), kept warm per active project.
DASHBOARD_REFRESH_INTERVAL = _int("DASHBOARD_REFRESH_INTERVAL", 300, minimum=0)
if 0 < DASHBOARD_REFRESH_INTERVAL < 60:
    _fail(
        "DASHBOARD_REFRESH_INTERVAL",
        f"must be 0 (off) or at least 60, got {DASHBOARD_REFRESH_INTERVAL}",
    )
DASHBOARD_ACTIVE_HOURS = _int("DASHBOARD_ACTIVE_HOURS", 24, minimum=1, maximum=24 * 90)
DASHBOARD_MAX_PROJECTS = _int("DASHBOARD_MAX_PROJECTS", 100, minimum=1)

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Embedded chDB allows one process per data directory, so tasks run in the web process.
CELERY_TASK_ALWAYS_EAGER = CLICKHOUSE_EMBEDDED or not REDIS_URL
CELERY_TASK_TIME_LIMIT = QUERY_TIMEOUT * 4
CELERY_TASK_SOFT_TIME_LIMIT = QUERY_TIMEOUT * 3
# Run the beat schedule on a thread in the web process (the embedded default's way; see
# budmetrics_site/jobs.py). `make run` turns it on.
INPROCESS_JOBS = _bool("INPROCESS_JOBS", False)

# --- API -----------------------------------------------------------------------------------
_RATE_PERIODS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")


def _rate(variable: str, default: str) -> str | None:
    """A DRF throttle rate such as ``600/min``; ``off`` disables that throttle."""
    value = env.str(variable, default=default).strip().lower()
    if value in {"off", "none", ""}:
        return None
    count, _, period = value.partition("/")
    if not count.isdigit() or int(count) < 1 or period not in _RATE_PERIODS:
        _fail(variable, f"must look like 600/min (per s, min, hour or day) or off, got {value!r}")
    return value


API_THROTTLE_RATE = _rate("API_THROTTLE_RATE", "30000/min")
API_ANON_THROTTLE_RATE = _rate("API_ANON_THROTTLE_RATE", "60/min")
ANONYMIZE_IPS = _bool("ANONYMIZE_IPS", False)
AUDIT_RETENTION_DAYS = _int("AUDIT_RETENTION_DAYS", 90, minimum=1)
# batched: audit rows are written by a background thread (analytics/audit_writer.py).
AUDIT_WRITE_MODE = _choice("AUDIT_WRITE_MODE", "batched", ("batched", "sync"))
AUDIT_FLUSH_SECONDS = _int("AUDIT_FLUSH_SECONDS", 1, minimum=1)
AUDIT_BATCH_SIZE = _int("AUDIT_BATCH_SIZE", 200, minimum=1)
BLOCKING_RULES_KEY_PREFIX = env.str(
    "BLOCKING_RULES_KEY_PREFIX", default="budmetrics:blocking_rules"
).strip()
BLOCKING_RULE_MATCH_WINDOW_HOURS = _int("BLOCKING_RULE_MATCH_WINDOW_HOURS", 24, minimum=1)

REST_FRAMEWORK = {
    # The OpenAPI contract's rules (error answers, tags, UUID types) live in one place.
    "DEFAULT_SCHEMA_CLASS": "budmetrics_site.openapi.BudMetricsAutoSchema",
    # One page shape and page-size cap for every list endpoint.
    "DEFAULT_PAGINATION_CLASS": "budmetrics_site.pagination.EnvelopePagination",
    "EXCEPTION_HANDLER": "budmetrics_site.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # API keys first: its WWW-Authenticate header makes unauthenticated requests 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "analytics.access.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["analytics.access.throttling.ClientRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"client": API_THROTTLE_RATE, "anon": API_ANON_THROTTLE_RATE},
    # The API speaks JSON only (other media types: 415), parsed with a depth limit: a
    # deeply nested body was a 500, and form fields would bypass the limit.
    "DEFAULT_PARSER_CLASSES": ["budmetrics_site.parsers.StrictJSONParser"],
    # Generic views (saved-queries list, blocking-rule reads) reject unknown parameters.
    "DEFAULT_FILTER_BACKENDS": ["budmetrics_site.filters.StrictQueryParams"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "BudMetrics Gateway Analytics API",
    "DESCRIPTION": (
        "Analytics over the AI inference gateway's request log in ClickHouse: time series, "
        "geography, blocked traffic, top routes and clients."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Request bodies are documented as JSON, what BudApp sends (forms are not part of the API).
    "PARSER_WHITELIST": ["budmetrics_site.parsers.StrictJSONParser"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "budmetrics_site.openapi.add_health_paths_and_tags",
        "budmetrics_site.openapi.add_registry_enums",
    ],
    # Enum names for the registry-fed choice sets (analytics.query.registry), so every endpoint's
    # metric and dimension lists share one named component.
    "ENUM_NAME_OVERRIDES": {
        "AnalyticsMetricEnum": "analytics.query.registry.METRIC_CHOICES",
        "RouteOrderByEnum": "analytics.routes_clients.serializers.ROUTE_ORDER_BY",
        "ClientOrderByEnum": "analytics.routes_clients.serializers.CLIENT_ORDER_BY",
        "GeoOrderByEnum": "geo.serializers.GEO_ORDER_BY",
    },
}

# --- Logging -------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structlog": {
            "()": "structlog.stdlib.ProcessorFormatter",
            "processors": [],  # filled by budmetrics_site.logging.configure()
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structlog"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "clickhouse_connect": {"level": "WARNING"},
    },
}

from budmetrics_site.logging import configure as _configure_logging  # noqa: E402

_configure_logging(LOGGING, json_logs=JSON_LOGS, debug=DEBUG_MODE)

# --- Serving, HTTP metrics and throttling (issue 12: make serve, fairness, auth failures) ---
# Per caller x project scope: the fairness unit (README "Throttling"); API_THROTTLE_RATE
# above is the higher per-caller ceiling over all its projects.
API_PROJECT_THROTTLE_RATE = _rate("API_PROJECT_THROTTLE_RATE", "1200/min")
# 401s per client address before every request from it is a 429 until the window ends.
AUTH_FAILURE_RATE = _rate("AUTH_FAILURE_RATE", "30/min")
# Proxies in front of the service that append to X-Forwarded-For; 0: the client address is
# REMOTE_ADDR and X-Forwarded-For is ignored (a client can write anything there).
TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)
REST_FRAMEWORK["NUM_PROXIES"] = TRUSTED_PROXY_COUNT
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "analytics.access.throttling.ClientRateThrottle",
    "analytics.access.throttling.ProjectRateThrottle",
]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    **REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
    "project": API_PROJECT_THROTTLE_RATE,
}
# Set by `make serve` (budmetrics_site/gunicorn_conf.py): every process writes its samples
# there and /metrics sums them. A management command run with it set needs the directory.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="").strip()
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
# Outermost: every request is counted and timed, throttled ones too.
MIDDLEWARE.insert(0, "budmetrics_site.metrics.HttpMetricsMiddleware")
MIDDLEWARE.insert(
    MIDDLEWARE.index("budmetrics_site.logging.RequestIdMiddleware") + 1,
    "analytics.access.auth_failures.FailedAuthThrottleMiddleware",
)
# --- Blocking-rule publication and admin (issue 12) ----------------------------------------
# The Redis the gateway reads blocking rules from; empty → publishing off (a start-up
# warning and an admin banner say so). Defaults to the cache's REDIS_URL.
BLOCKING_RULES_REDIS_URL = env.str("BLOCKING_RULES_REDIS_URL", default=REDIS_URL).strip()
if BLOCKING_RULES_REDIS_URL and not BLOCKING_RULES_REDIS_URL.startswith(
    ("redis://", "rediss://", "unix://")
):
    _fail(
        "BLOCKING_RULES_REDIS_URL",
        f"must start with redis://, rediss:// or unix://, got {BLOCKING_RULES_REDIS_URL!r}",
    )
# /readyz reports "degraded" once a rule change has waited this long to reach Redis.
BLOCKING_PUBLICATION_MAX_LAG = _int("BLOCKING_PUBLICATION_MAX_LAG", 60, minimum=1)
# --- Backup ClickHouse and debug output (issue 12, items 2 and 3) ---------------------------
# A backup server, or an embedded chDB directory, that answers when the primary cannot be
# reached (refused, DNS, connect timeout); see budmetrics_site.clickhouse.failover.
CLICKHOUSE_BACKUP_HOST = env.str("CLICKHOUSE_BACKUP_HOST", default="").strip()
CLICKHOUSE_BACKUP_PORT = _int("CLICKHOUSE_BACKUP_PORT", 8123, minimum=1, maximum=65535)
CLICKHOUSE_BACKUP_USER = env.str("CLICKHOUSE_BACKUP_USER", default="default")
CLICKHOUSE_BACKUP_PASSWORD = env.str("CLICKHOUSE_BACKUP_PASSWORD", default="")
CLICKHOUSE_BACKUP_SECURE = _bool("CLICKHOUSE_BACKUP_SECURE", False)
CLICKHOUSE_BACKUP_EMBEDDED_PATH = env.str("CLICKHOUSE_BACKUP_EMBEDDED_PATH", default="").strip()
if CLICKHOUSE_BACKUP_HOST and CLICKHOUSE_BACKUP_EMBEDDED_PATH:
    _fail("CLICKHOUSE_BACKUP_EMBEDDED_PATH", "cannot be set together with CLICKHOUSE_BACKUP_HOST")
if CLICKHOUSE_BACKUP_EMBEDDED_PATH and CLICKHOUSE_EMBEDDED:
    _fail(
        "CLICKHOUSE_BACKUP_EMBEDDED_PATH",
        "needs a ClickHouse server as primary (CLICKHOUSE_HOST): chDB runs one engine per "
        "process, and an embedded primary is never unreachable",
    )
# How long the breaker keeps queries on the backup before probing the primary again.
CLICKHOUSE_FAILOVER_COOLDOWN_SECONDS = _int("CLICKHOUSE_FAILOVER_COOLDOWN_SECONDS", 30, minimum=1)
# LOG_QUERIES logs parameter names with values redacted unless this is on.
LOG_QUERY_VALUES = _bool("LOG_QUERY_VALUES", False)
# --- Request log and exports (issue 13) ------------------------------------------------------
# Most rows one page of GET /gateway/requests may ask for (limit).
REQUEST_LOG_MAX_LIMIT = _int("REQUEST_LOG_MAX_LIMIT", 1000, minimum=1, maximum=100_000)
# Hard cap on the rows of one export (streamed or background); reaching it is stated in it.
MAX_EXPORT_ROWS = _int("MAX_EXPORT_ROWS", 1_000_000, minimum=1)
# Where background exports write their files (created when missing).
EXPORT_DIR = Path(env.str("EXPORT_DIR", default=str(BASE_DIR / "var" / "exports")))
# Seconds a download link of a finished export stays valid (a new one per status read).
EXPORT_LINK_SECONDS = _int("EXPORT_LINK_SECONDS", 3600, minimum=1)
# Hours a finished export's file is kept before the cleanup task deletes it.
EXPORT_RETENTION_HOURS = _int("EXPORT_RETENTION_HOURS", 24, minimum=1)
# --- rollups (issue 11) -------------------------------------------------------------------
# TTL of the rollup tables: long-range trends outlive the raw rows' CLICKHOUSE_RETENTION_DAYS.
ROLLUP_RETENTION_DAYS = _int("ROLLUP_RETENTION_DAYS", 730, minimum=1, maximum=7300)
# Zones whose local days get their own daily series rollup (series_1d_<zone>): a dashboard
# in 1d or 1w buckets in one of them reads one row per key and day. Other zones are served
# exactly too, from UTC hours and quarter days (about 9-12 rows per key and local day).
# Each zone is one more view on the 15-minute series rollup; `manage.py migrate --database
# clickhouse` creates (with a backfill) and drops them to match this list.
ROLLUP_DAY_ZONES = tuple(dict.fromkeys(env.list("ROLLUP_DAY_ZONES", default=["Asia/Kolkata"])))
for _zone in ROLLUP_DAY_ZONES:
    try:
        _zone_ok = bool(re.fullmatch(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*", _zone)) and (
            ZoneInfo(_zone).key == _zone
        )
    except (ZoneInfoNotFoundError, ValueError):
        _zone_ok = False
    if not _zone_ok or _zone in ("UTC", "Etc/UTC"):
        _fail(
            "ROLLUP_DAY_ZONES",
            f"{_zone!r} is not an IANA time zone other than UTC (UTC days have series_1d)",
        )
