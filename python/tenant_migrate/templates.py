"""Fast tenant creation: a template tenant kept at the current migration state, copied.

With ``TENANT_MIGRATE["TEMPLATE"] = True``, ``migratealltenants`` (a full run) brings the
template up to date and ``createtenant --migrate`` creates a database-isolation tenant as a copy
of it (SQLite: an online backup of the file; PostgreSQL: ``CREATE DATABASE ... TEMPLATE``),
then runs ``migratetenant`` for the tenant's own ``pre_migrate``/``post_migrate`` work. The copy
has the template's catalog, history and data: exactly what a tenant migrated from zero has.
A template that is behind the migrations on disk, busy, or on another server is not used: the
tenant is migrated from zero. Schema isolation is not covered yet (PostgreSQL cannot copy a
schema): such tenants always migrate from zero.

The template is registered nowhere; its id is not a valid tenant id, so its database name
(``DATABASE_NAME`` with ``{tenant_id}`` = ``_template``) and its alias cannot collide with a
tenant's.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from typing import Any

from django.core.management.base import OutputWrapper
from django.core.management.color import no_style
from django.db import connections

from . import _core, conf
from .connections import TenantConfigError, rust_params, tenant_settings, vendor_of
from .provisioning import defaults_for, provision, provision_postgres
from .runner import MigrateOptions, Output, RegistryRow, Shared, migrate_record
from .status import Standing, read_standings

TEMPLATE_ID = "_template"


def enabled() -> bool:
    return bool(conf.get("TEMPLATE"))


def template_record() -> RegistryRow:
    database_name, _ = defaults_for(TEMPLATE_ID)
    return RegistryRow(TEMPLATE_ID, "Tenant template", "database", database_name, "", "{}")


def standing(shared: Shared) -> Standing:
    return read_standings([template_record()], shared.graph, jobs=1)[0]


def refresh(shared: Shared) -> str:
    """Create the template if missing and migrate it to the latest state; says what it did."""
    record = template_record()
    before = standing(shared)
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
    after = standing(shared)
    applied = len(after.history) - len(before.history)
    return f"{'created' if before.missing else 'migrated'} ({applied} migrations applied)"


def copy_into(settings_dict: dict[str, Any], schema: str | None) -> str | None:
    """Provision a new tenant as a copy of the template; None when it cannot be used."""
    if schema is not None:
        return None
    template_settings, _ = tenant_settings(template_record())
    if vendor_of(settings_dict) == "sqlite":
        return _copy_sqlite(Path(template_settings["NAME"]), Path(settings_dict["NAME"]))
    same_server = all(settings_dict.get(k) == template_settings.get(k) for k in ("HOST", "PORT", "USER"))
    if not same_server:
        return None
    return _copy_postgres(template_settings, settings_dict)


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
