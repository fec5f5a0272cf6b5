"""migratetenant and createtenant on SQLite, run as a user runs them, output checked line by line."""

from __future__ import annotations

import sqlite3

from helpers.project import Project, make_project, migration_rows, sqlite_schema
from helpers.spec import ALL_ROWS, SPEC_PLAN, SPEC_RUN, acme


def assert_clean_error(proc, first_lines: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(first_lines), proc.stderr


def test_spec_single_tenant_flow(project: Project) -> None:
    acme(project)
    out = project.manage("migratetenant", "--tenant-id=acme").stdout
    assert out.splitlines() == SPEC_RUN.splitlines()
    assert migration_rows(project.tenant_db("acme")) == ALL_ROWS


def test_spec_show_plan_changes_nothing(project: Project) -> None:
    acme(project)
    before = project.tenant_db("acme").read_bytes()
    out = project.manage("migratetenant", "--tenant-id=acme", "--plan").stdout
    assert out.splitlines() == SPEC_PLAN.splitlines()
    assert project.tenant_db("acme").read_bytes() == before


def test_plan_after_migrating_is_empty(project: Project) -> None:
    acme(project)
    project.manage("migratetenant", "--tenant-id=acme")
    out = project.manage("migratetenant", "--tenant-id=acme", "--plan").stdout
    assert out.splitlines() == [
        "Planned operations for tenant 'acme':",
        "  No planned migration operations.",
    ]
    again = project.manage("migratetenant", "--tenant-id=acme").stdout.splitlines()
    assert again[3:] == [
        "Running migrations:",
        "  No migrations to apply.",
        "Migrations completed successfully for tenant 'acme'.",
    ]


def test_spec_migrate_specific_app(project: Project) -> None:
    acme(project)
    out = project.manage("migratetenant", "--tenant-id=acme", "users").stdout
    assert out.splitlines() == [
        "Running migrations for tenant: ACME Corporation",
        "Operations to perform:",
        "  Apply all migrations: users",
        "Running migrations:",
        "  users/0001_initial.py ... OK",
        "  users/0002_alter_user_email.py ... OK",
        "Migrations completed successfully for tenant 'acme'.",
    ]
    assert migration_rows(project.tenant_db("acme")) == [
        ("users", "0001_initial"),
        ("users", "0002_alter_user_email"),
    ]


def test_spec_migrate_to_specific_migration_and_back(project: Project) -> None:
    acme(project)
    out = project.manage("migratetenant", "--tenant-id=acme", "users", "0002_alter_user_email")
    assert out.stdout.splitlines()[2] == "  Target specific migration: 0002_alter_user_email, from users"
    project.manage("migratetenant", "--tenant-id=acme")
    back = project.manage("migratetenant", "--tenant-id=acme", "users", "0001").stdout
    assert back.splitlines() == [
        "Running migrations for tenant: ACME Corporation",
        "Operations to perform:",
        "  Target specific migration: 0001_initial, from users",
        "Running migrations:",
        "  Unapplying orders/0001_initial.py ... OK",
        "  Unapplying users/0002_alter_user_email.py ... OK",
        "Migrations completed successfully for tenant 'acme'.",
    ]
    assert migration_rows(project.tenant_db("acme")) == [
        ("products", "0001_initial"),
        ("users", "0001_initial"),
    ]
    names = {r[1] for r in sqlite_schema(project.tenant_db("acme"))}
    assert "orders_order" not in names and "users_user" in names


def test_zero_unapplies_the_app_and_its_dependants(project: Project) -> None:
    acme(project)
    project.manage("migratetenant", "--tenant-id=acme")
    out = project.manage("migratetenant", "--tenant-id=acme", "users", "zero").stdout
    assert "  Unapply all migrations: users" in out.splitlines()
    assert migration_rows(project.tenant_db("acme")) == [("products", "0001_initial")]


def test_spec_fake_initial_and_no_input(project: Project) -> None:
    acme(project)
    project.manage("migratetenant", "--tenant-id=acme")
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        conn.execute("DELETE FROM django_migrations")
    out = project.manage("migratetenant", "--tenant-id=acme", "--fake-initial", "--no-input").stdout
    assert "  users/0001_initial.py ... FAKED" in out.splitlines()
    assert "  products/0001_initial.py ... FAKED" in out.splitlines()
    assert "  orders/0001_initial.py ... FAKED" in out.splitlines()
    assert migration_rows(project.tenant_db("acme")) == ALL_ROWS


def test_fake_records_without_running(project: Project) -> None:
    acme(project)
    out = project.manage("migratetenant", "--tenant-id=acme", "--fake").stdout
    assert "  users/0001_initial.py ... FAKED" in out.splitlines()
    assert migration_rows(project.tenant_db("acme")) == ALL_ROWS
    tables = {r[1] for r in sqlite_schema(project.tenant_db("acme")) if r[0] == "table"}
    assert tables == {"django_migrations"}


def test_spec_rollback_line_fake_to_earlier(project: Project) -> None:
    acme(project)
    project.manage("migratetenant", "--tenant-id=acme")
    out = project.manage("migratetenant", "--tenant-id=acme", "--fake", "users", "0001_initial").stdout
    assert "  Unapplying users/0002_alter_user_email.py ... FAKED" in out.splitlines()
    # --fake changes no schema: the later tables are still there.
    tables = {r[1] for r in sqlite_schema(project.tenant_db("acme")) if r[0] == "table"}
    assert "orders_order" in tables
    assert ("users", "0002_alter_user_email") not in migration_rows(project.tenant_db("acme"))


def test_createtenant_migrate_runs_migratetenant(project: Project) -> None:
    out = project.manage(
        "createtenant", "--tenant-id=acme", "--name=ACME Corporation", "--no-input", "--migrate"
    ).stdout.splitlines()
    assert out[0].startswith("Tenant 'acme' created (ACME Corporation, database isolation:")
    assert out[1:] == SPEC_RUN.splitlines()


def test_createtenant_prompts_for_missing_values(project: Project) -> None:
    proc = project.manage("createtenant", input="acme\nACME Corporation\n\n\n")
    assert "Tenant 'acme' created (ACME Corporation, database isolation:" in proc.stdout
    assert project.tenant_db("acme").exists()


def test_isolation_other_tenant_untouched(project: Project) -> None:
    acme(project)
    project.create_tenant("globex", "Globex")
    project.manage("migratetenant", "--tenant-id=globex", "users")
    before = project.tenant_db("globex").read_bytes()
    project.manage("migratetenant", "--tenant-id=acme")
    project.manage("migratetenant", "--tenant-id=acme", "users", "zero")
    assert project.tenant_db("globex").read_bytes() == before


def test_differential_against_djangos_own_migrate(tmp_path) -> None:
    """Same schema (exact SQL), same history, same content types and permissions."""
    apps = "contenttypes,auth,users,products,orders"
    project = make_project(tmp_path, tenant_apps=apps)
    project.create_tenant("acme", "ACME Corporation")
    project.manage("migratetenant", "--tenant-id=acme")
    plain = tmp_path / "plain.sqlite3"
    project.manage("migrate", "--no-input", env={"TM_MASTER_SQLITE": str(plain)})

    ours = project.tenant_db("acme")
    registry = ("tenant_migrate_",)
    assert sqlite_schema(ours) == sqlite_schema(plain, exclude_prefix=registry)
    assert migration_rows(ours) == migration_rows(plain, exclude_apps=("tenant_migrate",))

    def rows(path, sql):
        with sqlite3.connect(path) as conn:
            return sorted(conn.execute(sql).fetchall())

    content_types = "SELECT app_label, model FROM django_content_type WHERE app_label != 'tenant_migrate'"
    permissions = (
        "SELECT ct.app_label, p.codename, p.name FROM auth_permission p "
        "JOIN django_content_type ct ON ct.id = p.content_type_id WHERE ct.app_label != 'tenant_migrate'"
    )
    assert rows(ours, content_types) == rows(plain, content_types)
    assert rows(ours, permissions) == rows(plain, permissions)
    assert rows(ours, content_types), "post_migrate must have created content types in the tenant"


def test_error_unknown_tenant(project: Project) -> None:
    proc = project.manage("migratetenant", "--tenant-id=unknown", check=False)
    assert_clean_error(
        proc,
        "Error: Tenant 'unknown' does not exist.\nPlease create one with the tenant id 'unknown' first.\n",
    )
    assert proc.returncode == 1


def test_error_invalid_and_duplicate_tenant_id(project: Project) -> None:
    proc = project.manage("createtenant", "--tenant-id=Bad Id!", "--no-input", check=False)
    assert_clean_error(proc, "Error: Invalid tenant id 'Bad Id!': 1 to 63 characters")
    assert proc.stderr.count("Invalid tenant id") == 1
    acme(project)
    proc = project.manage("createtenant", "--tenant-id=acme", "--no-input", check=False)
    assert_clean_error(proc, "Error: Tenant 'acme' already exists.")
    proc = project.manage("createtenant", "--tenant-id=default", "--no-input", check=False)
    assert_clean_error(proc, "Error: Tenant id 'default' collides with the database alias")


def test_error_unknown_app_and_migration(project: Project) -> None:
    acme(project)
    proc = project.manage("migratetenant", "--tenant-id=acme", "nope", check=False)
    assert_clean_error(proc, "Error: No installed app with label 'nope'.")
    proc = project.manage("migratetenant", "--tenant-id=acme", "users", "0009", check=False)
    assert_clean_error(proc, "Error: Cannot find a migration matching '0009' from app 'users'.")
    proc = project.manage("migratetenant", "--tenant-id=acme", "users", "000", check=False)
    assert_clean_error(
        proc, "Error: More than one migration matches '000' in app 'users'. Please be more specific."
    )
    proc = project.manage("migratetenant", "--tenant-id=acme", "auth", check=False)
    assert_clean_error(proc, "Error: App 'auth' is not a tenant app.")
    assert not sqlite_schema(project.tenant_db("acme"))


def test_error_conflicting_migrations(project: Project) -> None:
    acme(project)
    project.add_migration(
        "users",
        "0002_other",
        "from django.db import migrations\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('users', '0001_initial')]\n"
        "    operations = []\n",
    )
    proc = project.manage("migratetenant", "--tenant-id=acme", check=False)
    assert_clean_error(
        proc,
        "Error: Conflicting migrations detected\n"
        "Multiple leaf nodes in the migration graph: (0002_alter_user_email, 0002_other in users).\n",
    )
    assert not sqlite_schema(project.tenant_db("acme"))
    # Django checks conflicts before the app label.
    proc = project.manage("migratetenant", "--tenant-id=acme", "nope", check=False)
    assert_clean_error(proc, "Error: Conflicting migrations detected\n")


def test_error_failing_migration_keeps_earlier_and_applies_nothing_of_itself(project: Project) -> None:
    acme(project)
    project.add_migration(
        "products",
        "0002_broken",
        "from django.db import migrations, models\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [\n"
        "        migrations.AddField('product', 'stock', models.IntegerField(default=0)),\n"
        "        migrations.RunSQL('INSERT INTO no_such_table VALUES (1)'),\n"
        "    ]\n",
    )
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", check=False)
    assert proc.stdout.splitlines()[-1] == "  products/0002_broken.py ... FAILED"
    assert_clean_error(
        proc,
        "Error: Migration products/0002_broken.py failed for tenant 'acme': no such table: no_such_table\n"
        "Statement: INSERT INTO no_such_table VALUES (1)",
    )
    assert migration_rows(project.tenant_db("acme")) == [("products", "0001_initial")]
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(products_product)")]
    assert "stock" not in columns


def test_error_failing_migration_applied_by_django_names_migration_and_statement(project: Project) -> None:
    """A migration Django applies itself (it runs Python) fails with the same text as one the
    Rust core replays: the tenant, the migration, Django's reason and the statement."""
    acme(project)
    project.add_migration(
        "products",
        "0002_broken",
        "from django.db import migrations, models\n\n"
        "def noop(apps, schema_editor):\n"
        "    pass\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [\n"
        "        migrations.AddField('product', 'stock', models.IntegerField(default=0)),\n"
        "        migrations.RunPython(noop),\n"
        "        migrations.RunSQL([('INSERT INTO no_such_table VALUES (%s)', [7])]),\n"
        "    ]\n",
    )
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", check=False)
    assert proc.stdout.splitlines()[-1] == "  products/0002_broken.py ... FAILED"
    assert proc.stderr == (
        "Error: Migration products/0002_broken.py failed for tenant 'acme': no such table: no_such_table\n"
        "Statement: INSERT INTO no_such_table VALUES (7)\n"
    )
    assert proc.returncode == 1
    assert migration_rows(project.tenant_db("acme")) == [("products", "0001_initial")]
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(products_product)")]
    assert "stock" not in columns

    # A Python error names the migration too; there is no statement to show.
    path = project.root / "products" / "migrations" / "0002_broken.py"
    path.write_text(
        path.read_text()
        .replace("    pass\n", "    raise ValueError('no stock data for acme')\n")
        .replace("        migrations.RunSQL([('INSERT INTO no_such_table VALUES (%s)', [7])]),\n", "")
    )
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", check=False)
    assert proc.stderr == (
        "Error: Migration products/0002_broken.py failed for tenant 'acme': "
        "ValueError: no stock data for acme\n"
    )
    assert proc.returncode == 1
    assert migration_rows(project.tenant_db("acme")) == [("products", "0001_initial")]


def test_error_tenant_database_missing(project: Project) -> None:
    acme(project)
    project.tenant_db("acme").unlink()
    proc = project.manage("migratetenant", "--tenant-id=acme", check=False)
    assert_clean_error(proc, "Error: Cannot connect to tenant database\n")
    assert proc.stderr.splitlines()[1] == f"unable to open database file: {project.tenant_db('acme')}"
    assert not project.tenant_db("acme").exists()


def test_traceback_only_when_asked(project: Project) -> None:
    proc = project.manage("migratetenant", "--tenant-id=unknown", "--traceback", check=False)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_check_exits_nonzero_while_anything_is_pending(project: Project) -> None:
    acme(project)
    proc = project.manage("migratetenant", "--tenant-id=acme", "--check", check=False)
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    proc = project.manage("migratetenant", "--tenant-id=acme", "--check", "--plan", check=False)
    assert proc.returncode == 1 and proc.stdout.splitlines() == SPEC_PLAN.splitlines()
    assert not sqlite_schema(project.tenant_db("acme")), "--check must change nothing"
    project.manage("migratetenant", "--tenant-id=acme")
    assert project.manage("migratetenant", "--tenant-id=acme", "--check").returncode == 0


def test_prune_deletes_rows_of_vanished_migrations(project: Project, tmp_path) -> None:
    """Differential against Django's migrate --prune: the same output and rows; nothing pruned
    when the run is refused (unknown target, conflicts); --prune migrates nothing."""
    acme(project)
    plain = tmp_path / "plain.sqlite3"
    plain_env = {"TM_MASTER_SQLITE": str(plain)}
    project.manage("migratetenant", "--tenant-id=acme")
    project.manage("migratetenant", "--tenant-id=acme", "users", "0001")
    project.manage("migrate", "--no-input", env=plain_env)
    project.manage("migrate", "users", "0001", "--no-input", env=plain_env)
    gone = (
        "INSERT INTO django_migrations (app, name, applied) VALUES "
        "('users', '0003_gone', '2026-01-01 00:00:00'), ('products', '0002_gone', '2026-01-01')"
    )
    for path in (project.tenant_db("acme"), plain):
        with sqlite3.connect(path) as conn:
            conn.execute(gone)

    def both(*args: str) -> tuple:
        ours = project.manage("migratetenant", "--tenant-id=acme", *args, check=False)
        django = project.manage("migrate", *args, env=plain_env, check=False)
        assert ours.returncode == django.returncode
        assert migration_rows(project.tenant_db("acme")) == migration_rows(
            plain, exclude_apps=("tenant_migrate", "contenttypes", "auth")
        )
        return ours, django

    ours, django = both("--prune")
    assert "Migrations can be pruned only when an app is specified." in ours.stderr
    assert "Migrations can be pruned only when an app is specified." in django.stderr
    ours, django = both("users", "0099", "--prune")
    assert ours.returncode == 1 and ("users", "0003_gone") in migration_rows(project.tenant_db("acme"))
    assert "Cannot find a migration matching '0099' from app 'users'." in ours.stderr

    project.add_migration(
        "products",
        "0002_other",
        "from django.db import migrations\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = []\n",
    )
    project.add_migration(
        "products",
        "0002_another",
        "from django.db import migrations\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = []\n",
    )
    ours, django = both("users", "--prune")
    assert ours.returncode == 1 and "Conflicting migrations detected" in ours.stderr
    for name in ("0002_other", "0002_another"):
        (project.root / "products" / "migrations" / f"{name}.py").unlink()

    ours, django = both("users", "--prune")
    assert ours.returncode == 0
    assert (
        ours.stdout.splitlines()
        == django.stdout.splitlines()
        == [
            "Pruning migrations:",
            "  Pruning users.0003_gone OK",
        ]
    )
    rows = migration_rows(project.tenant_db("acme"))
    assert ("users", "0003_gone") not in rows and ("products", "0002_gone") in rows
    assert ("users", "0002_alter_user_email") not in rows  # --prune migrates nothing
    ours, django = both("users", "--prune")
    assert (
        ours.stdout.splitlines()
        == django.stdout.splitlines()
        == [
            "Pruning migrations:",
            "  No migrations to prune.",
        ]
    )


def test_runpython_runs_in_the_tenant_with_ordering_kept(project: Project) -> None:
    acme(project)
    project.create_tenant("globex", "Globex")
    project.add_migration(
        "products",
        "0002_seed",
        "from django.db import migrations\n\n"
        "def seed(apps, schema_editor):\n"
        "    Product = apps.get_model('products', 'Product')\n"
        "    Product.objects.using(schema_editor.connection.alias).create(\n"
        "        sku='A1', name='Anvil', price=10)\n\n"
        "def unseed(apps, schema_editor):\n"
        "    apps.get_model('products', 'Product').objects.using(\n"
        "        schema_editor.connection.alias).filter(sku='A1').delete()\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [migrations.RunPython(seed, unseed)]\n",
    )
    project.add_migration(
        "products",
        "0003_stock",
        "from django.db import migrations, models\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0002_seed')]\n"
        "    operations = [migrations.AddField('product', 'stock', models.IntegerField(default=5))]\n",
    )
    out = project.manage("migratetenant", "--tenant-id=acme", "products").stdout.splitlines()
    assert out[-4:] == [
        "  products/0001_initial.py ... OK",
        "  products/0002_seed.py ... OK",
        "  products/0003_stock.py ... OK",
        "Migrations completed successfully for tenant 'acme'.",
    ]
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        assert conn.execute("SELECT sku, stock FROM products_product").fetchall() == [("A1", 5)]
    assert migration_rows(project.tenant_db("acme"))[-1] == ("products", "0003_stock")
    assert not sqlite_schema(project.tenant_db("globex")), "globex must not be touched"
    with sqlite3.connect(project.root.parent / "master.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM products_product").fetchone() == (0,)

    project.manage("migratetenant", "--tenant-id=acme", "products", "0001")
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        assert conn.execute("SELECT count(*) FROM products_product").fetchone() == (0,)


def test_irreversible_migration_refused_on_the_way_back(project: Project) -> None:
    acme(project)
    project.add_migration(
        "products",
        "0002_oneway",
        "from django.db import migrations\n\n"
        "def forwards(apps, schema_editor):\n"
        "    'Set default prices'\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [migrations.RunPython(forwards)]\n",
    )
    project.manage("migratetenant", "--tenant-id=acme", "products")
    plan = project.manage("migratetenant", "--tenant-id=acme", "products", "0001", "--plan", "-v", "2")
    assert plan.stdout.splitlines()[1:] == [
        "  Unapply products/0002_oneway.py",
        "    Raw Python operation -> IRREVERSIBLE",
    ]
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", "0001", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        "Error: Migration products/0002_oneway.py failed for tenant 'acme': IrreversibleError: Operation "
    ), proc.stderr
    assert "products.0002_oneway is not reversible" in proc.stderr
    assert ("products", "0002_oneway") in migration_rows(project.tenant_db("acme"))


