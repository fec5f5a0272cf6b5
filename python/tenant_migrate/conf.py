"""The ``TENANT_MIGRATE`` settings dict, read when used (never at import time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # App labels whose migrations run inside each tenant. None: every app with migrations
    # except tenant_migrate itself (the registry lives in the master database only).
    "TENANT_APPS": None,
    # App labels migrated into the master by ``manage.py migrate``. None: every app that is not
    # in TENANT_APPS (with TENANT_APPS None, every app). An app in both lists goes to both;
    # tenant_migrate (and a swapped tenant model's app) always goes to the master.
    "SHARED_APPS": None,
    # Alias in DATABASES whose settings tenants inherit (engine, host, user...). For schema
    # isolation its database is the shared one.
    "DATABASE": "default",
    # Folder of SQLite tenant databases; default: "tenants" beside the master SQLite file.
    "SQLITE_DIR": None,
    # Defaults derived from the tenant id.
    "DATABASE_NAME": "{tenant_id}_db",
    "SCHEMA_NAME": "public_{tenant_id}",
    "DEFAULT_ISOLATION": "database",
    # A template tenant kept up to date by migratealltenants, copied by createtenant --migrate
    # (database isolation; see templates.py).
    "TEMPLATE": False,
    # post_migrate's built-in receivers (content types, permissions) run batched per tenant:
    # Django's rows, found and inserted in a few statements (see run/builtin_receivers.py).
    # False: Django's own receivers run for each tenant, app by app.
    "BATCH_POST_MIGRATE": True,
    # A swapped tenant model (TENANT_MIGRATE_TENANT_MODEL): record field -> model field name,
    # or None where the model has none (see registry.py). Unlisted: a field of the same name.
    "TENANT_FIELDS": None,
    # Stored isolation values and what they mean, e.g. {"SCH": "schema", "DB": "database"}.
    "ISOLATION_VALUES": None,
}


def configured() -> dict[str, Any]:
    """The TENANT_MIGRATE setting as given (a copy), without defaults."""
    return dict(getattr(settings, "TENANT_MIGRATE", {}) or {})


def get(name: str) -> Any:
    return configured().get(name, DEFAULTS[name])


def base_alias() -> str:
    return str(get("DATABASE"))


def sqlite_dir() -> Path:
    configured = get("SQLITE_DIR")
    if configured:
        return Path(configured).resolve()
    master = settings.DATABASES[base_alias()].get("NAME") or "."
    return (Path(str(master)).resolve().parent / "tenants").resolve()


def tenant_apps() -> list[str] | None:
    apps = get("TENANT_APPS")
    return None if apps is None else [str(a) for a in apps]


# The setting that swaps the tenant model, like AUTH_USER_MODEL (see registry.py).
TENANT_MODEL_SETTING = "TENANT_MIGRATE_TENANT_MODEL"
DEFAULT_TENANT_MODEL = "tenant_migrate.Tenant"


def tenant_model_label() -> str:
    return str(getattr(settings, TENANT_MODEL_SETTING, None) or DEFAULT_TENANT_MODEL)


def tenant_app_label() -> str:
    return tenant_model_label().partition(".")[0]


def _registry_apps() -> tuple[str, ...]:
    # The registry lives in the master database only, whichever app holds it.
    return ("tenant_migrate", tenant_app_label())


def is_tenant_app(label: str) -> bool:
    apps = tenant_apps()
    if apps is None:
        return label not in _registry_apps()
    return label in apps


def shared_apps() -> list[str] | None:
    apps = get("SHARED_APPS")
    return None if apps is None else [str(a) for a in apps]


def is_shared_app(label: str) -> bool:
    """Whether ``manage.py migrate`` creates the app's tables in the master."""
    if label in _registry_apps():
        return True
    shared = shared_apps()
    if shared is not None:
        return label in shared
    tenant = tenant_apps()
    return tenant is None or label not in tenant
