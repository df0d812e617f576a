"""The one settings module. Every value comes from the environment; the defaults are the
embedded single-machine mode (SQLite, django-q2 ORM broker, in-memory channel layer).
Every variable is listed in `.env.example` and docs/configuration.md."""

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# State that is not code: SQLite file, exports, generated secrets. `var/` by default.
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """From the environment, else one generated once and kept in VAR_DIR (never in the repo)."""
    if key := env_str("DJANGO_SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        from django.utils.crypto import get_random_string

        path.write_text(get_random_string(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
# Behind a TLS-terminating reverse proxy that sets X-Forwarded-Proto.
if env_bool("PORTAL_BEHIND_TLS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
# Trust X-Forwarded-For for the audit log's client IP only when a proxy sets it.
PORTAL_TRUSTED_PROXY_COUNT = env_int("PORTAL_TRUSTED_PROXY_COUNT", 0)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, no CDN
    "guardian",
    "django_q",
    "channels",
    "apps.core",
    "apps.tenants",
    "apps.compute",
    "apps.console",
    "apps.storage",
    "apps.network",
    "apps.billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.middleware.RequestContextMiddleware",
]

ROOT_URLCONF = "cloudportal.urls"
WSGI_APPLICATION = "cloudportal.wsgi.application"
ASGI_APPLICATION = "cloudportal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.portal",
            ],
        },
    },
]

