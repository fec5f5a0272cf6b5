"""Which apps go where: ``migrate`` fills the master with shared apps only, ``migrate
--database=<tenant>`` migrates the tenant the tenant's way, a system check finds tenant-only
tables left in the master, and Django's notice about unmigrated model changes appears exactly
when Django's ``migrate`` prints it (squashed apps included).

Everything runs through manage.py on a private copy of the example project (SQLite).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers.project import Project, make_project, migration_rows

NOTICE = "have changes that are not yet reflected in a migration"


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def master(project: Project) -> Path:
    return Path(project.env["TM_MASTER_SQLITE"])


def test_master_gets_shared_apps_only(tmp_path: Path) -> None:
    # TENANT_APPS users, products, orders; SHARED_APPS unset: the default.
    project = make_project(tmp_path, shared_apps=None)
    names = tables(master(project))
    assert {"auth_user", "django_content_type", "tenant_migrate_tenant"} <= names
    assert not {n for n in names if n.startswith(("users_", "products_", "orders_"))}
    # Django records every migration, as it does for any router that declines an app.
    assert ("orders", "0001_initial") in migration_rows(master(project))


def test_an_app_in_both_lists_goes_to_both(tmp_path: Path) -> None:
    project = make_project(tmp_path, master=False, shared_apps=None)
    project.env["TM_SHARED_APPS"] = "contenttypes,auth,users"
    project.manage("migrate", "--no-input")
    names = tables(master(project))
    assert "users_user" in names
    assert "orders_order" not in names
    project.create_tenant("acme")
    project.manage("migratetenant", "--tenant-id=acme")
    assert {"users_user", "orders_order"} <= tables(project.tenant_db("acme"))
    assert "auth_user" not in tables(project.tenant_db("acme"))


def test_check_warns_about_tenant_tables_in_the_master(tmp_path: Path) -> None:
    project = make_project(tmp_path, shared_apps=None)
    quiet = project.manage("check", "--database", "default")
    assert "W002" not in quiet.stdout + quiet.stderr
    with sqlite3.connect(master(project)) as conn:
        conn.execute('CREATE TABLE "orders_order" ("id" integer NOT NULL PRIMARY KEY)')
    warned = project.manage("check", "--database", "default")
    text = warned.stdout + warned.stderr
    warning = (
        "(tenant_migrate.W002) The master database holds tables of tenant-only app 'orders': orders_order."
    )
    assert warning in text
    assert "Drop these tables from the master" in text
    # Where it matters most: the master's own migrate shows it too.
    assert "tenant_migrate.W002" in project.manage("migrate", "--no-input").stderr


def test_migrate_on_a_tenant_alias_runs_migratetenant(tmp_path: Path) -> None:
    project = make_project(tmp_path, shared_apps=None)
    before = master(project).read_bytes()
    project.create_tenant("acme")
    project.create_tenant("globex")
    master_after_create = master(project).read_bytes()
    assert before != master_after_create  # the registry rows
    via_migrate = project.manage("migrate", "--database=acme", "--no-input")
    via_tenant = project.manage("migratetenant", "--tenant-id=globex", "--no-input")
    assert via_migrate.stdout.replace("acme", "X") == via_tenant.stdout.replace("globex", "X")
    # Only tenant apps are recorded in the tenant (no rows without tables), as migratetenant does.
    assert migration_rows(project.tenant_db("acme")) == migration_rows(project.tenant_db("globex"))
    assert {app for app, _ in migration_rows(project.tenant_db("acme"))} == {"users", "products", "orders"}
    assert master(project).read_bytes() == master_after_create
    # The target and the options mean what they mean for migrate.
    back = project.manage("migrate", "--database=acme", "orders", "zero", "--plan")
    assert "Unapply orders/0001_initial.py" in back.stdout
    refused = project.manage("migrate", "--database=acme", "--run-syncdb", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "CommandError: 'acme' is a tenant: --run-syncdb is not supported there; run "
        "'python manage.py migratetenant --tenant-id=acme'."
    ]


SQUASH = """from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [("users", "0001_initial"), ("users", "0002_alter_user_email")]
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="User",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("username", models.CharField(max_length=150, unique=True)),
                ("email", models.EmailField(max_length=254, unique=True)),
                ("date_joined", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
"""

LATER = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("users", "0002_alter_user_email")]
    operations = [migrations.AddField("user", "nick", models.CharField(max_length=10, default=""))]
"""


@pytest.mark.parametrize("changed", [False, True], ids=["no-changes", "unmigrated-change"])
def test_notice_exactly_when_django_prints_it(tmp_path: Path, changed: bool) -> None:
    """A squash whose name sorts after a later migration (its graph holds both, until Django
    resolves the squash): the notice must follow Django's migrate, not the raw graph."""
    project = make_project(tmp_path, master=False, shared_apps=None)
    project.env["TM_SHARED_APPS"] = "contenttypes,auth,users"
    models_py = project.root / "users" / "models.py"
    field = "    nick = models.CharField(max_length={}, default='')\n"
    models_py.write_text(models_py.read_text() + field.format(12 if changed else 10))
    project.add_migration("users", "0003_user_nick", LATER)
    project.add_migration("users", "0009_squashed", SQUASH)
    project.manage("migrate", "--no-input")
    project.create_tenant("acme")
    project.manage("migratetenant", "--tenant-id=acme")
    django_says = project.manage("migrate", "--no-input").stdout
    ours = project.manage("migratetenant", "--tenant-id=acme").stdout
    assert "No migrations to apply." in django_says
    assert "No migrations to apply." in ours
    assert (NOTICE in ours) == (NOTICE in django_says) == changed
    if changed:
        assert "Your models in app(s): 'users' have changes" in ours
