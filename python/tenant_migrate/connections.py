"""How a tenant is reached: Django settings for its alias, and the parameters Rust connects with.

A tenant's connection is the base database's settings (``TENANT_MIGRATE["DATABASE"]``) with
its own database name (database isolation) or its own schema (schema isolation), plus the
per-tenant overrides stored in the registry.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connections, transaction
from django.db.backends.signals import connection_created

from . import _core, conf
from .exceptions import MasterUnreachable, TenantConfigError
from .registry import defaults_for

# alias -> schema, for the aliases this package registered (schema isolation has a schema).
_TENANT_ALIASES: dict[str, str | None] = {}

ALLOWED_OVERRIDES = ("HOST", "PORT", "USER", "PASSWORD")


def quote_ident(name: str) -> str:
    """Double-quote an identifier as the core does (Django's quote_name does not double
    embedded quotes)."""
    try:
        return _core.quote_ident(name)
    except _core.InvalidArgument as err:  # a NUL character
        # The core's text ("identifier contains a NUL character"), as a sentence.
        reason = str(err)
        raise TenantConfigError(reason[:1].upper() + reason[1:]) from err


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


# PostgreSQL silently truncates longer identifiers (in bytes): two names that differ only
# beyond this would reach the same database or schema.
MAX_IDENTIFIER_BYTES = 63
# Names that belong to the server or the database itself, never to a tenant.
RESERVED_DATABASES = ("postgres", "template0", "template1")
RESERVED_SCHEMAS = ("public", "information_schema")  # and every name starting with pg_
# The tenant template's id (see templates.py): never a tenant's, and its names are nobody's.
TEMPLATE_ID = "_template"


def check_tenant_id(tenant_id: str) -> None:
    """The check every path applies to a tenant id, however it was written (createtenant, the
    registry behind its back): not empty, printable, at most 63 bytes. Ids of rows written
    before (or by a project's own tenant model) need not be slugs, so lookups stop here;
    ``check_new_tenant_id`` adds the slug form createtenant requires."""
    fault = identifier_fault(tenant_id)
    if fault == "empty":
        raise invalid_tenant_id(tenant_id, "it is empty.")
    if fault == "control":
        raise invalid_tenant_id(tenant_id, "it contains control characters.")
    if fault == "long":
        size = len(tenant_id.encode())
        raise invalid_tenant_id(tenant_id, f"it is {size} bytes long; at most {MAX_IDENTIFIER_BYTES}.")


def identifier_fault(name: str) -> str | None:
    """The one rule a tenant id and a PostgreSQL database or schema name share (a tenant id
    names them by default): not empty, no control characters, at most MAX_IDENTIFIER_BYTES
    bytes. Which part fails ("empty", "control", "long"), or None; each caller says it in its
    own words."""
    if not name:
        return "empty"
    if not name.isprintable():
        return "control"
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        return "long"
    return None


def check_new_tenant_id(tenant_id: str) -> None:
    """The rule for an id createtenant registers: ``check_tenant_id``, and a lower-case slug."""
    from .models import TENANT_ID_HELP, TENANT_ID_PATTERN

    check_tenant_id(tenant_id)
    if not re.match(TENANT_ID_PATTERN, tenant_id):
        raise invalid_tenant_id(tenant_id, TENANT_ID_HELP)


def invalid_tenant_id(tenant_id: str, why: str) -> TenantConfigError:
    """The one message for a tenant id, on every command: ``Invalid tenant id 'x': why``."""
    return TenantConfigError(f"Invalid tenant id {_shown(tenant_id)}: {why}")


def unknown_tenant(tenant_id: str) -> Exception:
    """What to say of an id no registry row has: an id createtenant would refuse can never
    exist, and is called invalid as createtenant calls it; a well-formed one does not exist
    (two lines: it does not exist, create it first)."""
    try:
        check_new_tenant_id(tenant_id)
    except TenantConfigError as err:
        return err
    return _core.tenant_not_found(tenant_id)


def check_pg_name(kind: str, name: str) -> None:
    """A PostgreSQL database or schema name, counted in bytes as PostgreSQL counts it."""
    fault = identifier_fault(name)
    if fault == "empty":
        raise TenantConfigError(f"The {kind} must not be empty.")
    if fault == "control":
        check_text(kind, name)  # its message for control characters
    if fault == "long":
        size = len(name.encode())
        raise TenantConfigError(
            f"Invalid {kind} {_shown(name)}: it is {size} bytes long; PostgreSQL allows at most "
            f"{MAX_IDENTIFIER_BYTES} and would silently truncate it (onto another name)."
        )


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:40]) + "..."


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "a number")


def connection_overrides(record: Any) -> dict[str, Any]:
    """A tenant's connection overrides, checked: a JSON object of HOST and USER (strings), PORT
    (1 to 65535) and PASSWORD (a string or a number, taken as text; never shown in a message)."""
    raw = record.connection
    where = f"The connection overrides of tenant {_shown(str(record.tenant_id))}"
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
                f"{where} name {_shown(str(key))}; only {', '.join(ALLOWED_OVERRIDES)} can be overridden."
            )
        if value is None:
            continue
        if key == "PORT":
            port = value if isinstance(value, int) and not isinstance(value, bool) else None
            if isinstance(value, str) and value.strip().isdigit():
                port = int(value)
            if port is None or not 1 <= port <= 65535:
                shown = _shown(value) if isinstance(value, str) else json.dumps(value)[:40]
                raise TenantConfigError(f"{where}: PORT must be a number from 1 to 65535, not {shown}.")
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
                f"Tenant {_shown(record.tenant_id)} names the {describe(settings_dict, schema)}, which "
                f"tenant {_shown(other.tenant_id)} names too: each tenant needs a database or schema "
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
                    f"Tenant {_shown(record.tenant_id)}: the database name {record.database_name!r} "
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
                f"Tenant {_shown(record.tenant_id)}: the schema name {_shown(record.schema_name)} is "
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
            f"Tenant {_shown(record.tenant_id)} names the {describe(base, schema)}, which is {what}: "
            "a tenant needs a database or schema of its own."
        )
    return base, schema


# What a tenant's Django connection (psycopg, libpq parameters) gets unless the base alias's
# OPTIONS say otherwise: a server that accepts the connection and never answers fails it in
# CONNECT_TIMEOUT seconds, and a server that dies mid-run is noticed by TCP keepalives within
# about a minute (as the Rust core's connections; see backend/postgres.rs).
CONNECT_TIMEOUT = 10
CLIENT_OPTIONS = {
    "connect_timeout": CONNECT_TIMEOUT,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def psycopg_params(settings_dict: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``psycopg.connect`` to a tenant's server outside Django (creating a
    database or schema, copying the template), with the same bounds as its Django connection."""
    options = {**CLIENT_OPTIONS, **(settings_dict.get("OPTIONS") or {})}
    password = settings_dict.get("PASSWORD")
    return {
        "host": settings_dict.get("HOST") or None,
        "port": settings_dict.get("PORT") or None,
        "user": settings_dict.get("USER") or None,
        "password": str(password) if password not in (None, "") else None,
        **{key: options[key] for key in CLIENT_OPTIONS},
    }


def add_client_timeouts(settings_dict: dict[str, Any]) -> None:
    options = dict(settings_dict.get("OPTIONS") or {})
    for key, value in CLIENT_OPTIONS.items():
        options.setdefault(key, value)
    settings_dict["OPTIONS"] = options


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
    options = settings_dict.get("OPTIONS") or {}
    password = settings_dict.get("PASSWORD")
    return json.dumps(
        {
            "vendor": "postgresql",
            "host": settings_dict.get("HOST") or None,
            "port": int(port) if port else None,
            "user": settings_dict.get("USER") or None,
            # Text whatever its JSON type: the core takes a string, and never shows it.
            "password": str(password) if password not in (None, "") else None,
            "dbname": settings_dict.get("NAME"),
            "schema": schema,
            "connect_timeout": _whole_seconds(options.get("connect_timeout", CONNECT_TIMEOUT)),
            "lock_timeout_ms": milliseconds(lock_timeout),
            "statement_timeout_ms": milliseconds(statement_timeout),
        }
    )


def _whole_seconds(value: Any) -> int:
    """libpq's connect_timeout: seconds, 0 or less meaning none (here: the default)."""
    try:
        seconds = int(float(value))
    except (TypeError, ValueError):
        return CONNECT_TIMEOUT
    return seconds if 0 < seconds <= 3600 else CONNECT_TIMEOUT


def milliseconds(seconds: float | None) -> int | None:
    """A timeout for the server: whole milliseconds, at least 1 (0 would mean none)."""
    return None if seconds is None else max(1, round(seconds * 1000))


def master_params() -> str:
    return rust_params(connections.settings["default"])


def master_file_missing() -> bool:
    """A SQLite master file that does not exist (``migrate`` never ran, or NAME is wrong)."""
    from django.conf import settings

    master = settings.DATABASES.get("default") or {}
    if not str(master.get("ENGINE", "")).endswith("sqlite3"):
        return False
    name = str(master.get("NAME") or "")
    return bool(name) and name != ":memory:" and not name.startswith("file:") and not os.path.exists(name)


def master_missing_text() -> str:
    from django.conf import settings

    return (
        f"The master database file {settings.DATABASES['default']['NAME']} does not exist. Run "
        "'python manage.py migrate' first, or check DATABASES['default']['NAME']."
    )


@contextmanager
def reading_master() -> Iterator[None]:
    """Around a read of the registry by the core: a connection failure there is the master's."""
    try:
        yield
    except _core.ConnectionFailed as exc:
        if master_file_missing():
            raise MasterUnreachable(master_missing_text()) from exc
        reason = str(exc).strip()
        if reason.startswith("master database "):  # the core's words for a SQLite master
            reason = reason.split(": ", 1)[-1]
        raise MasterUnreachable(
            # The core's text names the server it tried.
            f"Cannot connect to the master database\n{reason}"
        ) from exc


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
    if (
        connection.alias in _TENANT_ALIASES
        and connection.vendor == "postgresql"
        and _history_guard not in connection.execute_wrappers
    ):
        connection.execute_wrappers.append(_history_guard)


# How Django's MigrationRecorder writes a tenant's history: record_applied binds (app, name,
# applied), record_unapplied (app, name).
_RECORDER_WRITES = ('INSERT INTO "django_migrations"', 'DELETE FROM "django_migrations"')


def _history_guard(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """A history row Django writes for a tenant (a migration it applied: RunPython, non-atomic)
    is guarded as the Rust core guards its own (see ``lock.rs``): in the row's transaction, the
    tenant's record lock is taken, then the row is written only if this process still holds the
    tenant's run lock and no other run wrote (or deleted) that row meanwhile. Otherwise the
    migration's transaction rolls back with ``ConcurrentRun``."""
    connection = context["connection"]
    if (
        many
        or getattr(connection, "_tenant_migrate_guarding", False)
        or not sql.startswith(_RECORDER_WRITES)
        or not isinstance(params, (list, tuple))
        or len(params) < 2
    ):
        return execute(sql, params, many, context)
    if connection.in_atomic_block:
        _check_history(connection, sql.startswith("INSERT"), str(params[0]), str(params[1]))
        return execute(sql, params, many, context)
    # Autocommit (after a non-atomic migration): the check and the row commit together.
    with transaction.atomic(using=connection.alias):
        _check_history(connection, sql.startswith("INSERT"), str(params[0]), str(params[1]))
        return execute(sql, params, many, context)


def _check_history(connection: Any, inserting: bool, app: str, name: str) -> None:
    from . import _core

    schema = _TENANT_ALIASES.get(connection.alias)
    lock, alive = _core.history_guard(rust_params(connection.settings_dict, schema))
    table = (quote_ident(schema) + "." if schema is not None else "") + '"django_migrations"'
    connection._tenant_migrate_guarding = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(lock)
            if alive is not None:
                cursor.execute(alive)
                if not cursor.fetchone()[0]:
                    raise _core.concurrent_run(connection.alias, f"{app}.{name}", True)
            cursor.execute(f'SELECT count(*) FROM {table} WHERE "app" = %s AND "name" = %s', [app, name])
            present = cursor.fetchone()[0] > 0
    finally:
        connection._tenant_migrate_guarding = False
    # A row to write must be absent; one to delete present (Django also deletes a squash's own
    # row, which may never have been written: only a written row can have gone meanwhile).
    if inserting and present:
        raise _core.concurrent_run(connection.alias, f"{app}.{name}", False)


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