def test_verbosity_two_shows_timings_and_operations(project: Project) -> None:
    acme(project)
    plan = project.manage("migratetenant", "--tenant-id=acme", "--plan", "-v", "2").stdout.splitlines()
    assert plan[1:3] == ["  users/0001_initial.py", "    Create model User"]
    out = project.manage("migratetenant", "--tenant-id=acme", "-v", "2").stdout.splitlines()
    assert any(line.startswith("  users/0001_initial.py ... OK (") for line in out)
    assert project.manage("migratetenant", "--tenant-id=acme", "-v", "0").stdout == ""


SQUASH_FILES = {
    "0002_stock": (
        "from django.db import migrations, models\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [migrations.AddField('product', 'stock', models.IntegerField(default=0))]\n"
    ),
    "0003_color": (
        "from django.db import migrations, models\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0002_stock')]\n"
        "    operations = [\n"
        "        migrations.AddField('product', 'color', models.CharField(max_length=9, default='')),\n"
        "    ]\n"
    ),
    "0002_squashed_0003": (
        "from django.db import migrations, models\n\n"
        "class Migration(migrations.Migration):\n"
        "    replaces = [('products', '0002_stock'), ('products', '0003_color')]\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [\n"
        "        migrations.AddField('product', 'stock', models.IntegerField(default=0)),\n"
        "        migrations.AddField('product', 'color', models.CharField(max_length=9, default='')),\n"
        "    ]\n"
    ),
}


