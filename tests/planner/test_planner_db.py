"""The planner's decisions on real databases, against Django's own ``migrate``.

Each test drives a tenant with ``migratetenant`` and, step for step, a plain database of the
same project with Django's ``migrate`` (the project's default database pointed elsewhere by
TM_MASTER_SQLITE or TM_PG_NAME). After every step both must hold the same schema, the same
history (app, name) and the same rows: RunSQL forwards and backwards, squashed migrations
recorded and unrecorded in every order, and ``--fake-initial``'s soft-applied detection.
Everything runs on SQLite and on PostgreSQL (a schema tenant; the plain database's ``public``).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from helpers.pg import catalog, connect, create_database, history
from helpers.project import (
    Project,
    make_project,
    make_tenant,
    migration_rows,
    pg_project,
    sqlite_schema,
    tenant_location,
)
from psycopg import sql

# What Django's migrate puts in the plain database that a tenant (users, products, orders)
# never has: the master-only apps. Left out of the plain side only, never of the tenant's.
MASTER_TABLES = ("auth_", "django_content_type", "tenant_migrate_")
MASTER_APPS = ("auth", "contenttypes", "tenant_migrate")

Proc = subprocess.CompletedProcess


class Pair:
    """One tenant (migratetenant) and one plain database (Django's migrate), side by side."""

    def __init__(
        self,
        project: Project,
        tenant_id: str,
        django_env: dict[str, str],
        ours_state: Callable[[], dict[str, Any]],
        django_state: Callable[[], dict[str, Any]],
        execute: Callable[[str], None],
        query: Callable[[str], list[tuple]],
    ) -> None:
        self.project = project
        self.tenant_id = tenant_id
        self.django_env = django_env
        self.ours_state = ours_state
        self.django_state = django_state
        # Raw SQL on both sides (a starting state Django has no command for); a tenant query.
        self.both_execute = execute
        self.ours_rows = query

    def ours(self, *args: str, check: bool = True) -> Proc:
        return self.project.manage("migratetenant", f"--tenant-id={self.tenant_id}", *args, check=check)

    def django(self, *args: str, check: bool = True) -> Proc:
        return self.project.manage("migrate", "--no-input", *args, env=self.django_env, check=check)

    def step(self, *args: str) -> list[str]:
        """The same migrate on both sides; both succeed and end in the same state."""
        out = self.ours(*args).stdout.splitlines()
        self.django(*args)
        self.assert_same(" ".join(args) or "(all)")
        return out

    def assert_same(self, when: str) -> None:
        ours, django = self.ours_state(), self.django_state()
        for key in django:
            assert ours[key] == django[key], f"after '{when}': {key} differs from Django's"


# -- SQLite -----------------------------------------------------------------------------------


def sqlite_state(path: Path, plain: bool = False) -> dict[str, Any]:
    """Schema (exact SQL), history and every row of every table (django_migrations aside)."""
    skip = MASTER_TABLES if plain else ()
    state: dict[str, Any] = {
        "schema": sqlite_schema(path, exclude_prefix=skip),
        "history": migration_rows(path, exclude_apps=MASTER_APPS if plain else ()),
    }
    rows: dict[str, list[tuple]] = {}
    with closing(sqlite3.connect(path)) as conn:
        tables = [
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        for table in tables:
            if table.startswith(skip) or table == "django_migrations":
                continue
            found = sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall())
            if table == "sqlite_sequence":
                found = [r for r in found if r[0] != "django_migrations" and not r[0].startswith(skip)]
            rows[table] = found
    state["rows"] = rows
    return state


def tenant_name(tenant_id: str) -> str:
    return "ACME Corporation" if tenant_id == "acme" else tenant_id.title()  # as make_tenant


def sqlite_pair(project: Project, tenant_id: str) -> Pair:
    project.create_tenant(tenant_id, tenant_name(tenant_id))
    tenant = project.tenant_db(tenant_id)
    plain = project.root.parent / f"plain_{tenant_id}.sqlite3"

    def execute(statement: str) -> None:
        for path in (tenant, plain):
            with closing(sqlite3.connect(path)) as conn, conn:
                conn.execute(statement)

    def query(statement: str) -> list[tuple]:
        with closing(sqlite3.connect(tenant)) as conn:
            return conn.execute(statement).fetchall()

    return Pair(
        project,
        tenant_id,
        {"TM_MASTER_SQLITE": str(plain)},
        lambda: sqlite_state(tenant),
        lambda: sqlite_state(plain, plain=True),
        execute,
        query,
    )


# -- PostgreSQL -------------------------------------------------------------------------------


def pg_rows(dbname: str, schema: str, skip: tuple[str, ...]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    with connect(dbname) as conn:
        tables = conn.execute(
            "SELECT c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
            [schema],
        ).fetchall()
        for (table,) in tables:
            if table.startswith(skip) or table == "django_migrations":
                continue
            query = sql.SQL("SELECT t::text FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            result[table] = sorted(r[0] for r in conn.execute(query))
    return result


def pg_state(dbname: str, schema: str, plain: bool = False) -> dict[str, Any]:
    skip = MASTER_TABLES if plain else ()
    # catalog() takes a str prefix; str.startswith takes a tuple as well.
    state: dict[str, Any] = catalog(dbname, schema, exclude_prefix=skip or "\x00")  # type: ignore[arg-type]
    state["history"] = history(dbname, schema, exclude_apps=MASTER_APPS if plain else ())
    state["rows"] = pg_rows(dbname, schema, skip)
    return state


def pg_pair(project: Project, prefix: str, tenant_id: str, isolation: str = "schema") -> Pair:
    make_tenant(project, tenant_id, isolation)
    dbname, schema = tenant_location(project, prefix, tenant_id, isolation)
    plain = f"{prefix}plain_{tenant_id}"
    create_database(plain)

    def execute(statement: str) -> None:
        for db, path in ((dbname, schema), (plain, "public")):
            with connect(db) as conn:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(path)))
                conn.execute(statement)  # type: ignore[arg-type]

    def query(statement: str) -> list[tuple]:
        with connect(dbname) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            return [tuple(r) for r in conn.execute(statement).fetchall()]  # type: ignore[arg-type]

    return Pair(
        project,
        tenant_id,
        {"TM_PG_NAME": plain},
        lambda: pg_state(dbname, schema),
        lambda: pg_state(plain, "public", plain=True),
        execute,
        query,
    )


BACKENDS = ["sqlite", "postgresql-schema"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Pair]:
    """Make the project (on the parametrised backend), then ``backend(tenant_id)`` gives a
    tenant and its plain twin. ``backend.project`` is the project, files can be added there."""
    if request.param == "sqlite":
        project = make_project(tmp_path)

        def make(tenant_id: str) -> Pair:
            return sqlite_pair(project, tenant_id)
    else:
        prefix = request.getfixturevalue("pg_prefix")
        project = pg_project(tmp_path, prefix)

        def make(tenant_id: str) -> Pair:
            return pg_pair(project, prefix, tenant_id)

    make.project = project  # type: ignore[attr-defined]
    make.kind = request.param  # type: ignore[attr-defined]
    return make


def header(target: str, lines: list[str]) -> list[str]:
    return [
        "Running migrations for tenant: ACME Corporation",
        "Operations to perform:",
        target,
        "Running migrations:",
        *lines,
        "Migrations completed successfully for tenant 'acme'.",
    ]


# -- 1. RunSQL forwards and backwards ---------------------------------------------------------

# Statements a naive splitter or an interpolating executor gets wrong: a ';' and a '%' inside
# literals, parameters with a quote, a '%s' with no parameters, a comment Django strips, and a
# string of two statements (Django splits it with sqlparse).
RUNSQL = """\
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [('products', '0001_initial')]
    operations = [
        migrations.RunSQL(
            'CREATE TABLE extra (id integer PRIMARY KEY, label varchar(40) NOT NULL)',
            reverse_sql='DROP TABLE extra',
        ),
        migrations.RunSQL(
            [
                ('INSERT INTO extra (id, label) VALUES (%s, %s)', [1, "it's 100%; done"]),
                "INSERT INTO extra (id, label) VALUES (2, 'two; %s -- not a comment')",
            ],
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            "INSERT INTO extra (id, label) VALUES (3, 'three'); -- a comment\\n"
            "INSERT INTO extra (id, label) VALUES (4, 'four;')",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            "INSERT INTO products_product (sku, name, price) VALUES ('A1', 'Anvil', 10.5)",
            reverse_sql="DELETE FROM products_product WHERE sku = 'A1'",
        ),
    ]
"""
EXTRA_LABELS = ["it's 100%; done", "two; %s -- not a comment", "three", "four;"]


def extra_labels(pair: Pair) -> list[str]:
    return [label for (label,) in pair.ours_rows("SELECT label FROM extra ORDER BY id")]


@pytest.mark.parametrize(
    ("backend", "mode"),
    [("sqlite", "batch"), ("postgresql-schema", "batch"), ("postgresql-schema", "step-by-step")],
    indirect=["backend"],
)
def test_runsql_forwards_and_backwards_match_django(backend: Callable[..., Pair], mode: str) -> None:
    """RunSQL with reverse_sql: applied, unapplied (table dropped, row deleted, history row
    removed) and applied again, each time as Django leaves a plain database. On PostgreSQL in
    batch mode (a migration in one round trip) and step by step (--lock-timeout)."""
    project: Project = backend.project  # type: ignore[attr-defined]
    extra = ("--lock-timeout=5s",) if mode == "step-by-step" else ()
    project.add_migration("products", "0002_sql", RUNSQL)
    pair = backend("acme")

    out = pair.ours(*extra, "products").stdout.splitlines()
    assert out == header(
        "  Apply all migrations: products",
        ["  products/0001_initial.py ... OK", "  products/0002_sql.py ... OK"],
    )
    pair.django("products")
    pair.assert_same("products")
    assert extra_labels(pair) == EXTRA_LABELS
    assert len(pair.ours_state()["rows"]["products_product"]) == 1
    assert pair.ours_state()["history"] == [("products", "0001_initial"), ("products", "0002_sql")]

    back = pair.ours(*extra, "products", "0001").stdout.splitlines()
    assert back == header(
        "  Target specific migration: 0001_initial, from products",
        ["  Unapplying products/0002_sql.py ... OK"],
    )
    pair.django("products", "0001")
    pair.assert_same("products 0001")
    state = pair.ours_state()
    assert "extra" not in state["rows"] and state["rows"]["products_product"] == []
    assert state["history"] == [("products", "0001_initial")]

    # Forward again: the same statements run a second time on the same tenant.
    pair.ours(*extra, "products")
    pair.django("products")
    pair.assert_same("products (again)")
    assert extra_labels(pair) == EXTRA_LABELS


# -- 2. Squashed migrations, forwards and backwards -------------------------------------------

STOCK = """\
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [('products', '0001_initial')]
    operations = [migrations.AddField('product', 'stock', models.IntegerField(default=0))]
"""
SQUASH_NAME = "0001_squashed_0002_stock"
SQUASH = """\
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    replaces = [('products', '0001_initial'), ('products', '0002_stock')]
    dependencies = []
    operations = [
        migrations.CreateModel(
            name='Product',
            fields=[
                ('id', models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sku', models.CharField(max_length=32, unique=True)),
                ('name', models.CharField(max_length=200)),
                ('price', models.DecimalField(decimal_places=2, max_digits=10)),
                ('stock', models.IntegerField(default=0)),
            ],
        ),
    ]
"""
USERS = [("users", "0001_initial"), ("users", "0002_alter_user_email")]
PRODUCTS_ALL = [("products", "0001_initial"), ("products", SQUASH_NAME), ("products", "0002_stock")]


def products_history(pair: Pair) -> list[tuple]:
    return [row for row in pair.ours_state()["history"] if row[0] == "products"]


def test_squash_applied_whole_then_back_to_zero(backend: Callable[..., Pair]) -> None:
    """The squash in place from the start: it runs instead of 0001 and 0002 (orders' dependency
    on products.0001_initial now points at it), records all three rows, and ``products zero``
    unapplies orders, then the squash, removing all three, as Django does."""
    project: Project = backend.project  # type: ignore[attr-defined]
    project.add_migration("products", "0002_stock", STOCK)
    project.add_migration("products", SQUASH_NAME, SQUASH)
    pair = backend("acme")

    out = pair.step()
    assert [line for line in out if line.startswith("  products/")] == [f"  products/{SQUASH_NAME}.py ... OK"]
    assert pair.ours_state()["history"] == [("orders", "0001_initial"), *PRODUCTS_ALL, *USERS]

    out = pair.step("products", "zero")
    assert out == header(
        "  Unapply all migrations: products",
        ["  Unapplying orders/0001_initial.py ... OK", f"  Unapplying products/{SQUASH_NAME}.py ... OK"],
    )
    assert pair.ours_state()["history"] == USERS

    # And forward again, products only: the squash again.
    out = pair.step("products")
    assert out[4:-1] == [f"  products/{SQUASH_NAME}.py ... OK"]
    assert products_history(pair) == PRODUCTS_ALL


def test_squash_added_after_a_partial_run_then_backwards(backend: Callable[..., Pair]) -> None:
    """0001 applied before the squash existed; with the squash added the originals are used
    (the squash is recorded once all it replaces is applied); then back to 0001 (the target
    is a replaced migration: Django plans without replacements), forward again and to zero.
    Every step against Django's own migrate on a plain database doing the same."""
    project: Project = backend.project  # type: ignore[attr-defined]
    project.add_migration("products", "0002_stock", STOCK)
    pair = backend("acme")

    pair.step("products", "0001")
    assert products_history(pair) == [("products", "0001_initial")]

    project.add_migration("products", SQUASH_NAME, SQUASH)
    plan = pair.ours("products", "--plan").stdout.splitlines()
    assert plan[1:] == ["  products/0002_stock.py"]
    out = pair.step("products")
    assert out[4:-1] == ["  products/0002_stock.py ... OK"]
    assert products_history(pair) == PRODUCTS_ALL

    out = pair.step("products", "0001_initial")
    assert out[2:-1] == [
        "  Target specific migration: 0001_initial, from products",
        "Running migrations:",
        "  Unapplying products/0002_stock.py ... OK",
    ]
    # As Django: the squash's own row stays, only the replaced migration's row goes.
    assert products_history(pair) == [("products", "0001_initial"), ("products", SQUASH_NAME)]

    out = pair.step("products")
    assert out[4:-1] == ["  products/0002_stock.py ... OK"]
    assert products_history(pair) == PRODUCTS_ALL

    out = pair.step("products", "zero")
    assert out[4:-1] == [f"  Unapplying products/{SQUASH_NAME}.py ... OK"]
    assert products_history(pair) == []
    assert "products_product" not in pair.ours_state()["rows"]


# -- 3. --fake-initial ------------------------------------------------------------------------

# products.0001_initial as makemigrations writes it when a field is added after the model: a
# CreateModel and an AddField. Django's detect_soft_applied checks the CreateModel's table by
# name only, and the AddField's column in the table's description.
INITIAL_WITH_ADDFIELD = """\
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name='Product',
            fields=[
                ('id', models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sku', models.CharField(max_length=32, unique=True)),
                ('name', models.CharField(max_length=200)),
            ],
        ),
        migrations.AddField(
            model_name='product',
            name='price',
            field=models.DecimalField(decimal_places=2, max_digits=10, default=0),
            preserve_default=False,
        ),
    ]
"""


def outcomes(ours: str, django: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(app, migration, OK/FAKED/FAILED) per step, from our output and from Django's."""
    mine = [tuple(m) for m in re.findall(r"^  (\w+)/(\w+)\.py \.\.\. (\w+)", ours, re.MULTILINE)]
    theirs = [tuple(m) for m in re.findall(r"^  Applying (\w+)\.(\w+)\.\.\. ?(\w*)", django, re.MULTILINE)]
    return mine, [(a, n, r or "FAILED") for a, n, r in theirs]


@pytest.fixture
def fake_initial_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Pair]:
    """The project with products.0001_initial rewritten as CreateModel + AddField."""
    kind = request.param
    if kind == "sqlite":
        project = make_project(tmp_path, master=False)
        project.add_migration("products", "0001_initial", INITIAL_WITH_ADDFIELD)
        project.manage("migrate", "--no-input")

        def make(tenant_id: str) -> Pair:
            return sqlite_pair(project, tenant_id)
    else:
        prefix = request.getfixturevalue("pg_prefix")
        # The master keeps the original products tables (in public): a tenant's schema must
        # be what --fake-initial looks at, never public.
        project = pg_project(tmp_path, prefix)
        project.add_migration("products", "0001_initial", INITIAL_WITH_ADDFIELD)

        def make(tenant_id: str) -> Pair:
            return pg_pair(project, prefix, tenant_id)

    make.project = project  # type: ignore[attr-defined]
    make.kind = kind  # type: ignore[attr-defined]
    return make


@pytest.mark.parametrize("fake_initial_backend", BACKENDS, indirect=True)
def test_fake_initial_every_table_there_is_faked_as_django_fakes(
    fake_initial_backend: Callable[..., Pair],
) -> None:
    """Every table (and the AddField's column) there: the initial migrations are faked."""
    pair = fake_initial_backend("acme")
    pair.step()
    pair.both_execute("DELETE FROM django_migrations WHERE app IN ('products', 'orders')")
    ours, django = pair.ours("--fake-initial"), pair.django("--fake-initial")
    mine, theirs = outcomes(ours.stdout, django.stdout)
    assert mine == theirs == [("products", "0001_initial", "FAKED"), ("orders", "0001_initial", "FAKED")]
    pair.assert_same("--fake-initial")

    # With users' history gone too, users.0002 (not initial) runs on the table that is there:
    # on SQLite a table rebuild that works; on PostgreSQL an ADD CONSTRAINT whose constraint
    # exists, which fails in Django too; the tenant must stop where Django stops.
    pair.both_execute("DELETE FROM django_migrations WHERE app IN ('users', 'products', 'orders')")
    django = pair.django("--fake-initial", check=False)
    ours = pair.ours("--fake-initial", check=False)
    mine, theirs = outcomes(ours.stdout, django.stdout)
    assert mine == theirs
    assert "Traceback" not in ours.stderr
    if fake_initial_backend.kind == "sqlite":  # type: ignore[attr-defined]
        assert ours.returncode == django.returncode == 0, ours.stderr
        assert mine == [
            ("users", "0001_initial", "FAKED"),
            ("users", "0002_alter_user_email", "OK"),
            ("products", "0001_initial", "FAKED"),
            ("orders", "0001_initial", "FAKED"),
        ]
    else:
        assert ours.returncode == django.returncode == 1, django.stderr
        exists = 'relation "users_user_email_243f6e77_uniq" already exists'
        assert exists in django.stderr
        assert mine == [("users", "0001_initial", "FAKED"), ("users", "0002_alter_user_email", "FAILED")]
        assert ours.stderr.splitlines() == [
            f"Error: Migration users/0002_alter_user_email.py failed for tenant 'acme': {exists}",
            'Statement: ALTER TABLE "users_user" ADD CONSTRAINT "users_user_email_243f6e77_uniq" '
            'UNIQUE ("email")',
        ]
    pair.assert_same("--fake-initial, users' history gone too")


@pytest.mark.parametrize("fake_initial_backend", BACKENDS, indirect=True)
def test_fake_initial_missing_column_of_a_created_model_is_still_faked(
    fake_initial_backend: Callable[..., Pair],
) -> None:
    """Django compares a CreateModel's table by name only: a column missing from it does not
    stop the fake (the AddField's column is there)."""
    pair = fake_initial_backend("acme")
    pair.step("products")
    pair.both_execute("DELETE FROM django_migrations")
    pair.both_execute("ALTER TABLE products_product DROP COLUMN name")
    mine, theirs = outcomes(
        pair.ours("products", "--fake-initial").stdout, pair.django("products", "--fake-initial").stdout
    )
    assert mine == theirs == [("products", "0001_initial", "FAKED")]
    pair.assert_same("--fake-initial, name dropped")


@pytest.mark.parametrize("fake_initial_backend", BACKENDS, indirect=True)
def test_fake_initial_missing_added_column_runs_and_fails_cleanly(
    fake_initial_backend: Callable[..., Pair],
) -> None:
    """The AddField's column is missing: Django does not fake, runs the migration, and its
    CreateModel fails on the table that exists. The tenant ends in the same state, with one
    clean error and a non-zero exit."""
    pair = fake_initial_backend("acme")
    kind = fake_initial_backend.kind  # type: ignore[attr-defined]
    pair.step("products")
    pair.both_execute("DELETE FROM django_migrations")
    pair.both_execute("ALTER TABLE products_product DROP COLUMN price")

    django = pair.django("products", "--fake-initial", check=False)
    exists = (
        'table "products_product" already exists'
        if kind == "sqlite"
        else 'relation "products_product" already exists'
    )
    assert django.returncode == 1 and exists in django.stderr, django.stderr
    proc = pair.ours("products", "--fake-initial", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    identity = "integer NOT NULL PRIMARY KEY AUTOINCREMENT"
    if kind != "sqlite":
        identity = "bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY"
    # The error line, then the statement that failed: the CreateModel's, as in Django.
    assert proc.stderr.splitlines() == [
        f"Error: Migration products/0001_initial.py failed for tenant 'acme': {exists}",
        f'Statement: CREATE TABLE "products_product" ("id" {identity}, '
        '"sku" varchar(32) NOT NULL UNIQUE, "name" varchar(200) NOT NULL)',
    ]
    mine, theirs = outcomes(proc.stdout, django.stdout)
    assert mine == theirs == [("products", "0001_initial", "FAILED")]
    pair.assert_same("--fake-initial, price dropped")
    assert pair.ours_state()["history"] == []
