"""What a run over many tenants says at the end: counts rather than a line per tenant beyond a
few, one vocabulary (docs/commands.md, "Outcomes of a run"), migrations named as human output
names them (``app/name.py`` in text, ``app.name`` in JSON), every line of an error prefixed
with its tenant."""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

import pytest
from helpers.project import Project, make_project
from tenant_migrate import _core, report
from tenant_migrate.management.errors import to_command_error

MANY = [f"t{i:02d}" for i in range(15)]


def test_counts_have_thousands_separators_and_one_word_per_status() -> None:
    count = {"migrated": 12, "failed": 1, "not-reached": 2931, "missing": 0, "interrupted": 3}
    assert report.counts(count) == "12 migrated, 1 failed, 3 interrupted, 2,931 not reached"
    outcomes = [SimpleNamespace(tenant_id=f"t{i}", status="failed") for i in range(12)]
    outcomes += [SimpleNamespace(tenant_id=f"u{i}", status="not-reached") for i in range(2931)]
    assert report.run_failed(outcomes) == (
        "12 of 2,943 tenants failed: t0, t1, t2, t3, t4, t5, t6, t7, t8, t9 and 2 more; 2,931 not reached"
    )
    assert report.run_failed(outcomes[:1]) == "1 of 1 tenants failed: t0"


def test_a_long_list_ends_with_a_count() -> None:
    lines: list[str] = []
    rows = [(f"t{i}", f"boom {i}\nStatement: X") for i in range(1200)]
    report.listing(lines.append, "Failed tenants:", rows, "failed")
    assert lines[0] == "Failed tenants:"
    assert lines[1:3] == ["  t0: boom 0", "    Statement: X"]
    assert len(lines) == 1 + 2 * report.LISTED + 1
    assert lines[-1] == "  ... and 1,190 more failed (--json lists every tenant)."


def test_routes_in_words() -> None:
    assert report.routes(193, 8, 17, 0) == [
        "  218 migrations applied: 8 compiled to SQL and run, 193 replayed from SQL compiled for "
        "another tenant, 17 run by Django."
    ]
    assert report.routes(0, 0, 0, 0) == []
    assert report.routes(0, 1, 0, 2)[1].startswith("  2 compiled again for a tenant whose schema differed")


def test_a_failed_migration_is_named_app_slash_name_py_and_has_no_empty_statement() -> None:
    error = to_command_error(_core.migration_failed("a", "users.0002_x", "boom", " ;\n"))
    assert str(error) == "Migration users/0002_x.py failed for tenant 'a': boom"
    error = to_command_error(_core.migration_failed("a", "users.0002_x", "boom", "SELECT 1;"))
    assert str(error) == "Migration users/0002_x.py failed for tenant 'a': boom\nStatement: SELECT 1"


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = make_project(tmp_path_factory.mktemp("many"))
    project.manage(
        "shell",
        "-c",
        "from django.core.management import call_command\n"
        f"for t in {MANY!r}:\n"
        "    call_command('createtenant', tenant_id=t, name=t, interactive=False, verbosity=0)\n",
    )
    with sqlite3.connect(project.tenant_db(MANY[0])) as conn:
        conn.execute("CREATE TABLE products_product (id integer)")
    return project


def test_a_run_stopped_early_counts_the_tenants_not_reached(many: Project) -> None:
    proc = many.manage("migratealltenants", "--fail-fast", "--jobs=1", check=False)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    summary = next(line for line in lines if line.startswith("Summary:"))
    assert summary.endswith(": 1 failed, 14 not reached."), summary
    assert "14 not reached (--fail-fast)." in lines
    assert not any("t05" in line for line in lines), lines
    assert proc.stderr.splitlines()[-1] == "Error: 1 of 15 tenants failed: t00; 14 not reached"
    # The failure: named as --plan names it, every line of it prefixed with its tenant.
    failed = "Migration products/0001_initial.py failed for tenant 't00': "
    error = next(i for i, line in enumerate(lines) if line.startswith(f"[t00] Error: {failed}"))
    assert lines[error + 1].startswith("[t00] Statement: CREATE TABLE "), lines
    listed = lines.index("Failed tenants:")
    assert lines[listed + 1].startswith(f"  t00: {failed}")
    assert lines[listed + 2].startswith("    Statement: CREATE TABLE ")
    # --json keeps every tenant, with the same word for the same outcome.
    proc = many.manage("migratealltenants", "--fail-fast", "--jobs=1", "--json", check=False)
    data = json.loads(proc.stdout)
    assert data["summary"]["not-reached"] == 14 and "skipped" not in data["summary"]
    statuses = {t["tenant_id"]: t["status"] for t in data["tenants"]}
    assert statuses == {t: "failed" if t == "t00" else "not-reached" for t in MANY}


def test_check_names_migrations_as_plan_does_and_json_as_app_dot_name(many: Project) -> None:
    proc = many.manage("migratealltenants", "--check", "--tenant-id=t01", check=False)
    assert proc.returncode == 1
    plan = many.manage("migratetenant", "--tenant-id=t01", "--plan").stdout.splitlines()[1:]
    lacks = ", ".join(line.strip() for line in plan)
    assert proc.stdout.splitlines()[:2] == ["Tenants with unapplied migrations:", f"  t01: {lacks}"]
    assert "users/0001_initial.py" in lacks
    data = json.loads(
        many.manage("migratealltenants", "--check", "--json", "--tenant-id=t01", check=False).stdout
    )
    assert data["tenants"][0]["pending"][0] == "users.0001_initial"
