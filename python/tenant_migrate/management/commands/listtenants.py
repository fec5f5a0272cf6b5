from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenant_migrate.exceptions import TenantMigrateError
from tenant_migrate.listing import state_text, tenant_json, tenant_listing
from tenant_migrate.management.errors import Error, to_command_error
from tenant_migrate.names import printable
from tenant_migrate.status import Standing, dump_json
from tenant_migrate.storage import base_storage


class Command(BaseCommand):
    help = (
        "Lists the registered tenants: id, name, isolation, where the data lives, and whether "
        "its database, schema or file exists and is up to date."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print a JSON list, one object per tenant.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.show(options)
        except Exception as exc:
            if options.get("traceback") and not isinstance(exc, Error):
                raise
            if isinstance(exc, (Error, TenantMigrateError)):
                raise to_command_error(exc) from exc
            raise Error(f"Cannot list tenants: {type(exc).__name__}: {exc}") from exc

    def show(self, options: dict[str, Any]) -> None:
        records, standings, storages = tenant_listing()
        if options["json"]:
            self.stdout.write(
                dump_json([tenant_json(*row) for row in zip(records, standings, storages, strict=True)])
            )
            return
        if not records:
            self.stdout.write("No tenants.")
            return
        base = base_storage()
        rows = [("tenant", "name", "isolation", "location", "state")]
        for record, standing, storage in zip(records, standings, storages, strict=True):
            rows.append(
                (
                    printable(record.tenant_id),
                    printable(record.name),
                    printable(record.isolation),
                    storage.location(base) if storage is not None else "-",
                    state_text(standing),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for index, row in enumerate(rows):
            line = "  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row[:4]))
            state = row[4] if index == 0 else self.styled(standings[index - 1], row[4])
            self.stdout.write(f"{line}  {state}")

    def styled(self, standing: Standing, text: str) -> str:
        if standing.state == "up-to-date":
            return self.style.SUCCESS(text)
        if standing.state == "pending":
            return self.style.WARNING(text)
        return self.style.ERROR(text)
