"""What ``listtenants`` shows of each registered tenant: where its data lives, its state read as
``showtenantmigrations --summary`` reads it, in words or as one JSON object."""

from __future__ import annotations

from typing import Any

from .exceptions import TenantConfigError
from .graph import graph_json
from .lookup import list_tenants
from .names import printable
from .status import Standing, as_json, read_standings
from .storage import Storage, storage_of


def tenant_listing() -> tuple[list[Any], list[Standing], list[Storage | None]]:
    """Every registered tenant, its standing and its storage (None: the row names none a
    tenant may have; its standing says why)."""
    records = list_tenants()
    # What showtenantmigrations --summary reads: every history, concurrently, in Rust.
    standings = read_standings(records, graph_json()) if records else []
    storages: list[Storage | None] = []
    for record in records:
        try:
            storages.append(storage_of(record))
        except TenantConfigError:
            storages.append(None)  # its standing says why
    return records, standings, storages


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
