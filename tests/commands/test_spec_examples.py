"""Every example of the migratetenant spec, run as a user runs it, the whole output compared line by line.

Each command is a subprocess on a private copy of the example project; stdout is compared in full,
stderr is empty and the exit status is 0 unless the example is about an error. Where Django's own
``migrate`` prints the same block, the test also runs Django's ``migrate`` on a plain database and
checks the wording is Django's.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from helpers.pg import catalog, data, history, schemas
from helpers.project import Project, make_tenant, migration_rows, pg_project, sqlite_schema, tenant_location
from helpers.spec import ALL_ROWS, SPEC_RUN, acme

APPLY_ALL = "  Apply all migrations: users, products, orders"
SPEC_MIGRATIONS = [
    "users/0001_initial.py",
    "users/0002_alter_user_email.py",
    "products/0001_initial.py",
    "orders/0001_initial.py",
]
NAMES = {
    "acme": "ACME Corporation",
    "globex": "Globex Corporation",
    "dev": "Development",
    "staging": "Staging",
}

STOCK_MIGRATION = (
    "from django.db import migrations, models\n\n"
    "class Migration(migrations.Migration):\n"
    "    dependencies = [('products', '0001_initial')]\n"
    "    operations = [migrations.AddField('product', 'stock', models.IntegerField(default=0))]\n"
)


def run(
    project: Project, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> list[str]:
    """stdout lines of a command that must succeed silently on stderr."""
    proc = project.manage(*args, check=False, input=input, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stderr == "", proc.stderr
    return proc.stdout.splitlines()


def expected_run(
    tenant_id: str, name: str, steps: list[str], operations: str = APPLY_ALL, status: str = "OK"
) -> list[str]:
    """migratetenant's output as the documented single-tenant example shows it, for any tenant."""
    body = [f"  {step} ... {status}" for step in steps] or ["  No migrations to apply."]
    return [
        f"Running migrations for tenant: {name}",
        "Operations to perform:",
        operations,
        "Running migrations:",
        *body,
        f"Migrations completed successfully for tenant '{tenant_id}'.",
    ]


def tenants(project: Project, *tenant_ids: str) -> None:
    for tenant_id in tenant_ids:
        project.create_tenant(tenant_id, NAMES[tenant_id])


def plain_env(project: Project) -> dict[str, str]:
    """Django's own migrate, on a separate SQLite file next to the project."""
    return {"TM_MASTER_SQLITE": str(project.root.parent / "plain.sqlite3")}


def test_expected_run_reproduces_the_spec_text() -> None:
    assert expected_run("acme", "ACME Corporation", SPEC_MIGRATIONS) == SPEC_RUN.splitlines()


# --- Migrate to specific migration -------------------------------------------------------------


def test_spec_migrate_to_specific_migration_whole_output(project: Project) -> None:
    acme(project)
    out = run(project, "migratetenant", "--tenant-id=acme", "users", "0002_alter_user_email")
    target = "  Target specific migration: 0002_alter_user_email, from users"
    assert out == [
        "Running migrations for tenant: ACME Corporation",
        "Operations to perform:",
        target,
        "Running migrations:",
        "  users/0001_initial.py ... OK",
        "  users/0002_alter_user_email.py ... OK",
        "Migrations completed successfully for tenant 'acme'.",
    ]
    assert migration_rows(project.tenant_db("acme")) == [
        ("users", "0001_initial"),
        ("users", "0002_alter_user_email"),
    ]
    tables = {r[1] for r in sqlite_schema(project.tenant_db("acme")) if r[0] == "table"}
    assert tables == {"django_migrations", "users_user"}

    # The "Operations to perform:" block is Django's, word for word.
    django = run(project, "migrate", "users", "0002_alter_user_email", env=plain_env(project))
    assert django[:3] == ["Operations to perform:", target, "Running migrations:"]
    assert out[1:4] == django[:3]

    # Run again: Django's "nothing to do" form, under the same header.
    again = run(project, "migratetenant", "--tenant-id=acme", "users", "0002_alter_user_email")
    assert again == expected_run("acme", "ACME Corporation", [], operations=target)
    django_again = run(project, "migrate", "users", "0002_alter_user_email", env=plain_env(project))
    assert django_again == [
        "Operations to perform:",
        target,
        "Running migrations:",
        "  No migrations to apply.",
    ]


# --- Fake initial migrations -------------------------------------------------------------------


