"""A project whose migrations and signal receivers are written as real projects write them:
default managers, ``django.db.connection``, ``create_permissions(app_config)`` and receivers
that never look at ``using`` (tests/integration/test_default_is_tenant.py).

Under Django's own ``migrate`` such code works on the database being migrated, because that
database is ``default``. The tenant apps are also shared apps, so the master holds tables of
the same names: a tenant's row written into the master lands there (and is caught) instead of
failing with "no such table".

Databases are chosen from the environment as in ``tests/projects/realworld``:
``TM_DB_ENGINE=postgresql`` with ``TM_PG_HOST``, ``TM_PG_PORT``, ``TM_PG_USER``,
``TM_PG_PASSWORD`` and ``TM_PG_NAME`` puts the master on PostgreSQL; otherwise it is the SQLite
file ``TM_MASTER_SQLITE``. ``TM_TENANT_DIR`` (required) holds SQLite tenants;
``TM_DATABASE_NAME``, ``TM_SCHEMA_NAME`` and ``TM_DEFAULT_ISOLATION`` set the tenant defaults.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "idioms-tests-only-not-secret"
DEBUG = True
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "audit",
    "billing",
    "staff",
    "tenant_migrate",
]

if os.environ.get("TM_DB_ENGINE") == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("TM_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("TM_PG_PORT", "5432"),
            "USER": os.environ.get("TM_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("TM_PG_PASSWORD", ""),
            "NAME": os.environ.get("TM_PG_NAME", "tenant_migrate_idioms"),
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

_APPS = ["contenttypes", "auth", "audit", "billing", "staff"]

TENANT_MIGRATE = {
    "TENANT_APPS": _APPS,
    # The same apps in the master too: tables of the same names on both sides.
    "SHARED_APPS": _APPS,
    "SQLITE_DIR": os.environ["TM_TENANT_DIR"],
    "DATABASE_NAME": os.environ.get("TM_DATABASE_NAME", "{tenant_id}_db"),
    "SCHEMA_NAME": os.environ.get("TM_SCHEMA_NAME", "public_{tenant_id}"),
    "DEFAULT_ISOLATION": os.environ.get("TM_DEFAULT_ISOLATION", "database"),
    # "0": Django's own content-type and permission receivers, to compare the batched ones with.
    "BATCH_POST_MIGRATE": os.environ.get("TM_BATCH_POST_MIGRATE", "1") == "1",
}
