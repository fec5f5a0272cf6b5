"""Tenants as database aliases: ``manage.py showmigrations --database=acme``,
``Model.objects.using("acme")`` and ``connections["acme"]``.

Django builds ``--database`` choices from ``connections`` when a command's parser is made, just
after ``django.setup()``. Registering every tenant there would cost a registry read per start-up
(and fail before the registry table exists); instead, the one alias a command line names is
resolved at start-up, and only when it is not already a ``DATABASES`` entry. A start-up without
``--database=<tenant>`` pays nothing, whatever the number of tenants.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.core.signals import request_finished
from django.db import DEFAULT_DB_ALIAS, connections

from . import _core
from .connections import register_alias, tenant_aliases, tenant_settings
from .exceptions import MasterUnreachable, TenantConfigError
from .names import unknown_tenant
from .params import master_file_missing
from .registry import registry_missing_text


def tenant_alias(tenant_id: str) -> str:
    """Register the tenant's alias (same name as its tenant id) and return it."""
    from .lookup import lookup

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
        except (_core.TenantMigrateError, ValueError, MasterUnreachable):
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
    """Called from ``AppConfig.ready``: make ``--database=<tenant id>`` a valid choice.

    A name that is neither a ``DATABASES`` alias nor a tenant ends a ``manage.py`` command
    with one line saying so (exit status 1), the tenant-id messages of the other commands
    included, instead of argparse's usage and ``invalid choice`` (or a traceback)."""
    for alias in database_options(argv):
        if not alias or alias in settings.DATABASES:
            continue
        install()
        try:
            tenant_alias(alias)
        except (_core.TenantMigrateError, ValueError, MasterUnreachable) as exc:
            problem = unknown_alias_message(alias, exc)
            if problem is not None and takes_database_alias(argv):
                sys.stderr.write(f"Error: {problem}\n")
                sys.exit(1)
            # Not from manage.py (or not Django's --database): Django reports it itself.
            continue
        connections.settings.listed.add(alias)


def unknown_alias_message(alias: str, exc: BaseException) -> str | None:
    """One line for a ``--database`` name that reaches no database (None: leave it to Django)."""
    if isinstance(exc, _core.TenantNotFound):
        problem = unknown_tenant(alias)
        if isinstance(problem, _core.TenantNotFound):
            return f"No database alias or tenant is named {alias!r}."
        return str(problem)
    if isinstance(exc, TenantConfigError):
        return " ".join(str(exc).split())
    text = str(exc)
    if "Run 'python manage.py migrate' first." not in text and master_file_missing():
        text = registry_missing_text()
    if "Run 'python manage.py migrate' first." in text:
        # Before the master's migrate: no registry, so no tenant can be named yet.
        return f"No database alias is named {alias!r}, and there are no tenants yet: {text}"
    if isinstance(exc, (_core.TenantMigrateError, MasterUnreachable)):
        reason = " ".join(text.split())
        return f"No database alias is named {alias!r}, and the tenant registry cannot be read: {reason}"
    return None


def takes_database_alias(argv: Sequence[str]) -> bool:
    """Whether ``argv`` runs a management command (manage.py, django-admin, python -m django)
    whose ``--database`` is Django's alias option."""
    if len(argv) < 2 or os.path.basename(argv[0]) not in COMMAND_LINES:
        return False
    if os.path.basename(argv[0]) == "__main__.py" and os.path.basename(os.path.dirname(argv[0])) != "django":
        return False
    from django.core.management import get_commands, load_command_class

    name = argv[1]
    app = get_commands().get(name)
    if app is None:
        return False
    try:
        command = app if isinstance(app, BaseCommand) else load_command_class(app, name)
        parser = command.create_parser(os.path.basename(argv[0]), name)
    except Exception:
        return False
    for action in parser._actions:
        if "--database" in action.option_strings:
            return action.default == DEFAULT_DB_ALIAS
    return False


COMMAND_LINES = ("manage.py", "django-admin", "django-admin.py", "__main__.py")
