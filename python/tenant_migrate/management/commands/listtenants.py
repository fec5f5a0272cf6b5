from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenant_migrate import _core
from tenant_migrate.connections import MasterUnreachable, TenantConfigError, printable
from tenant_migrate.errors import Error, to_command_error
from tenant_migrate.graph import GraphError, graph_json
from tenant_migrate.lifecycle import Storage, base_storage, storage_of
from tenant_migrate.runner import list_tenants
from tenant_migrate.status import Standing, as_json, dump_json, read_standings


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
            if isinstance(
                exc, (Error, _core.TenantMigrateError, TenantConfigError, GraphError, MasterUnreachable)
            ):
                raise to_command_error(exc) from exc
            raise Error(f"Cannot list tenants: {type(exc).__name__}: {exc}") from exc

    def show(self, options: dict[str, Any]) -> None:
        records = list_tenants()
        # What showtenantmigrations --summary reads: every history, concurrently, in Rust.
        standings = read_standings(records, graph_json()) if records else []
        storages: list[Storage | None] = []
        for record in records:
            try:
                storages.append(storage_of(record))
            except TenantConfigError:
                storages.append(None)  # its standing says why
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


def state_text(standing: Standing) -> str:
    if standing.state == "up-to-date":
        return "up to date"
    if standing.state == "pending":
        count = len(standing.plan)
        return f"{count} pending migration{'' if count == 1 else 's'}"
    detail = standing.error.splitlines()[0] if standing.error else ""
    return f"{standing.state} ({printable(detail)})" if detail else standing.state


def tenant_json(record: Any, standing: Standing, storage: Storage | None) -> dict[str, Any]:
    data = as_json(standing, with_apps=False)
    where = (
        storage.as_json()
        if storage is not None
        else dict.fromkeys(("file", "database", "schema", "host", "port"))
    )
    return {
        "tenant_id": data.pop("tenant_id"),
        "name": data.pop("name"),
        "isolation": record.isolation,
        **where,
        "exists": exists(standing),
        **data,
    }


def exists(standing: Standing) -> bool | None:
    """None when it could not be told (the server did not answer, the row names nothing)."""
    if standing.state == "missing":
        return False
    if standing.state == "error":
        # A history migrate would refuse was still read: the storage is there.
        return True if standing.apps else None
    return True
