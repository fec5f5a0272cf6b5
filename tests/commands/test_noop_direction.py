"""``RunPython.noop`` in the direction being run costs nothing: such a migration is compiled
to its SQL and replayed like any other, instead of being applied by Django on every tenant.

Most data migrations are written ``RunPython(forwards, RunPython.noop)``: unapplying one runs
only the SQL of its other operations. Checked two ways: which migrations count as running
Python in which direction (hypothesis, against the rule stated per operation), and end to end
on SQLite and PostgreSQL against plain Django's ``migrate`` on the master: the same schema and
the same history after going forward and back, with the noop direction not applied through
Django on any tenant.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.db import migrations, models
from django.db.migrations.migration import Migration
from helpers.pg import app_catalog, history
from helpers.project import (
    Project,
    make_project,
    make_tenant,
    migration_rows,
    pg_project,
    sqlite_schema,
    tenant_location,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from tenant_migrate.graph import needs_django, needs_python


def _fill(apps, schema_editor):  # type: ignore[no-untyped-def]
    pass


class _SubclassedRunPython(migrations.RunPython):
    """A project's own RunPython: it may do more than its code; never treated as a noop."""


class _ThirdParty(migrations.operations.base.Operation):
    reduces_to_sql = True

    def state_forwards(self, app_label, state):  # type: ignore[no-untyped-def]
        pass


NOOP = migrations.RunPython.noop
# (operation factory, runs Python forwards, runs Python backwards)
OPERATIONS = [
    (lambda: migrations.AddField("product", "stock", models.IntegerField(default=0)), False, False),
    (lambda: migrations.RunSQL("SELECT 1", "SELECT 2"), False, False),
    (lambda: migrations.RunPython(_fill, NOOP), True, False),
    (lambda: migrations.RunPython(NOOP, _fill), False, True),
    (lambda: migrations.RunPython(NOOP, NOOP), False, False),
    (lambda: migrations.RunPython(_fill), True, True),  # irreversible: Django says so
    (lambda: migrations.RunPython(_fill, _fill), True, True),
    (lambda: _SubclassedRunPython(NOOP, NOOP), True, True),
    (_ThirdParty, True, True),
]


@settings(max_examples=300, deadline=None)
@given(
    chosen=st.lists(st.sampled_from(range(len(OPERATIONS))), min_size=1, max_size=6),
    atomic=st.booleans(),
)
def test_a_migration_runs_python_in_a_direction_where_one_of_its_operations_does(
    chosen: list[int], atomic: bool
) -> None:
    migration = Migration("0002_release", "products")
    migration.operations = [OPERATIONS[i][0]() for i in chosen]
    migration.atomic = atomic
    for backwards in (False, True):
        wanted = not atomic or any(OPERATIONS[i][2 if backwards else 1] for i in chosen)
        assert needs_python(migration, backwards) is wanted
        if wanted:
            assert needs_django(migration, backwards)


def test_a_noop_runpython_does_not_make_a_later_operation_order_sensitive() -> None:
    # Unapplying reads nothing through the noop; forwards the RunPython's code runs and may
    # have changed what the AlterField after it introspects.
    migration = Migration("0002_release", "products")
    migration.operations = [
        migrations.RunPython(_fill, NOOP),
        migrations.AlterField("product", "name", models.CharField(max_length=300)),
    ]
    assert needs_django(migration, backwards=False)
    assert not needs_django(migration, backwards=True)


# Written the way projects write them: the default manager, no `using`.
RELEASE = """
from django.db import migrations, models


def fill(apps, schema_editor):
    Product = apps.get_model("products", "Product")
    Product.objects.filter(stock=0).update(stock=7)


class Migration(migrations.Migration):
    dependencies = [("products", "0001_initial")]
    operations = [
        migrations.AddField("product", "stock", models.IntegerField(default=0)),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
"""

# Noop forwards, real code backwards.
AFTER = """
from django.db import migrations, models


def unfill(apps, schema_editor):
    Product = apps.get_model("products", "Product")
    Product.objects.update(stock=0)


class Migration(migrations.Migration):
    dependencies = [("products", "0002_stock")]
    operations = [
        migrations.AddIndex("product", models.Index(fields=["stock"], name="product_stock_idx")),
        migrations.RunPython(migrations.RunPython.noop, unfill),
    ]
"""

TENANTS = ["acme", "beta", "gamma"]


def _run(project: Project, *args: str) -> dict[str, int]:
    proc = project.manage("migratealltenants", "--jobs=1", "--json", *args)
    summary = json.loads(proc.stdout)["summary"]
    assert summary["failed"] == 0, proc.stdout
    return summary  # type: ignore[no-any-return]


def _release(project: Project) -> None:
    project.add_migration("products", "0002_stock", RELEASE)
    project.add_migration("products", "0003_stock_index", AFTER)


def _forward_and_back(project: Project) -> None:
    """The release forwards then back to 0001 on every tenant, then on the master with plain
    Django's migrate (the reference)."""
    forward = _run(project)
    # 0002's RunPython runs forwards on every tenant; 0003's is a noop forwards: replayed.
    assert forward["via_django"] == len(TENANTS), forward
    project.manage("migrate", "--no-input", "-v", "0")
    backward = _run(project, "products", "0001_initial")
    # 0003 backwards runs `unfill` (Django); 0002 backwards is its SQL alone, compiled once.
    assert backward["via_django"] == len(TENANTS), backward
    assert backward["replayed"] >= len(TENANTS) - 1, json.dumps(backward)
    project.manage("migrate", "products", "0001_initial", "--no-input", "-v", "0")


def test_sqlite_noop_directions_are_replayed_and_match_django(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    for tenant in TENANTS:
        project.create_tenant(tenant)
    _release(project)
    master = tmp_path / "master.sqlite3"

    _forward_and_back(project)

    for tenant in TENANTS:
        db = project.tenant_db(tenant)
        assert [r for r in sqlite_schema(db) if r[1].startswith("products_")] == [
            r for r in sqlite_schema(master) if r[1].startswith("products_")
        ]
        assert [r for r in migration_rows(db) if r[0] == "products"] == [
            r for r in migration_rows(master) if r[0] == "products"
        ]


@pytest.mark.parametrize("isolation", ["schema", "database"])
def test_postgres_noop_directions_are_replayed_and_match_django(
    tmp_path: Path, pg_prefix: str, isolation: str
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    for tenant in TENANTS:
        make_tenant(project, tenant, isolation)
    _release(project)
    master = project.master  # type: ignore[attr-defined]

    _forward_and_back(project)

    wanted = app_catalog(master, "public", "products_")
    wanted_history = [r for r in history(master) if r[0] == "products"]
    assert wanted_history == [("products", "0001_initial")]
    for tenant in TENANTS:
        dbname, schema = tenant_location(project, pg_prefix, tenant, isolation)
        assert app_catalog(dbname, schema, "products_") == wanted, tenant
        assert [r for r in history(dbname, schema) if r[0] == "products"] == wanted_history, tenant
