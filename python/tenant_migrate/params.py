"""The parameters a connection is made with: the Rust core's (JSON), psycopg's outside Django,
the client timeouts a tenant's Django connection gets, and the master's."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from . import _core
from .exceptions import MasterUnreachable, TenantConfigError


def vendor_of(settings_dict: dict[str, Any]) -> str:
    engine = str(settings_dict.get("ENGINE", ""))
    if engine.endswith("sqlite3"):
        return "sqlite"
    if "postgresql" in engine or "postgis" in engine:
        return "postgresql"
    raise TenantConfigError(f"Unsupported database engine for tenants: {engine!r}")


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


def add_read_committed(settings_dict: dict[str, Any]) -> None:
    """A tenant's Django transactions at READ COMMITTED, whatever the server's, the role's or
    the base alias's default: the history guard (``search_path._check_history``) reads the
    rows in a statement after the record lock, which sees what another run committed while
    this one waited only under READ COMMITTED (under REPEATABLE READ or SERIALIZABLE the
    snapshot is the transaction's first statement's, taken before the wait). Django assumes
    READ COMMITTED when OPTIONS name none, and leaves the server's default in force."""
    from django.db.backends.postgresql.psycopg_any import IsolationLevel

    settings_dict["OPTIONS"] = {
        **(settings_dict.get("OPTIONS") or {}),
        "isolation_level": IsolationLevel.READ_COMMITTED,
    }


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
