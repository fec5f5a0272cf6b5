"""What a long ``migratealltenants`` keeps while it runs: nothing per tenant it is done with.

A worker thread runs one tenant after another through Django; each tenant's Django wrapper (with,
under ``DEBUG`` as in the example project, the queries Django logs on it) must go when the tenant
is done, or memory grows with the number of tenants. Nor does it keep, past the tenants running
alongside, the project states a migration only the first tenants apply through Django was
applied on. Counted from inside the run, by a data migration: what is still alive when it
reaches each tenant.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import weakref

from helpers.project import Project
from tenant_migrate.memory import Collector

TENANTS = [f"t{i}" for i in range(8)]

# A data migration recording, in the tenant being migrated, how many objects alive in the process
# (after a full collection) match ``{alive}``, in table ``{table}``: what a run keeps shows up here.
COUNTS_ALIVE = """
import gc

from django.db import connection, migrations
from django.db.backends.base.base import BaseDatabaseWrapper


def forwards(apps, schema_editor):
    gc.collect()
    alive = {{id(o) for o in gc.get_objects() if {alive}}}
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE {table} (alive integer)")
        cursor.execute("INSERT INTO {table} VALUES (%s)", [len(alive)])


class Migration(migrations.Migration):
    dependencies = [("products", "{previous}")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
"""

# Django wrappers of tenant aliases.
WRAPPERS = 'isinstance(o, BaseDatabaseWrapper) and o.alias.startswith("t") and o.alias[1:].isdigit()'


def alive_in_each(project: Project, table: str = "products_alive") -> list[int]:
    seen = []
    for tenant in TENANTS:
        with sqlite3.connect(project.tenant_db(tenant)) as db:
            seen.append(db.execute(f"SELECT alive FROM {table}").fetchone()[0])
    return seen


def test_a_worker_keeps_no_django_connection_of_tenants_it_is_done_with(project: Project) -> None:
    for tenant in TENANTS:
        project.create_tenant(tenant)
    project.add_migration(
        "products",
        "0002_counts",
        COUNTS_ALIVE.format(alive=WRAPPERS, previous="0001_initial", table="products_alive"),
    )
    project.manage("migratealltenants", "--jobs=1")
    seen = alive_in_each(project)
    # The tenant being migrated has its wrapper; each earlier one kept would add one.
    assert seen == [1] * len(TENANTS), seen


# Order-sensitive (each AlterField reads the column the AddField before it made): Django applies
# them on the first tenant, the others replay the SQL it ran. Between the operations of each
# the column is 10 long.
ORDER_SENSITIVE = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("products", "{previous}")]
    operations = [
        migrations.AddField("product", "{field}", models.CharField(max_length=10, null=True)),
        migrations.AlterField("product", "{field}", models.CharField(max_length=20, null=True)),
    ]
"""

# Rendered Product classes of the state between the operations of the migration adding
# ``field`` (in any registry).
BETWEEN = (
    'isinstance(o, type) and o.__name__ == "Product" and hasattr(o, "_meta")'
    ' and any(f.name == "{field}" and f.max_length == 10 for f in o._meta.local_fields)'
)


def test_states_of_a_migration_the_other_tenants_replay_are_not_kept(project: Project) -> None:
    """The states Django applied an order-sensitive migration on, on the first tenant, are of
    no use to the tenants replaying its SQL: kept for the run, on a project of many models
    they were most of its memory (hundreds of MB). Those of the last such migration are kept
    for a tenant running alongside (one job here: 0003's); 0002's are gone."""
    for tenant in TENANTS:
        project.create_tenant(tenant)
    project.add_migration(
        "products", "0002_code", ORDER_SENSITIVE.format(previous="0001_initial", field="code")
    )
    project.add_migration(
        "products", "0003_label", ORDER_SENSITIVE.format(previous="0002_code", field="label")
    )
    for name, previous, field in [
        ("0004_counts", "0003_label", "code"),
        ("0005_counts", "0004_counts", "label"),
    ]:
        alive = BETWEEN.format(field=field)
        counts = COUNTS_ALIVE.format(alive=alive, previous=previous, table=f"products_{field}_between")
        project.add_migration("products", name, counts)
    report = json.loads(project.manage("migratealltenants", "--jobs=1", "--json").stdout)
    assert report["summary"]["failed"] == 0, report
    # Django applied 0002 and 0003 on the first tenant only; 0004 and 0005 (Python) on each.
    assert report["summary"]["via_django"] == 2 * len(TENANTS) + 2, report["summary"]
    assert alive_in_each(project, "products_code_between") == [0] * len(TENANTS)
    # 0003's states stay for a tenant alongside, which would otherwise compute them again:
    # the classes counted there are theirs.
    assert all(alive >= 1 for alive in alive_in_each(project, "products_label_between"))


class Node:
    other: Node | None = None


def test_the_collector_frees_cycles_once_the_process_has_grown_by_its_step() -> None:
    """Cycles left by tenants are freed by a full collection, made when the measured size has
    grown by the step since the first tenant (or the last collection), and not before."""
    size = [100]
    collector = Collector(step=10, measure=lambda: size[0])
    left: list[weakref.ref[Node]] = []

    def leave_a_cycle() -> None:
        a, b = Node(), Node()
        a.other, b.other = b, a
        left.append(weakref.ref(a))

    def tenant_leaves_a_cycle(grows_by: int) -> None:
        leave_a_cycle()
        size[0] += grows_by
        collector.after_tenant()

    gc.collect()
    gc.disable()  # only the collector's collection may free them
    try:
        tenant_leaves_a_cycle(5)  # the first tenant sets the mark (105)
        tenant_leaves_a_cycle(5)  # 110 - 105: below the step
        assert collector.collections == 0 and all(ref() is not None for ref in left)
        tenant_leaves_a_cycle(5)  # 115 - 105: collected
        assert collector.collections == 1 and all(ref() is None for ref in left)
        tenant_leaves_a_cycle(9)  # 124 - 115: below the step again
        assert collector.collections == 1 and left[-1]() is not None
    finally:
        gc.enable()
