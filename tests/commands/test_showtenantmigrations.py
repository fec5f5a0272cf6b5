"""showtenantmigrations: every tenant's showmigrations, compared with Django's own output for
the same tenant (``showmigrations --database=<tenant>``), summary and JSON forms, missing
tenants, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from helpers.pg import admin, connect
from helpers.project import Project, make_tenant, pg_project
from psycopg import sql

APPS = ["orders", "products", "users"]

SQUASH = (
    "from django.db import migrations, models\n\n"
    "class Migration(migrations.Migration):\n"
    "    initial = True\n"
    "    replaces = [('users', '0001_initial'), ('users', '0002_alter_user_email')]\n"
    "    operations = [\n"
    "        migrations.CreateModel(name='User', fields=[\n"
    "            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False,"
    " verbose_name='ID')),\n"
    "            ('username', models.CharField(max_length=150, unique=True)),\n"
    "            ('email', models.EmailField(max_length=254, unique=True)),\n"
    "            ('date_joined', models.DateTimeField(auto_now_add=True)),\n"
    "        ]),\n"
    "    ]\n"
)
AFTER_SQUASH = (
    "from django.db import migrations, models\n\n"
    "class Migration(migrations.Migration):\n"
    "    dependencies = [('users', '0001_squashed_0002_alter_user_email')]\n"
    "    operations = [\n"
    "        migrations.AddField('user', 'nickname', models.CharField(max_length=20, default='')),\n"
    "    ]\n"
)


def blocks(stdout: str) -> dict[str, list[str]]:
    """Our output split per tenant: ``Tenant 'x':`` then Django's lines."""
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("Tenant '"):
            tenant = line.split("'")[1]
            current = result.setdefault(tenant, [])
            rest = line.split("':", 1)[1].strip()
            if rest:
                current.append(rest)
        else:
            current.append(line)
    return result


def assert_same_as_django(project: Project, tenants: list[str], *extra: str) -> None:
    ours = blocks(project.manage("showtenantmigrations", *extra).stdout)
    assert sorted(ours) == sorted(tenants)
    for tenant in tenants:
        django = project.manage("showmigrations", f"--database={tenant}", *APPS, *extra).stdout
        assert ours[tenant] == django.splitlines(), tenant


def test_list_is_djangos_showmigrations_for_each_tenant_squashes_included(project: Project) -> None:
    for tenant in ("acme", "globex", "umbrella"):
        project.create_tenant(tenant)
    project.manage("migratetenant", "--tenant-id=acme")
    project.manage("migratetenant", "--tenant-id=globex", "users", "0001")
    out = project.manage("showtenantmigrations").stdout.splitlines()
    assert out[:8] == [
        "Tenant 'acme':",
        "orders",
        " [X] 0001_initial",
        "products",
        " [X] 0001_initial",
        "users",
        " [X] 0001_initial",
        " [X] 0002_alter_user_email",
    ]
    assert_same_as_django(project, ["acme", "globex", "umbrella"])
    # A squash: fully applied but unrecorded on acme ([-]), unusable on globex (partly applied),
    # pending on umbrella, applied and recorded on a tenant migrated after it appeared.
    project.add_migration("users", "0001_squashed_0002_alter_user_email", SQUASH)
    project.add_migration("users", "0003_user_nickname", AFTER_SQUASH)
    project.create_tenant("wayne")
    project.manage("migratetenant", "--tenant-id=wayne")
    tenants = ["acme", "globex", "umbrella", "wayne"]
    assert_same_as_django(project, tenants)
    assert_same_as_django(project, tenants, "-v", "2")
    listing = blocks(project.manage("showtenantmigrations", "users").stdout)
    assert listing["acme"] == [
        "users",
        " [-] 0001_squashed_0002_alter_user_email (2 squashed migrations) Run 'manage.py migrate' "
        "to finish recording.",
        " [ ] 0003_user_nickname",
    ]
    assert listing["globex"] == [
        "users",
        " [X] 0001_initial",
        " [ ] 0002_alter_user_email",
        " [ ] 0003_user_nickname",
    ]
    assert listing["wayne"][1] == " [X] 0001_squashed_0002_alter_user_email (2 squashed migrations)"


def test_summary_json_selection_and_missing_tenants(project: Project) -> None:
    for tenant in ("acme", "globex", "initech"):
        project.create_tenant(tenant)
    project.manage("migratetenant", "--tenant-id=acme")
    project.manage("migratetenant", "--tenant-id=globex", "users", "0001")
    project.tenant_db("initech").unlink()
    proc = project.manage("showtenantmigrations", "--summary")
    missing = f"missing (database file {project.tenant_db('initech')} does not exist)"
    assert proc.stdout.splitlines() == [
        "tenant   applied  pending  last migration          state",
        "acme           4        0  orders/0001_initial.py  up-to-date",
        "globex         1        3  users/0001_initial.py   pending",
        f"initech        -        -  -                       {missing}",
    ]
    # A missing tenant is reported, not an error, unless --strict.
    out = project.manage("showtenantmigrations").stdout
    assert f"Tenant 'initech': missing: database file {project.tenant_db('initech')} does not exist" in out
    strict = project.manage("showtenantmigrations", "--summary", "--strict", check=False)
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert strict.stderr.strip() == "Error: Of 3 tenants, 1 missing (initech)."

    report = json.loads(project.manage("showtenantmigrations", "--json", "--exclude=initech").stdout)
    assert [t["tenant_id"] for t in report["tenants"]] == ["acme", "globex"]
    globex = report["tenants"][1]
    assert globex["state"] == "pending" and globex["applied"] == 1
    lacks = ["users.0002_alter_user_email", "products.0001_initial", "orders.0001_initial"]
    assert globex["pending"] == lacks
    assert globex["last_migration"] == "users.0001_initial"
    assert globex["apps"]["users"] == [
        {"name": "0001_initial", "replaces": 0, "mark": "applied"},
        {"name": "0002_alter_user_email", "replaces": 0, "mark": "unapplied"},
    ]
    # App labels limit the listing and what counts as pending.
    only_users = json.loads(
        project.manage("showtenantmigrations", "--json", "--summary", "--tenant-id=globex", "users").stdout
    )
    assert only_users["tenants"][0]["pending"] == ["users.0002_alter_user_email"]
    listed = project.manage("showtenantmigrations", "--tenants-from=-", input="# canary\nglobex\n\nacme\n")
    assert list(blocks(listed.stdout)) == ["acme", "globex"]


