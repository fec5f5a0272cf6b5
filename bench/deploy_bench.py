"""Benchmark: the daily deploy, per tenant, as the number of tenants grows.

PostgreSQL schema isolation, the example project with contenttypes and auth inside tenants
(19 migrations). For each N: N tenants are registered with empty schemas in one database and
migrated from zero (setup, not measured), then taken back one migration (auth 0012, not
measured), and the deploy is measured: ``migratealltenants --jobs J`` applying that migration
to every tenant. Printed per N: wall time, PostgreSQL server CPU (all backends of the cluster,
read from the postmaster's reaped children, so run it on an otherwise idle server), both per
tenant, and ``pg_class`` sequential scans per tenant (each one reads every tenant's relations:
what makes a deploy's cost grow with the square of N).

Usage: python bench/deploy_bench.py [--tenants 100 300 1000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from psycopg import sql
from run_bench import admin, manage  # the same helpers (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent
CLOCK = os.sysconf("SC_CLK_TCK")


def copy_project(prefix: str) -> Path:
    """A copy of the example project in a new temporary folder (its parent), to add migrations to."""
    project = Path(tempfile.mkdtemp(prefix=prefix)) / "project"
    ignore = shutil.ignore_patterns("*.sqlite3", "tenants", "__pycache__")
    shutil.copytree(ROOT / "django_app", project, ignore=ignore)
    return project


def postmaster_pid() -> int:
    with admin() as conn:
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
    return int(Path(data_dir, "postmaster.pid").read_text().split()[0])


def server_cpu_seconds() -> float:
    """CPU of the cluster's exited backends (reaped by the postmaster) plus its own."""
    pid = postmaster_pid()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields after the command: utime, stime, cutime, cstime are the 12th..15th.
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLOCK


def pg_class_scans(dbname: str) -> int:
    time.sleep(1.5)  # each backend flushes its statistics about once a second
    with admin(dbname) as conn:
        return conn.execute("SELECT seq_scan FROM pg_stat_sys_tables WHERE relname = 'pg_class'").fetchone()[
            0
        ]


def run(n: int, jobs: int) -> dict[str, float]:
    dbname = f"tm_deploy_bench_{n}"
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    project = copy_project("tm_deploy_")
    work = project.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "TM_DB_ENGINE": "postgresql",
        "TM_PG_NAME": dbname,
        "TM_TENANT_APPS": "contenttypes,auth,users,products,orders",
        "TM_SHARED_APPS": "all",
        "TM_TENANT_DIR": str(work / "tenants"),
    }
    try:
        manage(project, env, "migrate", "--no-input")
        with admin(dbname) as conn:
            for i in range(n):
                schema = f"t{i:05}"
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                conn.execute(
                    "INSERT INTO tenant_migrate_tenant (tenant_id, name, isolation, database_name, "
                    "schema_name, connection, created_at, updated_at) "
                    "VALUES (%s, %s, 'schema', '', %s, '{}', now(), now())",
                    (schema, schema.upper(), schema),
                )
        manage(project, env, "migratealltenants", f"--jobs={jobs}", "-v", "0")
        manage(project, env, "migratealltenants", f"--jobs={jobs}", "-v", "0", "auth", "0011")
        scans, cpu, began = pg_class_scans(dbname), server_cpu_seconds(), time.monotonic()
        manage(project, env, "migratealltenants", f"--jobs={jobs}", "-v", "0")
        wall = time.monotonic() - began
        server = server_cpu_seconds() - cpu
        scans = pg_class_scans(dbname) - scans
        return {
            "n": n,
            "wall_s": wall,
            "wall_ms_per_tenant": 1000 * wall / n,
            "server_ms_per_tenant": 1000 * server / n,
            "pg_class_scans_per_tenant": scans / n,
        }
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{'N':>6} {'deploy s':>9} {'ms/tenant':>10} {'server ms/tenant':>17} {'pg_class scans/tenant':>22}"
    )
    for n in args.tenants:
        r = run(n, args.jobs)
        print(
            f"{r['n']:>6} {r['wall_s']:>9.1f} {r['wall_ms_per_tenant']:>10.1f} "
            f"{r['server_ms_per_tenant']:>17.1f} {r['pg_class_scans_per_tenant']:>22.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
