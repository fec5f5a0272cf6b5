"""A value Django computes while compiling a migration is computed for each tenant.

``AddField`` with a callable default (``uuid4``, ``timezone.now``, a project's token
function: what ``makemigrations`` writes for ``preserve_default=False``) fills the existing
rows with one value the schema editor computed when it built the SQL; so does ``AlterField``
from null to not null with such a default (the ``UPDATE ... WHERE col IS NULL``), and
``auto_now``/``auto_now_add``. Plain Django's ``migrate`` run for each tenant calls the
callable for each tenant: SQL compiled on one tenant and replayed on the others would hand
every tenant the first tenant's value (a token generated for one tenant, in another's rows).
Such a migration's SQL is compiled for each tenant; checked on SQLite and on PostgreSQL in
both isolations, written the way projects write them.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import models
from django.utils import timezone
from helpers.pg import app_catalog, connect, history
from helpers.project import (
    Project,
    make_project,
    make_tenant,
    migration_rows,
    pg_project,
    sqlite_schema,
    tenant_location,
)
from tenant_migrate.run.sharing import computed_per_call

TENANTS = ["acme", "beta", "gamma", "delta"]

TOKEN = """
import uuid

from django.db import migrations, models


def new_token():
    return uuid.uuid4().hex


class Migration(migrations.Migration):
    dependencies = [("products", "0001_initial")]
    operations = [
        migrations.AddField(
            "product", "token", models.CharField(max_length=32, default=new_token), preserve_default=False
        ),
        migrations.AddField("product", "code", models.CharField(max_length=32, null=True)),
    ]
"""

CODE = """
import uuid

from django.db import migrations, models


def new_code():
    return uuid.uuid4().hex


class Migration(migrations.Migration):
    dependencies = [("products", "0002_token")]
    operations = [
        migrations.AlterField("product", "code", models.CharField(max_length=32, default=new_code)),
    ]
"""


def _migrate_all(project: Project) -> None:
    proc = project.manage("migratealltenants", "--jobs=1", "--json")
    summary = json.loads(proc.stdout)["summary"]
    assert summary["failed"] == 0, proc.stdout


def _release_on(project: Project, insert_rows: Callable[[str], None]) -> None:
    """Every tenant at the last release with rows of its own, then the new release; the
    master then migrated by plain Django's ``migrate``, the schema to compare with."""
    _migrate_all(project)
    for tenant in TENANTS:
        insert_rows(tenant)
    project.add_migration("products", "0002_token", TOKEN)
    project.add_migration("products", "0003_code", CODE)
    _migrate_all(project)
    project.manage("migrate", "--no-input", "-v", "0")


def _check(values: dict[str, list[tuple[str, str]]]) -> None:
    for tenant, rows in values.items():
        assert len(rows) == 2, tenant
        # One value for all of a tenant's existing rows, as Django's schema editor gives them.
        assert len({token for token, _ in rows}) == 1, (tenant, rows)
        assert len({code for _, code in rows}) == 1, (tenant, rows)
        assert all(len(token) == 32 and len(code) == 32 for token, code in rows), rows
    tokens = [rows[0][0] for rows in values.values()]
    codes = [rows[0][1] for rows in values.values()]
    assert len(set(tokens)) == len(TENANTS), tokens
    assert len(set(codes)) == len(TENANTS), codes


ROWS = [("sku-1", "Kettle", "12.50"), ("sku-2", "Teapot", "20.00")]


def test_sqlite_each_tenant_gets_its_own_default(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    for tenant in TENANTS:
        project.create_tenant(tenant)

    def insert(tenant: str) -> None:
        with sqlite3.connect(project.tenant_db(tenant)) as db:
            db.executemany('INSERT INTO "products_product" ("sku", "name", "price") VALUES (?, ?, ?)', ROWS)

    _release_on(project, insert)
    master = Path(project.env["TM_MASTER_SQLITE"])
    values = {}
    for tenant in TENANTS:
        db_path = project.tenant_db(tenant)
        assert [r for r in sqlite_schema(db_path) if r[1].startswith("products_")] == [
            r for r in sqlite_schema(master) if r[1].startswith("products_")
        ]
        assert [r for r in migration_rows(db_path) if r[0] == "products"] == [
            r for r in migration_rows(master) if r[0] == "products"
        ]
        with sqlite3.connect(db_path) as db:
            values[tenant] = db.execute(
                'SELECT "token", "code" FROM "products_product" ORDER BY "id"'
            ).fetchall()
    _check(values)


@pytest.mark.parametrize("isolation", ["schema", "database"])
def test_postgres_each_tenant_gets_its_own_default(tmp_path: Path, pg_prefix: str, isolation: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    for tenant in TENANTS:
        make_tenant(project, tenant, isolation)

    def table(tenant: str) -> tuple[str, str]:
        dbname, schema = tenant_location(project, pg_prefix, tenant, isolation)
        return dbname, f'"{schema}"."products_product"'

    def insert(tenant: str) -> None:
        dbname, products = table(tenant)
        with connect(dbname) as db:
            db.cursor().executemany(
                f'INSERT INTO {products} ("sku", "name", "price") VALUES (%s, %s, %s)', ROWS
            )

    _release_on(project, insert)
    master = project.master  # type: ignore[attr-defined]
    wanted = app_catalog(master, "public", "products_")
    wanted_history = [r for r in history(master) if r[0] == "products"]
    values = {}
    for tenant in TENANTS:
        dbname, schema = tenant_location(project, pg_prefix, tenant, isolation)
        assert app_catalog(dbname, schema, "products_") == wanted, tenant
        assert [r for r in history(dbname, schema) if r[0] == "products"] == wanted_history, tenant
        dbname, products = table(tenant)
        with connect(dbname) as db:
            values[tenant] = db.execute(f'SELECT "token", "code" FROM {products} ORDER BY "id"').fetchall()
    _check(values)


@pytest.mark.parametrize(
    ("field", "per_call"),
    [
        (models.CharField(max_length=32, default=uuid.uuid4), True),
        (models.DateTimeField(default=timezone.now), True),
        (models.DateTimeField(auto_now_add=True), True),
        (models.DateField(auto_now=True), True),
        (models.JSONField(default=dict), False),  # dict() is {} on every call
        (models.JSONField(default=list), False),
        (models.IntegerField(default=0), False),
        (models.CharField(max_length=8, null=True), False),
    ],
    ids=["uuid4", "now", "auto_now_add", "auto_now", "dict", "list", "constant", "none"],
)
def test_which_defaults_are_computed_per_call(field: models.Field, per_call: bool) -> None:
    assert computed_per_call(field) is per_call
