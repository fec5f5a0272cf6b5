"""Crash safety: SIGKILL at random points of a run, on SQLite and PostgreSQL (schema isolation).

After every kill, the tenant's catalog must be exactly the catalog Django's migrations produce
for the migrations recorded in its history (every atomic migration fully applied and
recorded, or neither), the recorded migrations must be a prefix of the plan, and a re-run must
converge to the state of an uninterrupted run. The run lock must not outlive the process.

Each run draws its kill points from a seed (TM_CRASH_SEED, default: the clock, printed with any
failure), so successive CI runs cover different points; TM_CRASH_SAMPLES sets how many kills
per backend (default 6; `TM_CRASH_SAMPLES=60` was used for the figure in bench/README.md).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.pg import catalog, history
from helpers.processes import popen
from helpers.project import CONTRIB, Project, make_project, migration_rows, pg_project, sqlite_schema

SAMPLES = int(os.environ.get("TM_CRASH_SAMPLES", "6"))
SEED = int(os.environ.get("TM_CRASH_SEED", str(time.time_ns() % 1_000_000)))


def plan_of(project: Project, tenant: str) -> list[tuple[str, str]]:
    out = project.manage("migratetenant", f"--tenant-id={tenant}", "--plan").stdout
    steps = []
    for line in out.splitlines()[1:]:
        app, _, name = line.strip().partition("/")
        steps.append((app, name.removesuffix(".py")))
    return steps


def crash_check(
    project: Project,
    create: Callable[[str], None],
    snapshot: Callable[[str], Any],
    recorded: Callable[[str], set[tuple[str, str]]],
) -> None:
    create("ref")
    plan = plan_of(project, "ref")
    assert len(plan) > 10
    # The catalog after each prefix of the plan, one migration at a time, as a reference.
    references = [snapshot("ref")]
    for app, name in plan:
        project.manage("migratetenant", "--tenant-id=ref", app, name)
        references.append(snapshot("ref"))
    assert recorded("ref") == set(plan)

    create("timing")
    began = time.monotonic()
    project.manage("migratetenant", "--tenant-id=timing")
    whole = time.monotonic() - began
    # Most of a short run is start-up: a run with nothing to do measures it, and the kills are
    # drawn from a little before its end to the end of a full run, where migrations happen.
    began = time.monotonic()
    project.manage("migratetenant", "--tenant-id=timing")
    startup = max(0.1, time.monotonic() - began - 0.3)

    rng = random.Random(SEED)
    seen = set()
    for i in range(SAMPLES):
        tenant = f"crash{i}"
        create(tenant)
        delay = rng.uniform(startup, max(startup, whole))
        proc = popen(project, "migratetenant", f"--tenant-id={tenant}")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        done = recorded(tenant)
        k = len(done)
        seen.add(k)
        context = f"seed {SEED}, sample {i}, killed after {delay:.2f}s with {k} recorded"
        assert done == set(plan[:k]), context
        assert snapshot(tenant) == references[k], context
        # A re-run (which must get the lock the killed process held) finishes the job.
        rerun = project.manage("migratetenant", f"--tenant-id={tenant}", "--lock-wait=0", check=False)
        assert rerun.returncode == 0, f"{context}\n{rerun.stderr}"
        assert recorded(tenant) == set(plan), context
        assert snapshot(tenant) == references[-1], context
    print(f"crash seed {SEED}: {SAMPLES} kills, recorded counts seen {sorted(seen)}")


def test_sqlite_sigkill_at_random_points(tmp_path: Path) -> None:
    project = make_project(tmp_path, tenant_apps=CONTRIB)

    def create(tenant: str) -> None:
        project.create_tenant(tenant)

    def snapshot(tenant: str) -> Any:
        return sqlite_schema(project.tenant_db(tenant), exclude_prefix=("django_migrations",))

    def recorded(tenant: str) -> set[tuple[str, str]]:
        try:
            return set(migration_rows(project.tenant_db(tenant)))
        except Exception as exc:  # no history table yet: killed before the first migration
            if "no such table" in str(exc):
                return set()
            raise

    crash_check(project, create, snapshot, recorded)


@pytest.mark.usefixtures("pg_prefix")
def test_postgres_sigkill_at_random_points(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix, tenant_apps=CONTRIB)
    db = project.master  # type: ignore[attr-defined]

    def create(tenant: str) -> None:
        project.create_tenant(tenant, tenant, "--isolation=schema")

    def snapshot(tenant: str) -> Any:
        return catalog(db, f"public_{tenant}", exclude_prefix="django_migrations")

    def recorded(tenant: str) -> set[tuple[str, str]]:
        try:
            return set(history(db, f"public_{tenant}"))
        except Exception as exc:
            if "does not exist" in str(exc):
                return set()
            raise

    crash_check(project, create, snapshot, recorded)
