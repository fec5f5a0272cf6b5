"""Listing and deleting tenants: where each tenant's data lives, whether a tenant's database,
schema or file may be dropped, and dropping it (provisioning.py in reverse).

Dropping keeps the isolation guarantees migrations have: only what the registry row names is
dropped, and only when nothing else can be its owner. A system schema or database, a database
of ``DATABASES`` (the master, the shared database of schema tenants), the tenant template's,
or storage another registry row names too is refused before anything is asked or dropped; so
is a schema that objects of other schemas depend on (``DROP SCHEMA ... CASCADE`` would reach
into them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from . import _core, conf
from .connections import tenant_settings
from .exceptions import TenantConfigError
from .names import printable, quote_ident
from .params import rust_params, vendor_of
from .provisioning import ProvisioningConnectionError, check_pg_identifier
from .registry import get_tenant_model, id_filter

# PostgreSQL's own schemas and databases: never a tenant's, whatever a registry row says.
SYSTEM_SCHEMAS = ("public", "information_schema")
SYSTEM_DATABASES = ("postgres", "template0", "template1")
# The database psycopg connects to in order to drop a tenant's database (as provisioning.py).
MAINTENANCE_DATABASE = "postgres"
# SQLite keeps these beside a database file while it is in use (and the run lock's).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal", ".migrate-lock")
# How long deletetenant waits for a migration of the tenant to finish (its run lock).
LOCK_WAIT = 10.0


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


# Refusals.


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
        if name in SYSTEM_SCHEMAS or name.startswith("pg_"):
            return "it is a PostgreSQL system schema"
        return None
    name = storage.database.lower()
    if name in SYSTEM_DATABASES or name in SYSTEM_SCHEMAS or name.startswith("pg_"):
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


# Existence, and what else a schema's objects hold up.


def _pg_params(storage: Storage) -> dict[str, Any]:
    s = storage.settings_dict
    return {
        "host": s.get("HOST") or None,
        "port": s.get("PORT") or None,
        "user": s.get("USER") or None,
        "password": s.get("PASSWORD") or None,
        "autocommit": True,
    }


def _connect(storage: Storage, dbname: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(dbname=dbname, **_pg_params(storage))
    except psycopg.OperationalError as err:
        raise ProvisioningConnectionError(str(err).strip()) from None


# Objects of other schemas that depend on objects of this one: DROP SCHEMA ... CASCADE would
# drop them (a foreign key, a view, a column default), so the drop is refused. An object's
# schema is read from its own catalog, or from the table it belongs to.
OUTSIDE_DEPENDENTS = """
WITH target AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s),
inside (classid, objid) AS (
    SELECT 'pg_catalog.pg_namespace'::regclass, oid FROM target
    UNION ALL SELECT 'pg_catalog.pg_class'::regclass, oid FROM pg_catalog.pg_class
        WHERE relnamespace = (SELECT oid FROM target)
    UNION ALL SELECT 'pg_catalog.pg_type'::regclass, oid FROM pg_catalog.pg_type
        WHERE typnamespace = (SELECT oid FROM target)
    UNION ALL SELECT 'pg_catalog.pg_proc'::regclass, oid FROM pg_catalog.pg_proc
        WHERE pronamespace = (SELECT oid FROM target)
    UNION ALL SELECT 'pg_catalog.pg_constraint'::regclass, oid FROM pg_catalog.pg_constraint
        WHERE connamespace = (SELECT oid FROM target)
    UNION ALL SELECT 'pg_catalog.pg_collation'::regclass, oid FROM pg_catalog.pg_collation
        WHERE collnamespace = (SELECT oid FROM target)
    UNION ALL SELECT 'pg_catalog.pg_operator'::regclass, oid FROM pg_catalog.pg_operator
        WHERE oprnamespace = (SELECT oid FROM target)
),
dependents AS (
    SELECT DISTINCT d.classid, d.objid,
        CASE d.classid
            WHEN 'pg_catalog.pg_class'::regclass THEN
                (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = d.objid)
            WHEN 'pg_catalog.pg_type'::regclass THEN
                (SELECT typnamespace FROM pg_catalog.pg_type WHERE oid = d.objid)
            WHEN 'pg_catalog.pg_proc'::regclass THEN
                (SELECT pronamespace FROM pg_catalog.pg_proc WHERE oid = d.objid)
            WHEN 'pg_catalog.pg_constraint'::regclass THEN
                (SELECT connamespace FROM pg_catalog.pg_constraint WHERE oid = d.objid)
            WHEN 'pg_catalog.pg_collation'::regclass THEN
                (SELECT collnamespace FROM pg_catalog.pg_collation WHERE oid = d.objid)
            WHEN 'pg_catalog.pg_operator'::regclass THEN
                (SELECT oprnamespace FROM pg_catalog.pg_operator WHERE oid = d.objid)
            WHEN 'pg_catalog.pg_attrdef'::regclass THEN
                (SELECT c.relnamespace FROM pg_catalog.pg_attrdef a
                 JOIN pg_catalog.pg_class c ON c.oid = a.adrelid WHERE a.oid = d.objid)
            WHEN 'pg_catalog.pg_rewrite'::regclass THEN
                (SELECT c.relnamespace FROM pg_catalog.pg_rewrite r
                 JOIN pg_catalog.pg_class c ON c.oid = r.ev_class WHERE r.oid = d.objid)
            WHEN 'pg_catalog.pg_trigger'::regclass THEN
                (SELECT c.relnamespace FROM pg_catalog.pg_trigger t
                 JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid WHERE t.oid = d.objid)
            WHEN 'pg_catalog.pg_policy'::regclass THEN
                (SELECT c.relnamespace FROM pg_catalog.pg_policy p
                 JOIN pg_catalog.pg_class c ON c.oid = p.polrelid WHERE p.oid = d.objid)
        END AS namespace
    FROM pg_catalog.pg_depend d
    JOIN inside i ON d.refclassid = i.classid AND d.refobjid = i.objid
    WHERE d.deptype IN ('n', 'a')
)
SELECT pg_catalog.pg_describe_object(classid, objid, 0) FROM dependents
WHERE namespace IS DISTINCT FROM (SELECT oid FROM target)
  AND NOT (namespace IS NULL
           AND (pg_catalog.pg_identify_object(classid, objid, 0)).schema IS NOT DISTINCT FROM %(schema)s)
