"""The spec's error texts, produced in one place for every command: the one place where the
package's errors become Django's ``CommandError``."""

from __future__ import annotations

import re

from django.core.management.base import CommandError

from .. import _core
from ..connections import master_file_missing, master_missing_text, unknown_tenant
from ..exceptions import MasterUnreachable, TenantMigrateError
from ..output import migration_label
from ..provisioning import ProvisioningConnectionError


class Error(CommandError):
    """Printed by Django as ``Error: <message>`` (the class name), exit status 1."""


def to_command_error(exc: BaseException, tenant_id: str | None = None) -> Error:
    """Turn anything raised during a tenant run into one clear message."""
    if isinstance(exc, Error):
        return exc
    if isinstance(exc, MasterUnreachable):
        return Error(str(exc))
    if master_file_missing():
        # Whatever failed, it failed for want of the master (Django: "unable to open database file").
        return Error(master_missing_text())
    if isinstance(exc, _core.TenantNotFound) and tenant_id is not None:
        # An id createtenant would refuse is called invalid, as createtenant calls it.
        return Error(str(unknown_tenant(tenant_id)))
    if isinstance(exc, (_core.ConnectionFailed, ProvisioningConnectionError)):
        # The core's text names the server it tried; psycopg's (provisioning) does too.
        return Error(f"Cannot connect to tenant database\n{exc}")
    if isinstance(exc, _core.PermissionDenied):
        return Error(f"User does not have permission to create tables\n{exc}")
    if isinstance(exc, _core.ConflictingMigrations):
        detail = str(exc).removeprefix("Conflicting migrations detected; ")
        return Error(f"Conflicting migrations detected\n{detail[:1].upper()}{detail[1:]}")
    if isinstance(exc, _core.MigrationFailed):
        return Error(migration_failed_text(str(exc.args[0])))
    if isinstance(exc, _core.InconsistentHistory):
        where = f" for tenant '{tenant_id}'" if tenant_id else ""
        return Error(f"Inconsistent migration history{where}: {exc}")
    if isinstance(exc, TenantMigrateError):
        return Error(str(exc))
    # Raised by Django while it applied a migration (RunPython, IrreversibleError, a database
    # error): say which tenant, keep Django's own words.
    where = f" for tenant '{tenant_id}'" if tenant_id else ""
    return Error(f"Migration failed{where}: {type(exc).__name__}: {exc}")


FAILED_MIGRATION = re.compile(r"^Migration (\w+)\.(\w+) failed for tenant ", re.MULTILINE)


def migration_failed_text(text: str) -> str:
    """A failed migration as human output names it (``app/name.py``, as ``--plan`` and the
    spec do), and no ``Statement:`` line when there was no statement (a Python error)."""
    text = FAILED_MIGRATION.sub(lambda m: f"Migration {migration_label(m[1], m[2])} failed for tenant ", text)
    return "\n".join(line for line in text.split("\n") if line.strip() != "Statement:")
