"""One PostgreSQL session per worker thread for the schema tenants of an all-tenants run.

Each tenant's Django connection (RunPython, ``post_migrate``) was a new server session: a
connection, an authentication and a server process per tenant, most of it while the tenant
held the process-wide Django lock. Schema tenants of one database differ only by their search
path, which this package sets inside every transaction (``search_path.py``), never per
session; so inside ``sessions()`` a finished tenant's session goes to the next tenant of the
same thread that connects with the same parameters, after ``DISCARD ALL``: temporary tables,
session settings (a search path set by a migration included), prepared statements, advisory
locks, listens and the role are gone, as in a new session. Django then sets the session up as
it sets up any new one (autocommit, isolation level, time zone, ``connection_created``).

Only sessions that ended cleanly are kept: idle, outside any transaction, ``DISCARD ALL``
succeeded; anything else is closed. Database-isolation tenants never share a key (each has its
database), Django's own pool (``OPTIONS["pool"]``) and psycopg2 are left alone.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .connections import tenant_schema

_local = threading.local()
Key = tuple[tuple[str, str], ...]
# The parameters each session was opened with (a session is handed on only to equal ones).
_keys: weakref.WeakKeyDictionary[Any, Key] = weakref.WeakKeyDictionary()


class _Slot:
    """This thread's parked session: at most one, so that a worker never holds more Django
    sessions than it did without reuse (the connection budget counts one per worker)."""

    def __init__(self) -> None:
        self.key: Key | None = None
        self.session: Any = None

    def take(self, key: Key | None) -> Any:
        """The parked session if it was opened with ``key``; any other is closed."""
        session, self.session = self.session, None
        if session is not None and (key is None or self.key != key or session.closed):
            _close(session)
            session = None
        return session

    def park(self, key: Key, session: Any) -> None:
        self.take(None)
        self.key, self.session = key, session


def _slot() -> _Slot | None:
    return getattr(_local, "slot", None)


def _key(params: dict[str, Any]) -> Key:
    # Django passes the same objects (its adapters template, its cursor class) for equal
    # settings: their reprs compare as the settings do.
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


def _close(session: Any) -> None:
    try:
        session.close()
    except Exception:  # closing what is already gone
        pass


class _Driver:
    """The driver module as a tenant's Django connection uses it, whose ``connect`` takes the
    session this thread parked for the same parameters, if any."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def connect(self, *args: Any, **params: Any) -> Any:
        key = _key(params)
        slot = _slot()
        session = slot.take(key) if slot is not None and not args else None
        if session is None:
            session = self._module.connect(*args, **params)
        _keys[session] = key
        return session


def adopt(wrapper: Any) -> None:
    """Let a tenant's Django connection take a parked session (schema tenants, psycopg 3);
    for any other, the parked session is closed."""
    slot = _slot()
    if slot is None or isinstance(wrapper.__dict__.get("Database"), _Driver):
        return
    if (
        wrapper.vendor != "postgresql"
        or tenant_schema(wrapper.alias) is None
        or wrapper.settings_dict.get("OPTIONS", {}).get("pool")
        or getattr(type(wrapper).Database, "__name__", "") != "psycopg"
    ):
        slot.take(None)
        return
    wrapper.Database = _Driver(type(wrapper).Database)


def release(wrapper: Any) -> None:
    """End a tenant's Django connection: park its session for the thread's next tenant when it
    can be handed on as new, close it otherwise."""
    session, slot = wrapper.connection, _slot()
    adopted = isinstance(wrapper.__dict__.get("Database"), _Driver)
    key = _keys.get(session) if adopted and session is not None else None
    if slot is None or key is None or not _clean(wrapper, session):
        wrapper.close()
        return
    # Django forgets the session (close() has nothing left to close) and it waits here.
    wrapper.connection = None
    wrapper.close()
    slot.park(key, session)


def _clean(wrapper: Any, session: Any) -> bool:
    if wrapper.in_atomic_block or session.closed or session.broken:
        return False
    try:
        if session.info.transaction_status.name != "IDLE":
            return False
        session.autocommit = True
        session.execute("DISCARD ALL")
    except Exception:
        return False
    return bool(session.info.transaction_status.name == "IDLE")


@contextmanager
def sessions() -> Iterator[None]:
    """In this thread, for the enclosed tenants: sessions handed on; the last closed at the end."""
    _local.slot = _Slot()
    try:
        yield
    finally:
        slot, _local.slot = _local.slot, None
        slot.take(None)
