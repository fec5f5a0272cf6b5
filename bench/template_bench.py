"""Benchmark: createtenant --migrate from zero against createtenant --migrate from the template.

Database isolation on PostgreSQL (or SQLite with --sqlite). Both are timed inside one Django
process (``call_command``), so interpreter and Django start-up are left out of both sides: from
zero, every migration runs (compiled by Django, executed by the Rust core); from the template,
the database is copied (``CREATE DATABASE ... TEMPLATE`` / an SQLite backup) and only the
tenant's own pre/post_migrate work runs. The first template tenant also builds the template
(reported separately, not counted).
Usage: python bench/template_bench.py [--project PATH --settings MODULE] [--repeat 3] [--sqlite]
       [--isolation database|schema]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PG = dict(host="127.0.0.1", port=5432, user="postgres")

TIMED = textwrap.dedent(
    """
    import io, json, sys, time, django
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    repeat, isolation = int(sys.argv[1]), sys.argv[2]
    copies = []

    def create(tenant_id):
        out = io.StringIO()
        began = time.perf_counter()
        call_command("createtenant", tenant_id=tenant_id, isolation=isolation, migrate=True,
                     interactive=False, verbosity=1, stdout=out)
        seconds = time.perf_counter() - began
        copies.append("Copied from the tenant template" in out.getvalue())
        return seconds

    settings.TENANT_MIGRATE["TEMPLATE"] = False
    zero = [create(f"zero{i}") for i in range(repeat)]
    settings.TENANT_MIGRATE["TEMPLATE"] = True
    first = create("first")
    template = [create(f"copy{i}") for i in range(repeat)]
    print(json.dumps({"zero": zero, "first": first, "template": template, "copies": copies}))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default=str(ROOT / "tests" / "projects" / "realworld"))
    parser.add_argument("--settings", default="realworld_site.settings")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--isolation", choices=["database", "schema"], default="database")
    args = parser.parse_args()
    project = Path(args.project).resolve()
    dbname = f"btpl_{os.getpid()}"
    scratch = tempfile.mkdtemp(prefix="tm-template-bench-")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": args.settings,
        "TM_TENANT_DIR": f"{scratch}/tenants",
        "TM_MASTER_SQLITE": f"{scratch}/master.sqlite3",
        "TM_DATABASE_NAME": dbname + "_{tenant_id}",
    }
    if not args.sqlite:
        env.update({"TM_DB_ENGINE": "postgresql", "TM_PG_NAME": dbname, "TM_PG_HOST": PG["host"]})
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        for command in (["migrate", "--no-input", "-v", "0"],):
            subprocess.run([sys.executable, "manage.py", *command], cwd=project, env=env, check=True)
        proc = subprocess.run(
            [sys.executable, "-c", TIMED, str(args.repeat), args.isolation],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        zero, template = statistics.median(r["zero"]), statistics.median(r["template"])
        print(f"from zero (median of {args.repeat}):      {zero:8.3f} s   {r['zero']}")
        print(f"from the template (median of {args.repeat}): {template:8.3f} s   {r['template']}")
        print(f"first template tenant (builds it): {r['first']:8.3f} s")
        print(f"speed-up: {zero / template:.1f}x")
        copied = sum(r["copies"])
        print(f"tenants copied from the template: {copied} of {len(r['copies'])}")
    finally:
        if not args.sqlite:
            with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
                names = [
                    row[0]
                    for row in conn.execute(
                        "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [dbname]
                    )
                ]
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                for name in names:
                    conn.execute(drop.format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
