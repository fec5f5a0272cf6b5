"""The tenant registry: which model holds the tenants, and which of its fields says what.

The tenant model is swappable like ``AUTH_USER_MODEL``: ``TENANT_MIGRATE_TENANT_MODEL =
"customers.Client"`` points the commands at an existing table (one made for django-tenants or
django-omnitenant, say), and ``TENANT_MIGRATE["TENANT_FIELDS"]`` maps each field of a tenant
record to a field of that model, or to ``None`` where the model has no such field (the value
then comes from the settings, see ``fallback``). Rust reads the table described by
``registry_json``; Django reads it only for an in-memory master (tests).
"""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import DatabaseError, connections, models, transaction

from . import conf
from .exceptions import TenantConfigError

SETTING = conf.TENANT_MODEL_SETTING
ROLES = ("tenant_id", "name", "isolation", "database_name", "schema_name", "connection")
ISOLATIONS = ("database", "schema")


def get_tenant_model() -> type[models.Model]:
    """The active tenant model, like ``django.contrib.auth.get_user_model()``."""
    label = conf.tenant_model_label()
    try:
        return apps.get_model(label, require_ready=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"{SETTING} must be of the form 'app_label.ModelName', not '{label}'."
        ) from None
    except LookupError:
        raise ImproperlyConfigured(
            f"{SETTING} refers to model '{label}' that has not been installed."
        ) from None


def field_names() -> dict[str, str | None]:
    """Role -> field name of the tenant model (None: the model has no such field)."""
    configured = conf.get("TENANT_FIELDS") or {}
    return {role: configured.get(role, role) for role in ROLES}


def fallback(role: str) -> str:
    """The value of a role whose field is None; ``{tenant_id}`` stands for the tenant's id."""
    return {
        "name": "{tenant_id}",
        "isolation": str(conf.get("DEFAULT_ISOLATION")),
        "database_name": str(conf.get("DATABASE_NAME")),
        "schema_name": str(conf.get("SCHEMA_NAME")),
        "connection": "{}",
    }[role]


def isolation_values() -> dict[str, str]:
    return {str(k): str(v) for k, v in (conf.get("ISOLATION_VALUES") or {}).items()}


def _field(model: type[models.Model], role: str, name: str) -> models.Field[Any, Any]:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        raise TenantConfigError(
            f"TENANT_MIGRATE['TENANT_FIELDS']['{role}'] names '{name}', which is not a field of "
            f"{model._meta.label}."
        ) from None
    if not isinstance(field, models.Field) or not field.concrete or field.column is None:
        raise TenantConfigError(
            f"TENANT_MIGRATE['TENANT_FIELDS']['{role}'] names '{name}', which is not a column of "
            f"{model._meta.label}."
        )
    return field


def _model() -> type[models.Model]:
    try:
        return get_tenant_model()
    except ImproperlyConfigured as err:
        raise TenantConfigError(str(err)) from None


def mapped_fields() -> dict[str, models.Field[Any, Any] | None]:
    """Role -> model field (None where the role takes its fallback). Raises TenantConfigError."""
    model = _model()
    names = field_names()
    if names["tenant_id"] is None:
        raise TenantConfigError("TENANT_MIGRATE['TENANT_FIELDS']['tenant_id'] must name a field.")
    return {role: None if name is None else _field(model, role, name) for role, name in names.items()}


def registry_json() -> str:
    """The registry table and columns, for ``_core.lookup_tenant`` and ``_core.list_tenants``."""
    fields = mapped_fields()
    spec: dict[str, Any] = {"table": _model()._meta.db_table}
    for role, field in fields.items():
        if role == "tenant_id":
            assert field is not None
            spec[role] = field.column
        elif field is None:
            spec[role] = {"value": fallback(role)}
        else:
            spec[role] = {"column": field.column}
    spec["isolation_values"] = isolation_values()
    return json.dumps(spec)


def id_filter(tenant_id: str) -> dict[str, str]:
    field = mapped_fields()["tenant_id"]
    assert field is not None
    return {field.name: tenant_id}