def test_bad_input_is_one_error_line(project: Project) -> None:
    project.create_tenant("acme")
    cases = {
        ("--tenant-id=nope",): "Error: Tenant 'nope' does not exist.",
        ("--exclude=nope",): "Error: Tenant 'nope' does not exist.",
        ("nope",): "Error: No installed app with label 'nope'.",
        ("tenant_migrate",): "Error: App 'tenant_migrate' is not a tenant app.",
        ("--tenants-from=/nonexistent/ids.txt",): "Error: Cannot read tenant ids from /nonexistent/ids.txt: "
        "No such file or directory",
        ("--jobs=0",): "Error: --jobs must be at least 1.",
    }
    for args, message in cases.items():
        proc = project.manage("showtenantmigrations", *args, check=False)
        assert proc.returncode == 1, args
        assert "Traceback" not in proc.stderr
        assert proc.stderr.splitlines()[0] == message, (args, proc.stderr)


def test_postgres_both_isolations_missing_and_unreachable(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    for tenant in ("acme", "globex", "gone"):
        make_tenant(project, tenant, "schema")
    for tenant in ("solo", "dropped"):
        make_tenant(project, tenant, "database")
    project.manage("migratetenant", "--tenant-id=acme")
    project.manage("migratetenant", "--tenant-id=solo", "users", "0001")
    master = project.master  # type: ignore[attr-defined]
    with connect(master) as conn:
        conn.execute("DROP SCHEMA public_gone CASCADE")
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(f"{pg_prefix}dropped_db")))
    summary = project.manage("showtenantmigrations", "--summary").stdout.splitlines()
    assert [line.split()[0] for line in summary] == ["tenant", "acme", "dropped", "globex", "gone", "solo"]
    states = {line.split()[0]: line.split(None, 4)[4] for line in summary[1:]}
    assert states["acme"] == "up-to-date" and states["globex"] == "pending"
    assert states["gone"] == 'missing (schema "public_gone" does not exist)'
    assert states["dropped"] == f'missing (database "{pg_prefix}dropped_db" does not exist)'
    assert summary[-1].split()[1:3] == ["1", "3"]
    for tenant in ("acme", "globex", "solo"):
        django = project.manage("showmigrations", f"--database={tenant}", *APPS).stdout
        ours = blocks(project.manage("showtenantmigrations", f"--tenant-id={tenant}").stdout)[tenant]
        assert ours == django.splitlines(), tenant
    # A server that cannot be reached is an error for that tenant (exit 1), not "missing".
    with connect(master) as conn:
        conn.execute(
            "UPDATE tenant_migrate_tenant SET connection = '{\"PORT\": 1}' WHERE tenant_id = 'globex'"
        )
    proc = project.manage("showtenantmigrations", "--summary", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "Error: Of 5 tenants, 1 in error (globex)."
    globex = next(line for line in proc.stdout.splitlines() if line.startswith("globex"))
    assert "error (Cannot connect to tenant database" in globex


def test_sqlite_history_timestamps_are_djangos(project: Project) -> None:
    project.create_tenant("acme")
    project.manage("migratetenant", "--tenant-id=acme")
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        stored = conn.execute("SELECT applied FROM django_migrations ORDER BY id").fetchone()[0]
    out = project.manage("showtenantmigrations", "-v", "2", "users").stdout
    assert f" [X] 0001_initial (applied at {stored[:19]})" in out


def test_a_history_migrate_would_refuse_is_listed_as_django_lists_it(project: Project) -> None:
    project.create_tenant("acme")
    project.manage("migratetenant", "--tenant-id=acme")
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        conn.execute("DELETE FROM django_migrations WHERE app = 'users' AND name = '0002_alter_user_email'")
    listing = project.manage("showtenantmigrations")
    django = project.manage("showmigrations", "--database=acme", *APPS).stdout
    assert blocks(listing.stdout)["acme"] == django.splitlines()
    summary = project.manage("showtenantmigrations", "--summary", check=False)
    assert summary.returncode == 1
    assert summary.stdout.splitlines()[1].split(None, 4) == [
        "acme",
        "-",
        "-",
        "-",
        "error (Migration orders.0001_initial is applied before its dependency users.0002_alter_user_email.)",
    ]
    assert summary.stderr.strip() == "Error: Of 1 tenants, 1 in error (acme)."
