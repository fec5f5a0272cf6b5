"""A schema tenant's Django connection: its search path set per transaction by an execute
wrapper, and the history rows Django writes for a tenant guarded as the core guards its own."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.db import transaction
from django.db.backends.signals import connection_created

from . import _core
from .connections import is_tenant_alias, tenant_schema
from .names import quote_ident
from .params import rust_params

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


def one_transaction(connection: Any) -> AbstractContextManager[Any]:
    """The transaction already open, or one of its own: a schema tenant's autocommit
    statement is a transaction of its own that sets the search path first (below), so
    statements that belong together share one. Not ``atomic(savepoint=False)``: inside a
    block it would mark the whole block for rollback on an error the caller may handle."""
    if connection.in_atomic_block:
        return nullcontext()
    return transaction.atomic(using=connection.alias)


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    # No session-level SET here: behind a transaction-pooling proxy it would stay on the
    # server connection and reach whichever client gets it next (the application included),
    # resolving its tables in this tenant's schema. The wrapper sets the path per transaction.
    schema = tenant_schema(connection.alias)
    if schema is not None and _schema_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_schema_wrapper)
    if (
        is_tenant_alias(connection.alias)
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
    # In autocommit (after a non-atomic migration) the check and the row commit together.
    with one_transaction(connection):
        _check_history(connection, sql.startswith("INSERT"), str(params[0]), str(params[1]))
        return execute(sql, params, many, context)


def _check_history(connection: Any, inserting: bool, app: str, name: str) -> None:
    schema = tenant_schema(connection.alias)
    lock, alive = _core.history_guard(rust_params(connection.settings_dict, schema))
    table = (quote_ident(schema) + "." if schema is not None else "") + '"django_migrations"'
    connection._tenant_migrate_guarding = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(lock)
            # After the lock, in a statement of its own: it sees what another run committed
            # while this one waited for the lock.
            cursor.execute(
                f'SELECT {alive or "true"}, count(*) FROM {table} WHERE "app" = %s AND "name" = %s',
                [app, name],
            )
            still_held, count = cursor.fetchone()
            if not still_held:
                raise _core.concurrent_run(connection.alias, f"{app}.{name}", True)
            present = count > 0
    finally:
        connection._tenant_migrate_guarding = False
    # A row to write must be absent; one to delete present (Django also deletes a squash's own
    # row, which may never have been written: only a written row can have gone meanwhile).
    if inserting and present:
        raise _core.concurrent_run(connection.alias, f"{app}.{name}", False)


def begin_transaction(connection: Any) -> None:
    """Open a schema tenant's transaction now, in an atomic block not yet started: its first
    statements (the search path, and the step's timeouts through the step's own wrapper) are
    sent here, before Django's first, as the wrappers would send them then."""
    schema = tenant_schema(connection.alias)
    if schema is None or not connection.in_atomic_block or _transaction_started(connection):
        return
    _set_search_path(connection, schema, local=True)


def reset_session_path(connection: Any) -> None:
    """After a non-atomic migration, which needed the session setting: take it back."""
    if tenant_schema(connection.alias) is None or connection.connection is None:
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
    schema = tenant_schema(connection.alias)
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