def ordering() -> str:
    field = mapped_fields()["tenant_id"]
    assert field is not None
    return field.name


def record_values(instance: models.Model) -> tuple[str, str, str, str, str, str]:
    """A tenant record's six values read from a model instance, as Rust reads them."""
    fields = mapped_fields()
    values: dict[str, str] = {}
    for role, field in fields.items():
        if field is None:
            values[role] = fallback(role).replace("{tenant_id}", values["tenant_id"])
            continue
        value = getattr(instance, field.attname)
        if role == "connection" and not isinstance(value, str):
            values[role] = json.dumps(value or {})
        else:
            values[role] = "" if value is None else str(value)
    values["isolation"] = isolation_values().get(values["isolation"], values["isolation"])
    return (
        values["tenant_id"],
        values["name"],
        values["isolation"],
        values["database_name"],
        values["schema_name"],
        values["connection"],
    )


def check_registry_table(using: str = "default") -> None:
    """Refuse, as every other command does, to work before the master's ``migrate``."""
    model = _model()
    table = model._meta.db_table
    connection = connections[using]
    with connection.cursor() as cursor:
        if table in connection.introspection.table_names(cursor):
            return
    try:  # not listed under that name (a schema-qualified db_table?): ask the table itself
        with transaction.atomic(using=using):
            model._default_manager.using(using).exists()
    except DatabaseError:
        raise TenantConfigError(registry_missing_text()) from None


def registry_missing_text() -> str:
    """The core's words for a master database without the registry table."""
    return (
        f"The tenant registry table '{_model()._meta.db_table}' does not exist in the master database. "
        "Run 'python manage.py migrate' first."
    )


def tenant_exists(tenant_id: str, using: str = "default") -> bool:
    return _model()._default_manager.using(using).filter(**id_filter(tenant_id)).exists()


def new_tenant(values: dict[str, Any]) -> models.Model:
    """An unsaved tenant model instance holding a record's values (role -> value).

    A role without a field can only take its fallback, and two roles sharing a field (the
    tenant id and the schema name of a django-tenants model) must agree.
    """
    fields = mapped_fields()
    stored = {v: k for k, v in isolation_values().items()}
    kwargs: dict[str, Any] = {}
    owner: dict[str, str] = {}
    tenant_id = str(values["tenant_id"])
    for role in ROLES:
        value = values.get(role)
        field = fields[role]
        if field is None:
            expected = fallback(role).replace("{tenant_id}", tenant_id)
            given = json.dumps(value or {}) if role == "connection" else str(value or "")
            if given not in ("", "{}", expected):
                raise TenantConfigError(
                    f"{_model()._meta.label} has no field for the tenant's {role.replace('_', ' ')}, "
                    f"so it is always '{expected}' (TENANT_MIGRATE['TENANT_FIELDS']), not '{given}'."
                )
            continue
        if role in ("database_name", "schema_name") and not value:
            continue  # the other isolation's name: left to the field's default
        if role == "isolation":
            value = stored.get(str(value), value)
        if field.name in kwargs and kwargs[field.name] != value:
            raise TenantConfigError(
                f"The tenant's {role.replace('_', ' ')} and {owner[field.name].replace('_', ' ')} "
                f"are one field of {_model()._meta.label} ('{field.name}'): they must be equal, "
                f"not '{value}' and '{kwargs[field.name]}'."
            )
        kwargs[field.name] = value
        owner[field.name] = role
    return _model()(**kwargs)


def shares_field(role: str, other: str) -> bool:
    names = field_names()
    return names[role] is not None and names[role] == names[other]


def defaults_for(tenant_id: str) -> tuple[str, str]:
    # A tenant model whose schema name is its tenant id (django-tenants' schema_name).
    schema = tenant_id if shares_field("schema_name", "tenant_id") else conf.get("SCHEMA_NAME")
    return (
        conf.get("DATABASE_NAME").format(tenant_id=tenant_id),
        schema.format(tenant_id=tenant_id),
    )
