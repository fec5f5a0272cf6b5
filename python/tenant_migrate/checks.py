"""System checks (``manage.py check``) for the TENANT_MIGRATE settings."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import FieldDoesNotExist
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from . import conf, registry

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
    for key, labels, code in (
        ("TENANT_APPS", conf.tenant_apps(), "E004"),
        ("SHARED_APPS", conf.shared_apps(), "E012"),
    ):
        for label in labels or []:
            if label not in installed:
                problems.append(
                    Error(
                        f"TENANT_MIGRATE['{key}'] lists '{label}', which is not an installed app label.",
                        hint="Use app labels (e.g. 'auth'), not module paths.",
                        id=f"tenant_migrate.{code}",
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


@register(Tags.database)
def check_tenant_tables_in_master(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """Tables of tenant-only apps left in the master by a version that migrated every app
    there: nothing uses them any more, and default-manager code must not find them."""
    if DEFAULT_DB_ALIAS not in (databases or ()):
        return []
    tenant_only = [
        c for c in apps.get_app_configs() if conf.is_tenant_app(c.label) and not conf.is_shared_app(c.label)
    ]
    if not tenant_only:
        return []
    try:
        existing = set(connections[DEFAULT_DB_ALIAS].introspection.table_names())
    except DatabaseError:
        return []  # an unreachable master is reported by the command itself
    problems: list[Any] = []
    for app_config in tenant_only:
        tables = sorted(
            {
                model._meta.db_table
                for model in app_config.get_models(include_auto_created=True)
                if model._meta.managed and not model._meta.proxy and model._meta.db_table in existing
            }
        )
        if tables:
            problems.append(
                Warning(
                    f"The master database holds tables of tenant-only app '{app_config.label}': "
                    f"{', '.join(tables)}.",
                    hint="Tenant apps are migrated inside tenants only (TENANT_MIGRATE['TENANT_APPS']). "
                    "Drop these tables from the master if they hold nothing you need, or add "
                    f"'{app_config.label}' to TENANT_MIGRATE['SHARED_APPS'] to keep the app in both.",
                    id="tenant_migrate.W002",
                )
            )
    return problems


TEXT_FIELDS = ("CharField", "SlugField", "TextField")


@register(Tags.models)
def check_tenant_model(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The tenant model and TENANT_FIELDS describe a readable registry."""
    try:
        model = registry.get_tenant_model()
    except Exception as err:
        return [
            Error(
                str(err),
                hint="Name an installed model, e.g. TENANT_MIGRATE_TENANT_MODEL = 'customers.Client', "
                "or remove the setting to use tenant_migrate.Tenant.",
                id="tenant_migrate.E006",
            )
        ]
    configured = conf.get("TENANT_FIELDS")
    if configured is not None and (not isinstance(configured, dict) or set(configured) - set(registry.ROLES)):
        return [
            Error(
                "TENANT_MIGRATE['TENANT_FIELDS'] must be a dict whose keys are record fields.",
                hint=f"Known keys: {', '.join(registry.ROLES)}; each value a field name of "
                f"{model._meta.label} or None.",
                id="tenant_migrate.E007",
            )
        ]
    problems: list[Any] = []
    names = registry.field_names()
    for role, name in names.items():
        if name is None:
            continue
        try:
            field = model._meta.get_field(str(name))
        except FieldDoesNotExist:
            field = None
        if field is None or not field.concrete:
            problems.append(
                Error(
                    f"TENANT_MIGRATE['TENANT_FIELDS']['{role}'] names {name!r}, which is not a column "
                    f"of {model._meta.label}.",
                    hint=_field_hint(model, role),
                    id="tenant_migrate.E008",
                )
            )
    tenant_id = names["tenant_id"]
    if tenant_id is None:
        problems.append(
            Error(
                "TENANT_MIGRATE['TENANT_FIELDS']['tenant_id'] must name a field.",
                hint=f"The unique text field of {model._meta.label} that identifies a tenant.",
                id="tenant_migrate.E009",
            )
        )
    elif not problems:
        field = model._meta.get_field(tenant_id)
        if not field.unique or field.get_internal_type() not in TEXT_FIELDS:  # type: ignore[union-attr]
            problems.append(
                Error(
                    f"The tenant id field '{tenant_id}' of {model._meta.label} must be a unique "
                    "CharField, SlugField or TextField.",
                    hint="Map 'tenant_id' to the field your tenants are known by (django-tenants: "
                    "'schema_name'; django-omnitenant: 'tenant_id').",
                    id="tenant_migrate.E009",
                )
            )
    values = conf.get("ISOLATION_VALUES")
    if values is not None and (
        not isinstance(values, dict) or not set(values.values()) <= set(registry.ISOLATIONS)
    ):
        problems.append(
            Error(
                "TENANT_MIGRATE['ISOLATION_VALUES'] must map stored values to 'database' or 'schema'.",
                hint="For django-omnitenant: {'DB': 'database', 'SCH': 'schema'}.",
                id="tenant_migrate.E010",
            )
        )
    if conf.tenant_app_label() in (conf.tenant_apps() or []):
        problems.append(
            Error(
                f"TENANT_MIGRATE['TENANT_APPS'] lists '{conf.tenant_app_label()}', the app of the "
                "tenant model.",
                hint="The registry lives in the master database only; remove the app from TENANT_APPS.",
                id="tenant_migrate.E011",
            )
        )
    return problems


def _field_hint(model: Any, role: str) -> str:
    fields = ", ".join(sorted(f.name for f in model._meta.concrete_fields))
    return (
        f"Fields of {model._meta.label}: {fields}. Use None if it has no field for '{role}' "
        f"(the value is then {registry.fallback(role)!r} for every tenant)."
        if role != "tenant_id"
        else f"Fields of {model._meta.label}: {fields}."
    )