@pytest.mark.parametrize("history_lost", ["rows deleted", "table dropped"])
def test_spec_fake_initial_on_existing_tables_without_history(project: Project, history_lost: str) -> None:
    acme(project)
    run(project, "migratetenant", "--tenant-id=acme")
    schema = sqlite_schema(project.tenant_db("acme"))
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        if history_lost == "rows deleted":
            conn.execute("DELETE FROM django_migrations")
        else:
            conn.execute("DROP TABLE django_migrations")
    out = run(project, "migratetenant", "--tenant-id=acme", "--fake-initial")
    # As Django does: initial migrations whose tables exist are faked; 0002 is not initial, so it runs.
    assert out == [
        "Running migrations for tenant: ACME Corporation",
        "Operations to perform:",
        APPLY_ALL,
        "Running migrations:",
        "  users/0001_initial.py ... FAKED",
        "  users/0002_alter_user_email.py ... OK",
        "  products/0001_initial.py ... FAKED",
        "  orders/0001_initial.py ... FAKED",
        "Migrations completed successfully for tenant 'acme'.",
    ]
    assert migration_rows(project.tenant_db("acme")) == ALL_ROWS
    assert sqlite_schema(project.tenant_db("acme")) == schema

    # Django's own migrate --fake-initial in the same situation fakes and runs the same migrations.
    env = plain_env(project)
    run(project, "migrate", "--no-input", env=env)
    with sqlite3.connect(env["TM_MASTER_SQLITE"]) as conn:
        conn.execute("DELETE FROM django_migrations WHERE app IN ('users', 'products', 'orders')")
    django = run(project, "migrate", "--fake-initial", env=env)
    assert django[2:] == [
        "Running migrations:",
        "  Applying users.0001_initial... FAKED",
        "  Applying users.0002_alter_user_email... OK",
        "  Applying products.0001_initial... FAKED",
        "  Applying orders.0001_initial... FAKED",
    ]


def test_spec_fake_initial_on_a_fresh_tenant_applies_everything(project: Project) -> None:
    acme(project)
    out = run(project, "migratetenant", "--tenant-id=acme", "--fake-initial")
    assert out == SPEC_RUN.splitlines()
    assert migration_rows(project.tenant_db("acme")) == ALL_ROWS
    tables = {r[1] for r in sqlite_schema(project.tenant_db("acme")) if r[0] == "table"}
    assert tables == {"django_migrations", "users_user", "products_product", "orders_order"}


# --- Skip confirmation prompts -----------------------------------------------------------------


def test_spec_no_input_prints_the_single_tenant_flow(project: Project) -> None:
    acme(project)
    assert run(project, "migratetenant", "--tenant-id=acme", "--no-input") == SPEC_RUN.splitlines()
    assert migration_rows(project.tenant_db("acme")) == ALL_ROWS
    again = run(project, "migratetenant", "--tenant-id=acme", "--noinput")
    assert again == expected_run("acme", "ACME Corporation", [])


# --- New Tenant Setup --------------------------------------------------------------------------


def test_spec_new_tenant_setup_interactive_createtenant_then_migratetenant(project: Project) -> None:
    # Answers: tenant id, display name, then the defaults (database isolation, acme_db).
    out = run(project, "createtenant", input="acme\nACME Corporation\n\n\n")
    # input() writes its prompts to stdout without a newline: they share the line of the result.
    assert out == [
        "Tenant id: Display name [acme]: Isolation (database/schema) [database]: "
        "Database name [acme_db]: "
        f"Tenant 'acme' created (ACME Corporation, database isolation: {project.tenant_db('acme')})."
    ]
    assert project.tenant_db("acme").name == "acme_db.sqlite3"
    assert not sqlite_schema(project.tenant_db("acme"))
    assert run(project, "migratetenant", "--tenant-id=acme") == SPEC_RUN.splitlines()
    assert migration_rows(project.tenant_db("acme")) == ALL_ROWS


# --- Database Isolation (SQLite) ---------------------------------------------------------------


