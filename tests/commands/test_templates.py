"""createtenant --migrate from a template tenant: identical (catalog, history, content types
and permissions) to a tenant migrated from zero; a template that is behind is not used."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from helpers.pg import catalog, connect, history
from helpers.project import CONTRIB, Project, make_project, pg_project

NEW_MIGRATION = (
    "from django.db import migrations, models\n\n"
    "class Migration(migrations.Migration):\n"
    "    dependencies = [('products', '0001_initial')]\n"
    "    operations = [\n"
    "        migrations.AddField('product', 'stock', models.IntegerField(default=0)),\n"
    "    ]\n"
)


def sqlite_state(path: Path) -> tuple[list, ...]:
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY 1, 2").fetchall(),
            conn.execute("SELECT app, name FROM django_migrations ORDER BY app, name").fetchall(),
            conn.execute("SELECT * FROM django_content_type ORDER BY id").fetchall(),
            conn.execute("SELECT * FROM auth_permission ORDER BY id").fetchall(),
        )


def create(project: Project, tenant: str, *extra: str) -> list[str]:
    return project.manage(
        "createtenant", f"--tenant-id={tenant}", "--no-input", "--migrate", *extra
    ).stdout.splitlines()


def test_sqlite_template_copy_equals_a_tenant_migrated_from_zero(tmp_path: Path) -> None:
    project = make_project(tmp_path, tenant_apps=CONTRIB)
    project.env["TM_TENANT_TEMPLATE"] = "1"
    out = create(project, "acme")
    assert out[1] == "Copied from the tenant template (18 migrations already applied)."
    assert out[-3:] == [
        "Running migrations:",
        "  No migrations to apply.",
        "Migrations completed successfully for tenant 'acme'.",
    ]
    project.create_tenant("zero")
    project.manage("migratetenant", "--tenant-id=zero")
    zero = sqlite_state(project.tenant_db("zero"))
    assert zero[3], "post_migrate must have created permissions"
    assert sqlite_state(project.tenant_db("acme")) == zero

    # A new migration: the template is behind, so the next tenant migrates from zero...
    project.add_migration("products", "0002_product_stock", NEW_MIGRATION)
    out = create(project, "late")
    assert "Copied from the tenant template" not in "\n".join(out)
    assert out[0].startswith("The tenant template is behind the migrations on disk")
    assert "  products/0002_product_stock.py ... OK" in out
    # ... until a full migratealltenants brings the template up to date.
    run = project.manage("migratealltenants").stdout
    assert "Tenant template: migrated (1 migrations applied)." in run
    out = create(project, "fresh")
    assert out[1] == "Copied from the tenant template (19 migrations already applied)."
    assert sqlite_state(project.tenant_db("fresh")) == sqlite_state(project.tenant_db("late"))
    assert "Tenant template: up to date." in project.manage("migratealltenants").stdout
    # The template is no tenant: not listed, not migrated as one.
    assert "_template" not in project.manage("showtenantmigrations", "--summary").stdout


def test_without_the_setting_nothing_changes(project: Project) -> None:
    out = create(project, "acme")
    assert "Copied from the tenant template" not in "\n".join(out)
    assert "  users/0001_initial.py ... OK" in out
    assert not list(project.tenant_dir.glob("_template*"))


def test_postgres_database_from_template_equals_from_zero(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix, tenant_apps=CONTRIB)
    project.env["TM_TENANT_TEMPLATE"] = "1"
    out = create(project, "acme", "--isolation=database")
    assert out[1] == "Copied from the tenant template (18 migrations already applied)."
    project.create_tenant("zero", "Zero", "--isolation=database")
    project.manage("migratetenant", "--tenant-id=zero")
    copied, zero = f"{pg_prefix}acme_db", f"{pg_prefix}zero_db"
    assert catalog(copied) == catalog(zero)
    assert history(copied) == history(zero)
    rows = "SELECT * FROM django_content_type ORDER BY id", "SELECT * FROM auth_permission ORDER BY id"
    for query in rows:
        with connect(copied) as a, connect(zero) as b:
            assert a.execute(query).fetchall() == b.execute(query).fetchall(), query


def test_postgres_schema_from_template_equals_from_zero(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix, tenant_apps=CONTRIB)
    project.env["TM_TENANT_TEMPLATE"] = "1"
    out = create(project, "acme", "--isolation=schema")
    assert out[1] == "Copied from the tenant template (18 migrations already applied)."
    assert out[0].endswith("schema isolation: schema public_acme in database " + project.master + ").")  # type: ignore[attr-defined]
    project.create_tenant("zero", "Zero", "--isolation=schema")
    project.manage("migratetenant", "--tenant-id=zero")
    master = project.master  # type: ignore[attr-defined]
    assert catalog(master, "public_acme") == catalog(master, "public_zero")
    assert history(master, "public_acme") == history(master, "public_zero")
    with connect(master) as conn:
        for table in ("django_content_type", "auth_permission"):
            rows = [
                conn.execute(f"SELECT * FROM public_{t}.{table} ORDER BY id").fetchall()
                for t in ("acme", "zero")
            ]
            assert rows[0] == rows[1] and rows[0], table
        # The copy's sequences continue where the template's stopped, as the from-zero tenant's do.
        conn.execute("INSERT INTO public_acme.django_content_type (app_label, model) VALUES ('x', 'y')")
        conn.execute("INSERT INTO public_zero.django_content_type (app_label, model) VALUES ('x', 'y')")
        ids = [
            conn.execute(f"SELECT max(id) FROM public_{t}.django_content_type").fetchone()[0]
            for t in ("acme", "zero")
        ]
        assert ids[0] == ids[1]
    # A template that holds what a copy would miss is not used.
    with connect(master) as conn:
        conn.execute("CREATE VIEW public__template.v AS SELECT 1 AS one")
    out = create(project, "viewed", "--isolation=schema")
    assert "Copied from the tenant template" not in "\n".join(out)
    assert catalog(master, "public_viewed")["tables"] == catalog(master, "public_zero")["tables"]
    # migratealltenants keeps the templates that exist current (only the schema one here).
    project.add_migration("products", "0002_product_stock", NEW_MIGRATION)
    with connect(master) as conn:
        conn.execute("DROP VIEW public__template.v")
    run = project.manage("migratealltenants").stdout
    assert "Tenant template (schema isolation): migrated (1 migrations applied)." in run
    assert "database isolation" not in run
    out = create(project, "fresh", "--isolation=schema")
    assert out[1] == "Copied from the tenant template (19 migrations already applied)."
    assert catalog(master, "public_fresh") == catalog(master, "public_zero")
