"""Reliability, round 2: what --resume repeats, non-atomic migrations cut short, a run lock that
dies mid-run, names that would reach another tenant, servers that never answer, malformed
registry rows, and option values out of range.

Faults are injected for real (a held lock file, a killed lock backend, a socket that accepts
and never answers, registry rows written behind the commands' back); nothing is mocked.
"""

from __future__ import annotations

import fcntl
import json
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.pg import connect, history
from helpers.processes import popen, slow_project, wait_for, wait_until
from helpers.project import Project, migration_rows, pg_project, sqlite_schema


def statuses(stdout: str) -> dict[str, str]:
    return {t["tenant_id"]: t["status"] for t in json.loads(stdout)["tenants"]}


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class HeldLock:
    """Another run's lock on a SQLite tenant: the same OS file lock the core takes."""

    def __init__(self, project: Project, tenant: str) -> None:
        self.file = open(f"{project.tenant_db(tenant)}.migrate-lock", "a")
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
        self.file.close()


# --- --resume repeats the run it resumes ---------------------------------------------------


def test_resume_of_a_fake_rollback_fakes_it_too(project: Project) -> None:
    for tenant in ("a", "b", "c"):
        project.create_tenant(tenant, tenant, "--migrate")
    held = HeldLock(project, "b")
    try:
        proc = project.manage(
            "migratealltenants",
            "orders",
            "zero",
            "--fake",
            "--lock-wait=0",
            "--jobs=1",
            "--json",
            check=False,
        )
    finally:
        held.release()
    assert proc.returncode == 1
    assert statuses(proc.stdout) == {"a": "migrated", "b": "failed", "c": "migrated"}
    assert "orders_order" in tables(project.tenant_db("a"))  # faked: the table stays

    resumed = project.manage("migratealltenants", "--resume", "--json")
    assert statuses(resumed.stdout) == {"b": "migrated"}
    # Faked as the interrupted run would have: recorded as unapplied, the table and its rows kept.
    assert "orders_order" in tables(project.tenant_db("b"))
    assert ("orders", "0001_initial") not in migration_rows(project.tenant_db("b"))
    with sqlite3.connect(project.env["TM_MASTER_SQLITE"]) as conn:
        arguments = [
            json.loads(r[0]) for r in conn.execute("SELECT arguments FROM tenant_migrate_migrationrun")
        ]
    assert arguments[-1]["fake"] is True and arguments[-1]["migration_name"] == "zero"


def test_resume_keeps_the_runs_timeouts_and_refuses_different_ones(project: Project) -> None:
    for tenant in ("a", "b"):
        project.create_tenant(tenant)
    held = HeldLock(project, "b")
    try:
        project.manage(
            "migratealltenants", "users", "0001", "--lock-wait=0", "--retries=7", "--jobs=1", check=False
        )
    finally:
        held.release()
    for args, given in (
        (("--fake",), "--fake"),
        (("--retries=2",), "--retries"),
        (("--statement-timeout=5s",), "--statement-timeout"),
        (("users", "0002"), "target"),
    ):
        proc = project.manage("migratealltenants", "--resume", *args, check=False)
        assert proc.returncode == 1, args
        first = proc.stderr.splitlines()[0]
        assert first.startswith("Error: --resume repeats run #1 as it was started"), first
        assert given in first, first
    # The same values, or none, are accepted: the run's own are used.
    proc = project.manage("migratealltenants", "--resume", "--retries=7", "--json")
    assert statuses(proc.stdout) == {"b": "migrated"}
    assert migration_rows(project.tenant_db("b")) == [("users", "0001_initial")]
    with sqlite3.connect(project.env["TM_MASTER_SQLITE"]) as conn:
        last = json.loads(
            conn.execute("SELECT arguments FROM tenant_migrate_migrationrun ORDER BY id DESC").fetchone()[0]
        )
    assert last["retries"] == 7 and last["lock_wait"] == 0


