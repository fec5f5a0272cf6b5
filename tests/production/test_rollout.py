"""migratealltenants as a deploy tool: --check gate, missing tenants, selection, a canary
(--limit), waves (--batch-size/--batch-pause), the run journal and --resume."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from helpers.pg import connect, history
from helpers.project import Project, make_tenant, migration_rows, pg_project, sqlite_schema

TENANTS = ["acme", "globex", "initech", "umbrella", "wayne"]


def statuses(proc_stdout: str) -> dict[str, str]:
    return {t["tenant_id"]: t["status"] for t in json.loads(proc_stdout)["tenants"]}


def journal(project: Project) -> list[tuple]:
    with sqlite3.connect(project.env["TM_MASTER_SQLITE"]) as conn:
        return conn.execute(
            "SELECT r.id, r.status, t.tenant_id, t.status FROM tenant_migrate_migrationrun r "
            "JOIN tenant_migrate_migrationruntenant t ON t.run_id = r.id ORDER BY r.id, t.position"
        ).fetchall()


def break_tenant(project: Project, tenant: str, table: str = "products_product") -> None:
    """A table in the way makes the migration creating it fail."""
    with sqlite3.connect(project.tenant_db(tenant)) as conn:
        conn.execute(f"CREATE TABLE {table} (id integer)")


def repair_tenant(project: Project, tenant: str, table: str = "products_product") -> None:
    with sqlite3.connect(project.tenant_db(tenant)) as conn:
        conn.execute(f"DROP TABLE {table}")


def test_check_lists_every_pending_tenant_and_changes_nothing(project: Project) -> None:
    for tenant in ("acme", "globex", "initech", "umbrella"):
        project.create_tenant(tenant)
    project.manage("migratetenant", "--tenant-id=acme")
    project.manage("migratetenant", "--tenant-id=globex", "users", "0001")
    project.tenant_db("umbrella").unlink()
    proc = project.manage("migratealltenants", "--check", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    umbrella = project.tenant_db("umbrella")
    assert proc.stdout.splitlines() == [
        "Tenants with unapplied migrations:",
        "  globex: users/0002_alter_user_email.py, products/0001_initial.py, orders/0001_initial.py",
        "  initech: users/0001_initial.py, users/0002_alter_user_email.py, products/0001_initial.py, "
        "orders/0001_initial.py",
        "Missing tenants (skipped):",
        f"  umbrella: database file {umbrella} does not exist",
        "Summary: 4 tenants: 1 up-to-date, 2 pending, 1 missing.",
    ]
    assert not sqlite_schema(project.tenant_db("initech"))
    # A target: what reaching it takes, backwards steps included (as migrate would plan them).
    proc = project.manage("migratealltenants", "--check", "--json", "users", "0001", check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["summary"]["pending"] == 2
    lacks = {t["tenant_id"]: t["pending"] for t in report["tenants"] if t["state"] == "pending"}
    assert lacks == {
        "acme": ["-orders.0001_initial", "-users.0002_alter_user_email"],
        "initech": ["users.0001_initial"],
    }
    # Everything present applied: passes, the missing tenant only reported...
    project.manage("migratealltenants")
    proc = project.manage("migratealltenants", "--check")
    assert proc.stdout.splitlines()[-1] == "Summary: 4 tenants: 3 up-to-date, 1 missing."
    # ... unless --strict.
    strict = project.manage("migratealltenants", "--check", "--strict", check=False)
    assert strict.returncode == 1 and "Missing tenants:" in strict.stdout


def test_missing_tenant_is_skipped_by_a_run_and_an_error_with_strict(project: Project) -> None:
    for tenant in ("acme", "globex"):
        project.create_tenant(tenant)
    project.tenant_db("globex").unlink()
    proc = project.manage("migratealltenants")
    gone = project.tenant_db("globex")
    assert f"[globex] Skipped: Tenant database missing: database file {gone} does not exist" in proc.stdout
    assert "Summary: 2 tenants in " in proc.stdout and ": 1 migrated, 1 missing." in proc.stdout
    assert not project.tenant_db("globex").exists(), "a missing SQLite file must not be created"
    strict = project.manage("migratealltenants", "--strict", "--json", check=False)
    assert strict.returncode == 1
    assert statuses(strict.stdout) == {"acme": "up-to-date", "globex": "failed"}
    assert "Error: 1 of 2 tenants failed: globex" in strict.stderr


def test_canary_migrates_exactly_the_first_n_pending_tenants(project: Project) -> None:
    for tenant in TENANTS:
        project.create_tenant(tenant)
    project.manage("migratetenant", "--tenant-id=acme")
    proc = project.manage("migratealltenants", "--limit=2", "--json")
    assert statuses(proc.stdout) == {"globex": "migrated", "initech": "migrated"}
    for tenant in ("umbrella", "wayne"):
        assert not sqlite_schema(project.tenant_db(tenant)), tenant
    text = project.manage("migratealltenants", "--limit=1", "-v", "0").stdout
    assert text == ""
    assert len(migration_rows(project.tenant_db("umbrella"))) == 4
    assert not sqlite_schema(project.tenant_db("wayne"))
    plain = project.manage("migratealltenants", "--limit=5").stdout
    assert "Canary: 1 pending tenant selected (--limit 5)." in plain


def test_waves_run_in_tenant_order_and_stop_after_a_failed_wave(project: Project) -> None:
    for tenant in TENANTS:
        project.create_tenant(tenant)
    break_tenant(project, "globex")
    proc = project.manage("migratealltenants", "--batch-size=2", "--batch-pause=0.2", "--jobs=1", check=False)
    assert proc.returncode == 1
    waves = [line for line in proc.stdout.splitlines() if line.startswith(("Wave", "Pausing"))]
    assert waves == ["Wave 1 of 3: acme, globex"]
    assert "  initech: not reached (an earlier wave failed)" in proc.stdout
    assert not sqlite_schema(project.tenant_db("wayne"))
    # An explicit --continue-on-error rolls on through every wave, pausing between them.
    proc = project.manage(
        "migratealltenants", "--batch-size=2", "--batch-pause=0.2", "--continue-on-error", check=False
    )
    waves = [line for line in proc.stdout.splitlines() if line.startswith(("Wave", "Pausing"))]
    assert waves == [
        "Wave 1 of 2: globex, initech",
        "Pausing 0.2s before the next wave.",
        "Wave 2 of 2: umbrella, wayne",
    ]
    assert len(migration_rows(project.tenant_db("wayne"))) == 4


def test_resume_reruns_only_failed_and_unreached_tenants(project: Project) -> None:
    for tenant in TENANTS:
        project.create_tenant(tenant)
    proc = project.manage("migratealltenants", "--resume", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: No previous migratealltenants run to resume."
    break_tenant(project, "globex", "users_user")
    proc = project.manage("migratealltenants", "--jobs=1", "--fail-fast", "users", "0001", check=False)
    assert proc.returncode == 1
    assert journal(project) == [
        (1, "failed", "acme", "migrated"),
        (1, "failed", "globex", "failed"),
        (1, "failed", "initech", "not-reached"),
        (1, "failed", "umbrella", "not-reached"),
        (1, "failed", "wayne", "not-reached"),
    ]
    # Still broken: the resume runs the four again (acme is not touched), to the last run's target.
    proc = project.manage("migratealltenants", "--resume", "--json", check=False)
    assert proc.returncode == 1
    assert statuses(proc.stdout) == {
        "globex": "failed",
        "initech": "migrated",
        "umbrella": "migrated",
        "wayne": "migrated",
    }
    assert migration_rows(project.tenant_db("wayne")) == [("users", "0001_initial")]
    repair_tenant(project, "globex", "users_user")
    proc = project.manage("migratealltenants", "--resume")
    assert "Resuming run #2: 1 tenants failed or were not reached." in proc.stdout
    assert "[globex] Migrations completed successfully for tenant 'globex'." in proc.stdout
    assert "[acme]" not in proc.stdout and "[wayne]" not in proc.stdout
    assert migration_rows(project.tenant_db("globex")) == [("users", "0001_initial")]
    proc = project.manage("migratealltenants", "--resume")
    assert proc.stdout.strip() == "Nothing to resume: every tenant of the last run finished."
    assert journal(project)[-1] == (3, "succeeded", "globex", "migrated")


def test_selection_from_a_file_stdin_and_exclusions(project: Project, tmp_path: Path) -> None:
    for tenant in TENANTS:
        project.create_tenant(tenant)
    ids = tmp_path / "ids.txt"
    ids.write_text("# wave one\nwayne\nacme  # first customer\n\n")
    proc = project.manage("migratealltenants", f"--tenants-from={ids}", "--json")
    assert statuses(proc.stdout) == {"acme": "migrated", "wayne": "migrated"}
    proc = project.manage(
        "migratealltenants", "--tenants-from=-", "--exclude=initech", "--json", input="initech\nglobex\n"
    )
    assert statuses(proc.stdout) == {"globex": "migrated"}
    proc = project.manage("migratealltenants", "--exclude=umbrella", "--json")
    assert statuses(proc.stdout) == {
        "acme": "up-to-date",
        "globex": "up-to-date",
        "initech": "migrated",
        "wayne": "up-to-date",
    }
    assert not sqlite_schema(project.tenant_db("umbrella"))


def test_bad_rollout_options_are_one_error_line(project: Project) -> None:
    project.create_tenant("acme")
    cases = {
        ("--limit=0",): "Error: --limit must be at least 1.",
        ("--batch-size=0",): "Error: --batch-size must be at least 1.",
        ("--batch-pause=5",): "Error: --batch-pause needs --batch-size.",
        ("--batch-size=1", "--batch-pause=-1"): "Error: --batch-pause must not be negative.",
        ("--resume", "--tenant-id=acme"): "Error: --resume chooses the tenants itself; it cannot be "
        "combined with --tenant-id or --tenants-from.",
        ("--exclude=nope",): "Error: Tenant 'nope' does not exist.",
        ("--tenants-from=/nonexistent",): "Error: Cannot read tenant ids from /nonexistent: "
        "No such file or directory",
    }
    for args, message in cases.items():
        proc = project.manage("migratealltenants", *args, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, args
        assert proc.stderr.splitlines()[0] == message, (args, proc.stderr)


def test_postgres_check_canary_missing_schema_and_resume(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    for tenant in ("acme", "globex", "initech", "gone"):
        make_tenant(project, tenant, "schema")
    make_tenant(project, "solo", "database")
    master = project.master  # type: ignore[attr-defined]
    with connect(master) as conn:
        conn.execute("DROP SCHEMA public_gone CASCADE")
        conn.execute("CREATE TABLE public_initech.products_product (id integer)")
    proc = project.manage("migratealltenants", "--check", check=False)
    assert proc.returncode == 1
    assert '  gone: schema "public_gone" does not exist' in proc.stdout
    assert "Summary: 5 tenants: 4 pending, 1 missing." in proc.stdout
    canary = project.manage("migratealltenants", "--limit=1", "--json")
    assert statuses(canary.stdout) == {"acme": "migrated", "gone": "missing"}
    assert len(history(master, "public_acme")) == 4
    with connect(master) as conn:
        untouched = conn.execute("SELECT to_regclass('public_globex.django_migrations')").fetchone()[0]
    assert untouched is None
    proc = project.manage("migratealltenants", "--json", check=False)
    assert statuses(proc.stdout) == {
        "acme": "up-to-date",
        "globex": "migrated",
        "gone": "missing",
        "initech": "failed",
        "solo": "migrated",
    }
    with connect(master) as conn:
        conn.execute("DROP TABLE public_initech.products_product")
    proc = project.manage("migratealltenants", "--resume", "--json")
    assert statuses(proc.stdout) == {"initech": "migrated"}
    assert len(history(master, "public_initech")) == 4
    with connect(master) as conn:
        runs = conn.execute("SELECT status FROM tenant_migrate_migrationrun ORDER BY id").fetchall()
    assert [r[0] for r in runs] == ["succeeded", "failed", "succeeded"]


def test_journal_writes_failures_at_once_and_successes_within_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In-process, on the example's master: a success waits (with others) for the next write,
    at most ``FLUSH_SECONDS``; a failure is written at once, with what waited; each tenant
    keeps its own seconds and time; a write that fails loses nothing."""
    from django.core.management import call_command
    from django.db import DatabaseError
    from tenant_migrate import journal as journal_module
    from tenant_migrate.journal import FLUSH_SECONDS, Journal
    from tenant_migrate.models import MigrationRunTenant

    call_command("migrate", interactive=False, verbosity=0)
    journal = Journal({}, ["a", "b", "c", "d"])

    def written() -> dict[str, tuple[str, float, str]]:
        rows = MigrationRunTenant.objects.filter(run=journal.run).values_list(
            "tenant_id", "status", "seconds", "error"
        )
        return {tenant: (status, seconds, error) for tenant, status, seconds, error in rows}

    unwritten = ("not-reached", 0.0, "")
    journal.record("a", "migrated", 1.5, None)
    journal.record("b", "up-to-date", 0.25, None)
    assert written() == {"a": unwritten, "b": unwritten, "c": unwritten, "d": unwritten}
    journal.record("c", "failed", 2.0, "Error: boom")
    assert written() == {
        "a": ("migrated", 1.5, ""),
        "b": ("up-to-date", 0.25, ""),
        "c": ("failed", 2.0, "Error: boom"),
        "d": unwritten,
    }
    journal.record("d", "migrated", 3.0, None)
    assert written()["d"] == unwritten
    journal.flush_due()
    assert written()["d"] == unwritten  # not due yet
    # A write that fails (the master went away) keeps the outcome for the next one.
    journal.written_at -= FLUSH_SECONDS
    real = journal_module._update_each

    attempts: list[object] = []

    def lost(*args: object) -> None:
        attempts.append(args)
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr(journal_module, "_update_each", lost)
    journal.flush_due()
    assert journal.lost == "server closed the connection unexpectedly"
    assert written()["d"] == unwritten
    assert len(attempts) == 2  # once more on a new connection
    journal.flush_due()
    assert len(attempts) == 2, "a master that is down is not asked again at every poll"
    monkeypatch.setattr(journal_module, "_update_each", real)
    journal.written_at -= FLUSH_SECONDS
    journal.flush_due()
    assert journal.lost is None
    assert written()["d"] == ("migrated", 3.0, "")
    finished = dict(
        MigrationRunTenant.objects.filter(run=journal.run).values_list("tenant_id", "finished_at")
    )
    assert all(finished.values()) and len(set(finished.values())) == 4
