"""A "real-world" project for differential tests: Django's contrib apps plus popular
third-party apps with long migration histories (tests/requirements-realworld.txt).

Databases are chosen from the environment exactly as in ``django_app/example/settings.py``:
``TM_DB_ENGINE=postgresql`` with ``TM_PG_HOST``, ``TM_PG_PORT``, ``TM_PG_USER``,
``TM_PG_PASSWORD`` and ``TM_PG_NAME`` puts the master on PostgreSQL; otherwise it is the SQLite
file ``TM_MASTER_SQLITE``. ``TM_TENANT_DIR`` (required) holds SQLite tenants and
``TM_DATABASE_NAME`` names tenant databases.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "realworld-tests-only-not-secret"
DEBUG = True
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SITE_ID = 1
ROOT_URLCONF = "realworld_site.urls"

INSTALLED_APPS = [
    # Must come before django.contrib.admin (it overrides the admin's templates).
    "admin_interface",
    "colorfield",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.admin",
    "django.contrib.sites",
    "django.contrib.flatpages",
    "django.contrib.redirects",
    "django.contrib.messages",
    "taggit",
    "django_celery_beat",
    "django_celery_results",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "oauth2_provider",
    "guardian",
    "reversion",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_email",
    "django_otp.plugins.otp_hotp",
    "django_otp.plugins.otp_static",
    "django_otp.plugins.otp_totp",
    "waffle",
    "post_office",
    "constance",
    "auditlog",
    "rest_framework",
    "rest_framework.authtoken",
    "knox",
    # Wagtail (a CMS): its migrations write initial data through default managers (the root
    # and home pages, the default site, collection, locale, workflow, editors' groups and
    # their permissions), see tests/requirements-realworld.txt. Not wagtail.images nor
    # wagtail.documents: their choose-permission migrations cannot be unapplied, by Django
    # either ("Cannot query Permission object: Must be Permission instance", Wagtail issue
    # 12834), which would keep half the project from going back to zero.
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "tenant_migrate",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "waffle.middleware.WaffleMiddleware",
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
    "django.contrib.redirects.middleware.RedirectFallbackMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    # Last, as django-axes asks.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "guardian.backends.ObjectPermissionBackend",
]

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
                "constance.context_processors.config",
            ]
        },
    }
]

X_FRAME_OPTIONS = "SAMEORIGIN"  # django-admin-interface
CONSTANCE_BACKEND = "constance.backends.database.DatabaseBackend"
CONSTANCE_CONFIG = {"SITE_BANNER": ("", "Banner text")}
CELERY_BROKER_URL = "memory://"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STATIC_URL = "static/"
WAGTAIL_SITE_NAME = "Real world"
WAGTAILADMIN_BASE_URL = "http://localhost"

if os.environ.get("TM_DB_ENGINE") == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("TM_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("TM_PG_PORT", "5432"),
            "USER": os.environ.get("TM_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("TM_PG_PASSWORD", ""),
            "NAME": os.environ.get("TM_PG_NAME", "tenant_migrate_realworld"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("TM_MASTER_SQLITE", str(BASE_DIR / "master.sqlite3")),
        }
    }

DATABASE_ROUTERS = ["tenant_migrate.routers.TenantRouter"]

TENANT_MIGRATE = {
    "TENANT_APPS": None,  # None = every app with migrations except tenant_migrate
    "SQLITE_DIR": os.environ["TM_TENANT_DIR"],
    "DATABASE_NAME": os.environ.get("TM_DATABASE_NAME", "{tenant_id}_db"),
    "TEMPLATE": os.environ.get("TM_TENANT_TEMPLATE") == "1",
    # "0": Django's own content-type and permission receivers, to compare the batched ones with.
    "BATCH_POST_MIGRATE": os.environ.get("TM_BATCH_POST_MIGRATE", "1") == "1",
}