def test_resume_after_ctrl_c_includes_the_interrupted_tenants(tmp_path: Path) -> None:
    project, marker = slow_project(tmp_path)
    for tenant in ("a1", "a2", "a3"):
        project.create_tenant(tenant)
    proc = popen(project, "migratealltenants", "--jobs=1", "--json", env={"TM_SLOW_TICKS": "1200"})
    wait_for(marker, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert statuses(out) == {"a1": "interrupted", "a2": "not-reached", "a3": "not-reached"}

    resumed = project.manage("migratealltenants", "--resume", "--json", env={"TM_SLOW_TICKS": "1"})
    assert statuses(resumed.stdout) == {"a1": "migrated", "a2": "migrated", "a3": "migrated"}
    assert ("users", "0003_slow") in migration_rows(project.tenant_db("a1"))


# --- A non-atomic migration cut short by a timeout is never retried ------------------------

# Its RunPython commits a row on its own; then its ALTER TABLE waits for a lock the test holds.
NON_ATOMIC_DATA = """
from django.db import migrations


def add_row(apps, schema_editor):
    User = apps.get_model("users", "User")
    users = User.objects.using(schema_editor.connection.alias)
    users.create(username=f"run-{users.count()}", email="x@example.com")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("users", "0002_alter_user_email")]
    operations = [
        migrations.RunPython(add_row, migrations.RunPython.noop),
        migrations.RunSQL(
            "ALTER TABLE users_user ADD COLUMN note text", "ALTER TABLE users_user DROP COLUMN note"
        ),
    ]
"""


def test_postgres_non_atomic_migration_hit_by_a_lock_timeout_stops_and_says_what_is_committed(
    tmp_path: Path, pg_prefix: str
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    project.add_migration("users", "0003_non_atomic", NON_ATOMIC_DATA)
    project.create_tenant("acme", "ACME Corporation", "--isolation=schema")
    project.manage("migratetenant", "--tenant-id=acme", "users", "0002")
    db = project.master  # type: ignore[attr-defined]
    blocker = connect(db)
    blocker.execute("BEGIN")
    blocker.execute("SELECT count(*) FROM public_acme.users_user")  # holds ACCESS SHARE
    try:
        proc = popen(project, "migratetenant", "--tenant-id=acme", "--lock-timeout=300ms", "--retries=20")
        time.sleep(4)
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    # Its RunPython ran once: never again as if the first attempt had been rolled back.
    with connect(db) as conn:
        assert conn.execute("SELECT username FROM public_acme.users_user").fetchall() == [("run-0",)]
    assert "Rolled back" not in out and "retry" not in out, (out, err)
    assert "  users/0003_non_atomic.py ... FAILED" in out
    lines = err.splitlines()
    assert lines[0].startswith(
        "Error: Migration users/0003_non_atomic.py failed for tenant 'acme': "
        "canceling statement due to lock timeout"
    ), err
    assert "not atomic" in err and "not rolled back" in err and "committed" in err
    assert "not recorded as applied" in err and "not retried" in err
    assert "Traceback" not in err
    names = [n for _, n, *_ in history(db, "public_acme")]
    assert "0003_non_atomic" not in names


def test_sqlite_ctrl_c_in_a_non_atomic_migration_does_not_claim_a_rollback(tmp_path: Path) -> None:
    from helpers.processes import SLOW_PYTHON

    source = SLOW_PYTHON.replace(
        "class Migration(migrations.Migration):", "class Migration(migrations.Migration):\n    atomic = False"
    )
    project, marker = slow_project(tmp_path, source)
    project.create_tenant("acme", "ACME Corporation")
    proc = popen(project, "migratetenant", "--tenant-id=acme", env={"TM_SLOW_TICKS": "1200"})
    wait_for(marker, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "rolled back for tenant" not in err.replace("not rolled back for tenant", ""), err
    assert (
        "Interrupted: users/0003_slow.py is not atomic, so it was not rolled back for tenant 'acme': "
        "every statement it ran before the interrupt is committed, and it is not recorded as applied."
    ) in err
    # Indeed: its row is there, and the migration is not recorded.
    with sqlite3.connect(project.tenant_db("acme")) as conn:
        assert conn.execute("SELECT username FROM users_user").fetchall() == [("inside-0003",)]
    assert ("users", "0003_slow") not in migration_rows(project.tenant_db("acme"))


# --- The run lock guards every commit --------------------------------------------------------

# A data migration Django applies (RunPython): each run adds a row of its own, then waits at a
# gate the test opens, so two runs can be caught inside it at once.
GATED_PYTHON = """
import os
import time

from django.db import migrations


def add_row(apps, schema_editor):
    User = apps.get_model("users", "User")
    User.objects.using(schema_editor.connection.alias).create(
        username=f"data-{os.getpid()}", email=f"{os.getpid()}@example.com"
    )
    open(os.environ["TM_MARKER"], "w").close()
    while not os.path.exists(os.environ["TM_GATE"]):
        time.sleep(0.05)


class Migration(migrations.Migration):
    dependencies = [("users", "0002_alter_user_email")]
    operations = [migrations.RunPython(add_row, migrations.RunPython.noop)]
"""

# The same on the Rust route: SQL only; the gate is a row in public.tm_gate.
GATED_SQL = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("users", "0002_alter_user_email")]
    operations = [
        migrations.RunSQL(
            [
                "INSERT INTO users_user (username, email, date_joined) "
                "VALUES ('sql-' || pg_backend_pid(), pg_backend_pid() || '@example.com', now())",
                "DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM public.tm_gate) LOOP "
                "PERFORM pg_sleep(0.05); END LOOP; END $$",
            ],
            migrations.RunSQL.noop,
        ),
    ]
"""


def run_lock_backends(db: str, schema: str) -> list[int]:
    """Server processes holding the run lock of the tenant in ``schema`` of database ``db``."""
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT l.pid FROM pg_locks l, (SELECT ('x' || substr(md5(%s), 1, 16))::bit(64)::bigint AS id) k "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = (k.id >> 32) & 4294967295 AND l.objid::bigint = k.id & 4294967295",
            [f"tenant_migrate schema {db}.{schema}"],
        ).fetchall()
    return sorted({r[0] for r in rows})


@pytest.mark.parametrize("route", ["django", "sql"])
def test_postgres_a_run_whose_lock_was_killed_never_commits_and_nothing_is_applied_twice(
    tmp_path: Path, pg_prefix: str, route: str
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    project.add_migration("users", "0003_data", GATED_PYTHON if route == "django" else GATED_SQL)
    project.create_tenant("acme", "ACME Corporation", "--isolation=schema")
    project.manage("migratetenant", "--tenant-id=acme", "users", "0002")
    db = project.master  # type: ignore[attr-defined]
    gate = tmp_path / "gate"
    with connect(db) as conn:
        conn.execute("CREATE TABLE public.tm_gate (x integer)")

    def inside(marker: Path) -> object:
        if route == "django":
            return marker.exists
        return lambda: bool(
            run_sql(
                db,
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%tm_gate%%' AND state = 'active' "
                "AND pid <> pg_backend_pid()",
            )[0][0]
        )

    env_a = {"TM_MARKER": str(tmp_path / "a"), "TM_GATE": str(gate)}
    first = popen(project, "migratetenant", "--tenant-id=acme", env=env_a)
    wait_until(inside(tmp_path / "a"), first, "the first run is inside 0003_data", detail=activity)
    # The operator (or a proxy's idle-transaction timeout) ends the run lock's connection.
    holders = run_lock_backends(db, "public_acme")
    assert len(holders) == 1, holders
    run_sql(db, f"SELECT pg_terminate_backend({holders[0]})")

    env_b = {"TM_MARKER": str(tmp_path / "b"), "TM_GATE": str(gate)}
    second = popen(project, "migratetenant", "--tenant-id=acme", "--lock-wait=60", env=env_b)
    if route == "django":
        wait_until((tmp_path / "b").exists, second, "the second run is inside 0003_data", detail=activity)
    else:
        # Waiting for the first one's migration transaction (its record lock), or inside it.
        wait_until(
            lambda: (
                run_sql(
                    db,
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%tm_gate%%' "
                    "AND pid <> pg_backend_pid()",
                )[0][0]
                >= 2
            ),
            second,
            "the second run reached 0003_data",
            detail=activity,
        )
    gate.touch()
    run_sql(db, "INSERT INTO public.tm_gate VALUES (1)")
    out_a, err_a = first.communicate(timeout=120)
    out_b, err_b = second.communicate(timeout=120)

    names = [n for _, n, *_ in history(db, "public_acme")]
    assert names.count("0003_data") == 1, (names, out_a, err_a, out_b, err_b)
    rows = run_sql(db, "SELECT username FROM public_acme.users_user")
    assert len(rows) == 1, (rows, err_a, err_b)
    # The run that lost its lock committed nothing more and says why.
    assert first.returncode == 1, (out_a, err_a)
    error = [line for line in err_a.splitlines() if not line.startswith("[heartbeat]")]
    assert error[0].startswith(
        "Error: Migration users.0003_data was not committed for tenant 'acme': this run's lock on "
        "the tenant was lost (its database connection ended). It was rolled back"
    ), err_a
    assert "Traceback" not in err_a
    assert second.returncode == 0, (out_b, err_b)
    assert "users/0003_data.py ... OK" in out_b


def activity() -> list[tuple]:
    return run_sql(
        "postgres",
        "SELECT pid, state, wait_event_type, wait_event, left(query, 100) FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )


def run_sql(db: str, sql: str) -> list[tuple]:
    with connect(db) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


# --- One validation of ids and names, on every path ----------------------------------------


def registry_insert(
    db: str,
    tenant_id: str,
    isolation: str,
    database_name: str = "",
    schema_name: str = "",
    connection: str = "{}",
) -> None:
    """A registry row written behind createtenant's back (the admin, a script, a bad migration)."""
    run_sql(
        db,
        "INSERT INTO tenant_migrate_tenant (tenant_id, name, isolation, database_name, schema_name, "
        f"connection, created_at, updated_at) VALUES ('{tenant_id}', '{tenant_id}', '{isolation}', "
        f"'{database_name}', '{schema_name}', '{connection}', now(), now())",
    )


def test_postgres_a_multibyte_schema_name_never_reaches_the_tenant_it_truncates_to(
    tmp_path: Path, pg_prefix: str
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    victim_schema = "ü" * 31 + "x"  # 63 bytes: the longest name PostgreSQL keeps whole
    project.create_tenant(
        "victim", "Victim", "--isolation=schema", f"--schema-name={victim_schema}", "--migrate"
    )
    db = project.master  # type: ignore[attr-defined]
    forged = victim_schema + "ü" * 8  # 40 characters, 79 bytes: truncated onto the victim's
    assert len(forged) == 40 and len(forged.encode()) == 79
    registry_insert(db, "forged", "schema", schema_name=forged)

    alias = project.manage("showmigrations", "users", "--database=forged", check=False)
    assert alias.returncode != 0, alias.stdout
    assert "[X]" not in alias.stdout and "Traceback" not in alias.stderr
    for args in (("migratetenant", "--tenant-id=forged"), ("migratetenant", "--tenant-id=forged", "--plan")):
        proc = project.manage(*args, check=False)
        assert proc.returncode == 1, (args, proc.stdout)
        assert proc.stderr.startswith("Error: Invalid schema name"), proc.stderr
        assert "79 bytes long; PostgreSQL allows at most 63" in proc.stderr
    summary = project.manage("showtenantmigrations", "--summary", check=False)
    assert summary.returncode == 1
    forged_line = next(line for line in summary.stdout.splitlines() if line.startswith("forged"))
    assert "error (Invalid schema name" in forged_line
    alltenants = project.manage("migratealltenants", "--json", check=False)
    assert statuses(alltenants.stdout) == {"forged": "failed", "victim": "up-to-date"}


def test_postgres_reserved_and_shared_names_are_refused_at_creation_and_at_use(
    tmp_path: Path, pg_prefix: str
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    db = project.master  # type: ignore[attr-defined]
    project.create_tenant("good", "Good", "--isolation=schema")
    project.create_tenant("gone", "Gone", "--isolation=schema")
    run_sql(db, "DROP SCHEMA public_gone")
    run_sql(db, "CREATE SCHEMA public_twin")
    rows = {
        "pub": ("schema", "", "public"),
        "pgx": ("schema", "", "PG_x"),
        "info": ("schema", "", "information_schema"),
        "tmpl": ("schema", "", "public__template"),
        "twin1": ("schema", "", "public_twin"),
        "twin2": ("schema", "", "public_twin"),
        "master": ("database", db, ""),
        "sys": ("database", "template1", ""),
    }
    for tenant_id, (isolation, database_name, schema_name) in rows.items():
        registry_insert(db, tenant_id, isolation, database_name, schema_name)
    public_before = run_sql(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")

    for tenant_id in rows:
        proc = project.manage("migratetenant", f"--tenant-id={tenant_id}", check=False)
        assert proc.returncode == 1, (tenant_id, proc.stdout)
        message = proc.stderr.splitlines()
        assert len(message) == 1 and message[0].startswith("Error: Tenant "), proc.stderr
        assert "reserved" in message[0] or "own" in message[0], message
    # Nothing reached the database's own schema or the shared one.
    assert (
        run_sql(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1") == public_before
    )
    assert run_sql(db, "SELECT to_regclass('public_twin.users_user')") == [(None,)]
    proc = project.manage("migratealltenants", "--json", check=False)
    assert statuses(proc.stdout) == {
        **{tenant_id: "failed" for tenant_id in rows},
        "gone": "missing",
        "good": "migrated",
    }
    shown = {
        t["tenant_id"]: t["state"]
        for t in json.loads(project.manage("showtenantmigrations", "--json", check=False).stdout)["tenants"]
    }
    assert {t for t, state in shown.items() if state == "error"} == set(rows)
    twin = json.loads(proc.stdout)["tenants"]
    assert any("tenant 'twin2' names too" in (t["error"] or "") for t in twin if t["tenant_id"] == "twin1")

    # createtenant refuses them too, and a name a registered tenant owns (even while missing).
    for args in (
        ("--tenant-id=new1", "--isolation=schema", "--schema-name=public__template"),
        ("--tenant-id=new2", "--isolation=schema", "--schema-name=public_gone"),
        ("--tenant-id=new3", "--isolation=schema", "--schema-name=public"),
        ("--tenant-id=new4", "--isolation=database", f"--database-name={db}"),
        ("--tenant-id=new5", "--isolation=database", "--database-name=postgres"),
    ):
        proc = project.manage("createtenant", *args, "--no-input", check=False)
        assert proc.returncode == 1, (args, proc.stdout)
        assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr, proc.stderr
        assert "reserved" in proc.stderr or "own" in proc.stderr, (args, proc.stderr)
    assert "new1" not in [r[0] for r in run_sql(db, "SELECT tenant_id FROM tenant_migrate_tenant")]
    assert run_sql(
        db, "SELECT count(*) FROM pg_namespace WHERE nspname IN ('public__template', 'public_gone')"
    ) == [(0,)]


# --- A server that never answers ---------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never sends a byte: a hung database server, or
    a proxy in front of one."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def timed(project: Project, *args: str, limit: float = 40) -> tuple[int, str, str, float]:
    began = time.monotonic()
    proc = popen(project, *args)
    try:
        out, err = proc.communicate(timeout=limit)
    except Exception:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"manage.py {' '.join(args)} still running after {limit}s:\n{out}\n{err}"
        ) from None
    return proc.returncode, out, err, time.monotonic() - began


def test_postgres_a_tenant_server_that_never_answers_fails_that_tenant_in_bounded_time(
    tmp_path: Path, pg_prefix: str, silent_server: int
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    db = project.master  # type: ignore[attr-defined]
    for tenant in ("a", "b"):
        project.create_tenant(tenant, tenant, "--isolation=schema")
    overrides = json.dumps({"HOST": "127.0.0.1", "PORT": silent_server})
    registry_insert(db, "hung", "schema", schema_name="public_hung", connection=overrides)

    code, out, err, seconds = timed(project, "migratetenant", "--tenant-id=hung")
    assert code == 1, (out, err)
    assert err.startswith("Error: Cannot connect to tenant database\n"), err
    assert "did not complete the connection within 10 s" in err
    assert seconds < 30

    code, out, err, seconds = timed(project, "migratealltenants", "--jobs=2", "--json")
    assert code == 1, (out, err)
    assert statuses(out) == {"a": "migrated", "b": "migrated", "hung": "failed"}
    assert seconds < 40

    code, out, err, seconds = timed(project, "showtenantmigrations", "--summary")
    assert code == 1 and seconds < 30, (out, err)
    assert any(line.startswith("hung") and "error (Cannot connect" in line for line in out.splitlines()), out

    # Django's own connection to the tenant (its alias) is bounded the same way.
    code, out, err, seconds = timed(project, "showmigrations", "users", "--database=hung")
    assert code != 0 and seconds < 30, (out, err)

    # Ctrl-C stops the wait at once, long before the connect timeout.
    proc = popen(project, "migratetenant", "--tenant-id=hung")
    time.sleep(3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert time.monotonic() - sent < 3, err
    assert "Traceback" not in err


# --- Malformed registry rows fail only themselves; a password is never shown --------------------


def sqlite_registry_insert(project: Project, tenant_id: str, connection: str) -> None:
    with sqlite3.connect(project.env["TM_MASTER_SQLITE"]) as conn:
        conn.execute(
            "INSERT INTO tenant_migrate_tenant (tenant_id, name, isolation, database_name, schema_name, "
            "connection, created_at, updated_at) VALUES (?, ?, 'database', ?, '', ?, datetime(), datetime())",
            [tenant_id, tenant_id, f"{tenant_id}_db", connection],
        )


def test_a_malformed_registry_row_fails_only_its_own_tenant(project: Project) -> None:
    project.create_tenant("good")
    malformed = {
        "arr": "[1, 2]",
        "text": '"HOST=db2"',
        "port": '{"PORT": "abc"}',
        "range": '{"PORT": 99999}',
        "flag": '{"PORT": true}',
        "host": '{"HOST": 5}',
        "key": '{"NAME": "other_db"}',
    }
    for tenant_id, connection in malformed.items():
        sqlite_registry_insert(project, tenant_id, connection)

    proc = project.manage("migratealltenants", "--json", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    report = {t["tenant_id"]: t for t in json.loads(proc.stdout)["tenants"]}
    assert {t: r["status"] for t, r in report.items()} == {
        "good": "migrated",
        **{t: "failed" for t in malformed},
    }
    for tenant_id in malformed:
        error = report[tenant_id]["error"]
        assert len(error.splitlines()) == 1 and f"tenant '{tenant_id}'" in error, error
    assert "PORT must be a number from 1 to 65535, not 99999" in report["range"]["error"]
    assert "must be a JSON object, not an array" in report["arr"]["error"]

    check = project.manage("migratealltenants", "--check", check=False)
    assert check.returncode == 1 and "Traceback" not in check.stderr, check.stderr
    assert "Tenants whose history could not be read:" in check.stdout
    shown = project.manage("showtenantmigrations", "--summary", check=False)
    assert shown.returncode == 1 and "Traceback" not in shown.stderr, shown.stderr
    assert any(line.startswith("good") and line.endswith("up-to-date") for line in shown.stdout.splitlines())
    single = project.manage("migratetenant", "--tenant-id=arr", check=False)
    assert single.returncode == 1 and len(single.stderr.splitlines()) == 1, single.stderr


def test_postgres_a_password_of_any_json_type_is_never_printed(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    db = project.master  # type: ignore[attr-defined]
    project.create_tenant(
        "pw", "Pw", "--isolation=schema", '--connection={"PASSWORD": 987654321}', "--migrate"
    )
    registry_insert(
        db, "odd", "schema", schema_name="public_odd", connection='{"PASSWORD": {"x": "secret-value-42"}}'
    )
    outputs = []
    for args in (
        ("migratetenant", "--tenant-id=pw"),
        ("migratetenant", "--tenant-id=odd"),
        ("migratealltenants", "--json"),
        ("migratealltenants",),
        ("showtenantmigrations", "--json"),
        ("showtenantmigrations", "--summary"),
        ("showmigrations", "users", "--database=pw"),
        ("showmigrations", "users", "--database=odd"),
    ):
        proc = project.manage(*args, check=False)
        outputs.append((args, proc.returncode, proc.stdout + proc.stderr))
    for args, _, text in outputs:
        assert "987654321" not in text and "secret-value-42" not in text, (args, text)
        assert "Traceback" not in text, (args, text)
    codes = {args: code for args, code, _ in outputs}
    assert codes[("migratetenant", "--tenant-id=pw")] == 0
    assert codes[("showmigrations", "users", "--database=pw")] == 0
    assert codes[("migratetenant", "--tenant-id=odd")] == 1


# --- Option values out of range ------------------------------------------------------------------


def test_option_values_out_of_range_are_refused_by_argument_parsing(project: Project) -> None:
    project.create_tenant("acme")
    cases = {
        ("migratetenant", "--tenant-id=acme", "--heartbeat=1e300"): "--heartbeat",
        ("migratetenant", "--tenant-id=acme", "--lock-wait=1e300"): "--lock-wait",
        ("migratetenant", "--tenant-id=acme", "--lock-timeout=1e300"): "--lock-timeout",
        ("migratetenant", "--tenant-id=acme", "--statement-timeout=1e300s"): "--statement-timeout",
        ("migratetenant", "--tenant-id=acme", "--retries=99999999999"): "--retries",
        ("migratealltenants", "--retries=99999999999"): "--retries",
        ("migratealltenants", "--batch-size=1", "--batch-pause=1e300"): "--batch-pause",
        ("migratealltenants", "--lock-wait=1e300"): "--lock-wait",
    }
    for args, option in cases.items():
        proc = project.manage(*args, check=False)
        assert proc.returncode != 0, (args, proc.stdout)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        last = proc.stderr.strip().splitlines()[-1]
        assert option in last and ("at most" in last or "must be" in last), (args, proc.stderr)
    assert sqlite_schema(project.tenant_db("acme")) == []


# --- The master's connection lost mid-run --------------------------------------------------------


def test_postgres_master_connection_lost_mid_run_still_journals_and_summarises(
    tmp_path: Path, pg_prefix: str
) -> None:
    from helpers.processes import SLOW_PYTHON

    project = pg_project(tmp_path, pg_prefix)
    project.add_migration("users", "0003_slow", SLOW_PYTHON)
    marker = tmp_path / "marker"
    for tenant in ("t1", "t2", "t3"):
        project.create_tenant(tenant, tenant, "--isolation=database")
    db = project.master  # type: ignore[attr-defined]
    proc = popen(
        project, "migratealltenants", "--jobs=1", env={"TM_MARKER": str(marker), "TM_SLOW_TICKS": "40"}
    )
    wait_for(marker, proc)
    # The master restarts, or an operator ends its sessions: the journal's connection is gone.
    ended = run_sql(
        db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()",
    )
    assert ended, "no master connection to end"
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    assert "Summary: 3 tenants in " in out and ": 3 migrated." in out, out
    runs = run_sql(db, "SELECT status FROM tenant_migrate_migrationrun")
    assert runs == [("succeeded",)]
    assert run_sql(db, "SELECT tenant_id, status FROM tenant_migrate_migrationruntenant ORDER BY 1") == [
        ("t1", "migrated"),
        ("t2", "migrated"),
        ("t3", "migrated"),
    ]
