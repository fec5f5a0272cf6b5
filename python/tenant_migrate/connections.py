"""How a tenant is reached: Django settings for its alias, checked.

A tenant's connection is the base database's settings (``TENANT_MIGRATE["DATABASE"]``) with
its own database name (database isolation) or its own schema (schema isolation), plus the
per-tenant overrides stored in the registry.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from django.db import connections

from . import conf
from .exceptions import TenantConfigError
from .names import (
    RESERVED_DATABASES,
    RESERVED_SCHEMAS,
    TEMPLATE_ID,
    check_pg_name,
    check_tenant_id,
    check_text,
    shown,
)
from .params import add_client_timeouts, vendor_of
from .registry import defaults_for

# alias -> schema, for the aliases this package registered (schema isolation has a schema).
_TENANT_ALIASES: dict[str, str | None] = {}


ALLOWED_OVERRIDES = ("HOST", "PORT", "USER", "PASSWORD")


def tenant_aliases() -> list[str]:
    return list(_TENANT_ALIASES)


def tenant_schema(alias: str) -> str | None:
    return _TENANT_ALIASES.get(alias)


def is_tenant_alias(alias: str) -> bool:
    return alias in _TENANT_ALIASES


def sqlite_path(database_name: str) -> Path:
    """The tenant's SQLite file, which must stay inside the configured folder."""
    check_text("SQLite database name", database_name, 255)
    folder = conf.sqlite_dir()
    if not database_name or "\0" in database_name or "/" in database_name or "\\" in database_name:
        raise TenantConfigError(f"Invalid SQLite database name {database_name!r}")
    path = (folder / f"{database_name}.sqlite3").resolve()
    if path.parent != folder:
        raise TenantConfigError(f"SQLite database {database_name!r} would leave {folder}")
    return path


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "a number")


def connection_overrides(record: Any) -> dict[str, Any]:
    """A tenant's connection overrides, checked: a JSON object of HOST and USER (strings), PORT
    (1 to 65535) and PASSWORD (a string or a number, taken as text; never shown in a message)."""
    raw = record.connection
    where = f"The connection overrides of tenant {shown(str(record.tenant_id))}"
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "{}")
        except ValueError:
            raise TenantConfigError(f"{where} are not valid JSON.") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise TenantConfigError(f"{where} must be a JSON object, not {_json_type(raw)}.")
    overrides: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in ALLOWED_OVERRIDES:
            raise TenantConfigError(
                f"{where} name {shown(str(key))}; only {', '.join(ALLOWED_OVERRIDES)} can be overridden."
            )
        if value is None:
            continue
        if key == "PORT":
            port = value if isinstance(value, int) and not isinstance(value, bool) else None
            if isinstance(value, str) and value.strip().isdigit():
                port = int(value)
            if port is None or not 1 <= port <= 65535:
                given = shown(value) if isinstance(value, str) else json.dumps(value)[:40]
                raise TenantConfigError(f"{where}: PORT must be a number from 1 to 65535, not {given}.")
            overrides[key] = port
        elif key == "PASSWORD":
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number or isinstance(value, str)):
                raise TenantConfigError(f"{where}: PASSWORD must be a string, not {_json_type(value)}.")
            overrides[key] = json.dumps(value) if number else value
        else:
            if not isinstance(value, str):
                raise TenantConfigError(f"{where}: {key} must be a string, not {_json_type(value)}.")
            check_text(f"{key} override", value, 255)
            overrides[key] = value
    return overrides


def location(settings_dict: dict[str, Any], schema: str | None) -> tuple[str, ...]:
    """Where a tenant's data is: two tenants at the same location would share it. (A SQLite
    tenant's path is already resolved by ``sqlite_path``.)"""
    if vendor_of(settings_dict) == "sqlite":
        return ("sqlite", os.path.abspath(str(settings_dict.get("NAME") or "")))
    return (
        "postgresql",
        str(settings_dict.get("HOST") or "localhost"),
        str(settings_dict.get("PORT") or 5432),
        str(settings_dict.get("NAME") or ""),
        schema or "",
    )


