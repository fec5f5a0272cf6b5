"""A run that finds its tenant's run lock held says, once, how long it will wait and for whom."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.pg import connect
from helpers.processes import popen
from helpers.project import make_tenant, pg_project, tenant_location

# The run lock's id, as src/lock.rs computes it from the tenant's storage key.
LOCK = "SELECT pg_advisory_xact_lock(('x' || substr(md5(%s), 1, 16))::bit(64)::bigint)"


def storage_key(dbname: str, schema: str, isolation: str) -> str:
    if isolation == "database":
        return f"tenant_migrate database {dbname}"
    return f"tenant_migrate schema {dbname}.{schema}"


@pytest.mark.parametrize("isolation", ["database", "schema"])
def test_a_run_waiting_for_the_lock_says_so_once(tmp_path: Path, pg_prefix: str, isolation: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", isolation)
    dbname, schema = tenant_location(project, pg_prefix, "acme", isolation)
    notice = "Waiting up to {} s for the run holding tenant 'acme'."

    # Another run's lock: a second connection holding the advisory lock in an open transaction.
    holder = connect(dbname)
    holder.autocommit = False
    try:
        holder.execute(LOCK, (storage_key(dbname, schema, isolation),))

        refused = project.manage("migratetenant", "--tenant-id=acme", "--lock-wait=1", check=False)
        assert refused.returncode == 1
        assert refused.stderr.strip() == "Error: another migration is running for tenant 'acme'"
        assert refused.stdout.splitlines().count(notice.format(1)) == 1, refused.stdout

        # --lock-wait=0 does not wait, so it says nothing of waiting.
        at_once = project.manage("migratetenant", "--tenant-id=acme", "--lock-wait=0", check=False)
        assert at_once.returncode == 1
        assert "Waiting" not in at_once.stdout

        # The holder finishes once this run says it waits (not on a timer, which a slow start
        # of manage.py under load would outrun): told once, then it runs.
        waiting = popen(
            project, "migratetenant", "--tenant-id=acme", "--lock-wait=30", env={"PYTHONUNBUFFERED": "1"}
        )
        assert waiting.stdout is not None
        seen: list[str] = []
        while (line := waiting.stdout.readline()) and line.rstrip("\n") != notice.format(30):
            seen.append(line)
        holder.rollback()
        rest, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, err
        lines = [*(x.rstrip("\n") for x in seen), line.rstrip("\n"), *rest.splitlines()]
        assert lines.count(notice.format(30)) == 1, lines
        assert lines[-1] == "Migrations completed successfully for tenant 'acme'.", lines
    finally:
        holder.close()

    # Nobody holds it now: not a word about waiting.
    again = project.manage("migratetenant", "--tenant-id=acme", "--lock-wait=30")
    assert "Waiting" not in again.stdout


def test_deletetenant_waiting_for_a_run_says_so_once(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "schema")
    dbname, schema = tenant_location(project, pg_prefix, "acme", "schema")
    notice = "Waiting up to 10 s for the run holding tenant 'acme'."
    holder = connect(dbname)
    holder.autocommit = False
    try:
        holder.execute(LOCK, (storage_key(dbname, schema, "schema"),))
        deleting = popen(
            project, "deletetenant", "--tenant-id=acme", "--no-input", env={"PYTHONUNBUFFERED": "1"}
        )
        assert deleting.stdout is not None
        seen: list[str] = []
        while (line := deleting.stdout.readline()) and line.rstrip("\n") != notice:
            seen.append(line)
        holder.rollback()
        rest, err = deleting.communicate(timeout=120)
    finally:
        holder.close()
    assert deleting.returncode == 0, (seen, rest, err)
    lines = [*(x.rstrip("\n") for x in seen), line.rstrip("\n"), *rest.splitlines()]
    assert lines.count(notice) == 1, lines