def test_squashed_migrations_recorded_as_django_records_them(tmp_path) -> None:
    """Fresh, partially applied and fully applied squashes, against Django's own migrate."""
    project = make_project(tmp_path)
    for name, source in SQUASH_FILES.items():
        project.add_migration("products", name, source)
    plain = tmp_path / "plain.sqlite3"
    plain_env = {"TM_MASTER_SQLITE": str(plain)}

    # Fresh: the squash is used; its replaced migrations are recorded, then the squash itself.
    project.create_tenant("acme")
    out = project.manage("migratetenant", "--tenant-id=acme", "products").stdout.splitlines()
    assert "  products/0002_squashed_0003.py ... OK" in out
    project.manage("migrate", "products", "--no-input", env=plain_env)
    assert migration_rows(project.tenant_db("acme")) == migration_rows(plain, ("tenant_migrate",))
    assert ("products", "0002_squashed_0003") in migration_rows(project.tenant_db("acme"))

    # Partially applied (only 0002 recorded, as left by a deploy before the squash existed):
    # the originals are used and the squash is recorded once all it replaces is applied.
    project.create_tenant("globex")
    project.manage("migratetenant", "--tenant-id=globex", "products", "0001")
    with sqlite3.connect(project.tenant_db("globex")) as conn:
        conn.execute("ALTER TABLE products_product ADD COLUMN stock integer NOT NULL DEFAULT 0")
        conn.execute(
            "INSERT INTO django_migrations (app, name, applied) "
            "VALUES ('products', '0002_stock', '2026-01-01 00:00:00')"
        )
    plan = project.manage("migratetenant", "--tenant-id=globex", "products", "--plan").stdout
    assert plan.splitlines()[1:] == ["  products/0003_color.py"]
    project.manage("migratetenant", "--tenant-id=globex", "products")
    assert migration_rows(project.tenant_db("globex")) == migration_rows(project.tenant_db("acme"))
    with sqlite3.connect(project.tenant_db("globex")) as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(products_product)")}
    assert {"stock", "color"} <= columns

    # Backwards through the squash removes the replaced rows and the squash's own row.
    project.manage("migratetenant", "--tenant-id=acme", "products", "0001")
    project.manage("migrate", "products", "0001", "--no-input", env=plain_env)
    assert migration_rows(project.tenant_db("acme")) == migration_rows(plain, ("tenant_migrate",))
    assert ("products", "0002_squashed_0003") not in migration_rows(project.tenant_db("acme"))


