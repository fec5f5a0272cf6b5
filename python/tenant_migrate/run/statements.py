"""The statements Django runs for a step, as the Rust route sees its own: their text, their
SQLSTATE, the server process running them, the zero-downtime timeouts set around them, and
which of them are the step's effect."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError as DjangoDatabaseError

from .. import _core
from ..interrupt import INTERRUPTER
from ..output import Output
from ..params import milliseconds
from ..search_path import _transaction_started

_NOT_EFFECTS = ("SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "")


def server_pid(connection: Any) -> int | None:
    """The PostgreSQL server process of an open Django connection (psycopg 3 or 2)."""
    if connection.vendor != "postgresql" or connection.connection is None:
        return None
    info = getattr(connection.connection, "info", None)
    pid = getattr(info, "backend_pid", None)
    if pid is None and hasattr(connection.connection, "get_backend_pid"):
        pid = connection.connection.get_backend_pid()
    return pid


def statement_text(connection: Any, sql: str, params: Any) -> str:
    """A statement as the user would write it: values in, no closing ';' (as the Rust route)."""
    if params:
        quoter = connection.schema_editor(collect_sql=True)
        try:
            sql = sql % tuple(quoter.quote_value(p) for p in params)
        except (TypeError, ValueError, KeyError):
            pass  # dict parameters or an odd value: the statement as sent is still useful
    return _core.statement_text(sql)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error raised through Django (psycopg 3 or psycopg2)."""
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


def timeout_settings(lock_timeout: float | None, statement_timeout: float | None) -> list[tuple[str, str]]:
    pairs = (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout))
    return [(name, f"{milliseconds(seconds)}ms") for name, seconds in pairs if seconds is not None]


def set_config(connection: Any, settings: list[tuple[str, str]], local: bool) -> None:
    # Bound values; the names are fixed above.
    flag = "true" if local else "false"
    sql = "SELECT " + ", ".join(f"pg_catalog.set_config(%s, %s, {flag})" for _ in settings)
    with connection.cursor() as cursor:
        cursor.execute(sql, [part for pair in settings for part in pair])


@contextmanager
def capturing(connection: Any, ran: list[str] | None) -> Iterator[None]:
    """Within the block, the statements ``connection`` runs that are the step's effect go to
    ``ran`` (values in), for replay on other tenants; nothing is captured when ``ran`` is None."""
    if ran is None:
        yield
        return
    quoter = connection.schema_editor(collect_sql=True)

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        head = sql.lstrip()[:10].split(None, 1)[0].upper() if sql.strip() else ""
        # Reads, pragmas, transaction control (Django's SQLite backend sends its own BEGIN
        # and savepoints through the wrappers) and the history row are not part of the
        # migration's effect: Rust runs each replay in its own transaction and writes the
        # row itself.
        if not many and head not in _NOT_EFFECTS and "django_migrations" not in sql:
            text = sql if params is None else sql % tuple(quoter.quote_value(p) for p in params)
            ran.append(text)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        yield


@contextmanager
def guarded(
    connection: Any,
    atomic: bool,
    timeouts: tuple[float | None, float | None],
    out: Output,
    failed: Callable[[str], None],
) -> Iterator[None]:
    """Every statement Django runs for a step: stopped when the run is interrupted, and
    with the zero-downtime timeouts set inside its transaction (SET LOCAL), as the Rust
    side does. A non-atomic step gets them for the session, reset afterwards. The text of
    a statement that fails goes to ``failed``; each one is told to the heartbeat."""
    settings = timeout_settings(*timeouts) if connection.vendor == "postgresql" else []
    busy = False

    def guard(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal busy
        INTERRUPTER.check()
        connection = context["connection"]
        if settings and not busy and connection.in_atomic_block and not _transaction_started(connection):
            busy = True
            try:
                set_config(connection, settings, local=True)
            finally:
                busy = False
        heartbeat = out.heartbeat
        if heartbeat is not None:
            if heartbeat.via_django and heartbeat.django_pid is None:
                heartbeat.django_pid = server_pid(connection)
            heartbeat.statement(sql)
        try:
            return execute(sql, params, many, context)
        except DjangoDatabaseError:
            failed(statement_text(connection, sql, None if many else params))
            raise
        finally:
            if heartbeat is not None:
                heartbeat.statement(None)

    if settings and not atomic:
        set_config(connection, settings, local=False)
    try:
        with connection.execute_wrapper(guard):
            yield
    finally:
        if settings and not atomic:
            set_config(connection, [(name, "0") for name, _ in settings], local=False)
