"""Benchmark: migratealltenants against Django's per-tenant migrate and a psql replay floor.

PostgreSQL schema isolation. For each N: N tenants are registered with empty schemas, then
  - ours:   `manage.py migratealltenants --jobs J` (a subprocess; wall time and peak RSS),
  - no-op:  the same command again, with everything applied,
  - django: Django's own `migrate` per tenant, in one process, as django-tenants' standard
            executor does it (search path switched per tenant). Measured on a sample of
            tenants (--django-sample) and multiplied by N, because the real thing takes hours,
  - floor:  the SQL Django ran for one tenant, captured once, replayed with psql on N fresh
            schemas (one transaction per migration, J psql processes in parallel).
Usage: python bench/run_bench.py [--project example|PATH] [--tenants 100 1000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PG = dict(host="127.0.0.1", port=5432, user="postgres")


def admin(dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(dbname=dbname, autocommit=True, **PG)


def manage(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def child_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


DJANGO_WAY = textwrap.dedent(
    """
    # Django's own migrate per tenant, in one process: django-tenants' standard executor.
    import json, sys, time, django
    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor
    schemas = json.loads(sys.argv[1])
    base = dict(connections.settings["default"])
    captured, per_migration, current = [], {}, [None]

    def capture(execute, sql, params, many, context):
        # Statements outside migrations (post_migrate: content types, permissions) are kept
        # too, so the floor does the same work; they replay in one transaction at the end.
        bucket = current[0] or "~signals"
        cursor = context["cursor"]
        if many:
            statements = [cursor.mogrify(sql, p) for p in params]
        else:
            statements = [cursor.mogrify(sql, params) if params else sql]
        # The history table is created and written by the replay script itself.
        statements = [s for s in statements if "django_migrations" not in s]
        per_migration.setdefault(bucket, []).extend(statements)
        return execute(sql, params, many, context)

    times = []
    for i, schema in enumerate(schemas):
        # As django-tenants does it: the default connection itself is switched to the tenant
        # (data migrations write through default managers, which use `default`).
        alias = "default"
        connections[alias].close()
        connections.settings[alias] = dict(base, OPTIONS={"options": f"-c search_path={schema}"})
        del connections[alias]
        began = time.perf_counter()
        if i == 0:
            conn = connections[alias]
            orig = MigrationExecutor.apply_migration
            def apply_migration(self, state, migration, *a, **k):
                current[0] = f"{migration.app_label}.{migration.name}"
                try:
                    return orig(self, state, migration, *a, **k)
                finally:
                    current[0] = None
            MigrationExecutor.apply_migration = apply_migration
            with conn.execute_wrapper(capture):
                call_command("migrate", database=alias, verbosity=0, interactive=False)
            MigrationExecutor.apply_migration = orig
        else:
            call_command("migrate", database=alias, verbosity=0, interactive=False)
        times.append(time.perf_counter() - began)
        connections[alias].close()
    print(json.dumps({"times": times, "sql": per_migration}))
    """
)


def create_schemas(dbname: str, names: list[str]) -> None:
    with admin(dbname) as conn:
        with conn.transaction():
            for name in names:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))


def register_tenants(dbname: str, ids: list[str]) -> None:
    with admin(dbname) as conn:
        with conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO tenant_migrate_tenant (tenant_id, name, isolation, database_name, "
                    "schema_name, connection, created_at, updated_at) "
                    "VALUES (%s, %s, 'schema', '', %s, '{}', now(), now())",
                    [(t, t.upper(), f"public_{t}") for t in ids],
                )
    create_schemas(dbname, [f"public_{t}" for t in ids])


def psql_floor(dbname: str, per_migration: dict[str, list[str]], schemas: list[str], jobs: int) -> float:
    """Replay the captured SQL with psql: one transaction per migration, `jobs` processes."""
    scripts = []
    for part in range(jobs):
        lines = []
        for schema in schemas[part::jobs]:
            lines.append(f'SET search_path TO "{schema}";')
            ordered = sorted(per_migration.items(), key=lambda item: item[0] == "~signals")
            for key, statements in ordered:
                lines.append("BEGIN;")
                lines.extend(s if s.rstrip().endswith(";") else s + ";" for s in statements)
                if key != "~signals":
                    app, name = key.split(".", 1)
                    lines.append(
                        "INSERT INTO django_migrations (app, name, applied) "
                        f"VALUES ('{app}', '{name}', now());"
                    )
                lines.append("COMMIT;")
        handle = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
        handle.write("\n".join(lines))
        handle.close()
        scripts.append(handle.name)
    recorder = (
        "CREATE TABLE django_migrations (id bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS "
        "IDENTITY, app varchar(255) NOT NULL, name varchar(255) NOT NULL, applied timestamp with "
        "time zone NOT NULL);"
    )
    with admin(dbname) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            conn.execute(recorder)
    began = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                "psql",
                "-q",
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                PG["host"],
                "-U",
                PG["user"],
                "-d",
                dbname,
                "-f",
                s,
            ],
            stdout=subprocess.DEVNULL,
        )
        for s in scripts
    ]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - began
    if any(codes):
        raise SystemExit(f"psql replay failed: {codes}")
    for s in scripts:
        os.unlink(s)
    return elapsed


def run(project: Path, settings_env: dict[str, str], n: int, jobs: int, sample: int) -> dict:
    dbname = f"bench_{os.getpid()}_{n}"
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    env = {
        **os.environ,
        **settings_env,
        "TM_DB_ENGINE": "postgresql",
        "TM_PG_NAME": dbname,
        "TM_PG_HOST": PG["host"],
        "TM_PG_USER": PG["user"],
        "TM_DEFAULT_ISOLATION": "schema",
    }
    try:
        manage(project, env, "migrate", "--no-input", "-v", "0")
        ids = [f"t{i:05d}" for i in range(n)]
        register_tenants(dbname, ids)
        rss_before = child_peak_rss_mb()
        began = time.perf_counter()
        proc = manage(project, env, "migratealltenants", f"--jobs={jobs}", "--json")
        ours = time.perf_counter() - began
        rss = child_peak_rss_mb()
        summary = json.loads(proc.stdout)["summary"]
        began = time.perf_counter()
        manage(project, env, "migratealltenants", f"--jobs={jobs}", "--json")
        noop = time.perf_counter() - began

        sample_schemas = [f"djangoway_{i}" for i in range(sample)]
        create_schemas(dbname, sample_schemas)
        out = subprocess.run(
            [sys.executable, "-c", DJANGO_WAY, json.dumps(sample_schemas)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        django = json.loads(out.stdout.strip().splitlines()[-1])
        times = django["times"]
        # The first tenant also captured SQL; the others are the steady per-tenant cost.
        steady = times[1:] or times
        django_per_tenant = sum(steady) / len(steady)

        floor_schemas = [f"floor_{i}" for i in range(n)]
        create_schemas(dbname, floor_schemas)
        floor = psql_floor(dbname, django["sql"], floor_schemas, jobs)
        return {
            "tenants": n,
            "migrations_per_tenant": len([k for k in django["sql"] if k != "~signals"]),
            "ours_s": round(ours, 2),
            "noop_s": round(noop, 2),
            "ours_peak_rss_mb": round(max(rss, rss_before), 1),
            "django_per_tenant_s": round(django_per_tenant, 3),
            "django_projected_s": round(django_per_tenant * n, 1),
            "psql_floor_s": round(floor, 2),
            "speedup_vs_django": round(django_per_tenant * n / ours, 1),
            "ours_over_floor": round(ours / floor, 2),
            "replayed": summary["replayed"],
            "compiled": summary["compiled"],
            "via_django": summary["via_django"],
            "fingerprints": summary.get("fingerprints"),
        }
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", default="example", help="'example' or a project folder with manage.py")
    parser.add_argument("--tenants", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--django-sample", type=int, default=5)
    parser.add_argument("--settings", default="example.settings", help="DJANGO_SETTINGS_MODULE")
    parser.add_argument("--tenant-apps", default=None, help="TM_TENANT_APPS for the example project")
    args = parser.parse_args()
    project = ROOT / "django_app" if args.project == "example" else Path(args.project).resolve()
    settings_env = {"DJANGO_SETTINGS_MODULE": args.settings}
    if args.tenant_apps:
        settings_env["TM_TENANT_APPS"] = args.tenant_apps
    print(f"project: {project}  jobs: {args.jobs}  django sample: {args.django_sample}")
    header = (
        f"{'N':>6} {'migr':>5} {'ours s':>8} {'no-op s':>8} {'django s (proj.)':>17} {'psql floor s':>13} "
        f"{'x django':>9} {'/ floor':>8} {'peak MB':>8}"
    )
    print(header)
    for n in args.tenants:
        r = run(project, settings_env, n, args.jobs, args.django_sample)
        print(
            f"{r['tenants']:>6} {r['migrations_per_tenant']:>5} {r['ours_s']:>8} {r['noop_s']:>8} "
            f"{r['django_projected_s']:>17} {r['psql_floor_s']:>13} {r['speedup_vs_django']:>9} "
            f"{r['ours_over_floor']:>8} {r['ours_peak_rss_mb']:>8}"
        )
        print("       " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
