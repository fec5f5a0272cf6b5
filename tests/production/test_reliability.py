"""One run per tenant, zero-downtime timeouts, Ctrl-C, on SQLite and real PostgreSQL.

Faults are injected for real: concurrent processes, a transaction holding a lock on a tenant
table, SIGINT in the middle of a migration. Nothing is mocked.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers.pg import catalog, connect, history
from helpers.processes import BUSY, popen, slow_project, wait_for
from helpers.project import Project, make_project, migration_rows, pg_project, sqlite_schema

# The same on the SQL route (PostgreSQL): Rust runs it, so Ctrl-C must cancel the statement.
SLOW_SQL = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("users", "0002_alter_user_email")]
    operations = [
        migrations.RunSQL("CREATE TABLE slow_marker (id integer)", "DROP TABLE slow_marker"),
        migrations.RunSQL("SELECT pg_sleep(30)", migrations.RunSQL.noop),
    ]
"""

# --- One run per tenant ---------------------------------------------------------------------


def test_sqlite_second_run_is_refused_or_waits_and_nothing_is_applied_twice(tmp_path: Path) -> None:
    project, marker = slow_project(tmp_path)
    project.create_tenant("acme", "ACME Corporation")
    first = popen(project, "migratetenant", "--tenant-id=acme")
    wait_for(marker, first)

    refused = project.manage("migratetenant", "--tenant-id=acme", "--lock-wait=0", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == BUSY
    # --plan and --check only read: they never wait for the lock.
    plan = project.manage("migratetenant", "--tenant-id=acme", "--plan", "--lock-wait=0")
    assert "users/0003_slow.py" in plan.stdout

    waiting = project.manage("migratetenant", "--tenant-id=acme", "--lock-wait=60")
    assert "No migrations to apply." in waiting.stdout
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert "users/0003_slow.py ... OK" in out
    rows = migration_rows(project.tenant_db("acme"))
    assert ("users", "0003_slow") in rows
    assert len(rows) == len(set(rows))


def _concurrent_runs(project: Project, count: int) -> list[subprocess.CompletedProcess[str]]:
    results: list[subprocess.CompletedProcess[str]] = []
    lock = threading.Lock()

    def run() -> None:
        proc = project.manage("migratetenant", "--tenant-id=acme", "--lock-wait=120", check=False)
        with lock:
            results.append(proc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("count", [2, 10])
def test_sqlite_simultaneous_runs_apply_each_migration_once(tmp_path: Path, count: int) -> None:
    project = make_project(tmp_path)
    project.create_tenant("acme", "ACME Corporation")
    results = _concurrent_runs(project, count)
    assert [r.returncode for r in results] == [0] * count, [r.stderr for r in results]
    applied = Counter(
        line.strip() for r in results for line in r.stdout.splitlines() if line.endswith("... OK")
    )
    assert applied == Counter(
        {
            "users/0001_initial.py ... OK": 1,
            "users/0002_alter_user_email.py ... OK": 1,
            "products/0001_initial.py ... OK": 1,
            "orders/0001_initial.py ... OK": 1,
        }
    )
    assert sum("No migrations to apply." in r.stdout for r in results) == count - 1
    rows = migration_rows(project.tenant_db("acme"))
    assert len(rows) == len(set(rows)) == 4

    alone = make_project(tmp_path / "alone")
    alone.create_tenant("acme", "ACME Corporation", "--migrate")
    assert sqlite_schema(project.tenant_db("acme")) == sqlite_schema(alone.tenant_db("acme"))


@pytest.mark.parametrize("count", [2, 10])
def test_postgres_simultaneous_runs_apply_each_migration_once(
    tmp_path: Path, pg_prefix: str, count: int
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    project.create_tenant("acme", "ACME Corporation", "--isolation=schema")
    project.create_tenant("other", "Other", "--isolation=schema")
    results = _concurrent_runs(project, count)
    assert [r.returncode for r in results] == [0] * count, [r.stderr for r in results]
    ran = [line for r in results for line in r.stdout.splitlines() if line.endswith("... OK")]
    assert len(ran) == 4
    rows = history(project.master, "public_acme")  # type: ignore[attr-defined]
    assert len(rows) == len({(a, n) for a, n, *_ in rows}) == 4
    # The other tenant was never touched.
    assert not any(catalog(project.master, "public_other").values())  # type: ignore[attr-defined]


# --- Ctrl-C ----------------------------------------------------------------------------------


def test_sqlite_sigint_rolls_back_the_python_step_and_exits_130(tmp_path: Path) -> None:
    project, marker = slow_project(tmp_path)
    project.create_tenant("acme", "ACME Corporation")
    proc = popen(project, "migratetenant", "--tenant-id=acme", env={"TM_SLOW_TICKS": "1200"})
    wait_for(marker, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert time.monotonic() - sent < 10  # the 60 s step was stopped, not waited for
    assert "  users/0003_slow.py ... INTERRUPTED" in out
    assert "Interrupted: users/0003_slow.py was rolled back for tenant 'acme'." in err
    assert "Applied before the interrupt (4): users/0001_initial.py" in err
    assert "Traceback" not in err
    assert ("users", "0003_slow") not in migration_rows(project.tenant_db("acme"))
    import sqlite3

    with sqlite3.connect(project.tenant_db("acme")) as conn:
        assert conn.execute("SELECT count(*) FROM users_user").fetchone() == (0,)
    # A re-run finishes the job.
    rerun = project.manage("migratetenant", "--tenant-id=acme", env={"TM_SLOW_TICKS": "1"})
    assert "users/0003_slow.py ... OK" in rerun.stdout


def test_postgres_sigint_cancels_the_running_statement(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    project.add_migration("users", "0003_slow", SLOW_SQL)
    project.create_tenant("acme", "ACME Corporation", "--isolation=schema")
    proc = popen(project, "migratetenant", "--tenant-id=acme")
    deadline = time.monotonic() + 60
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        while not conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()"
        ).fetchone():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert time.monotonic() - sent < 10
    assert "Interrupted: users/0003_slow.py was rolled back for tenant 'acme'." in err
    assert "Traceback" not in err
    names = {n for _, n, *_ in history(project.master, "public_acme")}  # type: ignore[attr-defined]
    assert "0003_slow" not in names and "0002_alter_user_email" in names
    columns = catalog(project.master, "public_acme")["columns"]  # type: ignore[attr-defined]
    assert not [c for c in columns if c[0] == "slow_marker"]


# --- Zero-downtime: lock_timeout and retries -------------------------------------------------


def test_postgres_lock_timeout_retries_while_the_application_keeps_being_served(
    tmp_path: Path, pg_prefix: str
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    project.create_tenant("acme", "ACME Corporation", "--isolation=schema")
    project.manage("migratetenant", "--tenant-id=acme", "users", "0001")
    db = project.master  # type: ignore[attr-defined]

    stalls: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def application() -> None:
        # The application's own reads, each allowed 5 s: a migration queued for its lock in
        # front of them would block them all for as long as the blocker lives.
        with connect(db) as conn:
            conn.execute("SET search_path TO public_acme")
            conn.execute("SET statement_timeout = '5s'")
            while not stop.is_set():
                began = time.monotonic()
                try:
                    conn.execute("SELECT count(*) FROM users_user").fetchone()
                except Exception as exc:  # counted, reported by the assertion
                    failures.append(str(exc))
                stalls.append(time.monotonic() - began)
                time.sleep(0.02)

    blocker = connect(db)
    blocker.execute("BEGIN")
    blocker.execute("SELECT count(*) FROM public_acme.users_user")  # holds ACCESS SHARE
    app = threading.Thread(target=application, daemon=True)
    app.start()
    try:
        proc = popen(project, "migratetenant", "--tenant-id=acme", "--lock-timeout=300ms", "--retries=20")
        time.sleep(3)
        assert proc.poll() is None, "\n".join(proc.communicate())
        blocker.execute("COMMIT")
        blocker.close()
        out, err = proc.communicate(timeout=120)
    finally:
        stop.set()
        app.join()
    assert proc.returncode == 0, (out, err)
    assert "users/0002_alter_user_email.py ... TIMEOUT" in out
    assert 'Waited on: canceling statement due to lock timeout on: ALTER TABLE "users_user"' in out
    assert '"users_user" (AccessShareLock, pid ' in out
    assert "Rolled back; retry 1 of 20 in " in out
    assert "  users/0002_alter_user_email.py ... OK" in out
    assert failures == []
    # Served throughout: no read waited anywhere near the 3 s the blocker held its lock.
    assert max(stalls) < 2.0, max(stalls)
    names = [n for _, n, *_ in history(db, "public_acme")]
    assert names.count("0002_alter_user_email") == 1
    # The retried migration was compiled again from the state before it, not after it.
    project.create_tenant("alone", "Alone", "--isolation=schema", "--migrate")
    assert catalog(db, "public_acme") == catalog(db, "public_alone")


def test_postgres_lock_timeout_without_retries_fails_cleanly(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    project.create_tenant("acme", "ACME Corporation", "--isolation=schema")
    project.manage("migratetenant", "--tenant-id=acme", "users", "0001")
    db = project.master  # type: ignore[attr-defined]
    before = catalog(db, "public_acme")
    with connect(db) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("SELECT count(*) FROM public_acme.users_user")
        proc = project.manage(
            "migratetenant", "--tenant-id=acme", "--lock-timeout=200ms", "--retries=0", check=False
        )
        blocker.execute("ROLLBACK")
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "Error: Migration users/0002_alter_user_email.py failed for tenant 'acme': "
        "canceling statement due to lock timeout"
    ), proc.stderr
    assert catalog(db, "public_acme") == before
    assert [n for _, n, *_ in history(db, "public_acme")] == ["0001_initial"]


def test_bad_timeout_values_are_refused(project: Project) -> None:
    project.create_tenant("acme", "ACME Corporation")
    proc = project.manage("migratetenant", "--tenant-id=acme", "--lock-timeout=soon", check=False)
    assert proc.returncode != 0
    assert "invalid duration 'soon'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = project.manage("migratetenant", "--tenant-id=acme", "--retries=-1", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: --retries must be 0 or more."


NON_ATOMIC = """
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("users", "0002_alter_user_email")]
    operations = [migrations.RunSQL("CREATE TABLE na (id integer)", "DROP TABLE na")]
"""


def test_plan_marks_non_atomic_migrations(project: Project) -> None:
    project.add_migration("users", "0003_non_atomic", NON_ATOMIC)
    project.create_tenant("acme", "ACME Corporation")
    plan = project.manage("migratetenant", "--tenant-id=acme", "--plan").stdout.splitlines()
    assert "  users/0003_non_atomic.py (non-atomic)" in plan
    assert "  users/0001_initial.py" in plan  # atomic ones as --plan prints them
    verbose = project.manage("migratetenant", "--tenant-id=acme", "--plan", "-v", "2").stdout
    assert "    (non-atomic: runs outside a transaction)" in verbose


def test_postgres_statement_timeout_rolls_back_and_retries(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    project.add_migration("users", "0003_slow", SLOW_SQL)
    project.create_tenant("acme", "ACME Corporation", "--isolation=schema")
    proc = project.manage(
        "migratetenant", "--tenant-id=acme", "--statement-timeout=300ms", "--retries=1", check=False
    )
    assert proc.returncode == 1
    assert "users/0003_slow.py ... TIMEOUT" in proc.stdout
    assert "Waited on: canceling statement due to statement timeout on: SELECT pg_sleep(30)" in proc.stdout
    assert "Rolled back; retry 1 of 1 in " in proc.stdout
    assert proc.stderr.startswith(
        "Error: Migration users/0003_slow.py failed for tenant 'acme': "
        "canceling statement due to statement timeout"
    ), proc.stderr
    names = {n for _, n, *_ in history(project.master, "public_acme")}  # type: ignore[attr-defined]
    assert "0002_alter_user_email" in names and "0003_slow" not in names
    columns = catalog(project.master, "public_acme")["columns"]  # type: ignore[attr-defined]
    assert not [c for c in columns if c[0] == "slow_marker"]


def test_sqlite_migratealltenants_sigint(tmp_path: Path) -> None:
    project, marker = slow_project(tmp_path)
    for tenant in ("a1", "a2", "a3"):
        project.create_tenant(tenant)
    proc = popen(project, "migratealltenants", "--jobs=1", "--json", env={"TM_SLOW_TICKS": "1200"})
    wait_for(marker, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    report = {t["tenant_id"]: t for t in json.loads(out)["tenants"]}
    assert report["a1"]["status"] == "interrupted"
    assert "users/0003_slow.py was rolled back" in report["a1"]["error"]
    assert report["a2"]["status"] == report["a3"]["status"] == "not-reached"
    assert "Interrupted: 0 tenants migrated" in err
    assert "Traceback" not in err
    assert ("users", "0003_slow") not in migration_rows(project.tenant_db("a1"))
    assert sqlite_schema(project.tenant_db("a2")) == []  # never touched
