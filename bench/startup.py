"""Start-up cost of the package with 10,000 registered tenants: `manage.py check` and
`manage.py showmigrations --database=<tenant>` with the package, against `manage.py check` on
the same project without it. Median of --runs runs each. SQLite master in a temporary folder.

Usage: python bench/startup.py [--tenants 10000] [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "django_app"


def timed(args: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=EXAMPLE, env=env, check=True, capture_output=True
        )
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TM_MASTER_SQLITE": f"{tmp}/master.sqlite3", "TM_TENANT_DIR": f"{tmp}/t"}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=EXAMPLE, env=env, check=True)
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "createtenant",
                "--tenant-id=t00000",
                "--no-input",
                "-v0",
                "--migrate",
            ],
            cwd=EXAMPLE,
            env=env,
            check=True,
            capture_output=True,
        )
        with sqlite3.connect(f"{tmp}/master.sqlite3") as conn:
            conn.executemany(
                "INSERT INTO tenant_migrate_tenant (tenant_id, name, isolation, database_name, "
                "schema_name, connection, created_at, updated_at) VALUES (?, ?, 'database', ?, '', "
                "'{}', datetime('now'), datetime('now'))",
                [(f"t{i:05d}", f"T{i}", f"t{i:05d}_db") for i in range(1, args.tenants)],
            )
        without = timed(["check"], {**env, "TM_WITHOUT_PACKAGE": "1"}, args.runs)
        with_package = timed(["check"], env, args.runs)
        alias = timed(["showmigrations", "--database=t00000"], env, args.runs)
        plain = timed(["showmigrations"], env, args.runs)
    print(f"tenants registered: {args.tenants}, median of {args.runs} runs")
    print(f"manage.py check without the package:        {without * 1000:7.0f} ms")
    print(
        f"manage.py check with the package:           {with_package * 1000:7.0f} ms "
        f"({(with_package - without) * 1000:+.0f} ms)"
    )
    print(f"manage.py showmigrations:                    {plain * 1000:7.0f} ms")
    print(
        f"manage.py showmigrations --database=t00000:  {alias * 1000:7.0f} ms "
        f"({(alias - plain) * 1000:+.0f} ms)"
    )


if __name__ == "__main__":
    main()