def describe(settings_dict: dict[str, Any], schema: str | None) -> str:
    if schema is not None:
        return f"schema {schema!r} in database {settings_dict.get('NAME')!r}"
    if vendor_of(settings_dict) == "sqlite":
        return f"database file {settings_dict.get('NAME')}"
    return f"database {settings_dict.get('NAME')!r}"


_WHERE_KEYS = ("ENGINE", "HOST", "PORT", "NAME")


def _reserved_locations(base: dict[str, Any]) -> dict[tuple[str, ...], str]:
    """Locations no tenant may have: the master database, the base (shared) database, and the
    tenant template's database and schema. Computed once per configuration (an all-tenants
    run asks for every tenant)."""
    from django.conf import settings

    master = settings.DATABASES.get("default") or {}
    key = (
        tuple(str(base.get(k)) for k in _WHERE_KEYS),
        tuple(str(master.get(k)) for k in _WHERE_KEYS),
        repr(conf.configured()),
    )
    return _reserved_for(key, base, master)


def _reserved_for(key: Any, base: dict[str, Any], master: dict[str, Any]) -> dict[tuple[str, ...], str]:
    try:
        return _RESERVED_SEEN[key]
    except KeyError:
        pass
    reserved: dict[tuple[str, ...], str] = {}
    template_database: str | None
    template_schema: str | None
    try:
        template_database, template_schema = defaults_for(TEMPLATE_ID)
    except (KeyError, IndexError, ValueError):  # a DATABASE_NAME/SCHEMA_NAME str.format refuses
        template_database = template_schema = None
    if vendor_of(base) == "sqlite":
        if template_database is not None:
            path = (conf.sqlite_dir() / f"{template_database}.sqlite3").resolve()
            reserved[("sqlite", str(path))] = "the tenant template's database"
    else:
        reserved[location(base, None)] = "the database schema tenants share"
        if template_database is not None and template_schema is not None:
            reserved[location({**base, "NAME": template_database}, None)] = "the tenant template's database"
            reserved[location(base, template_schema)] = "the tenant template's schema"
    try:
        if vendor_of(master) == vendor_of(base):
            resolved = dict(master)
            if vendor_of(master) == "sqlite":
                resolved["NAME"] = str(Path(str(master.get("NAME") or "")).resolve())
            reserved[location(resolved, None)] = "the master database"
    except TenantConfigError:
        pass
    if len(_RESERVED_SEEN) > 16:
        _RESERVED_SEEN.clear()
    _RESERVED_SEEN[key] = reserved
    return reserved


_RESERVED_SEEN: dict[Any, dict[tuple[str, ...], str]] = {}


def tenant_settings(record: Any) -> tuple[dict[str, Any], str | None]:
    """Django DATABASES entry for a tenant, and its schema (None for database isolation).

    Every path that reaches a tenant passes here (migratetenant, migratealltenants,
    showtenantmigrations, ``--database=<tenant>``, createtenant), so this is where a registry
    row, however it was written, is checked: its id and names (in bytes, as PostgreSQL counts
    them), its connection overrides, names reserved to the server or the database (``public``,
    ``pg_*``, ``information_schema``, ``postgres``, ``template0/1``), the master database, the
    template tenant's names, and a database or schema another tenant of the registry already
    names (``record.namesakes``, found by the registry read)."""
    settings_dict, schema = _tenant_settings(record)
    for other in getattr(record, "namesakes", None) or ():
        if tenant_location(other) == location(settings_dict, schema):
            raise TenantConfigError(
                f"Tenant {shown(record.tenant_id)} names the {describe(settings_dict, schema)}, which "
                f"tenant {shown(other.tenant_id)} names too: each tenant needs a database or schema "
                "of its own (correct the registry)."
            )
    return settings_dict, schema


def server_of(settings_dict: dict[str, Any]) -> str | None:
    """The PostgreSQL server a connection tries, worded as libpq words it (None: SQLite).
    The defaults are the core's: localhost, port 5432."""
    try:
        if vendor_of(settings_dict) != "postgresql":
            return None
    except TenantConfigError:
        return None
    host = str(settings_dict.get("HOST") or "localhost")
    port = settings_dict.get("PORT") or 5432
    if host.startswith("/"):
        return f'server on socket "{host}/.s.PGSQL.{port}"'
    return f'server at "{host}", port {port}'


