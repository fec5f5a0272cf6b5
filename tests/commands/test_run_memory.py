"""What a long ``migratealltenants`` keeps while it runs: nothing per tenant it is done with.

A worker thread runs one tenant after another through Django; each tenant's Django wrapper (with,
under ``DEBUG`` as in the example project, the queries Django logs on it) must go when the tenant
is done, or memory grows with the number of tenants. Counted from inside the run, by a data
migration: the tenant wrappers still alive when it reaches each tenant.
"""

from __future__ import annotations

import sqlite3

from helpers.project import Project

TENANTS = [f"t{i}" for i in range(8)]

# Records, in the tenant being migrated, how many Django wrappers of tenant aliases are alive.
COUNTS_WRAPPERS = """
import gc

from django.db import connection, migrations
from django.db.backends.base.base import BaseDatabaseWrapper


def forwards(apps, schema_editor):
    gc.collect()
    alive = {
        id(o) for o in gc.get_objects()
        if isinstance(o, BaseDatabaseWrapper) and o.alias.startswith("t") and o.alias[1:].isdigit()
    }
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE products_wrappers (alive integer)")
        cursor.execute("INSERT INTO products_wrappers VALUES (%s)", [len(alive)])


class Migration(migrations.Migration):
    dependencies = [("products", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
"""


def test_a_worker_keeps_no_django_connection_of_tenants_it_is_done_with(project: Project) -> None:
    for tenant in TENANTS:
        project.create_tenant(tenant)
    project.add_migration("products", "0002_counts_wrappers", COUNTS_WRAPPERS)
    project.manage("migratealltenants", "--jobs=1")
    seen = []
    for tenant in TENANTS:
        with sqlite3.connect(project.tenant_db(tenant)) as db:
            seen.append(db.execute("SELECT alive FROM products_wrappers").fetchone()[0])
    # The tenant being migrated has its wrapper; each earlier one kept would add one.
    assert seen == [1] * len(TENANTS), seen
