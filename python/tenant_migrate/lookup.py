"""Registry rows of tenants: read by Rust from the master database, or through Django when
the master is an in-memory SQLite database (a test run)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connections

from . import _core
from .context import master_alias
from .names import check_tenant_id
from .params import master_params, reading_master
from .registry import get_tenant_model, id_filter, ordering, record_values, registry_json


@dataclass(frozen=True)
class RegistryRow:
    """A registry row read through Django, shaped like ``_core.TenantRecord``."""

    tenant_id: str
    name: str
    isolation: str
    database_name: str
    schema_name: str
    connection: str


# A tenant's registry row, as the core reads it or as Django does.
Record = _core.TenantRecord | RegistryRow


def _master_in_memory() -> bool:
    master = connections[master_alias()]
    return master.vendor == "sqlite" and master.is_in_memory_db()


def _row(tenant: Any) -> RegistryRow:
    return RegistryRow(*record_values(tenant))


def lookup(tenant_id: str) -> Record:
    """The registry row, read by Rust from the master database; through Django only when the
    master is an in-memory SQLite database (a test run), which another connection cannot see."""
    check_tenant_id(tenant_id)
    if _master_in_memory():
        tenants = get_tenant_model()._default_manager.using(master_alias())
        tenant = tenants.filter(**id_filter(tenant_id)).first()
        if tenant is None:
            raise _core.tenant_not_found(tenant_id)
        return _row(tenant)
    with reading_master():
        return _core.lookup_tenant(master_params(), registry_json(), tenant_id)


def list_tenants() -> list[Any]:
    if _master_in_memory():
        tenants = get_tenant_model()._default_manager.using(master_alias())
        return [_row(t) for t in tenants.order_by(ordering())]
    with reading_master():
        return _core.list_tenants(master_params(), registry_json())
