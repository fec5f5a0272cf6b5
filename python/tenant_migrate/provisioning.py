"""Creating a tenant: validate, provision its database or schema, register it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from .connections import describe, location, tenant_location, tenant_settings
from .exceptions import TenantConfigError
from .lookup import list_tenants
from .names import check_new_tenant_id, check_pg_name, check_text, quote_ident
from .params import psycopg_params, vendor_of
from .registry import ISOLATIONS, check_registry_table, mapped_fields, new_tenant, tenant_exists


class ProvisioningConnectionError(TenantConfigError):
    """The server that should hold the tenant cannot be reached."""


@dataclass
class TenantSpec:
    tenant_id: str
    name: str
    isolation: str
    database_name: str = ""
    schema_name: str = ""
    connection: dict[str, Any] = field(default_factory=dict)


def validate(spec: TenantSpec) -> None:
    check_new_tenant_id(spec.tenant_id)
    fields = mapped_fields()
    roles = (("name", "tenant name"), ("database_name", "database name"), ("schema_name", "schema name"))
    for role, kind in roles:
        field = fields.get(role)
        check_text(kind, getattr(spec, role), getattr(field, "max_length", None) or 255)
    if spec.tenant_id in settings.DATABASES:
        raise TenantConfigError(
            f"Tenant id '{spec.tenant_id}' collides with the database alias of the same name "
            "in DATABASES; choose another tenant id."
        )
    check_registry_table()
    if tenant_exists(spec.tenant_id):
        raise TenantConfigError(f"Tenant '{spec.tenant_id}' already exists.")
    if spec.isolation not in ISOLATIONS:
        raise TenantConfigError(f"Invalid isolation {spec.isolation!r}; choose 'database' or 'schema'.")
    if not spec.name.strip():
        raise TenantConfigError("The tenant name must not be empty.")


def create_tenant(spec: TenantSpec, provisioner: Any = None) -> str:
    """Register and provision a tenant; returns where its data lives, for the user.
    ``provisioner(settings_dict, schema)`` may provision it instead (a template copy); when it
    returns None, the tenant is provisioned empty."""
    validate(spec)
    if spec.isolation == "database":
        spec.schema_name = ""
    else:
        spec.database_name = ""
    tenant = new_tenant(
        {
            "tenant_id": spec.tenant_id,
            "name": spec.name,
            "isolation": spec.isolation,
            "database_name": spec.database_name,
            "schema_name": spec.schema_name,
            "connection": spec.connection,
        }
    )
    settings_dict, schema = tenant_settings(spec)
    check_unique_location(spec.tenant_id, settings_dict, schema)
    with transaction.atomic(using="default"):
        tenant.save(using="default")
        copied = provisioner(settings_dict, schema) if provisioner is not None else None
        return copied if copied is not None else provision(settings_dict, schema)


def provision(settings_dict: dict[str, Any], schema: str | None) -> str:
    """Create the tenant's empty database file, database or schema."""
    vendor = vendor_of(settings_dict)
    if vendor == "sqlite":
        # tenant_settings already resolved (and confined to SQLITE_DIR) the file's path.
        path = Path(settings_dict["NAME"])
        if path.exists():
            raise TenantConfigError(f"The database file {path} already exists.")
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()
        return str(path)
    return provision_postgres(settings_dict, schema)


def check_unique_location(tenant_id: str, settings_dict: dict[str, Any], schema: str | None) -> None:
    """A new tenant's database or schema must be no registered tenant's (even one whose database
    or schema is missing now: it would come back to two tenants)."""

    mine = location(settings_dict, schema)
    for record in list_tenants():
        if record.tenant_id != tenant_id and tenant_location(record) == mine:
            raise TenantConfigError(
                f"The {describe(settings_dict, schema)} is tenant {record.tenant_id!r}'s: each tenant "
                "needs a database or schema of its own."
            )


def check_pg_identifier(kind: str, name: str) -> None:
    check_pg_name(f"{kind} name", name)


def provision_postgres(settings_dict: dict[str, Any], schema: str | None, template: str | None = None) -> str:
    """Create the database (as a copy of ``template`` when given) or the schema."""
    import psycopg

    params = {**psycopg_params(settings_dict), "autocommit": True}
    name = settings_dict["NAME"]
    check_pg_identifier("database", name)
    if schema is not None:
        check_pg_identifier("schema", schema)
    try:
        if schema is None:
            with psycopg.connect(dbname="postgres", **params) as conn:
                copy = f" TEMPLATE {quote_ident(template)}" if template else ""
                conn.execute(f"CREATE DATABASE {quote_ident(name)}{copy}")
            return f"database {name}"
        with psycopg.connect(dbname=name, **params) as conn:
            conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")
    except psycopg.errors.ObjectInUse:
        raise  # a template in use: the caller decides
    except psycopg.OperationalError as err:
        raise ProvisioningConnectionError(str(err).strip()) from None
    except psycopg.errors.DuplicateDatabase:
        raise TenantConfigError(f"The database {name!r} already exists.") from None
    except psycopg.errors.DuplicateSchema:
        raise TenantConfigError(f"The schema {schema!r} already exists in {name!r}.") from None
    except psycopg.errors.InsufficientPrivilege as err:
        raise TenantConfigError(f"Permission denied while creating the tenant: {err}") from None
    return f"schema {schema} in database {name}"