def test_spec_database_isolation_each_tenant_only_touches_its_own_database(project: Project) -> None:
    tenants(project, "acme", "globex")
    master = project.root.parent / "master.sqlite3"
    master_rows = migration_rows(master)
    assert project.tenant_db("acme") != project.tenant_db("globex")

    acme_before = project.tenant_db("acme").read_bytes()
    out = run(project, "migratetenant", "--tenant-id=globex")
    assert out == expected_run("globex", "Globex Corporation", SPEC_MIGRATIONS)
    assert project.tenant_db("acme").read_bytes() == acme_before
    assert migration_rows(project.tenant_db("globex")) == ALL_ROWS

    globex_before = project.tenant_db("globex").read_bytes()
    out = run(project, "migratetenant", "--tenant-id=acme")
    assert out == SPEC_RUN.splitlines()
    assert project.tenant_db("globex").read_bytes() == globex_before
    assert migration_rows(project.tenant_db("acme")) == ALL_ROWS

    # Backwards too: unapplying in acme leaves globex's file as it was.
    out = run(project, "migratetenant", "--tenant-id=acme", "users", "zero")
    assert out == [
        "Running migrations for tenant: ACME Corporation",
        "Operations to perform:",
        "  Unapply all migrations: users",
        "Running migrations:",
        "  Unapplying orders/0001_initial.py ... OK",
        "  Unapplying users/0002_alter_user_email.py ... OK",
        "  Unapplying users/0001_initial.py ... OK",
        "Migrations completed successfully for tenant 'acme'.",
    ]
    assert project.tenant_db("globex").read_bytes() == globex_before
    assert migration_rows(master) == master_rows


# --- Add New Feature Across All Tenants --------------------------------------------------------


def add_stock_feature(project: Project) -> None:
    """A new field, with its model change and its migration, as makemigrations would leave them."""
    models = project.root / "products" / "models.py"
    models.write_text(
        models.read_text().replace(
            "    price = models.DecimalField(max_digits=10, decimal_places=2)\n",
            "    price = models.DecimalField(max_digits=10, decimal_places=2)\n"
            "    stock = models.IntegerField(default=0)\n",
        )
    )
    assert "stock" in models.read_text()
    project.add_migration("products", "0002_product_stock", STOCK_MIGRATION)


SUMMARY = re.compile(r"Summary: 3 tenants in \d+\.\ds: 3 migrated\.")
REPLAY = re.compile(
    r"  3 migrations applied: (?:(\d+) compiled to SQL and run)?(?:, )?"
    r"(?:(\d+) replayed from SQL compiled for another tenant)?\."
)
PROGRESS = re.compile(r"Progress: ([123])/3 tenants, 0 failed, \d+\.\d tenants/s, about \d+s left")


@pytest.mark.parametrize("how", ["migratealltenants", "migratetenant for each"])
def test_spec_add_new_feature_across_all_tenants(project: Project, how: str) -> None:
    trio = ("acme", "globex", "dev")
    tenants(project, *trio)
    for tenant_id in trio:
        out = run(project, "migratetenant", f"--tenant-id={tenant_id}")
        assert out == expected_run(tenant_id, NAMES[tenant_id], SPEC_MIGRATIONS)

    add_stock_feature(project)
    new = ["products/0002_product_stock.py"]
    if how == "migratealltenants":
        proc = project.manage("migratealltenants", check=False)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        # Tenants run concurrently: every line names its tenant; each tenant's lines in order.
        *body, summary, replay = lines
        assert SUMMARY.fullmatch(summary), summary
        match = REPLAY.fullmatch(replay)
        assert match and sum(int(n or 0) for n in match.groups()) == 3, replay
        for tenant_id in trio:
            prefix = f"[{tenant_id}] "
            mine = [line.removeprefix(prefix) for line in body if line.startswith(prefix)]
            assert mine == expected_run(tenant_id, NAMES[tenant_id], new), tenant_id
        assert len(body) == 3 * len(expected_run("acme", "", new))
        progress = proc.stderr.splitlines()
        assert progress and all(PROGRESS.fullmatch(line) for line in progress), proc.stderr
        assert progress[-1].startswith("Progress: 3/3 tenants, 0 failed, ")
    else:
        for tenant_id in trio:
            out = run(project, "migratetenant", f"--tenant-id={tenant_id}")
            assert out == expected_run(tenant_id, NAMES[tenant_id], new)

    for tenant_id in trio:
        rows = migration_rows(project.tenant_db(tenant_id))
        assert rows == sorted([*ALL_ROWS, ("products", "0002_product_stock")]), tenant_id
        with sqlite3.connect(project.tenant_db(tenant_id)) as conn:
            columns = [r[1] for r in conn.execute("PRAGMA table_info(products_product)")]
        assert columns[-1] == "stock", tenant_id

    # Nothing left to do: Django's own "No migrations to apply." form, under each tenant's header.
    for tenant_id in trio:
        out = run(project, "migratetenant", f"--tenant-id={tenant_id}")
        assert out == expected_run(tenant_id, NAMES[tenant_id], [])
    env = plain_env(project)
    run(project, "migrate", "--no-input", env=env)
    django = run(project, "migrate", "--no-input", env=env)
    assert django[2:] == ["Running migrations:", "  No migrations to apply."]
    assert out[3:5] == django[2:]


