"""Where a tenant's data lives (a SQLite file, a PostgreSQL database, or a schema in one), and
whether it is the tenant's alone to drop: a system schema or database, a database of
``DATABASES`` (the master, the shared database of schema tenants), the tenant template's, or
storage another registry row names too is refused before anything is asked or dropped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from . import conf
from .connections import tenant_settings
from .exceptions import TenantConfigError
from .names import RESERVED_DATABASES, RESERVED_SCHEMAS, printable, quote_ident
from .params import vendor_of

NOTHING_DONE = "Nothing was dropped or unregistered (--keep-data only unregisters the tenant)."


class DropRefused(TenantConfigError):
    """The registry row names storage this tenant cannot own: nothing is dropped."""


@dataclass(frozen=True)
class Storage:
    """Where a tenant's data lives: a SQLite file, a PostgreSQL database, or a schema in one."""

    vendor: str
    # The SQLite file's path, or the PostgreSQL database (for a schema, the shared database).
    database: str
    schema: str | None
    settings_dict: dict[str, Any]

    @property
    def kind(self) -> str:
        if self.vendor == "sqlite":
            return "file"
        return "schema" if self.schema is not None else "database"

    @property
    def host(self) -> str | None:
        if self.vendor == "sqlite":
            return None
        return str(self.settings_dict.get("HOST") or "") or None

    @property
    def port(self) -> int | str | None:
        if self.vendor == "sqlite":
            return None
        port = str(self.settings_dict.get("PORT") or 5432)
        return int(port) if port.isdigit() else port

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}" if self.host else f"the local server (port {self.port})"

    def describe(self) -> str:
        """What it is, for the user: ``schema "public_acme" in database "shared" on host:5432``."""
        if self.kind == "file":
            return f"database file {printable(self.database)}"
        database = printable(quote_ident(self.database))
        if self.schema is None:
            return f"database {database} on {self.server}"
        return f"schema {printable(quote_ident(self.schema))} in database {database} on {self.server}"

    def drop_phrase(self) -> str:
        return f"delete the {self.describe()}" if self.kind == "file" else f"drop {self.describe()}"

    def location(self, base: Storage | None = None) -> str:
        """The short form listtenants prints; the server only when it is not the base's."""
        if self.kind == "file":
            return printable(self.database)
        text = printable(self.database if self.schema is None else f"{self.schema} in {self.database}")
        if base is not None and (self.host, self.port) != (base.host, base.port):
            text += f" on {self.server}"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.database if self.kind == "file" else None,
            "database": None if self.kind == "file" else self.database,
            "schema": self.schema,
            "host": self.host,
            "port": self.port,
        }


def storage_of(record: Any) -> Storage:
    """The storage a registry row names (TenantConfigError for a row that names none)."""
    settings_dict, schema = tenant_settings(record)
    return Storage(vendor_of(settings_dict), str(settings_dict["NAME"]), schema, settings_dict)


def base_storage() -> Storage | None:
    """The base database, to tell a tenant on another server apart in listings."""
    entry = settings.DATABASES.get(conf.base_alias()) or {}
    try:
        return Storage(vendor_of(entry), str(entry.get("NAME") or ""), None, dict(entry))
    except TenantConfigError:
        return None


def check_drop_allowed(record: Any, storage: Storage, others: Sequence[Any]) -> None:
    """Refuse (DropRefused) storage that is not this tenant's alone to drop."""
    what = f"the {storage.describe()} for tenant '{record.tenant_id}'"

    def refuse(reason: str) -> DropRefused:
        return DropRefused(f"Refusing to drop {what}: {reason}. {NOTHING_DONE}")

    for reason in (_system_reason(storage), _configured_reason(storage), _template_reason(storage)):
        if reason:
            raise refuse(reason)
    for other in others:
        if other.tenant_id == record.tenant_id:
            continue
        try:
            theirs = storage_of(other)
        except TenantConfigError:
            continue
        if _overlaps(storage, theirs):
            raise refuse(f"tenant '{printable(other.tenant_id)}' uses it too")


def _system_reason(storage: Storage) -> str | None:
    if storage.kind == "file":
        return None
    if storage.kind == "schema":
        assert storage.schema is not None
        name = storage.schema.lower()
        if name in RESERVED_SCHEMAS or name.startswith("pg_"):
            return "it is a PostgreSQL system schema"
        return None
    name = storage.database.lower()
    if name in RESERVED_DATABASES or name in RESERVED_SCHEMAS or name.startswith("pg_"):
        return "it is a PostgreSQL system database"
    return None


def _configured_reason(storage: Storage) -> str | None:
    """A database of DATABASES (the master, the shared database) is never a tenant's own."""
    if storage.kind == "schema":
        return None
    for alias, entry in settings.DATABASES.items():
        try:
            vendor = vendor_of(entry)
        except TenantConfigError:
            continue
        if vendor != storage.vendor or not entry.get("NAME"):
            continue
        if _same_database(storage, vendor, str(entry["NAME"])):
            if alias == "default":
                role = "the master database"
            elif alias == conf.base_alias():
                role = "the shared database of schema tenants"
            else:
                role = "a configured database"
            return f"it is {role} (DATABASES['{printable(alias)}'])"
    return None


def _template_reason(storage: Storage) -> str | None:
    from .templates import template_record

    try:
        template = storage_of(template_record(storage.kind if storage.kind == "schema" else "database"))
    except TenantConfigError:
        return None
    if _overlaps(storage, template):
        return "it is the tenant template's (TENANT_MIGRATE['TEMPLATE'])"
    return None


def _same_database(storage: Storage, vendor: str, name: str) -> bool:
    if vendor == "sqlite":
        return Path(storage.database).resolve() == Path(name).resolve()
    # Compared by name whatever the server: a host can be spelt several ways, and a refusal
    # costs less than a dropped database.
    return storage.database == name


def _overlaps(mine: Storage, theirs: Storage) -> bool:
    """Whether dropping ``mine`` would drop (some of) ``theirs``."""
    if mine.vendor != theirs.vendor:
        return False
    if mine.kind == "schema":
        # Names compared whatever the server or database, as databases are.
        return theirs.kind == "schema" and theirs.schema == mine.schema
    return _same_database(mine, mine.vendor, theirs.database)
