"""Benchmark: showtenantmigrations and migratealltenants --check on N PostgreSQL tenants.

One tenant is migrated for real; the others get a schema (or, with --isolation database, a
database made with CREATE DATABASE ... TEMPLATE) holding a copy of its history, so every tenant
has the project's full history to read. Measured, wall time of the subprocess:
  - summary: `showtenantmigrations --summary` (every history read, plan per distinct history),
  - list:    `showtenantmigrations` (Django's list view for every tenant),
  - check:   `migratealltenants --check`,
  - django:  `showmigrations --database=<tenant>` for one tenant (Django's own, one process per
             tenant as a deploy script would loop over tenants), times N.
Usage: python bench/status_bench.py [--project example|PATH] [--settings MODULE] [--tenants 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PG = dict(host="127.0.0.1", port=5432, user="postgres")


def admin(dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(dbname=dbname, autocommit=True, **PG)


def manage(project: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    began = time.perf_counter()
    command = [sys.executable, "manage.py", *args]
    proc = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if proc.returncode not in (0, 1):
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def clone_tenants(dbname: str, isolation: str, ids: list[str]) -> None:
    """Register ``ids`` and give each a copy of t0's migrated history (only the history: that
    is all these commands read)."""
    with admin(dbname) as conn:
        with conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO tenant_migrate_tenant (tenant_id, name, isolation, database_name, "
                    "schema_name, connection, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, '{}', now(), now())",
                    [
                        (
                            t,
                            t.upper(),
                            isolation,
                            f"{dbname}_{t}" if isolation == "database" else "",
                            f"public_{t}" if isolation == "schema" else "",
                        )
                        for t in ids
                    ],
                )
        if isolation == "schema":
            with conn.transaction():
                for t in ids:
                    schema = sql.Identifier(f"public_{t}")
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
                    copy = "CREATE TABLE {}.django_migrations AS SELECT * FROM public_t0.django_migrations"
                    conn.execute(sql.SQL(copy).format(schema))
    if isolation == "database":
        with admin() as conn:
            for t in ids:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(f"{dbname}_{t}"), sql.Identifier(f"{dbname}_t0")
                    )
                )


def run(project: Path, settings: str, n: int, isolation: str, jobs: int) -> dict[str, float]:
    dbname = f"bst_{os.getpid()}"
    tenant_dir = tempfile.mkdtemp(prefix="tm-status-bench-")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "TM_DB_ENGINE": "postgresql",
        "TM_PG_NAME": dbname,
        "TM_PG_HOST": PG["host"],
        "TM_PG_USER": PG["user"],
        "TM_TENANT_DIR": tenant_dir,
        "TM_MASTER_SQLITE": f"{tenant_dir}/master.sqlite3",
        "TM_DATABASE_NAME": dbname + "_{tenant_id}",
    }
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        manage(project, env, "migrate", "--no-input", "-v", "0")
        create = ("createtenant", "--tenant-id=t0", f"--isolation={isolation}", "--no-input", "-v", "0")
        manage(project, env, *create)
        manage(project, env, "migratetenant", "--tenant-id=t0", "-v", "0")
        if isolation == "database":
            # A template database must have no other session.
            with admin() as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    [f"{dbname}_t0"],
                )
        clone_tenants(dbname, isolation, [f"t{i}" for i in range(1, n)])
        results = {}
        for label, args in (
            ("summary", ("showtenantmigrations", "--summary", f"--jobs={jobs}")),
            ("list", ("showtenantmigrations", f"--jobs={jobs}")),
            ("check", ("migratealltenants", "--check", f"--jobs={jobs}")),
        ):
            results[label], _ = manage(project, env, *args)
        results["django_one"], _ = manage(project, env, "showmigrations", "--database=t1")
        return results
    finally:
        with admin() as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [dbname]
                )
            ]
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="example")
    parser.add_argument("--settings", default="example.settings")
    parser.add_argument("--tenants", type=int, nargs="+", default=[1000])
    parser.add_argument("--isolation", choices=["schema", "database"], default="schema")
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    project = ROOT / "django_app" if args.project == "example" else Path(args.project).resolve()
    print(f"{'N':>6}  {'summary s':>9}  {'list s':>7}  {'check s':>7}  {'django s (proj.)':>16}")
    for n in args.tenants:
        r = run(project, args.settings, n, args.isolation, args.jobs)
        print(
            f"{n:>6}  {r['summary']:>9.2f}  {r['list']:>7.2f}  {r['check']:>7.2f}  "
            f"{r['django_one'] * n:>16.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