def test_no_migrations_to_apply_warns_of_unreflected_model_changes_as_django_does(project: Project) -> None:
    acme(project)
    run(project, "migratetenant", "--tenant-id=acme")
    models = project.root / "products" / "models.py"
    models.write_text(
        models.read_text() + "\n\nclass Shelf(models.Model):\n    code = models.IntegerField()\n"
    )
    env = plain_env(project)
    run(project, "migrate", "--no-input", env=env)
    django = run(project, "migrate", "--no-input", env=env)
    notice = [
        "  Your models in app(s): 'products' have changes that are not yet reflected in a migration, "
        "and so won't be applied.",
        "  Run 'manage.py makemigrations' to make new migrations, and then re-run 'manage.py migrate' "
        "to apply them.",
    ]
    assert django[2:] == ["Running migrations:", "  No migrations to apply.", *notice]
    out = run(project, "migratetenant", "--tenant-id=acme")
    expected = expected_run("acme", "ACME Corporation", [])
    # The same notice, naming the command to re-run.
    notice[1] = notice[1].replace("'manage.py migrate'", "'manage.py migratetenant'")
    assert out == [*expected[:-1], *notice, expected[-1]]


# --- Zero-Downtime Updates ---------------------------------------------------------------------


def test_spec_zero_downtime_loop_one_tenant_at_a_time(project: Project) -> None:
    loop = ("acme", "globex", "dev", "staging")
    tenants(project, *loop)
    done: list[str] = []
    for tenant_id in loop:  # the documented loop, without the sleep
        out = run(project, "migratetenant", f"--tenant-id={tenant_id}")
        assert out == expected_run(tenant_id, NAMES[tenant_id], SPEC_MIGRATIONS), tenant_id
        done.append(tenant_id)
        for other in loop:
            if other in done:
                assert migration_rows(project.tenant_db(other)) == ALL_ROWS, (tenant_id, other)
            else:
                assert not sqlite_schema(project.tenant_db(other)), f"{other} touched by {tenant_id}"
    reference = sqlite_schema(project.tenant_db("acme"))
    for tenant_id in loop:
        assert sqlite_schema(project.tenant_db(tenant_id)) == reference, tenant_id
        plan = run(project, "migratetenant", f"--tenant-id={tenant_id}", "--plan")
        assert plan == [f"Planned operations for tenant '{tenant_id}':", "  No planned migration operations."]


# --- Schema (and database) isolation on PostgreSQL ---------------------------------------------


@pytest.mark.parametrize("isolation", ["schema", "database"])
def test_spec_postgres_isolation_acme_and_globex(tmp_path: Path, pg_prefix: str, isolation: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    master = project.master  # type: ignore[attr-defined]
    make_tenant(project, "acme", isolation)
    make_tenant(project, "globex", isolation)
    where = {t: tenant_location(project, pg_prefix, t, isolation) for t in ("acme", "globex")}
    if isolation == "schema":
        assert where == {"acme": (master, "public_acme"), "globex": (master, "public_globex")}
        assert {"public_acme", "public_globex"} <= set(schemas(master))
    else:
        assert where == {
            "acme": (f"{pg_prefix}acme_db", "public"),
            "globex": (f"{pg_prefix}globex_db", "public"),
        }

    def snapshot(tenant_id: str) -> tuple:
        return catalog(*where[tenant_id]), data(*where[tenant_id])

    shared_before = catalog(master), data(master)
    globex_before = snapshot("globex")
    assert globex_before[0]["tables"] == []
    assert run(project, "migratetenant", "--tenant-id=acme") == SPEC_RUN.splitlines()
    assert history(*where["acme"]) == ALL_ROWS
    assert snapshot("globex") == globex_before, "acme's run touched globex"

    acme_after = snapshot("acme")
    out = run(project, "migratetenant", "--tenant-id=globex")
    assert out == expected_run("globex", "Globex", SPEC_MIGRATIONS)
    assert history(*where["globex"]) == ALL_ROWS
    assert snapshot("acme") == acme_after, "globex's run touched acme"
    assert catalog(*where["globex"]) == acme_after[0]
    assert (catalog(master), data(master)) == shared_before, "a tenant's run touched the shared public schema"
