"""Tenants as database aliases: ``manage.py showmigrations --database=acme``,
``Model.objects.using("acme")`` and ``connections["acme"]``.

Django builds ``--database`` choices from ``connections`` when a command's parser is made, just
after ``django.setup()``. Registering every tenant there would cost a registry read per start-up
(and fail before the registry table exists); instead, the one alias a command line names is
resolved at start-up, and only when it is not already a ``DATABASES`` entry. A start-up without
``--database=<tenant>`` pays nothing, whatever the number of tenants.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.signals import request_finished
from django.db import connections

from . import _core
from .connections import register_alias, tenant_aliases, tenant_settings


def tenant_alias(tenant_id: str) -> str:
    """Register the tenant's alias (same name as its tenant id) and return it."""
    from .runner import lookup

    record = lookup(tenant_id)
    settings_dict, schema = tenant_settings(record)
    register_alias(record.tenant_id, settings_dict, schema)
    return record.tenant_id


@contextmanager
def tenant_connection(tenant_id: str) -> Iterator[Any]:
    """``with tenant_connection("acme") as conn:`` a Django connection to that tenant only,
    closed afterwards."""
    alias = tenant_alias(tenant_id)
    try:
        yield connections[alias]
    finally:
        connections[alias].close()


class TenantAwareSettings(dict):  # type: ignore[type-arg]
    """``connections.settings`` that also knows tenants, looked up when first named.

    ``connections["acme"]`` and ``Model.objects.using("acme")`` resolve a tenant the first
    time they name it. Iteration (the test runner, ``check``, ``close_all``, Django's per-test
    connection guards) lists only ``DATABASES`` and a tenant named by ``--database`` on the
    command line, so code that walks every connection never meets tenants it did not ask for;
    their connections are closed at the end of each request by ``close_tenant_connections``.
    """

    def __init__(self, base: dict[str, Any]) -> None:
        super().__init__(base)
        self.listed = set(base)

    def __iter__(self) -> Iterator[str]:
        return (alias for alias in list(dict.__iter__(self)) if alias in self.listed)

    def __contains__(self, alias: object) -> bool:
        if dict.__contains__(self, alias):
            return True
        if not isinstance(alias, str) or not alias:
            return False
        try:
            tenant_alias(alias)
        except (_core.TenantMigrateError, ValueError):
            return False
        return dict.__contains__(self, alias)

    def __missing__(self, alias: str) -> Any:
        if alias in self:
            return dict.__getitem__(self, alias)
        raise KeyError(alias)


def install() -> None:
    """Called from ``AppConfig.ready``."""
    if not isinstance(connections.settings, TenantAwareSettings):
        connections.__dict__["settings"] = TenantAwareSettings(connections.settings)
        request_finished.connect(close_tenant_connections, dispatch_uid="tenant_migrate_close")


def close_tenant_connections(**kwargs: Any) -> None:
    """Django's ``close_old_connections`` for the tenant aliases this thread used."""
    for alias in tenant_aliases():
        if hasattr(connections._connections, alias):
            connections[alias].close_if_unusable_or_obsolete()


def database_options(argv: Sequence[str]) -> list[str]:
    """Every ``--database`` value on the command line (``check`` takes several)."""
    found = []
    for index, arg in enumerate(argv):
        if arg.startswith("--database="):
            found.append(arg.split("=", 1)[1])
        elif arg == "--database" and index + 1 < len(argv):
            found.append(argv[index + 1])
    return found


def register_from_argv(argv: Sequence[str]) -> None:
    """Called from ``AppConfig.ready``: make ``--database=<tenant id>`` a valid choice."""
    for alias in database_options(argv):
        if not alias or alias in settings.DATABASES:
            continue
        install()
        try:
            tenant_alias(alias)
        except (_core.TenantMigrateError, ValueError):
            # Not a tenant (or no registry yet): Django reports the invalid choice itself.
            continue
        connections.settings.listed.add(alias)
