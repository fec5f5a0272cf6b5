"""How a tenant is reached: Django settings for its alias, and the parameters Rust connects with.

A tenant's connection is the base database's settings (``TENANT_MIGRATE["DATABASE"]``) with
its own database name (database isolation) or its own schema (schema isolation), plus the
per-tenant overrides stored in the registry.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from django.db import connections, transaction
from django.db.backends.signals import connection_created

from . import conf

# alias -> schema, for the aliases this package registered (schema isolation has a schema).
_TENANT_ALIASES: dict[str, str | None] = {}

ALLOWED_OVERRIDES = ("HOST", "PORT", "USER", "PASSWORD")


class TenantConfigError(ValueError):
    """The registry row or the settings cannot describe a reachable tenant."""


def quote_ident(name: str) -> str:
    """Double-quote an identifier, doubling embedded quotes (Django's quote_name does not)."""
    if "\0" in name:
        raise TenantConfigError("Identifier contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def tenant_aliases() -> list[str]:
    return list(_TENANT_ALIASES)


def tenant_schema(alias: str) -> str | None:
    return _TENANT_ALIASES.get(alias)


def is_tenant_alias(alias: str) -> bool:
    return alias in _TENANT_ALIASES


def vendor_of(settings_dict: dict[str, Any]) -> str:
    engine = str(settings_dict.get("ENGINE", ""))
    if engine.endswith("sqlite3"):
        return "sqlite"
    if "postgresql" in engine or "postgis" in engine:
        return "postgresql"
    raise TenantConfigError(f"Unsupported database engine for tenants: {engine!r}")


def check_text(kind: str, value: str | None, max_length: int | None = None) -> None:
    """Refuse input no tenant, app or migration can be named by: control characters (NUL,
    newlines, terminal escapes, which could also forge lines of output) and overlong values.
    Errors show the value with repr(), so what the user sees is exactly what was given."""
    if value is None:
        return
    if not value.isprintable():
        raise TenantConfigError(f"Invalid {kind} {value!r}: it contains control characters.")
    if max_length is not None and len(value) > max_length:
        raise TenantConfigError(f"Invalid {kind} {value[:40]!r}...: longer than {max_length} characters.")


def printable(text: str) -> str:
    """Text for output: control characters escaped, so a value cannot forge lines."""
    return text if text.isprintable() else repr(text)[1:-1]


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


def tenant_settings(record: Any) -> tuple[dict[str, Any], str | None]:
    """Django DATABASES entry for a tenant, and its schema (None for database isolation)."""
    base = copy.deepcopy(connections.settings[conf.base_alias()])
    vendor = vendor_of(base)
    overrides = record.connection
    if isinstance(overrides, str):
        overrides = json.loads(overrides or "{}")
    for key, value in (overrides or {}).items():
        if key not in ALLOWED_OVERRIDES:
            raise TenantConfigError(f"Unsupported connection override {key!r}")
        base[key] = value
    if record.isolation == "database":
        if vendor == "sqlite":
            base["NAME"] = str(sqlite_path(record.database_name))
        else:
            check_text("database name", record.database_name, 63)
            base["NAME"] = record.database_name
        return base, None
    if record.isolation == "schema":
        if vendor != "postgresql":
            raise TenantConfigError("Schema isolation requires PostgreSQL")
        if not record.schema_name:
            raise TenantConfigError(f"Tenant {record.tenant_id!r} has no schema name")
        check_text("schema name", record.schema_name, 63)
        return base, record.schema_name
    raise TenantConfigError(f"Unknown isolation {record.isolation!r}")


def rust_params(
    settings_dict: dict[str, Any],
    schema: str | None = None,
    lock_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> str:
    """Connection parameters for the Rust core, as JSON (timeouts in seconds, PostgreSQL only)."""
    vendor = vendor_of(settings_dict)
    if vendor == "sqlite":
        return json.dumps({"vendor": "sqlite", "path": str(settings_dict["NAME"])})
    port = settings_dict.get("PORT")
    return json.dumps(
        {
            "vendor": "postgresql",
            "host": settings_dict.get("HOST") or None,
            "port": int(port) if port else None,
            "user": settings_dict.get("USER") or None,
            "password": settings_dict.get("PASSWORD") or None,
            "dbname": settings_dict.get("NAME"),
            "schema": schema,
            "lock_timeout_ms": milliseconds(lock_timeout),
            "statement_timeout_ms": milliseconds(statement_timeout),
        }
    )


def milliseconds(seconds: float | None) -> int | None:
    """A timeout for the server: whole milliseconds, at least 1 (0 would mean none)."""
    return None if seconds is None else max(1, round(seconds * 1000))


def master_params() -> str:
    return rust_params(connections.settings["default"])


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


_SET_PATH = "SELECT pg_catalog.set_config('search_path', %s, {local})"


def _past_wrapper(connection: Any, sql: str, params: list[Any] | None = None) -> None:
    # The flag keeps the wrapper below from wrapping this very statement.
    connection._tenant_migrate_setting_path = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        connection._tenant_migrate_setting_path = False


def _set_search_path(connection: Any, schema: str, local: bool) -> None:
    # Bound value, never formatted: the name reaches the server as data.
    _past_wrapper(connection, _SET_PATH.format(local="true" if local else "false"), [quote_ident(schema)])


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    # No session-level SET here: behind a transaction-pooling proxy it would stay on the
    # server connection and reach whichever client gets it next (the application included),
    # resolving its tables in this tenant's schema. The wrapper sets the path per transaction.
    schema = _TENANT_ALIASES.get(connection.alias)
    if schema is not None and _schema_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_schema_wrapper)


def reset_session_path(connection: Any) -> None:
    """After a non-atomic migration, which needed the session setting: take it back."""
    if _TENANT_ALIASES.get(connection.alias) is None or connection.connection is None:
        return
    _past_wrapper(connection, "RESET search_path")


def _transaction_started(connection: Any) -> bool:
    """Whether the server transaction is already open (psycopg begins it with the first
    statement after autocommit is turned off), so its first statement set the path."""
    info = getattr(connection.connection, "info", None)
    status = getattr(info, "transaction_status", None)
    if status is None:
        return False
    return status.name in ("INTRANS", "INERROR")


def _schema_wrapper(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """Every statement Django runs for a schema tenant runs with that schema only on the
    search path, set inside its own transaction (SET LOCAL), like the Rust side does: a
    transaction-pooling proxy may hand each transaction another server connection, so a
    session setting cannot be relied on (and would leak to the proxy's next client).

    Inside a transaction the path is set before its first statement. An autocommit statement runs in a short
    transaction of its own, except while a non-atomic migration runs (its statements, such as
    CREATE INDEX CONCURRENTLY, may refuse a transaction): those use the session setting, reset
    when the migration ends (behind a transaction-pooling proxy, run non-atomic migrations on
    a direct connection).
    """
    connection = context["connection"]
    schema = _TENANT_ALIASES.get(connection.alias)
    if schema is None or getattr(connection, "_tenant_migrate_setting_path", False):
        return execute(sql, params, many, context)
    if connection.in_atomic_block:
        if _transaction_started(connection):
            # Set by the first statement of this transaction (which came through here).
            return execute(sql, params, many, context)
        _set_search_path(connection, schema, local=True)
        return execute(sql, params, many, context)
    if getattr(connection, "tenant_migrate_outside_transaction", False):
        _set_search_path(connection, schema, local=False)
        return execute(sql, params, many, context)
    with transaction.atomic(using=connection.alias):
        _set_search_path(connection, schema, local=True)
        return execute(sql, params, many, context)


def install_signal_handlers() -> None:
    connection_created.connect(_on_connection_created, dispatch_uid="tenant_migrate_search_path")
