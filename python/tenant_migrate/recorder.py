"""Django's ``MigrationRecorder.has_table`` on a tenant, without listing the whole catalog.

Django answers "does ``django_migrations`` exist?" by listing every table visible to the
connection (``introspection.table_names``). On PostgreSQL that query reads all of
``pg_class``, which with schema isolation holds every tenant's tables: with 1,000 schemas of a
real project, about 115,000 rows scanned (in parallel) to find one table, once per tenant for
the migration loader and again for each migration Django records. The cost per tenant grows with
the number of tenants, and a deploy over all of them grows with its square.

On a tenant's connection the same question is asked by name, which the catalog's
(relname, relnamespace) index answers: in the tenant's schema for schema isolation (the
connection's own search path for a database of its own). The answer is the same as Django's:
a table, partitioned table, view, materialized view or foreign table of that name, visible to the
connection. Other connections (the master, SQLite) keep Django's own method.
"""

from __future__ import annotations

from django.db.migrations.recorder import MigrationRecorder

from .connections import is_tenant_alias, tenant_schema
from .names import quote_ident

# The relation kinds Django's PostgreSQL introspection lists as tables and views.
_LISTED_KINDS = ("r", "p", "v", "m", "f")
_BY_NAME_SQL = "SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(%s)"

_django_has_table = MigrationRecorder.has_table


def _has_table(self: MigrationRecorder) -> bool:
    connection = self.connection
    if connection.vendor != "postgresql" or not is_tenant_alias(connection.alias):
        return _django_has_table(self)
    if getattr(self, "_has_table", False):
        return True  # Django 5.1+ remembers a table it found; so do we
    table = quote_ident(self.Migration._meta.db_table)
    schema = tenant_schema(connection.alias)
    name = f"{quote_ident(schema)}.{table}" if schema else table
    with connection.cursor() as cursor:
        cursor.execute(_BY_NAME_SQL, [name])
        row = cursor.fetchone()
    found = row is not None and row[0] in _LISTED_KINDS
    self._has_table = found
    return found


def install() -> None:
    MigrationRecorder.has_table = _has_table  # type: ignore[method-assign]
