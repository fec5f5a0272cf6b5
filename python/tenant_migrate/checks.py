"""System checks (``manage.py check``) for the TENANT_MIGRATE settings."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import conf

ROUTER = "tenant_migrate.routers.TenantRouter"


@register(Tags.database, deploy=False)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    configured = getattr(settings, "TENANT_MIGRATE", {})
    if not isinstance(configured, dict):
        return [Error("TENANT_MIGRATE must be a dict.", id="tenant_migrate.E001")]
    unknown = sorted(set(configured) - set(conf.DEFAULTS))
    if unknown:
        problems.append(
            Error(
                f"Unknown TENANT_MIGRATE keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
                id="tenant_migrate.E002",
            )
        )
    if conf.base_alias() not in settings.DATABASES:
        problems.append(
            Error(
                f"TENANT_MIGRATE['DATABASE'] names '{conf.base_alias()}', which is not in DATABASES.",
                id="tenant_migrate.E003",
            )
        )
    installed = {c.label for c in apps.get_app_configs()}
    for label in conf.tenant_apps() or []:
        if label not in installed:
            problems.append(
                Error(
                    f"TENANT_MIGRATE['TENANT_APPS'] lists '{label}', which is not an installed app label.",
                    hint="Use app labels (e.g. 'auth'), not module paths.",
                    id="tenant_migrate.E004",
                )
            )
    if conf.get("DEFAULT_ISOLATION") not in ("database", "schema"):
        problems.append(
            Error(
                "TENANT_MIGRATE['DEFAULT_ISOLATION'] must be 'database' or 'schema'.",
                id="tenant_migrate.E005",
            )
        )
    if ROUTER not in getattr(settings, "DATABASE_ROUTERS", []):
        problems.append(
            Warning(
                f"{ROUTER} is not in DATABASE_ROUTERS.",
                hint="Without it, post_migrate handlers of non-tenant apps (content types, "
                "permissions) try to write into tenant databases.",
                id="tenant_migrate.W001",
            )
        )
    return problems
