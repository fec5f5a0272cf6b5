"""While a tenant migrates, Django's ``default`` database is that tenant, in that thread.

Real migration code rarely says which database it works on: RunPython bodies use default
managers (``Model.objects.create``, ``ContentType.objects.get_or_create``), call
``django.db.connection.cursor()``, or call helpers whose ``using`` defaults to ``"default"``
(``create_permissions(app_config)``); ``post_migrate`` receivers do the same. Under Django's own
``migrate`` (and under django-tenants) ``default`` is the database being migrated, so that code
works. Here ``default`` is the master, where it would write the tenant's rows.

``tenant_as_default(alias)`` makes ``connections["default"]`` (and so ``django.db.connection``
and every default manager) the very connection object of the tenant alias, in the current
thread only: Django keeps connections in a thread-local, so concurrent tenants of
``migratealltenants`` each see their own, and the process's other threads keep the master.
Being the same object matters: code on ``default`` and code on ``schema_editor.connection``
share one transaction, as they do under Django. The master stays reachable for this package's
own work through ``master_alias()``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

# The master's connection while ``default`` is a tenant (this package's registry and journal).
MASTER_ALIAS = "tenant_migrate_master"

_local = threading.local()


def _stack() -> list[tuple[str, Any]]:
    stack: list[tuple[str, Any]] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def current_tenant_alias() -> str | None:
    """The tenant alias that ``default`` stands for in this thread, if any."""
    stack = _stack()
    return stack[-1][0] if stack else None


def resolve(alias: str) -> str:
    """The alias a name really reaches in this thread (``default`` may be a tenant)."""
    if alias == DEFAULT_DB_ALIAS:
        return current_tenant_alias() or alias
    return alias


def master_alias() -> str:
    """The alias that reaches the master database in this thread."""
    return MASTER_ALIAS if _stack() else DEFAULT_DB_ALIAS


@contextmanager
def tenant_as_default(alias: str) -> Iterator[Any]:
    """In this thread, for the enclosed code: ``default`` is the tenant ``alias``."""
    local = connections._connections
    stack = _stack()
    previous = getattr(local, DEFAULT_DB_ALIAS, None)
    if not stack:
        # The master's own wrapper (made now if this thread never used it), kept under an
        # alias of its own while ``default`` means the tenant.
        master = previous if previous is not None else connections.create_connection(DEFAULT_DB_ALIAS)
        setattr(local, MASTER_ALIAS, master)
        previous = master
    tenant = connections[alias]
    stack.append((alias, previous))
    setattr(local, DEFAULT_DB_ALIAS, tenant)
    try:
        yield tenant
    finally:
        stack.pop()
        setattr(local, DEFAULT_DB_ALIAS, previous)
        if not stack:
            delattr(local, MASTER_ALIAS)
        _forget_cached_content_types(alias)


class PerTenantCache(dict):  # type: ignore[type-arg]
    """ContentType's cache (``{alias: {key: ContentType}}``) with ``default`` resolved per
    thread: a content type cached for one tenant under ``default`` is never served to the
    master or to another tenant (their ids differ)."""

    # Identity, not contents, so that every cache can be kept in a WeakSet.
    __hash__ = object.__hash__  # type: ignore[assignment]
    __eq__ = object.__eq__  # type: ignore[assignment]

    def __getitem__(self, alias: Any) -> Any:
        return super().__getitem__(resolve(alias))

    def __contains__(self, alias: object) -> bool:
        return super().__contains__(resolve(alias) if isinstance(alias, str) else alias)

    def get(self, alias: Any, default: Any = None) -> Any:
        return super().get(resolve(alias), default)

    def setdefault(self, alias: Any, default: Any = None) -> Any:
        return super().setdefault(resolve(alias), default)

    def __setitem__(self, alias: Any, value: Any) -> None:
        super().__setitem__(resolve(alias), value)


# Every ContentType cache of the process: the real model's manager and those of historical
# models rendered for migrations (each has its own, and rendered states are shared by tenants).
_caches: weakref.WeakSet[PerTenantCache] = weakref.WeakSet()


def _per_tenant(cache: dict[Any, Any]) -> PerTenantCache:
    wrapped = cache if isinstance(cache, PerTenantCache) else PerTenantCache(cache)
    _caches.add(wrapped)
    return wrapped


def install_content_type_cache() -> None:
    """Called from ``AppConfig.ready``: every ContentTypeManager, present and future (historical
    models get new ones), keeps its cache per tenant."""
    from django.apps import apps

    if not apps.is_installed("django.contrib.contenttypes"):
        return
    from django.contrib.contenttypes.models import ContentType, ContentTypeManager

    if getattr(ContentTypeManager, "_tenant_migrate_patched", False):
        return
    original = ContentTypeManager.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._cache = _per_tenant(self._cache)

    ContentTypeManager.__init__ = __init__  # type: ignore[method-assign]
    ContentTypeManager._tenant_migrate_patched = True  # type: ignore[attr-defined]
    ContentType.objects._cache = _per_tenant(ContentType.objects._cache)


def _forget_cached_content_types(alias: str) -> None:
    # A later run may roll the tenant back and forward: its content type ids can change.
    for cache in list(_caches):
        dict.pop(cache, alias, None)
