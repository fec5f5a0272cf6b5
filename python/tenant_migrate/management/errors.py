"""The commands' error texts, produced in one place for every command: the one place where the
package's errors become Django's ``CommandError``."""

from __future__ import annotations

from django.core.management.base import CommandError

from .. import _core
from ..exceptions import MasterUnreachable, TenantMigrateError
from ..names import unknown_tenant
from ..params import master_file_missing, master_missing_text
from ..provisioning import ProvisioningConnectionError


class Error(CommandError):
    """Printed by Django as ``Error: <message>`` (the class name), exit status 1."""


def to_command_error(exc: BaseException, tenant_id: str | None = None) -> Error:
    """Turn anything raised during a tenant run into one clear message."""
    if isinstance(exc, Error):
        return exc
    if isinstance(exc, MasterUnreachable):
        return Error(str(exc))
    if master_file_missing() and (
        isinstance(exc, _core.ConnectionFailed) or "unable to open database file" in str(exc)
    ):
        # A SQLite master that does not exist, as the core or Django's SQLite backend meets it.
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
        return Error(str(exc.args[0]))
    if isinstance(exc, _core.InconsistentHistory):
        where = f" for tenant '{tenant_id}'" if tenant_id else ""
        return Error(f"Inconsistent migration history{where}: {exc}")
    if isinstance(exc, TenantMigrateError):
        return Error(str(exc))
    # Raised by Django while it applied a migration (RunPython, IrreversibleError, a database
    # error): say which tenant, keep Django's own words.
    where = f" for tenant '{tenant_id}'" if tenant_id else ""
    return Error(f"Migration failed{where}: {type(exc).__name__}: {exc}")
