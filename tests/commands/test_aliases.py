"""Tenants as database aliases for Django's own commands (as in
`showmigrations --database=acme`) and for code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.project import Project, make_tenant, pg_project


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
    check_django_commands(project, postgres="TM_PG_NAME" in plain_env)

    proc = project.manage("showmigrations", "--database=nope", check=False)
    # One line, on every Django version (not argparse's usage and "invalid choice").
    assert proc.returncode == 1 and proc.stderr == "Error: No database alias or tenant is named 'nope'.\n"


def run_sql(project: Project, tenant_id: str, statement: str) -> None:
    project.manage(
        "shell",
        "-c",
        f"from django.db import connections\nwith connections[{tenant_id!r}].cursor() as c:\n"
        f"    c.execute({statement!r})\n",
    )


def skus(project: Project, tenant_id: str) -> list[str]:
    out = project.manage(
        "shell",
        "-c",
        "from products.models import Product\n"
        f"print(sorted(Product.objects.using({tenant_id!r}).values_list('sku', flat=True)))",
    ).stdout
    return eval(out.strip().splitlines()[-1])


def check_django_commands(project: Project, postgres: bool) -> None:
    """inspectdb, check, loaddata, dbshell, sqlmigrate and flush with --database=<tenant>: each
    acts on that tenant only (acme has a table and rows globex has not)."""
    run_sql(project, "acme", "CREATE TABLE acme_only (id integer PRIMARY KEY)")
    inspected = project.manage("inspectdb", "--database=acme").stdout
    assert (
        "class AcmeOnly(models.Model):" in inspected and "class ProductsProduct(models.Model):" in inspected
    )
    inspected = project.manage("inspectdb", "--database", "globex").stdout  # the space form too
    assert "class AcmeOnly" not in inspected and "class ProductsProduct(models.Model):" in inspected

    # check takes several databases.
    out = project.manage("check", "--database", "acme", "--database=globex").stdout
    assert "System check identified no issues (0 silenced)." in out

    fixture = project.root / "loaded.json"
    fixture.write_text(
        json.dumps(
            [
                {
                    "model": "products.product",
                    "pk": 900,
                    "fields": {"sku": "loaded", "name": "L", "price": "1.00"},
                }
            ]
        )
    )
    project.manage("loaddata", str(fixture), "--database=acme")
    assert skus(project, "acme") == ["acme-only", "loaded"]
    assert skus(project, "globex") == ["globex-only"]

    if postgres:
        query = "SELECT current_schemas(false);\nSELECT count(*) AS acme_only FROM acme_only;\n"
        shell = project.manage("dbshell", "--database=acme", input=query).stdout
        assert " acme_only \n-----------\n         0\n" in shell, shell
        schemas = project.manage("dbshell", "--database=acme", input="SELECT current_schemas(false);\n")
        expected = "{public}" if project.env.get("TM_TEST_ISOLATION") == "database" else "{public_acme}"
        assert expected in schemas.stdout, schemas.stdout
        shell = project.manage(
            "dbshell", "--database=globex", input="SELECT to_regclass('acme_only') IS NULL;\n"
        )
        assert "\n t\n" in shell.stdout, shell.stdout

        # sqlmigrate reads the tenant's catalog: unapplying the unique email looks up the
        # constraint's name, renamed by hand in acme only.
        forward = project.manage("sqlmigrate", "users", "0002", "--database=globex").stdout
        constraint = forward.split('ADD CONSTRAINT "', 1)[1].split('"', 1)[0]
        run_sql(
            project, "acme", f'ALTER TABLE users_user RENAME CONSTRAINT "{constraint}" TO acme_email_uniq'
        )
        back = project.manage("sqlmigrate", "users", "0002", "--backwards", "--database=acme").stdout
        assert 'DROP CONSTRAINT "acme_email_uniq"' in back, back
        back = project.manage("sqlmigrate", "users", "0002", "--backwards", "--database=globex").stdout
        assert f'DROP CONSTRAINT "{constraint}"' in back, back
    else:
        shell = project.manage(
            "dbshell", "--database=acme", input="SELECT name FROM sqlite_master WHERE name = 'acme_only';\n"
        )
        assert shell.stdout.strip() == "acme_only"
        shell = project.manage(
            "dbshell",
            "--database=globex",
            input="SELECT count(*) FROM sqlite_master WHERE name = 'acme_only';\n",
        )
        assert shell.stdout.strip() == "0"

    project.manage("flush", "--database=acme", "--no-input")
    assert skus(project, "acme") == []
    assert skus(project, "globex") == ["globex-only"]


def test_sqlite_tenant_aliases(project: Project, tmp_path: Path) -> None:
    project.create_tenant("acme")
    project.create_tenant("globex")
    check_tenant_aliases(project, {"TM_MASTER_SQLITE": str(tmp_path / "plain.sqlite3")})


@pytest.mark.parametrize("isolation", ["schema", "database"])
def test_postgres_tenant_aliases(tmp_path: Path, pg_prefix: str, isolation: str) -> None:
    from helpers.pg import create_database

    project = pg_project(tmp_path, pg_prefix)
    project.env["TM_TEST_ISOLATION"] = isolation
    make_tenant(project, "acme", isolation)
    make_tenant(project, "globex", isolation)
    plain = f"{pg_prefix}plain"
    create_database(plain)
    check_tenant_aliases(project, {"TM_PG_NAME": plain})


def test_no_registry_yet_is_not_an_error(tmp_path: Path) -> None:
    from helpers.project import make_project

    project = make_project(tmp_path, master=False)
    proc = project.manage("showmigrations", "--database=acme", check=False)
    # One line, on every Django version: no tenant can be named before the registry exists.
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: No database alias is named 'acme', and there are no tenants yet")
    assert proc.stderr.rstrip().endswith("Run 'python manage.py migrate' first.")
    assert len(proc.stderr.splitlines()) == 1
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


def test_database_tenant_alias_carries_its_connection_overrides(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "database", '--connection={"HOST": "localhost"}')
    project.manage("migratetenant", "--tenant-id=acme")
    out = project.manage(
        "shell",
        "-c",
        "from django.db import connections\n"
        "c = connections['acme']\n"
        "print(c.settings_dict['HOST'], c.settings_dict['NAME'])\n"
        "with c.cursor() as cur:\n"
        "    cur.execute('SELECT current_database()')\n"
        "    print(cur.fetchone()[0])\n",
    ).stdout.split()
    assert out[-3:] == ["localhost", f"{pg_prefix}acme_db", f"{pg_prefix}acme_db"]


def test_a_used_tenant_connection_is_closed_at_the_end_of_the_request(project: Project) -> None:
    project.create_tenant("acme", "ACME Corporation")
    project.manage("migratetenant", "--tenant-id=acme")
    script = (
        "from django.core.signals import request_finished, request_started\n"
        "from django.db import connections\n"
        "from products.models import Product\n"
        "request_started.send(sender=None)\n"
        "Product.objects.using('acme').count()\n"
        "assert connections['acme'].connection is not None\n"
        "request_finished.send(sender=None)\n"
        "print('closed' if connections['acme'].connection is None else 'open')\n"
    )
    assert project.manage("shell", "-c", script).stdout.split()[-1] == "closed"
