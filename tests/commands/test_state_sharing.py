"""SQL that Django builds from the project state alone is replayed without a fingerprint.

After a migration Django applies itself (a data migration), nothing is known of a tenant's
catalog; the next migration's SQL used to be verified by reading the tenant's catalog
fingerprint first. When Django read nothing from the catalog to compile that SQL (no
constraint or sequence names: ``AddField``, ``AddIndex``...), it is the SQL Django gives every
tenant with the same history and plan, whatever the catalog holds: it is replayed on them by
that key alone; so is the SQL Django ran for an order-sensitive migration when applying it
read nothing. SQL whose compile read the catalog is still replayed only where the
fingerprint matches. Counted with the run's ``fingerprints``, and checked against plain
Django's ``migrate`` on the master (schema and history), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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

TENANTS = ["acme", "beta", "gamma", "delta"]

# Written the way projects write them: the default manager, no `using`.
DATA = """
from django.db import migrations


def rename(apps, schema_editor):
    Product = apps.get_model("products", "Product")
    for product in Product.objects.all():
        product.name = product.name.title()
        product.save()


class Migration(migrations.Migration):
    dependencies = [("products", "0001_initial")]
    operations = [migrations.RunPython(rename, migrations.RunPython.noop)]
"""

# Built from the state alone on both backends.
STOCK = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("products", "0002_titles")]
    operations = [
        migrations.AddField("product", "stock", models.IntegerField(default=0)),
        migrations.AddIndex("product", models.Index(fields=["stock"], name="product_stock_idx")),
    ]
"""

# Order-sensitive (the AlterField would introspect a column the AddField's SQL, collected and
# not run, has not made yet): Django applies it on the first tenant, and the SQL it ran there is
# replayed. Applying it reads nothing on PostgreSQL: replayed by the state key too.
ORDER_SENSITIVE = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("products", "0002_titles")]
    operations = [
        migrations.AddField("product", "stock", models.IntegerField(default=0)),
        migrations.AlterField("product", "stock", models.BigIntegerField(default=0)),
    ]
"""

# Dropping a unique constraint: Django reads its name from PostgreSQL's catalog.
NOT_UNIQUE = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("products", "0002_titles")]
    operations = [migrations.AlterField("product", "sku", models.CharField(max_length=32))]
"""


def _deploy(project: Project, second: str) -> dict[str, int]:
    proc = project.manage("migratealltenants", "--jobs=1", "--json")
    assert json.loads(proc.stdout)["summary"]["failed"] == 0, proc.stdout
    project.add_migration("products", "0002_titles", DATA)
    project.add_migration("products", "0003_second", second)
    proc = project.manage("migratealltenants", "--jobs=1", "--json")
    summary = json.loads(proc.stdout)["summary"]
    assert summary["failed"] == 0, proc.stdout
    project.manage("migrate", "--no-input", "-v", "0")
    return summary  # type: ignore[no-any-return]


def test_sqlite_state_sql_needs_no_fingerprint(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    for tenant in TENANTS:
        project.create_tenant(tenant)
    summary = _deploy(project, STOCK)
    # The first tenant reads the catalog before and after compiling 0003; no other tenant does.
    assert summary["fingerprints"] == 2, summary
    assert summary["replayed"] == len(TENANTS) - 1, summary
    master = tmp_path / "master.sqlite3"
    for tenant in TENANTS:
        db = project.tenant_db(tenant)
        assert [r for r in sqlite_schema(db) if r[1].startswith("products_")] == [
            r for r in sqlite_schema(master) if r[1].startswith("products_")
        ]
        assert [r for r in migration_rows(db) if r[0] == "products"] == [
            r for r in migration_rows(master) if r[0] == "products"
        ]


@pytest.mark.parametrize(
    ("isolation", "second", "fingerprints"),
    [
        ("schema", STOCK, 2),
        ("database", STOCK, 2),
        ("schema", ORDER_SENSITIVE, 2),
        # Read the catalog: every later tenant verified before replaying it.
        ("schema", NOT_UNIQUE, 2 + len(TENANTS) - 1),
    ],
    ids=["schema-state", "database-state", "schema-django-ran", "schema-catalog"],
)
def test_postgres_state_sql_needs_no_fingerprint(
    tmp_path: Path, pg_prefix: str, isolation: str, second: str, fingerprints: int
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    for tenant in TENANTS:
        make_tenant(project, tenant, isolation)
    summary = _deploy(project, second)
    assert summary["fingerprints"] == fingerprints, summary
    assert summary["replayed"] == len(TENANTS) - 1, summary

    master = project.master  # type: ignore[attr-defined]
    wanted = app_catalog(master, "public", "products_")
    wanted_history = [r for r in history(master) if r[0] == "products"]
    assert len(wanted_history) == 3
    for tenant in TENANTS:
        dbname, schema = tenant_location(project, pg_prefix, tenant, isolation)
        assert app_catalog(dbname, schema, "products_") == wanted, tenant
        assert [r for r in history(dbname, schema) if r[0] == "products"] == wanted_history, tenant
