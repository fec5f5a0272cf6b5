"""migratealltenants: every tenant, concurrently, compile once and replay, verified per tenant."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from helpers.pg import catalog, connect, create_database, history
from helpers.project import CONTRIB, Project, make_tenant, migration_rows, pg_project, sqlite_schema
from helpers.spec import ALL_ROWS

TENANTS = ["acme", "globex", "initech", "umbrella", "wayne"]

DROP_USERNAME_UNIQUE = (
    "from django.db import migrations, models\n\n"
    "class Migration(migrations.Migration):\n"
    "    dependencies = [('users', '0002_alter_user_email')]\n"
    "    operations = [migrations.AlterField('user', 'username', models.CharField(max_length=150))]\n"
)


def test_sqlite_all_tenants_end_identical_to_a_tenant_migrated_alone(project: Project) -> None:
    for tenant in TENANTS:
        project.create_tenant(tenant)
    project.create_tenant("alone")
    project.manage("migratetenant", "--tenant-id=alone")
    proc = project.manage("migratealltenants", "--jobs=3")
    summary = [line for line in proc.stdout.splitlines() if line.startswith("Summary:")]
    assert summary and summary[0].startswith("Summary: 6 tenants in ")
    assert summary[0].endswith(": 5 migrated, 1 up-to-date.")
    assert "replayed" in proc.stdout
    expected = sqlite_schema(project.tenant_db("alone"))
    for tenant in TENANTS:
        assert sqlite_schema(project.tenant_db(tenant)) == expected, tenant
        assert migration_rows(project.tenant_db(tenant)) == migration_rows(project.tenant_db("alone"))
    # Every line of a concurrent run names its tenant.
    body = [line for line in proc.stdout.splitlines() if not line.startswith(("Summary:", "  "))]
    assert all(line.startswith("[") for line in body), body


def test_json_report_and_noop_run(project: Project) -> None:
    for tenant in TENANTS:
        project.create_tenant(tenant)
    first = json.loads(project.manage("migratealltenants", "--json").stdout)
    assert first["summary"]["migrated"] == 5 and first["summary"]["failed"] == 0
    acme = next(t for t in first["tenants"] if t["tenant_id"] == "acme")
    assert acme["applied"] == [
        "users.0001_initial",
        "users.0002_alter_user_email",
        "products.0001_initial",
        "orders.0001_initial",
    ]
    assert first["summary"]["replayed"] + first["summary"]["compiled"] == 20
    assert first["summary"]["replayed"] >= 5, "SQL compiled once must be replayed on the others"
    again = json.loads(project.manage("migratealltenants", "--json").stdout)
    assert again["summary"]["up-to-date"] == 5
    assert all(t["applied"] == [] for t in again["tenants"])


def test_partial_failure_reports_the_tenant_and_migrates_the_others(project: Project) -> None:
    for tenant in TENANTS:
        project.create_tenant(tenant)
    with sqlite3.connect(project.tenant_db("initech")) as conn:
        conn.execute("CREATE TABLE products_product (id integer)")
    proc = project.manage("migratealltenants", "--jobs=2", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Error: 1 of 5 tenants failed: initech" in proc.stderr
    assert "Failed tenants:" in proc.stdout
    assert "  initech: Migration products/0001_initial.py failed for tenant 'initech'" in proc.stdout
    for tenant in TENANTS:
        if tenant != "initech":
            assert len(migration_rows(project.tenant_db(tenant))) == 4, tenant
    assert migration_rows(project.tenant_db("initech")) == [
        ("users", "0001_initial"),
        ("users", "0002_alter_user_email"),
    ]


def test_fail_fast_and_selection(project: Project) -> None:
    for tenant in TENANTS:
        project.create_tenant(tenant)
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        conn.execute("CREATE TABLE users_user (id integer)")
    proc = project.manage("migratealltenants", "--jobs=1", "--fail-fast", "--json", check=False)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    statuses = {t["tenant_id"]: t["status"] for t in report["tenants"]}
    assert statuses == {t: ("failed" if t == "acme" else "not-reached") for t in TENANTS}
    proc = project.manage("migratealltenants", "--tenant-id=globex", "--tenant-id=wayne", "--json")
    statuses = {t["tenant_id"]: t["status"] for t in json.loads(proc.stdout)["tenants"]}
    assert statuses == {"globex": "migrated", "wayne": "migrated"}
    assert not sqlite_schema(project.tenant_db("umbrella"))
    proc = project.manage("migratealltenants", "--tenant-id=nope", check=False)
    assert proc.returncode == 1 and "Error: Tenant 'nope' does not exist." in proc.stderr


def test_plan_for_every_tenant_changes_nothing(project: Project) -> None:
    for tenant in ("acme", "globex"):
        project.create_tenant(tenant)
    project.manage("migratetenant", "--tenant-id=globex", "users")
    out = project.manage("migratealltenants", "--plan").stdout.splitlines()
    assert out[:6] == [
        "[acme] Planned operations for tenant 'acme':",
        "[acme]   users/0001_initial.py",
        "[acme]   users/0002_alter_user_email.py",
        "[acme]   products/0001_initial.py",
        "[acme]   orders/0001_initial.py",
        "[globex] Planned operations for tenant 'globex':",
    ]
    assert not sqlite_schema(project.tenant_db("acme"))


def test_postgres_schema_tenants_replayed_and_drift_detected(tmp_path: Path, pg_prefix: str) -> None:
    """A tenant whose catalog differs (a renamed constraint) must not get replayed SQL."""
    project = pg_project(tmp_path, pg_prefix)
    for tenant in TENANTS:
        make_tenant(project, tenant, "schema")
    project.manage("migratealltenants", "users", "0002")
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        name = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'public_wayne.users_user'::regclass "
            "AND contype = 'u' AND pg_get_constraintdef(oid) LIKE '%(username)%'"
        ).fetchone()[0]
        conn.execute(f'ALTER TABLE public_wayne.users_user RENAME CONSTRAINT "{name}" TO custom_unique')
    project.add_migration("users", "0003_username_not_unique", DROP_USERNAME_UNIQUE)
    report = json.loads(project.manage("migratealltenants", "--jobs=2", "--json").stdout)
    assert report["summary"]["failed"] == 0, report
    assert report["summary"]["drift"] >= 1, report["summary"]
    assert report["summary"]["replayed"] >= 1, report["summary"]
    for tenant in TENANTS:
        with connect(project.master) as conn:  # type: ignore[attr-defined]
            uniques = conn.execute(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u' "
                "AND pg_get_constraintdef(oid) LIKE '%%(username)%%'",
                [f"public_{tenant}.users_user"],
            ).fetchone()[0]
        assert uniques == 0, tenant
        assert len(history(project.master, f"public_{tenant}")) == 5  # type: ignore[attr-defined]


def test_postgres_replay_matches_djangos_own_migrate(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix, tenant_apps=CONTRIB)
    for tenant in TENANTS:
        make_tenant(project, tenant, "schema")
    make_tenant(project, "solo", "database")
    report = json.loads(project.manage("migratealltenants", "--jobs=2", "--json").stdout)
    assert report["summary"]["migrated"] == 6 and report["summary"]["replayed"] > 0
    plain = f"{pg_prefix}plain"
    create_database(plain)
    project.manage("migrate", "--no-input", env={"TM_PG_NAME": plain})
    expected = catalog(plain, exclude_prefix="tenant_migrate_")
    rows = history(plain, exclude_apps=("tenant_migrate",))
    for tenant in TENANTS:
        assert catalog(project.master, f"public_{tenant}") == expected, tenant  # type: ignore[attr-defined]
        assert history(project.master, f"public_{tenant}") == rows  # type: ignore[attr-defined]
    assert catalog(f"{pg_prefix}solo_db") == expected
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        for tenant in TENANTS:
            perms = conn.execute(f"SELECT count(*) FROM public_{tenant}.auth_permission").fetchone()[0]
            assert perms > 0, f"post_migrate did not run for {tenant}"
    assert ALL_ROWS[0] in rows
