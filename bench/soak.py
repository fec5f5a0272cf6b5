"""Soak: migrate N tenants (PostgreSQL schema isolation) while an application keeps querying them.

Each tenant starts at users 0001; the run applies users 0002 (an ALTER TABLE on users_user,
which needs an ACCESS EXCLUSIVE lock), products 0001 and orders 0001. Meanwhile a load
generator (--clients threads) reads random tenants' users_user, and some of its transactions
hold the table for a while (--hold seconds, as slow requests do). Two runs are compared:

- plain: migratealltenants as is; an ALTER queued behind a slow transaction makes every later
  read of that table wait in the lock queue behind it;
- zero-downtime: --lock-timeout (default 100ms) --retries 20: the ALTER gives up instead of
  queueing, is rolled back and retried with back-off.

It prints, per run: wall time, application queries done and failed, the longest stall and the
99th percentile latency of the application's reads. Not a test: nothing is asserted.

    python bench/soak.py --tenants 200
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
import uuid

import psycopg
from run_bench import PG, ROOT, admin, manage, register_tenants


def load(dbname: str, schemas: list[str], stop: threading.Event, hold: float, out: dict, seed: int) -> None:
    rng = random.Random(seed)
    latencies, failures = out.setdefault("latencies", []), out.setdefault("failures", [])
    with psycopg.connect(dbname=dbname, autocommit=True, **PG) as conn:
        conn.execute("SET statement_timeout = '30s'")
        while not stop.is_set():
            schema = rng.choice(schemas)
            table = f'"{schema}"."users_user"'
            began = time.monotonic()
            try:
                if rng.random() < 0.05:
                    # A slow request: its transaction keeps the table locked (ACCESS SHARE).
                    with conn.transaction():
                        conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                        time.sleep(hold)
                else:
                    conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                    latencies.append(time.monotonic() - began)
            except Exception as exc:  # reported, not raised: the run goes on
                failures.append(type(exc).__name__)
                latencies.append(time.monotonic() - began)


def one_run(label: str, n: int, clients: int, hold: float, jobs: int, extra: list[str]) -> dict:
    dbname = f"tm_soak_{uuid.uuid4().hex[:8]}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    project = ROOT / "django_app"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "TM_DB_ENGINE": "postgresql",
        "TM_PG_NAME": dbname,
        "TM_TENANT_DIR": "/tmp/tm-soak-tenants",
    }
    try:
        manage(project, env, "migrate", "--no-input", "-v", "0")
        ids = [f"t{i:04d}" for i in range(n)]
        register_tenants(dbname, ids)
        manage(project, env, "migratealltenants", "users", "0001", "--jobs", str(jobs), "-v", "0")
        schemas = [f"public_{t}" for t in ids]
        stop = threading.Event()
        results: list[dict] = [{} for _ in range(clients)]
        threads = [
            threading.Thread(target=load, args=(dbname, schemas, stop, hold, results[i], i))
            for i in range(clients)
        ]
        for t in threads:
            t.start()
        time.sleep(1)
        began = time.monotonic()
        manage(project, env, "migratealltenants", "--jobs", str(jobs), "-v", "0", *extra)
        seconds = time.monotonic() - began
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        latencies = sorted(x for r in results for x in r.get("latencies", []))
        failures = [x for r in results for x in r.get("failures", [])]
        return {
            "run": label,
            "seconds": round(seconds, 1),
            "queries": len(latencies),
            "failed": len(failures),
            "longest_stall_ms": round(1000 * max(latencies), 1) if latencies else 0,
            "p99_ms": round(1000 * statistics.quantiles(latencies, n=100)[98], 1)
            if len(latencies) > 100
            else 0,
        }
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4, help="load generator threads")
    parser.add_argument("--hold", type=float, default=1.0, help="seconds a slow request holds its table")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--lock-timeout", default="100ms")
    args = parser.parse_args()
    runs = [
        one_run("plain", args.tenants, args.clients, args.hold, args.jobs, []),
        one_run(
            f"--lock-timeout={args.lock_timeout} --retries=20",
            args.tenants,
            args.clients,
            args.hold,
            args.jobs,
            [f"--lock-timeout={args.lock_timeout}", "--retries=20"],
        ),
    ]
    print(f"soak: {args.tenants} tenants, {args.clients} clients, slow requests hold {args.hold}s")
    print(f"{'run':38} {'s':>7} {'queries':>8} {'failed':>7} {'stall ms':>9} {'p99 ms':>7}")
    for r in runs:
        print(
            f"{r['run']:38} {r['seconds']:>7} {r['queries']:>8} {r['failed']:>7} "
            f"{r['longest_stall_ms']:>9} {r['p99_ms']:>7}"
        )


if __name__ == "__main__":
    main()
