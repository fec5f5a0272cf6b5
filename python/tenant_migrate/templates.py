"""Fast tenant creation: a template tenant kept at the current migration state, copied.

With ``TENANT_MIGRATE["TEMPLATE"] = True``, ``createtenant --migrate`` creates a tenant as a copy
of the template of its isolation (SQLite: an online backup of the file; PostgreSQL database:
``CREATE DATABASE ... TEMPLATE``; PostgreSQL schema: ``schemaclone``, verified by fingerprint),
then runs ``migratetenant`` for the tenant's own ``pre_migrate``/``post_migrate`` work. The copy
has the template's catalog, history and data: what a tenant migrated from zero has. A full
``migratealltenants`` run brings every existing template up to date. A template that is behind
the migrations on disk, busy, or on another server is not used: the tenant is migrated from
zero.

The template is registered nowhere; its id is not a valid tenant id, so its database or schema
name (``DATABASE_NAME``/``SCHEMA_NAME`` with ``{tenant_id}`` = ``_template``) and its alias
cannot collide with a tenant's.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import OutputWrapper
from django.core.management.color import no_style
from django.db import connections

from . import _core, conf
from .connections import tenant_settings
from .exceptions import TenantConfigError
from .lookup import RegistryRow
from .names import TEMPLATE_ID, quote_ident
from .output import Output
from .params import psycopg_params, rust_params, vendor_of
from .provisioning import TenantSpec, provision, provision_postgres
from .registry import defaults_for
from .run.flow import migrate_record
from .run.options import MigrateOptions
from .run.shared import Shared
from .status import Standing, read_standings


@dataclass(frozen=True)
class TemplateRow(RegistryRow):
    """The template's own record: the one allowed its reserved id and names."""

    is_template: bool = True


def enabled() -> bool:
    return bool(conf.get("TEMPLATE"))


def template_record(isolation: str = "database") -> RegistryRow:
    database_name, schema_name = defaults_for(TEMPLATE_ID)
    if isolation == "schema":
        return TemplateRow(TEMPLATE_ID, "Tenant template", "schema", "", schema_name, "{}")
    return TemplateRow(TEMPLATE_ID, "Tenant template", "database", database_name, "", "{}")


def standing(shared: Shared, isolation: str = "database") -> Standing:
    return read_standings([template_record(isolation)], shared.graph, jobs=1)[0]


def refresh(shared: Shared, isolation: str = "database") -> str:
    """Create the template if missing and migrate it to the latest state; says what it did."""
    record = template_record(isolation)
    before = standing(shared, isolation)
    if before.state == "error":
        raise TenantConfigError(f"The tenant template cannot be read: {before.error}")
    if before.missing:
        provision(*tenant_settings(record))
    elif before.state == "up-to-date":
        return "up to date"
    quiet = Output(OutputWrapper(io.StringIO()), no_style(), 0)
    try:
        migrate_record(record, MigrateOptions(interactive=False, verbosity=0), quiet, shared)
    finally:
        connections[TEMPLATE_ID].close()
    after = standing(shared, isolation)
    applied = len(after.history) - len(before.history)
    return f"{'created' if before.missing else 'migrated'} ({applied} migrations applied)"


def refresh_existing(shared: Shared) -> list[str]:
    """Bring every template that exists up to date (what a full migratealltenants does)."""
    on_sqlite = vendor_of(tenant_settings(template_record())[0]) == "sqlite"
    kinds = ["database"] if on_sqlite else ["database", "schema"]
    done = []
    for isolation in kinds:
        if not standing(shared, isolation).missing:
            label = "" if len(kinds) == 1 else f" ({isolation} isolation)"
            done.append(f"Tenant template{label}: {refresh(shared, isolation)}.")
    return done


def copy_into(settings_dict: dict[str, Any], schema: str | None) -> str | None:
    """Provision a new tenant as a copy of the template; None when it cannot be used."""
    isolation = "schema" if schema is not None else "database"
    template_settings, template_schema = tenant_settings(template_record(isolation))
    if vendor_of(settings_dict) == "sqlite":
        return _copy_sqlite(Path(template_settings["NAME"]), Path(settings_dict["NAME"]))
    same_server = all(settings_dict.get(k) == template_settings.get(k) for k in ("HOST", "PORT", "USER"))
    if not same_server:
        return None
    if schema is not None and template_schema is not None:
        return _copy_schema(settings_dict, template_schema, schema)
    return _copy_postgres(template_settings, settings_dict)


def _copy_schema(settings_dict: dict[str, Any], template: str, schema: str) -> str | None:
    import psycopg

    from .schemaclone import clone

    name = settings_dict["NAME"]
    params = psycopg_params(settings_dict)
    with psycopg.connect(dbname=name, **params) as conn:
        with conn.transaction():
            if not clone(conn, template, schema):
                return None
    # The copy is used only if its catalog and history digest equal the template's.
    if _fingerprint(settings_dict, schema) != _fingerprint(settings_dict, template):
        with psycopg.connect(dbname=name, autocommit=True, **params) as conn:
            conn.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
        return None
    return f"schema {schema} in database {name}"


def _fingerprint(settings_dict: dict[str, Any], schema: str) -> str:
    database = _core.TenantDatabase(rust_params(settings_dict, schema))
    try:
        return database.fingerprint()
    finally:
        database.close()


def _copy_sqlite(template: Path, target: Path) -> str | None:
    if not template.exists():
        return None
    if target.exists():
        raise TenantConfigError(f"The database file {target} already exists.")
    target.parent.mkdir(parents=True, exist_ok=True)
    # The backup API copies a consistent snapshot, even while another process writes.
    with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    return str(target)


def _copy_postgres(template: dict[str, Any], settings_dict: dict[str, Any]) -> str | None:
    import psycopg

    # Connections this process pooled while migrating the template would block the copy.
    _core.release_idle_connections(rust_params(template))
    name = settings_dict["NAME"]
    try:
        provision_postgres(settings_dict, None, template=template["NAME"])
    except psycopg.errors.ObjectInUse:
        # Someone is connected to the template (a migratealltenants refreshing it).
        return None
    return f"database {name}"


def template_provisioner(spec: TenantSpec, copied: list[str], say: Callable[[str], Any] | None) -> Any:
    """With TENANT_MIGRATE["TEMPLATE"]: provision the new tenant as a copy of an up-to-date
    template of its isolation (made first if there is none); otherwise (behind, busy, another
    server, a schema a copy would miss) None, and the tenant is migrated from zero, which
    ``say`` is told. ``copied`` receives what the copy brought, once made (createtenant's line)."""
    if not enabled() or spec.connection:
        return None
    shared = Shared()
    state = standing(shared, spec.isolation)
    if state.missing:
        refresh(shared, spec.isolation)
        state = standing(shared, spec.isolation)
    if state.state != "up-to-date":
        if say is not None:
            say(
                "The tenant template is behind the migrations on disk (migratealltenants brings it up "
                "to date): migrating from zero."
            )
        return None
    applied = len(state.history)

    def provision(settings_dict: dict[str, Any], schema: str | None) -> str | None:
        where = copy_into(settings_dict, schema)
        if where is not None:
            copied.append(f"{applied} migrations already applied")
        return where

    return provision