def tenant_location(record: Any) -> tuple[str, ...] | None:
    """Where a registry row's data is (see ``location``); None for a row that cannot be used."""
    try:
        return location(*_tenant_settings(record))
    except (TenantConfigError, ValueError):
        return None


def _tenant_settings(record: Any) -> tuple[dict[str, Any], str | None]:
    check_tenant_id(record.tenant_id)
    template = bool(getattr(record, "is_template", False))
    if record.tenant_id == TEMPLATE_ID and not template:
        raise TenantConfigError(f"The tenant id {TEMPLATE_ID!r} is reserved for the tenant template.")
    base = copy.deepcopy(connections.settings[conf.base_alias()])
    vendor = vendor_of(base)
    reserved = {} if template else _reserved_locations(base)
    base.update(connection_overrides(record))
    if record.isolation == "database":
        if vendor == "sqlite":
            base["NAME"] = str(sqlite_path(record.database_name))
        else:
            check_pg_name("database name", record.database_name)
            if record.database_name in RESERVED_DATABASES:
                raise TenantConfigError(
                    f"Tenant {shown(record.tenant_id)}: the database name {record.database_name!r} "
                    "is reserved to the server."
                )
            base["NAME"] = record.database_name
        schema = None
    elif record.isolation == "schema":
        if vendor != "postgresql":
            raise TenantConfigError("Schema isolation requires PostgreSQL")
        if not record.schema_name:
            raise TenantConfigError(f"Tenant {record.tenant_id!r} has no schema name")
        check_pg_name("schema name", record.schema_name)
        folded = record.schema_name.lower()
        if folded in RESERVED_SCHEMAS or folded.startswith("pg_"):
            raise TenantConfigError(
                f"Tenant {shown(record.tenant_id)}: the schema name {shown(record.schema_name)} is "
                "reserved to the database (public, information_schema, pg_*)."
            )
        schema = record.schema_name
    else:
        raise TenantConfigError(f"Unknown isolation {record.isolation!r}")
    if vendor == "postgresql":
        add_client_timeouts(base)
    what = reserved.get(location(base, schema))
    if what is not None:
        raise TenantConfigError(
            f"Tenant {shown(record.tenant_id)} names the {describe(base, schema)}, which is {what}: "
            "a tenant needs a database or schema of its own."
        )
    return base, schema


def register_alias(alias: str, settings_dict: dict[str, Any], schema: str | None) -> None:
    """Make ``connections[alias]`` reach the tenant (and, for a schema, only its schema)."""
    # dict.__contains__: the plain membership, without resolving tenants (see aliases.py).
    if dict.__contains__(connections.settings, alias) and not is_tenant_alias(alias):
        raise TenantConfigError(f"Tenant alias {alias!r} collides with a DATABASES entry")
    if is_tenant_alias(alias) and connections.settings.get(alias) == settings_dict:
        return
    if is_tenant_alias(alias):
        connections[alias].close()
        del connections[alias]
    connections.settings[alias] = settings_dict
    _TENANT_ALIASES[alias] = schema


def forget_thread_connection(alias: str) -> None:
    """Drop this thread's Django wrapper of a tenant alias whose run is over (its session was
    already closed or handed on). A worker thread of ``migratealltenants`` would otherwise keep
    one wrapper per tenant it ran for the whole run, each with the queries Django logs under
    ``DEBUG`` (up to 9,000): memory that grew with the number of tenants."""
    local = connections._connections
    wrapper = getattr(local, alias, None)
    if wrapper is not None and is_tenant_alias(alias):
        wrapper.close()
        # The wrapper refers to itself (its ops, features, introspection...): it waits for a
        # full collection, which a process holding hundreds of MB of states seldom makes.
        # The logged queries, most of its weight, go now.
        wrapper.queries_log.clear()
        delattr(local, alias)
