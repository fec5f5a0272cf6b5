"""A swapped tenant model (TENANT_MIGRATE_TENANT_MODEL): tenant tables made for django-tenants
and django-omnitenant, read by the commands through TENANT_MIGRATE["TENANT_FIELDS"]."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers.project import make_project, migration_rows
from helpers.swapped import CUSTOMERS, DJANGO_TENANTS, OMNITENANT, swapped_project


def master_tables(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "master.sqlite3") as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_django_tenants_shaped_model_drives_create_and_migrate(tmp_path: Path) -> None:
    project = swapped_project(tmp_path, DJANGO_TENANTS)
    tables = master_tables(tmp_path)
    assert "customers_client" in tables
    assert "tenant_migrate_tenant" not in tables  # swapped out, like auth_user under a custom user

    out = project.manage("createtenant", "--tenant-id=acme", "--name=ACME Corporation", "--no-input")
    assert "Tenant 'acme' created (ACME Corporation, database isolation:" in out.stdout
    with sqlite3.connect(tmp_path / "master.sqlite3") as conn:
        assert conn.execute("SELECT schema_name, name FROM customers_client").fetchall() == [
            ("acme", "ACME Corporation")
        ]

    out = project.manage("migratetenant", "--tenant-id=acme").stdout.splitlines()
    assert out[0] == "Running migrations for tenant: ACME Corporation"
    assert out[-1] == "Migrations completed successfully for tenant 'acme'."
    assert len(migration_rows(project.tenant_db("acme"))) == 4
    # The registry's app stays out of tenants (TENANT_APPS None means "all apps but the registry").
    assert ("customers", "0001_initial") not in migration_rows(project.tenant_db("acme"))

    missing = project.manage("migratetenant", "--tenant-id=nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: Tenant 'nope' does not exist.")


def test_existing_omnitenant_rows_are_migrated_by_migratealltenants(tmp_path: Path) -> None:
    project = swapped_project(tmp_path, OMNITENANT)
    with sqlite3.connect(tmp_path / "master.sqlite3") as conn:
        conn.executemany(
            "INSERT INTO customers_hospital (name, tenant_id, isolation_type, config) "
            "VALUES (?, ?, 'DB', '{}')",
            [("City Hospital", "city"), ("Bay Clinic", "bay")],
        )
    for tenant in ("bay", "city"):
        project.tenant_dir.mkdir(exist_ok=True)
        sqlite3.connect(project.tenant_db(tenant)).close()
    out = project.manage("migratealltenants", "--jobs=1").stdout
    assert "[bay]" in out and "[city]" in out, out
    for tenant in ("bay", "city"):
        assert len(migration_rows(project.tenant_db(tenant))) == 4
    plan = project.manage("migratetenant", "--tenant-id=city", "--plan").stdout.splitlines()
    assert plan == ["Planned operations for tenant 'city':", "  No planned migration operations."]


def test_values_a_swapped_model_cannot_store_are_refused(tmp_path: Path) -> None:
    project = swapped_project(tmp_path, DJANGO_TENANTS)
    proc = project.manage(
        "createtenant", "--tenant-id=acme", "--no-input", '--connection={"HOST": "db2"}', check=False
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        "Error: customers.Client has no field for the tenant's connection, so it is always '{}'"
    ), proc.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TM_TENANT_MODEL": "customers.Nope"}, "tenant_migrate.E006"),
        (
            {"TM_TENANT_MODEL": "customers.Client", "TM_TENANT_FIELDS": '{"tenant": "schema_name"}'},
            "tenant_migrate.E007",
        ),
        ({"TM_TENANT_MODEL": "customers.Client"}, "tenant_migrate.E008"),
        (
            {
                **DJANGO_TENANTS,
                "TM_TENANT_FIELDS": json.dumps(
                    {**json.loads(DJANGO_TENANTS["TM_TENANT_FIELDS"]), "tenant_id": "name"}
                ),
            },
            "tenant_migrate.E009",
        ),
        ({**OMNITENANT, "TM_ISOLATION_VALUES": '{"DB": "db"}'}, "tenant_migrate.E010"),
        ({**OMNITENANT, "TM_TENANT_APPS": "customers,users"}, "tenant_migrate.E011"),
    ],
    ids=["unknown-model", "unknown-key", "missing-field", "non-unique-id", "bad-isolation", "registry-app"],
)
def test_bad_settings_are_system_check_errors(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    project = make_project(tmp_path, master=False)
    shutil.copytree(CUSTOMERS, project.root / "customers", ignore=shutil.ignore_patterns("__pycache__"))
    project.env.update(env)
    proc = project.manage("check", check=False)
    assert proc.returncode == 1
    assert expected in proc.stderr, proc.stderr
    assert "HINT:" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The commands refuse to start on the same error, before touching any database.
    run = project.manage("migratetenant", "--tenant-id=acme", check=False)
    assert run.returncode == 1 and expected in run.stderr and "Traceback" not in run.stderr


def test_django_tenants_schemas_on_postgresql(tmp_path: Path, pg_prefix: str) -> None:
    """The django-tenants layout: a shared database, the registry in public, one schema per
    tenant named by its schema_name; an existing tenant is migrated where it already lives."""
    from helpers.pg import connect, create_database, history, pg_env

    master = f"{pg_prefix}shared"
    create_database(master)
    project = make_project(tmp_path, master=False)
    shutil.copytree(CUSTOMERS, project.root / "customers", ignore=shutil.ignore_patterns("__pycache__"))
    project.env.update(pg_env(pg_prefix))
    project.env.update(
        {
            **DJANGO_TENANTS,
            "TM_DB_ENGINE": "postgresql",
            "TM_PG_NAME": master,
            "TM_DEFAULT_ISOLATION": "schema",
        }
    )
    project.manage("migrate", "--no-input")
    with connect(master) as conn:
        conn.execute('CREATE SCHEMA "acme"')
        conn.execute(
            "INSERT INTO customers_client (schema_name, name, created_on) VALUES ('acme', 'ACME', now())"
        )
    out = project.manage("createtenant", "--tenant-id=globex", "--name=Globex", "--no-input").stdout
    assert "schema isolation: schema globex in database" in out, out

    project.manage("migratealltenants", "--jobs=2")
    for schema in ("acme", "globex"):
        assert len(history(master, schema)) == 4
    with connect(master) as conn:
        public = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert "customers_client" in public