# Database: SQLite in VAR_DIR unless DATABASE_URL is set (postgres://user:pass@host:port/name).
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "portal.sqlite3",
            # IMMEDIATE makes every atomic block take the write lock up front, so concurrent
            # writers queue (up to `timeout`) instead of failing half-way: SQLite's stand-in
            # for the row locks PostgreSQL gives select_for_update().
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"},
            "TEST": {"NAME": str(VAR_DIR / "test-portal.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis (optional): django-q2 broker, channels layer and the shared cache.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# django-q2. `timeout` < `retry` so a slow task is killed before it is handed out again;
# finite attempts so a poisoned task ends in the failed list instead of looping.
Q_CLUSTER = {
    "name": "cloudportal",
    "workers": env_int("PORTAL_WORKERS", 2),
    "timeout": env_int("PORTAL_TASK_TIMEOUT", 600),
    "retry": env_int("PORTAL_TASK_TIMEOUT", 600) + 60,
    "max_attempts": 3,
    "ack_failures": True,
    "save_limit": 1000,
    "catch_up": False,
    "label": "Tasks",
    "sync": env_bool("PORTAL_TASKS_SYNC", False),
}
# A tracked task still unfinished this long after it was queued was lost (django-q2 has handed
# it out max_attempts times by then): the sweeper queues it again PORTAL_TASK_REQUEUES times, then
# fails its resource.
PORTAL_TASK_LOST_AFTER = env_int("PORTAL_TASK_LOST_AFTER", Q_CLUSTER["retry"] * Q_CLUSTER["max_attempts"] + 300)
PORTAL_TASK_REQUEUES = env_int("PORTAL_TASK_REQUEUES", 1)
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row
GUARDIAN_RAISE_403 = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("PORTAL_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"

# E-mail: printed to the console unless an SMTP host is configured.
EMAIL_HOST = env_str("PORTAL_EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("PORTAL_EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("PORTAL_EMAIL_USER")
    EMAIL_HOST_PASSWORD = env_str("PORTAL_EMAIL_PASSWORD")
    EMAIL_USE_TLS = env_bool("PORTAL_EMAIL_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("PORTAL_EMAIL_FROM", "cloud@localhost")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.tenants.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.PortalPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("PORTAL_API_ANON_RATE", "60/min"),
        "user": env_str("PORTAL_API_USER_RATE", "1200/min"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cloud portal API",
    "DESCRIPTION": "Tenants, identity, quotas, audit and (as they land) compute, network, storage and billing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TenantStatusEnum": "apps.tenants.models.Tenant.STATUS_CHOICES",
        "OperationStatusEnum": "apps.core.models.Operation.STATUS_CHOICES",
        "TransportProtocolEnum": "apps.network.models.TRANSPORT_CHOICES",
        "RuleProtocolEnum": "apps.network.models.SecurityGroupRule.PROTOCOL_CHOICES",
    },
}

# Portal behaviour.
PORTAL_SITE_NAME = env_str("PORTAL_SITE_NAME", "Cloud portal")
PORTAL_DEFAULT_REGION = env_str("PORTAL_DEFAULT_REGION", "default")
# Initial value of the operator-editable "sign-up open" platform setting.
PORTAL_SIGNUP_ENABLED = env_bool("PORTAL_SIGNUP_ENABLED", True)
PORTAL_RECYCLE_BIN_HOURS = env_int("PORTAL_RECYCLE_BIN_HOURS", 24)
# Failed logins allowed per (username, client IP) in PORTAL_LOGIN_WINDOW seconds.
PORTAL_LOGIN_ATTEMPTS = env_int("PORTAL_LOGIN_ATTEMPTS", 5)
PORTAL_LOGIN_WINDOW = env_int("PORTAL_LOGIN_WINDOW", 300)
# How long a quota reservation may stay uncommitted before the sweeper releases it.
PORTAL_RESERVATION_TTL = env_int("PORTAL_RESERVATION_TTL", 3600)

# Compute. The driver class talking to hypervisor hosts (the fake one only in tests).
PORTAL_COMPUTE_DRIVER = env_str("PORTAL_COMPUTE_DRIVER", "apps.compute.drivers.libvirt.LibvirtDriver")
PORTAL_ALLOW_FAKE_DRIVERS = False
# libvirt URI of the host `make run` registers (the local libvirtd).
PORTAL_LIBVIRT_URI = env_str("PORTAL_LIBVIRT_URI", "qemu:///system")
# Seconds a host's libvirt may stay silent before the host is marked down.
PORTAL_HOST_DOWN_AFTER = env_int("PORTAL_HOST_DOWN_AFTER", 180)
# URL prefixes tenants may import images from (comma-separated); empty: import is off.
PORTAL_IMAGE_IMPORT_ALLOWED = env_list("PORTAL_IMAGE_IMPORT_ALLOWED")
# Largest image file a tenant may upload, in MiB.
PORTAL_IMAGE_MAX_MB = env_int("PORTAL_IMAGE_MAX_MB", 20480)
# Seconds a guest gets to shut down on ACPI before it is powered off.
PORTAL_STOP_TIMEOUT = env_int("PORTAL_STOP_TIMEOUT", 60)
# Hosts a build is retried on after the hypervisor refused it (0: the first failure is final).
PORTAL_BUILD_RESCHEDULES = env_int("PORTAL_BUILD_RESCHEDULES", 2)
# Seconds a live migration may copy before it is aborted (the guest runs on where it was).
PORTAL_LIVE_MIGRATION_TIMEOUT = env_int("PORTAL_LIVE_MIGRATION_TIMEOUT", 300)
# Room for hot resize each domain gets when it is defined (capped by its host; 0 turns it off).
PORTAL_HOTPLUG_MAX_VCPUS = env_int("PORTAL_HOTPLUG_MAX_VCPUS", 16)
PORTAL_HOTPLUG_MAX_RAM_MB = env_int("PORTAL_HOTPLUG_MAX_RAM_MB", 65536)

# Storage driver class per pool backend (tests swap in the fake one).
PORTAL_STORAGE_DRIVERS = {
    "dir": "apps.storage.drivers.dirpool.DirPoolDriver",
    "rbd": "apps.storage.drivers.rbd.RbdDriver",
}

# --- Networks ---
# The driver writing VPCs, subnets, ports and security groups into the SDN (OVN's northbound
# database; tests swap in the fake one).
PORTAL_NETWORK_DRIVER = env_str("PORTAL_NETWORK_DRIVER", "apps.network.drivers.ovn.OvnDriver")
# OVN northbound: `unix:PATH`, `tcp:HOST:PORT` or `ssl:HOST:PORT`, comma-separated for a
# clustered database. `make run` starts a local one on var/ovn/nb.sock.
OVN_NB_CONNECTION = env_str("OVN_NB_CONNECTION", f"unix:{VAR_DIR / 'ovn' / 'nb.sock'}")
# OVN southbound, read for load balancers' member health (empty: health is not shown).
OVN_SB_CONNECTION = env_str("OVN_SB_CONNECTION")
# Client key, certificate and CA certificate files for `ssl:` connections.
OVN_NB_PRIVATE_KEY = env_str("OVN_NB_PRIVATE_KEY")
OVN_NB_CERTIFICATE = env_str("OVN_NB_CERTIFICATE")
OVN_NB_CA_CERT = env_str("OVN_NB_CA_CERT")
# Seconds to wait for the northbound database (connecting, each transaction).
OVN_NB_TIMEOUT = env_int("OVN_NB_TIMEOUT", 10)
# The Open vSwitch integration bridge on every hypervisor host (ovn-controller's).
PORTAL_OVN_BRIDGE = env_str("PORTAL_OVN_BRIDGE", "br-int")
# Open vSwitch datapath of the hosts: `system` (the kernel module) or `netdev` (userspace, no
# module: `make run` and the tests here); guests' NICs do without offloads on `netdev`.
PORTAL_OVS_DATAPATH = env_str("PORTAL_OVS_DATAPATH", "system")
if PORTAL_OVS_DATAPATH not in ("system", "netdev"):
    raise ImproperlyConfigured("PORTAL_OVS_DATAPATH must be system or netdev.")
# The `portal:owner` external id on everything this installation writes into OVN; reconcile
# never touches rows of another owner.
PORTAL_OVN_OWNER = env_str("PORTAL_OVN_OWNER", "cloudportal")

# --- Billing ---
# Currencies wallets and prices may use, as CODE:decimal places (0 to 4; the billing system check
# reports a bad entry, shown here as -1), and the one new wallets get.
PORTAL_CURRENCIES = {code.strip().upper(): int(digits) if digits.strip().isdigit() else -1 for code, _, digits in
                     (item.partition(":") for item in env_list("PORTAL_CURRENCIES", "USD:2,EUR:2,JPY:0"))}
PORTAL_DEFAULT_CURRENCY = env_str("PORTAL_DEFAULT_CURRENCY", "USD")
# Minutes between two settlements of on-demand usage into the wallets.
PORTAL_BILLING_SETTLE_MINUTES = env_int("PORTAL_BILLING_SETTLE_MINUTES", 60)
# Payments: the gateway tenants recharge their wallets through (apps/billing/gateways), Stripe's
# keys (empty: recharges are refused with a 503 and operators credit wallets by hand) and the API
# address (empty: Stripe's own; tests point it at a local stand-in).
PORTAL_PAYMENT_GATEWAY = env_str("PORTAL_PAYMENT_GATEWAY", "stripe")
PORTAL_STRIPE_SECRET_KEY = env_str("PORTAL_STRIPE_SECRET_KEY")
PORTAL_STRIPE_WEBHOOK_SECRET = env_str("PORTAL_STRIPE_WEBHOOK_SECRET")
PORTAL_STRIPE_API_BASE = env_str("PORTAL_STRIPE_API_BASE")
# The smallest and largest recharge a tenant may pay in, in PORTAL_DEFAULT_CURRENCY.
try:
    PORTAL_RECHARGE_MIN = Decimal(env_str("PORTAL_RECHARGE_MIN", "5"))
    PORTAL_RECHARGE_MAX = Decimal(env_str("PORTAL_RECHARGE_MAX", "10000"))
    _recharge_limits_ok = 0 < PORTAL_RECHARGE_MIN <= PORTAL_RECHARGE_MAX
except InvalidOperation:
    _recharge_limits_ok = False
if not _recharge_limits_ok:
    raise ImproperlyConfigured("PORTAL_RECHARGE_MIN and PORTAL_RECHARGE_MAX: decimal numbers, 0 < MIN <= MAX.")

# --- VNC consoles ---
# Seconds a console ticket may wait for its first (and only) use.
PORTAL_CONSOLE_TICKET_TTL = env_int("PORTAL_CONSOLE_TICKET_TTL", 45)
if not 30 <= PORTAL_CONSOLE_TICKET_TTL <= 60:
    raise ImproperlyConfigured("PORTAL_CONSOLE_TICKET_TTL must be between 30 and 60 seconds.")
# Open console sessions allowed per user and per instance.
PORTAL_CONSOLE_MAX_PER_USER = env_int("PORTAL_CONSOLE_MAX_PER_USER", 4)
PORTAL_CONSOLE_MAX_PER_INSTANCE = env_int("PORTAL_CONSOLE_MAX_PER_INSTANCE", 3)
# Seconds without keyboard or mouse input before a session is closed (0: never).
PORTAL_CONSOLE_IDLE_TIMEOUT = env_int("PORTAL_CONSOLE_IDLE_TIMEOUT", 900)
# Seconds between two access checks of an open session (frozen tenant, removed member...).
PORTAL_CONSOLE_RECHECK = env_int("PORTAL_CONSOLE_RECHECK", 5)
# Which proxy the console page uses: `channels` (same origin) or `websockify` (console process).
PORTAL_CONSOLE_PROXY = env_str("PORTAL_CONSOLE_PROXY", "channels")
if PORTAL_CONSOLE_PROXY not in ("channels", "websockify"):
    raise ImproperlyConfigured("PORTAL_CONSOLE_PROXY must be channels or websockify.")
# Where the console process listens, and the websocket URL browsers reach it at (empty: the
# portal's host name with the listen port).
PORTAL_CONSOLE_PROXY_LISTEN = env_str("PORTAL_CONSOLE_PROXY_LISTEN", "127.0.0.1:6080")
PORTAL_CONSOLE_PROXY_URL = env_str("PORTAL_CONSOLE_PROXY_URL")


def _libvirt_dir() -> Path:
    """Images and guest disks: readable by libvirt's qemu user, so every parent directory must
    be traversable by others; otherwise a folder under /var/lib (scripts/lib.sh agrees)."""
    if configured := env_str("PORTAL_LIBVIRT_DIR"):
        return Path(configured)
    default = VAR_DIR / "libvirt"
    if all(os.stat(p).st_mode & 0o001 for p in [*default.parents][:-1] if p.exists()):
        return default
    import hashlib

    return Path("/var/lib") / f"cloudportal-{hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:8]}"


PORTAL_LIBVIRT_DIR = _libvirt_dir()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("PORTAL_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
