"""Deleting tenants: whether a tenant's database, schema or file exists, and dropping it
(provisioning.py in reverse); which storage may be dropped at all is ``storage.py``'s.

Dropping keeps the isolation guarantees migrations have: only what the registry row names is
dropped, and only when nothing else can be its owner. A system schema or database, a database
of ``DATABASES`` (the master, the shared database of schema tenants), the tenant template's,
or storage another registry row names too is refused before anything is asked or dropped; so
is a schema that objects of other schemas depend on (``DROP SCHEMA ... CASCADE`` would reach
into them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import _core
from .exceptions import TenantConfigError
from .names import printable, quote_ident
from .params import psycopg_params, rust_params
from .provisioning import ProvisioningConnectionError, check_pg_identifier
from .registry import get_tenant_model, id_filter
from .storage import NOTHING_DONE, DropRefused, Storage

# The database psycopg connects to in order to drop a tenant's database (as provisioning.py).
MAINTENANCE_DATABASE = "postgres"
# SQLite keeps these beside a database file while it is in use (and the run lock's).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal", ".migrate-lock")
# How long deletetenant waits for a migration of the tenant to finish (its run lock).
LOCK_WAIT = 10.0


def _connect(storage: Storage, dbname: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(dbname=dbname, autocommit=True, **psycopg_params(storage.settings_dict))
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
