"""migratealltenants over tenants on two PostgreSQL servers, one of which is stopped mid-run:
only that server's tenants fail; every tenant of the other server is migrated. The second
server also checks passwords for one role, so a tenant's PASSWORD override is tested for real.

The second server is a cluster of its own (Debian's pg_createcluster, port 5433, trust auth),
created by the fixture when it does not exist, and stopped with `-m immediate` by the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers.pg import HOST, USER, connect, history
from helpers.processes import SLOW_PYTHON, popen
from helpers.project import CONTRIB, pg_project
from psycopg import sql

CLUSTER = "tmtest"
PORT_B = 5433


def _version() -> str | None:
    folder = Path("/etc/postgresql")
    versions = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    return versions[-1] if versions else None


def _ctl(action: str, *extra: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", _version() or "", CLUSTER, action, *extra],
        check=True,
        capture_output=True,
    )


def _ready() -> bool:
    try:
        psycopg.connect(host=HOST, port=PORT_B, user="postgres", dbname="postgres", connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


@pytest.fixture
def server_b() -> Iterator[int]:
    version = _version()
    if version is None or shutil.which("pg_createcluster") is None:
        reason = "a second PostgreSQL server needs Debian's postgresql-common (pg_createcluster)"
        if os.environ.get("TM_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    if not Path(f"/etc/postgresql/{version}/{CLUSTER}").exists():
        subprocess.run(
            ["pg_createcluster", version, CLUSTER, "-p", str(PORT_B), "--", "--auth=trust"],
            check=True,
            capture_output=True,
        )
    if not _ready():
        _ctl("start")
    deadline = time.monotonic() + 30
    while not _ready():
        assert time.monotonic() < deadline, "the second PostgreSQL server did not start"
        time.sleep(0.2)
    yield PORT_B
    if not _ready():
        _ctl("start")


def _drop_on_b(prefix: str) -> None:
    if not _ready():
        return
    with psycopg.connect(host=HOST, port=PORT_B, user="postgres", dbname="postgres", autocommit=True) as conn:
        for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"]):
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _done_on_b(database: str) -> bool:
    try:
        with psycopg.connect(host=HOST, port=PORT_B, user="postgres", dbname=database) as conn:
            row = conn.execute("SELECT 1 FROM django_migrations WHERE name = '0003_slow'").fetchone()
            return row is not None
    except psycopg.Error:
        return False


def test_a_server_stopped_mid_run_fails_only_its_own_tenants(
    tmp_path: Path, pg_prefix: str, server_b: int
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    project.add_migration("users", "0003_slow", SLOW_PYTHON)
    project.env["TM_MARKER"] = str(tmp_path / "marker")
    project.env["TM_SLOW_TICKS"] = "20"  # about a second per tenant
    on_a = [f"t{i:02d}a" for i in range(0, 12, 2)]
    on_b = [f"t{i:02d}b" for i in range(1, 12, 2)]
    try:
        for tenant in on_a:
            project.create_tenant(tenant, tenant, "--isolation=database")
        for tenant in on_b:
            project.create_tenant(
                tenant, tenant, "--isolation=database", f'--connection={{"PORT": {server_b}}}'
            )
        run = popen(project, "migratealltenants", "--jobs=4", "--jobs-per-server=2", "--json")
        deadline = time.monotonic() + 120
        while not any(_done_on_b(f"{pg_prefix}{t}_db") for t in on_b):
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.1)
        _ctl("stop", "-m", "immediate")
        out, err = run.communicate(timeout=300)
        assert run.returncode == 1, err
        report = {t["tenant_id"]: t for t in json.loads(out)["tenants"]}
        # Every tenant of the server that stayed up was migrated, whatever happened on the other.
        for tenant in on_a:
            assert report[tenant]["status"] == "migrated", report[tenant]
            names = {n for _, n in history(f"{pg_prefix}{tenant}_db")}
            assert "0003_slow" in names
        failed = {t for t, r in report.items() if r["status"] == "failed"}
        assert failed and failed <= set(on_b), report
        assert any(report[t]["status"] == "migrated" for t in on_b)
        for tenant in failed:
            assert report[tenant]["error"], report[tenant]
            assert "Traceback" not in report[tenant]["error"]
        assert f"{len(failed)} of 12 tenants failed" in err
    finally:
        if not _ready():
            _ctl("start")
            while not _ready():
                time.sleep(0.2)
        _drop_on_b(pg_prefix)
        assert USER  # the main server's user, used by pg_project


PASSWORD_ROLE = "tm_password_role"


def _require_password_for(role: str) -> None:
    """scram-sha-256 for this one role on the second server (trust for everything else)."""
    folder = Path(f"/etc/postgresql/{_version()}/{CLUSTER}")
    hba = folder / "pg_hba.conf"
    rule = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
    text = hba.read_text()
    if rule not in text:
        hba.write_text(rule + text)
        _ctl("reload")


def test_password_override_reaches_both_the_core_and_django(
    tmp_path: Path, pg_prefix: str, server_b: int
) -> None:
    _require_password_for(PASSWORD_ROLE)
    password = "s3cret 'with' \"quotes\""
    with psycopg.connect(
        host=HOST, port=server_b, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(PASSWORD_ROLE), sql.Literal(password)
            )
        )
    # contenttypes and auth are tenant apps: post_migrate runs on Django's connection too.
    project = pg_project(tmp_path, pg_prefix, tenant_apps=CONTRIB)
    override = json.dumps({"PORT": server_b, "USER": PASSWORD_ROLE, "PASSWORD": password})
    try:
        project.create_tenant("acme", "ACME Corporation", "--isolation=database", f"--connection={override}")
        project.manage("migratetenant", "--tenant-id=acme")
        dbname = f"{pg_prefix}acme_db"
        with psycopg.connect(
            host=HOST, port=server_b, user=PASSWORD_ROLE, password=password, dbname=dbname
        ) as conn:
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'users_user'").fetchone()
            permissions = conn.execute("SELECT count(*) FROM auth_permission").fetchone()[0]
        assert owner == (PASSWORD_ROLE,) and permissions > 0

        wrong = json.dumps({"PORT": server_b, "USER": PASSWORD_ROLE, "PASSWORD": "wrong"})
        with connect(project.master) as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE tenant_migrate_tenant SET connection = %s WHERE tenant_id = 'acme'", [wrong])
        proc = project.manage("migratetenant", "--tenant-id=acme", "users", "zero", check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        lines = proc.stderr.splitlines()
        assert lines[0] == "Error: Cannot connect to tenant database"
        assert f'password authentication failed for user "{PASSWORD_ROLE}"' in lines[1], proc.stderr
    finally:
        _drop_on_b(pg_prefix)
        with psycopg.connect(
            host=HOST, port=server_b, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