ORDER BY 1
"""


def _schema_exists(conn: Any, schema: str) -> bool:
    query = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s"
    return conn.execute(query, [schema]).fetchone() is not None


def _refuse_outside_dependents(conn: Any, storage: Storage, tenant_id: str) -> None:
    rows = [r[0] for r in conn.execute(OUTSIDE_DEPENDENTS, {"schema": storage.schema}).fetchall()]
    if rows:
        shown = "; ".join(printable(r) for r in rows[:3]) + ("; ..." if len(rows) > 3 else "")
        raise DropRefused(
            f"Refusing to drop the {storage.describe()} for tenant '{tenant_id}': {len(rows)} "
            f"object(s) outside it depend on it and DROP SCHEMA ... CASCADE would drop them "
            f"({shown}). {NOTHING_DONE}"
        )


def probe(storage: Storage, tenant_id: str) -> bool:
    """Whether the storage exists; for a schema, also refuses one other schemas depend on."""
    if storage.kind == "file":
        return Path(storage.database).exists()
    if storage.kind == "database":
        check_pg_identifier("database", storage.database)
        with _connect(storage, MAINTENANCE_DATABASE) as conn:
            query = "SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s"
            return conn.execute(query, [storage.database]).fetchone() is not None
    assert storage.schema is not None
    check_pg_identifier("schema", storage.schema)
    with _connect(storage, storage.database) as conn:
        if not _schema_exists(conn, storage.schema):
            return False
        _refuse_outside_dependents(conn, storage, tenant_id)
        return True


# Dropping.


def drop(storage: Storage, tenant_id: str, on_wait: Callable[[str], Any] | None = None) -> bool:
    """Drop the tenant's file, database or schema; False when it did not exist (anymore).

    The tenant's run lock is taken first: a migration of the tenant in progress is waited
    for (LOCK_WAIT seconds), never cut short by the drop; ``on_wait`` is told once, as a
    migration run waiting for the lock says it.
    """
    if storage.kind == "file":
        return _drop_file(storage, tenant_id, on_wait)
    if storage.kind == "database":
        return _drop_database(storage, tenant_id, on_wait)
    return _drop_schema(storage, tenant_id, on_wait)


def _run_lock(storage: Storage, tenant_id: str, on_wait: Callable[[str], Any] | None) -> Any:
    return _core.RunLock(rust_params(storage.settings_dict, storage.schema), tenant_id, LOCK_WAIT, on_wait)


def _drop_file(storage: Storage, tenant_id: str, on_wait: Callable[[str], Any] | None) -> bool:
    path = Path(storage.database)
    if not path.exists():
        return False
    lock = _run_lock(storage, tenant_id, on_wait)
    try:
        existed = path.exists()
        path.unlink(missing_ok=True)
        for suffix in SQLITE_SIDE_FILES[:-1]:
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    finally:
        lock.release()
    Path(f"{path}{SQLITE_SIDE_FILES[-1]}").unlink(missing_ok=True)
    return existed


def _drop_database(storage: Storage, tenant_id: str, on_wait: Callable[[str], Any] | None) -> bool:
    import psycopg

    check_pg_identifier("database", storage.database)
    # The lock is held on a connection to the very database being dropped, which FORCE would
    # end: taken to wait for a running migration, released just before the drop.
    try:
        _run_lock(storage, tenant_id, on_wait).release()
    except _core.ConnectionFailed:
        pass  # the database is gone (or unreachable: the drop below says which)
    with (
        _connect(storage, MAINTENANCE_DATABASE) as conn,
        _drop_errors(storage, psycopg.errors.InvalidCatalogName) as gone,
    ):
        conn.execute(f"DROP DATABASE {quote_ident(storage.database)} WITH (FORCE)")
    return not gone


def _drop_schema(storage: Storage, tenant_id: str, on_wait: Callable[[str], Any] | None) -> bool:
    import psycopg

    assert storage.schema is not None
    check_pg_identifier("schema", storage.schema)
    lock = _run_lock(storage, tenant_id, on_wait)
    try:
        with _connect(storage, storage.database) as conn:
            with _drop_errors(storage, psycopg.errors.InvalidSchemaName) as gone, conn.transaction():
                if not _schema_exists(conn, storage.schema):
                    return False
                # Again inside the dropping transaction: nothing may have appeared since.
                _refuse_outside_dependents(conn, storage, tenant_id)
                conn.execute(f"DROP SCHEMA {quote_ident(storage.schema)} CASCADE")
    finally:
        lock.release()
    return not gone


class _Gone:
    """Whether what a drop was for turned out not to exist (set by ``_drop_errors``)."""

    def __init__(self) -> None:
        self.value = False

    def __bool__(self) -> bool:
        return self.value


@contextmanager
def _drop_errors(storage: Storage, missing: type[Exception]) -> Iterator[_Gone]:
    """A drop's errors as the user reads them; ``missing`` (the database or schema does not
    exist) is no error: the drop is done, and the value says so."""
    import psycopg

    gone = _Gone()
    try:
        yield gone
    except missing:
        gone.value = True
    except psycopg.errors.InsufficientPrivilege as err:
        raise TenantConfigError(f"Permission denied while dropping the {storage.describe()}: {err}") from None
    except psycopg.Error as err:
        raise TenantConfigError(f"Cannot drop the {storage.describe()}: {str(err).strip()}") from None


def unregister(tenant_id: str) -> bool:
    """Delete the registry row through the tenant model's default manager on the master (a
    swapped model's cascades included); False when it was already gone."""
    deleted, _ = get_tenant_model()._default_manager.using("default").filter(**id_filter(tenant_id)).delete()
    return bool(deleted)
