"""Connection limits on PostgreSQL, for real: a role created with CONNECTION LIMIT, and many
database-isolated tenants on one server.

``migratealltenants`` reads the limits of the master's role, database and server before any
tenant runs: it runs fewer jobs when they leave no room for ``--jobs`` (saying so once), and
stops before touching a tenant when there is no room for one job. Idle connections kept for
reuse are bounded in total, so tenants that each have a database of their own do not pile up
one idle session each. The number of sessions is sampled from pg_stat_activity while the
command runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from helpers.pg import connect, history, pg_env
from helpers.project import Project, make_project

# Idle connections the core keeps for reuse, all databases together (src/backend/postgres.rs).
IDLE_LIMIT = 16
T = TypeVar("T")


class Role:
    """A login role that is not a superuser (superusers are exempt from connection limits),
    owning the master database."""

    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}limited"
        with connect("postgres") as conn:
            conn.autocommit = True
            conn.execute(f'CREATE ROLE "{self.name}" LOGIN CREATEDB')

    def limit(self, count: int) -> None:
        with connect("postgres") as conn:
            conn.autocommit = True
            conn.execute(f'ALTER ROLE "{self.name}" CONNECTION LIMIT {count}')

    def drop(self) -> None:
        with connect("postgres") as conn:
            conn.autocommit = True
            conn.execute(f'DROP OWNED BY "{self.name}" CASCADE')
            conn.execute(f'DROP ROLE IF EXISTS "{self.name}"')


@pytest.fixture
def role(pg_prefix: str) -> Iterator[Role]:
    made = Role(pg_prefix)
    try:
        yield made
    finally:
        from helpers.pg import drop_databases

        drop_databases(pg_prefix)  # the role's databases first, then the role itself
        made.drop()


def project_as(tmp_path: Path, prefix: str, role: Role) -> Project:
    master = f"{prefix}shared"
    with connect("postgres") as conn:
        conn.autocommit = True
        conn.execute(f'CREATE DATABASE "{master}" OWNER "{role.name}"')
    with connect(master) as conn:
        conn.autocommit = True
        conn.execute(f'ALTER SCHEMA public OWNER TO "{role.name}"')
    project = make_project(tmp_path, master=False)
    project.env.update(pg_env(prefix))
    project.env.update(
        {
            "TM_DB_ENGINE": "postgresql",
            "TM_PG_NAME": master,
            "TM_DATABASE_NAME": prefix + "{tenant_id}_db",
            "TM_PG_USER": role.name,
        }
    )
    project.master = master  # type: ignore[attr-defined]
    project.manage("migrate", "--no-input")
    return project


def has_history(dbname: str, schema: str) -> bool:
    with connect(dbname) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".django_migrations',)).fetchone()
    return found is not None and found[0] is not None


def peak_sessions(role: Role, run: Callable[[], T]) -> tuple[int, T]:
    """Run ``run()`` while counting the role's sessions every few milliseconds."""
    peak = 0
    result: T
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        with connect("postgres") as conn:
            conn.autocommit = True
            while not stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role.name,)
                ).fetchone()
                peak = max(peak, row[0])
                time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = run()
    finally:
        stop.set()
        sampler.join()
    return peak, result


def test_postgres_a_role_connection_limit_means_fewer_jobs_or_an_error_up_front(
    tmp_path: Path, pg_prefix: str, role: Role
) -> None:
    project = project_as(tmp_path, pg_prefix, role)
    tenants = [f"s{i}" for i in range(3)] + [f"d{i}" for i in range(3)]
    for tenant in tenants:
        isolation = "schema" if tenant.startswith("s") else "database"
        project.create_tenant(tenant, tenant.upper(), f"--isolation={isolation}")

    # No room for one job: refused before any tenant is touched, in one line.
    role.limit(3)
    proc = project.manage("migratealltenants", "--jobs=4", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors == [
        f"Error: Not enough database connections for one job: role '{role.name}' has CONNECTION "
        "LIMIT 3, 1 in use, and a job needs 3. Raise the limit, or close other sessions."
    ], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not has_history(f"{pg_prefix}d0_db", "public")
    assert not has_history(project.master, "public_s0")  # type: ignore[attr-defined]

    # Room for two of the four jobs asked for: two run, said once, every tenant migrated, and
    # the role never goes over its limit.
    role.limit(7)
    peak, proc = peak_sessions(role, lambda: project.manage("migratealltenants", "--jobs=4", check=False))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notes = [line for line in proc.stdout.splitlines() if line.startswith("Note:")]
    assert notes == [
        f"Note: Running 2 jobs instead of 4: role '{role.name}' has CONNECTION LIMIT 7, 1 in use, "
        "and a job needs 3 connections."
    ], proc.stdout
    assert "too many connections" not in proc.stdout + proc.stderr
    assert "Summary: 6 tenants" in proc.stdout and "6 migrated" in proc.stdout, proc.stdout
    assert peak <= 7, peak
    for tenant in tenants:
        dbname, schema = (
            (project.master, f"public_{tenant}")  # type: ignore[attr-defined]
            if tenant.startswith("s")
            else (f"{pg_prefix}{tenant}_db", "public")
        )
        assert len(history(dbname, schema)) == 4, tenant

    # With no limit, nothing is said and the jobs asked for run.
    role.limit(-1)
    proc = project.manage("migratealltenants", "--jobs=4", "orders", "zero")
    assert "Note:" not in proc.stdout


def test_postgres_database_isolated_tenants_do_not_pile_up_idle_connections(
    tmp_path: Path, pg_prefix: str, role: Role
) -> None:
    """Every tenant a database of its own: one idle session kept per tenant would reach the
    server's max_connections after about a hundred tenants. The idle ones are bounded."""
    project = project_as(tmp_path, pg_prefix, role)
    tenants = [f"t{i:02}" for i in range(IDLE_LIMIT + 8)]
    for tenant in tenants:
        project.create_tenant(tenant, tenant.upper(), "--isolation=database")
    peak, proc = peak_sessions(role, lambda: project.manage("migratealltenants", "--jobs=1", check=False))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Summary: {len(tenants)} tenants" in proc.stdout, proc.stdout
    # The master's session, one job's three, and the bounded idle ones; not one per tenant.
    assert peak <= 1 + 3 + IDLE_LIMIT < 1 + len(tenants), peak


def test_fewer_jobs_lower_the_idle_connection_limit_for_that_run_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that keeps no idle connections (fewer jobs than asked, see budget.py) puts the
    process-wide limit back afterwards: later runs of the process (call_command, a deploy
    script, the test runner) pool connections again."""
    import io

    from django.core.management import call_command
    from tenant_migrate import _core, budget

    call_command("migrate", interactive=False, verbosity=0)
    tight = budget.Limit("role 'app' has CONNECTION LIMIT 5", allowed=5, in_use=0)
    monkeypatch.setattr(budget, "master_limit", lambda: tight)
    before = _core.set_idle_connection_limit(7)
    try:
        out = io.StringIO()
        call_command("migratealltenants", jobs=4, plan=True, stdout=out, stderr=io.StringIO())
        assert "Note: Running 1 job instead of 4: role 'app' has CONNECTION LIMIT 5" in out.getvalue()
    finally:
        after = _core.set_idle_connection_limit(before)
    assert after == 7
