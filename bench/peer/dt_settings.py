"""django-tenants settings for the example project's apps (bench/peer_bench.py).

The same tenant apps as the tenant_migrate side (contenttypes, auth, users, products, orders),
the same PostgreSQL database (TM_PG_NAME), schema isolation as django-tenants does it.
"""

import os

SECRET_KEY = "bench-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SHARED_APPS = ["django_tenants", "customers", "django.contrib.contenttypes", "django.contrib.auth"]
TENANT_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "users", "products", "orders"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
TENANT_MULTIPROCESSING_MAX_PROCESSES = int(os.environ.get("DT_PROCESSES", "2"))

DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        "HOST": os.environ.get("TM_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("TM_PG_PORT", "5432"),
        "USER": os.environ.get("TM_PG_USER", "postgres"),
        "NAME": os.environ["TM_PG_NAME"],
    }
}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