def test_runsql_forwards_backwards_and_irreversible(project: Project) -> None:
    acme(project)
    project.add_migration(
        "products",
        "0002_sql",
        "from django.db import migrations\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [\n"
        "        migrations.RunSQL('CREATE TABLE extra (id integer)', 'DROP TABLE extra'),\n"
        "        migrations.RunSQL('CREATE TABLE oneway (id integer)'),\n"
        "    ]\n",
    )
    project.manage("migratetenant", "--tenant-id=acme", "products")
    names = {r[1] for r in sqlite_schema(project.tenant_db("acme"))}
    assert {"extra", "oneway"} <= names
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", "0001", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "IrreversibleError: Operation <RunSQL" in proc.stderr and "is not reversible" in proc.stderr
    names = {r[1] for r in sqlite_schema(project.tenant_db("acme"))}
    assert {"extra", "oneway"} <= names, "a refused unapply must leave everything in place"
    assert ("products", "0002_sql") in migration_rows(project.tenant_db("acme"))


def test_spec_target_forms_copied_from_output(project: Project) -> None:
    """`app/name.py` as printed by the plan and the run works as a target (spec: Rollback)."""
    acme(project)
    project.manage("migratetenant", "--tenant-id=acme")
    out = project.manage("migratetenant", "--tenant-id=acme", "--fake", "users/0001_initial.py").stdout
    assert "  Unapplying users/0002_alter_user_email.py ... FAKED" in out.splitlines()
    assert ("users", "0002_alter_user_email") not in migration_rows(project.tenant_db("acme"))
    out = project.manage("migratetenant", "--tenant-id=acme", "users", "0002_alter_user_email.py").stdout
    assert "  Target specific migration: 0002_alter_user_email, from users" in out.splitlines()
    proc = project.manage("migratetenant", "--tenant-id=acme", "--fake", "apps/0002_undo_change", check=False)
    assert_clean_error(proc, "Error: No installed app with label 'apps'.")


def test_inconsistent_history_refused_and_standard_options(project: Project) -> None:
    acme(project)
    colored = project.manage("migratetenant", "--tenant-id=acme", "--plan", "--force-color").stdout
    assert "\x1b[" in colored
    plain = project.manage("migratetenant", "--tenant-id=acme", "--plan", "--no-color").stdout
    assert "\x1b[" not in plain and plain.splitlines() == SPEC_PLAN.splitlines()
    project.manage("migratetenant", "--tenant-id=acme", "products", "--no-color", "--skip-checks")
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        conn.execute(
            "INSERT INTO django_migrations (app, name, applied) "
            "VALUES ('orders', '0001_initial', '2026-01-01 00:00:00')"
        )
    before = project.tenant_db("acme").read_bytes()
    proc = project.manage("migratetenant", "--tenant-id=acme", check=False)
    assert_clean_error(
        proc,
        "Error: Inconsistent migration history for tenant 'acme': Migration orders.0001_initial "
        "is applied before its dependency ",
    )
    assert project.tenant_db("acme").read_bytes() == before
