"""Tenants as database aliases for Django's own commands (the spec's
`showmigrations --database=acme`) and for code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Project
from django import VERSION as DJANGO_VERSION
from test_postgres import make_tenant, pg_project


def seed(project: Project, tenant_id: str, sku: str) -> None:
    # The tenant id is a database alias in code too, without any registration call.
    project.manage(
        "shell",
        "-c",
        "from products.models import Product\n"
        f"Product.objects.using({tenant_id!r}).create(sku={sku!r}, name='x', price=1)\n"
        "from django.db import connections\n"
        f"assert connections[{tenant_id!r}].settings_dict['NAME']\n",
    )


def check_tenant_aliases(project: Project, plain_env: dict[str, str]) -> None:
    project.manage("migratetenant", "--tenant-id=acme", "users")
    project.manage("migratetenant", "--tenant-id=globex")
    # Django's own showmigrations, for a plain database in the same state as acme.
    project.manage("migrate", "users", "--no-input", env=plain_env)
    ours = project.manage("showmigrations", "--database=acme").stdout
    django = project.manage("showmigrations", env=plain_env).stdout
    assert ours == django
    assert " [X] 0002_alter_user_email" in ours and " [ ] 0001_initial" in ours

    project.manage("migratetenant", "--tenant-id=acme")
    seed(project, "acme", "acme-only")
    seed(project, "globex", "globex-only")
    dumped = json.loads(project.manage("dumpdata", "products", "--database=acme").stdout)
    assert [row["fields"]["sku"] for row in dumped] == ["acme-only"]
    seen = project.manage(
        "shell",
        "-c",
        "from products.models import Product\n"
        "print(sorted(Product.objects.using('acme').values_list('sku', flat=True)))",
    ).stdout
    assert seen.strip().splitlines()[-1] == "['acme-only']"
    sql = project.manage("sqlmigrate", "products", "0001", "--database=acme").stdout
    assert 'CREATE TABLE "products_product"' in sql

    proc = project.manage("showmigrations", "--database=nope", check=False)
    if DJANGO_VERSION >= (5, 0):
        assert proc.returncode == 2 and "invalid choice: 'nope'" in proc.stderr
    else:  # Django 4.2's --database has no choices: its own error, not ours to reword
        assert proc.returncode == 1 and "The connection 'nope' doesn't exist." in proc.stderr


def test_sqlite_tenant_aliases(project: Project, tmp_path: Path) -> None:
    project.create_tenant("acme")
    project.create_tenant("globex")
    check_tenant_aliases(project, {"TM_MASTER_SQLITE": str(tmp_path / "plain.sqlite3")})


@pytest.mark.parametrize("isolation", ["schema", "database"])
def test_postgres_tenant_aliases(tmp_path: Path, pg_prefix: str, isolation: str) -> None:
    from pgutil import create_database

    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", isolation)
    make_tenant(project, "globex", isolation)
    plain = f"{pg_prefix}plain"
    create_database(plain)
    check_tenant_aliases(project, {"TM_PG_NAME": plain})


def test_no_registry_yet_is_not_an_error(tmp_path: Path) -> None:
    from conftest import make_project

    project = make_project(tmp_path, master=False)
    proc = project.manage("showmigrations", "--database=acme", check=False)
    if DJANGO_VERSION >= (5, 0):
        assert proc.returncode == 2 and "invalid choice: 'acme'" in proc.stderr
        assert "Traceback" not in proc.stderr
    else:  # Django 4.2's own error for an unknown --database (no choices there), not ours
        assert proc.returncode == 1 and "The connection 'acme' doesn't exist." in proc.stderr
        assert "TenantMigrateError" not in proc.stderr
    project.manage("migrate", "--no-input")


def test_a_thousand_registered_tenants_open_nothing(project: Project) -> None:
    """What iterates `connections` (check, the end-of-request cleanup, close_all) keeps working
    with 1,000 tenant aliases registered (they are not listed), and opens no connection."""
    script = (
        "import sqlite3\n"
        "from django.conf import settings\n"
        "from django.core.management import call_command\n"
        "from django.core.signals import request_finished\n"
        "from django.db import connections\n"
        "from tenant_migrate.aliases import tenant_alias\n"
        "from tenant_migrate.models import Tenant\n"
        "Tenant.objects.bulk_create([Tenant(tenant_id=f't{i:04d}', name='T', isolation='database',\n"
        "    database_name=f't{i:04d}_db') for i in range(1000)])\n"
        "aliases = [tenant_alias(f't{i:04d}') for i in range(1000)]\n"
        "assert len(list(connections)) == 1, list(connections)\n"
        "call_command('check')\n"
        "request_finished.send(sender=None)\n"
        "connections.close_all()\n"
        "opened = [c.alias for c in connections.all(initialized_only=True) if c.connection is not None]\n"
        "assert opened in ([], ['default']), opened\n"
        "print('checked', len(aliases))\n"
    )
    out = project.manage("shell", "-c", script).stdout
    assert "System check identified no issues" in out and "checked 1000" in out
    assert not project.tenant_dir.exists() or not any(project.tenant_dir.iterdir())


def test_projects_own_test_suite_runs_with_a_thousand_tenants_registered(project: Project) -> None:
    (project.root / "products" / "tests.py").write_text(
        "from django.db import connections\n"
        "from django.test import TestCase\n\n"
        "from products.models import Product\n"
        "from tenant_migrate.models import Tenant\n\n\n"
        "class WithTenants(TestCase):\n"
        "    def test_many_aliases(self):\n"
        "        Tenant.objects.bulk_create([Tenant(tenant_id=f't{i:04d}', name='T', isolation='database',\n"
        "            database_name=f't{i:04d}_db') for i in range(1000)])\n"
        "        self.assertTrue(all(connections[f't{i:04d}'].vendor == 'sqlite' for i in range(1000)))\n"
        "        self.assertEqual(list(connections), ['default'])\n"
        "        Product.objects.create(sku='a', name='A', price=1)\n"
        "        self.assertEqual(Product.objects.count(), 1)\n"
    )
    proc = project.manage("test", "products", "-v", "2")
    assert "Ran 1 test" in proc.stderr and "OK" in proc.stderr
    assert not project.tenant_dir.exists() or not any(project.tenant_dir.iterdir())
