"""Through pgbouncer in transaction mode (Debian's package, started here): migrations run with
the tenant's search path set in every transaction, and the run lock holds through the proxy and
dies with the process that held it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.pg import HOST, PORT, catalog, history
from helpers.processes import BUSY, SLOW_PYTHON, popen, wait_for
from helpers.project import pg_project

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bouncer() -> Iterator[int]:
    if not os.path.exists(PGBOUNCER):
        if os.environ.get("TM_REQUIRE_POSTGRES") == "1":
            pytest.fail("pgbouncer is not installed (scripts/test.sh installs Debian's package)")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    port = free_port()
    # pgbouncer refuses to run as root: it runs as postgres, so its files must be readable.
    folder = Path(tempfile.mkdtemp(prefix="tm-pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text('"postgres" ""\n"root" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={HOST} port={PORT}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 10
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
logfile = {folder}/pgbouncer.log
"""
    )
    for f in folder.iterdir():
        f.chmod(0o644)
    user = []
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres")
        user = ["-u", "postgres"]
    proc = subprocess.Popen([PGBOUNCER, *user, str(folder / "pgbouncer.ini")])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, "pgbouncer exited; see its log on stderr"
                assert time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def test_schema_tenant_through_pgbouncer_transaction_mode(
    tmp_path: Path, pg_prefix: str, bouncer: int
) -> None:
    project = pg_project(tmp_path, pg_prefix)
    project.add_migration("users", "0003_slow", SLOW_PYTHON)
    marker = tmp_path / "marker"
    project.env.update({"TM_PG_PORT": str(bouncer), "TM_PG_POOLER": "transaction", "TM_MARKER": str(marker)})
    db = project.master  # type: ignore[attr-defined]
    for tenant in ("acme", "other", "direct"):
        project.create_tenant(tenant, tenant, "--isolation=schema")
    public_before = catalog(db, "public")

    # The lock holds through the proxy: a second run through it is refused...
    first = popen(project, "migratetenant", "--tenant-id=acme", env={"TM_SLOW_TICKS": "2000"})
    wait_for(marker, first)
    refused = project.manage("migratetenant", "--tenant-id=acme", "--lock-wait=1", check=False)
    assert refused.returncode == 1 and refused.stderr.strip() == BUSY, refused.stderr
    # ...another tenant is not held up by it...
    project.manage("migratetenant", "--tenant-id=other", env={"TM_SLOW_TICKS": "1"})
    # ...and it dies with the process that held it: no stale lock.
    first.send_signal(signal.SIGKILL)
    first.communicate()
    rerun = project.manage("migratetenant", "--tenant-id=acme", "--lock-wait=10", env={"TM_SLOW_TICKS": "1"})
    assert "users/0003_slow.py ... OK" in rerun.stdout

    # Every statement found the tenant's schema through the proxy: the same catalog and
    # history as a tenant migrated on a direct connection.
    project.manage(
        "migratetenant",
        "--tenant-id=direct",
        env={"TM_PG_PORT": str(PORT), "TM_PG_POOLER": "", "TM_SLOW_TICKS": "1"},
    )
    assert catalog(db, "public_acme") == catalog(db, "public_direct") == catalog(db, "public_other")
    assert history(db, "public_acme") == history(db, "public_direct") == history(db, "public_other")
    assert catalog(db, "public") == public_before
