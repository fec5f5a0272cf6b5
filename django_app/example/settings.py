"""Settings of the example project. Everything can be changed from the environment:

- ``DATABASE_URL``-free on purpose: ``TM_DB_ENGINE=postgresql`` with ``TM_PG_HOST``,
  ``TM_PG_PORT``, ``TM_PG_USER``, ``TM_PG_PASSWORD`` and ``TM_PG_NAME`` puts the master (and the
  base for tenants) on PostgreSQL; the default is SQLite, with nothing to install.
- ``TM_MASTER_SQLITE`` and ``TM_TENANT_DIR`` move the SQLite files.
- ``TM_TENANT_APPS`` (comma separated) chooses which apps are migrated inside tenants, and
  ``TM_SHARED_APPS`` which are migrated into the master (default: every other app; ``all``:
  every app, as plain Django's ``migrate`` does).
- ``TM_TENANT_MODEL`` (``app_label.Model``) swaps the tenant model, installing its app;
  ``TM_TENANT_FIELDS`` and ``TM_ISOLATION_VALUES`` (JSON) map its fields.
"""

import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "tenant_migrate",
    "users",
    "products",
    "orders",
]

if os.environ.get("TM_TENANT_MODEL"):
    TENANT_MIGRATE_TENANT_MODEL = os.environ["TM_TENANT_MODEL"]
    INSTALLED_APPS.append(TENANT_MIGRATE_TENANT_MODEL.partition(".")[0])

# For bench/startup.py only: the same project without this package.
if os.environ.get("TM_WITHOUT_PACKAGE") == "1":
    INSTALLED_APPS.remove("tenant_migrate")

if os.environ.get("TM_DB_ENGINE") == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("TM_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("TM_PG_PORT", "5432"),
            "USER": os.environ.get("TM_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("TM_PG_PASSWORD", ""),
            "NAME": os.environ.get("TM_PG_NAME", "tenant_migrate_example"),
        }
    }
    if os.environ.get("TM_PG_POOLER") == "transaction":
        # Behind pgbouncer in transaction mode, as Django's documentation advises: no
        # server-side cursors, and no prepared statements (psycopg 3 prepares repeated ones).
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
        DATABASES["default"]["OPTIONS"] = {"prepare_threshold": None}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("TM_MASTER_SQLITE", str(BASE_DIR / "master.sqlite3")),
        }
    }

# Tenants on PostgreSQL while the master stays on SQLite: TM_TENANT_PG_NAME names the base
# (and, for schema isolation, shared) database of the tenants.
if os.environ.get("TM_TENANT_PG_NAME"):
    DATABASES["tenants"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("TM_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("TM_PG_PORT", "5432"),
        "USER": os.environ.get("TM_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("TM_PG_PASSWORD", ""),
        "NAME": os.environ["TM_TENANT_PG_NAME"],
    }

DATABASE_ROUTERS = (
    [] if os.environ.get("TM_WITHOUT_PACKAGE") == "1" else ["tenant_migrate.routers.TenantRouter"]
)

TENANT_MIGRATE = {
    # Each tenant gets users, products and orders; set TM_TENANT_APPS to, say,
    # "contenttypes,auth,users,products,orders" to give tenants content types and permissions.
    "TENANT_APPS": os.environ.get("TM_TENANT_APPS", "users,products,orders").split(","),
    "SQLITE_DIR": os.environ.get("TM_TENANT_DIR", str(BASE_DIR / "tenants")),
    # The master gets every app that is not a tenant app; an app listed here goes to both.
    # TM_SHARED_APPS=all puts every app in the master too (what plain Django's migrate does).
    "SHARED_APPS": (
        [app.rpartition(".")[2] for app in INSTALLED_APPS]
        if os.environ.get("TM_SHARED_APPS") == "all"
        else os.environ["TM_SHARED_APPS"].split(",")
        if os.environ.get("TM_SHARED_APPS")
        else None
    ),
    "DATABASE": "tenants" if os.environ.get("TM_TENANT_PG_NAME") else "default",
    "DATABASE_NAME": os.environ.get("TM_DATABASE_NAME", "{tenant_id}_db"),
    "SCHEMA_NAME": os.environ.get("TM_SCHEMA_NAME", "public_{tenant_id}"),
    "DEFAULT_ISOLATION": os.environ.get("TM_DEFAULT_ISOLATION", "database"),
    "TEMPLATE": os.environ.get("TM_TENANT_TEMPLATE") == "1",
}
if os.environ.get("TM_TENANT_FIELDS"):
    TENANT_MIGRATE["TENANT_FIELDS"] = json.loads(os.environ["TM_TENANT_FIELDS"])
if os.environ.get("TM_ISOLATION_VALUES"):
    TENANT_MIGRATE["ISOLATION_VALUES"] = json.loads(os.environ["TM_ISOLATION_VALUES"])
