from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenant_migrate import _core
from tenant_migrate.exceptions import TenantConfigError, TenantMigrateError
from tenant_migrate.lifecycle import drop, probe, unregister
from tenant_migrate.lookup import list_tenants, lookup
from tenant_migrate.management.errors import Error, to_command_error
from tenant_migrate.names import printable
from tenant_migrate.storage import NOTHING_DONE, DropRefused, Storage, check_drop_allowed, storage_of


class Command(BaseCommand):
    help = (
        "Drops a tenant's SQLite file, PostgreSQL database or schema, then unregisters it. "
        "Asks for confirmation first, naming exactly what will be dropped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant-id", required=True, metavar="ID", help="The tenant to delete.")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation (for scripts).",
        )
        parser.add_argument(
            "--keep-data",
            action="store_true",
            help="Only unregister the tenant: its database, schema or file is kept.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant_id = options["tenant_id"]
        try:
            self.delete(tenant_id, options)
        except Exception as exc:
            if options.get("traceback") and not isinstance(exc, Error):
                raise
            if isinstance(exc, (Error, TenantMigrateError)):
                raise to_command_error(exc, tenant_id) from exc
            raise Error(
                f"Cannot delete tenant '{printable(tenant_id)}': {type(exc).__name__}: {exc}"
            ) from exc

    def delete(self, tenant_id: str, options: dict[str, Any]) -> None:
        record = lookup(tenant_id)
        tenant_id = record.tenant_id
        keep = options["keep_data"]
        storage: Storage | None
        try:
            storage = storage_of(record)
        except TenantConfigError as err:
            # A row naming storage no tenant may have (the master database, a reserved name,
            # another tenant's): refused as every command refuses it; it can still be unregistered.
            if not keep:
                raise DropRefused(f"{err} {NOTHING_DONE}") from None
            storage = None
        exists = False
        if storage is not None and not keep:
            check_drop_allowed(record, storage, list_tenants())
            exists = probe(storage, tenant_id)

        if options["interactive"]:
            self.confirm(tenant_id, storage, keep, exists)

        verbosity = options["verbosity"]
        dropped = False
        if storage is not None and not keep:
            if exists:
                try:
                    dropped = drop(storage, tenant_id, self.stdout.write)  # False: it went away meanwhile
                except _core.LockBusy:
                    raise Error(
                        f"A migration of tenant '{tenant_id}' is running: nothing was dropped or "
                        "unregistered (try again when it has finished)."
                    ) from None
            if verbosity >= 1:
                self.stdout.write(
                    f"Dropped the {storage.describe()}."
                    if dropped
                    else self.style.WARNING(f"The {storage.describe()} does not exist: nothing to drop.")
                )
        # Only now, the drop having succeeded: a failed drop leaves the tenant registered, so
        # running the command again finishes the job.
        try:
            unregistered = unregister(tenant_id)
        except Exception as exc:
            done = f"Dropped the {storage.describe()}, but" if dropped and storage is not None else "But"
            raise Error(
                f"{done} tenant '{tenant_id}' could not be unregistered ({type(exc).__name__}: {exc}); "
                "run deletetenant again to unregister it."
            ) from exc
        if not unregistered:
            raise Error(f"Tenant '{tenant_id}' was unregistered meanwhile by someone else.")
        if verbosity >= 1:
            kept = f"; its {storage.describe()} was kept" if keep and storage is not None else ""
            self.stdout.write(self.style.SUCCESS(f"Tenant '{tenant_id}' unregistered{kept}."))

    def confirm(self, tenant_id: str, storage: Storage | None, keep: bool, exists: bool) -> None:
        if not sys.stdin.isatty():
            raise Error("deletetenant needs confirmation: run it on a terminal or pass --no-input.")
        if keep:
            kept = f" and keep its {storage.describe()}" if storage is not None else ""
            question = f"This will unregister tenant '{tenant_id}'{kept}."
        elif storage is not None and exists:
            question = f"This will permanently {storage.drop_phrase()} and unregister tenant '{tenant_id}'."
        else:
            assert storage is not None
            what = storage.describe()
            question = f"The {what} does not exist. This will unregister tenant '{tenant_id}'."
        try:
            answer = input(f"{printable(question)} Type 'yes' to continue: ")
        except EOFError:
            answer = ""
        if answer.strip() != "yes":
            raise Error(
                f"Deletion cancelled: nothing was dropped and tenant '{tenant_id}' is still registered."
            )
