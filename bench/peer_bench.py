"""Benchmark: the daily deploy against django-tenants and the SQL floor, in one run.

PostgreSQL schema isolation, the example project with contenttypes and auth inside tenants.
For each N, one database holds N tenant schemas at the last release (t00000 migrated by
`migratetenant`, with rows in products_product; the others restored from its pg_dump),
registered for both tools (tenant_migrate's registry and django-tenants' `customers.Client`,
settings in bench/peer/). Each tool then gets its own copy of that database (CREATE DATABASE ... TEMPLATE),
and the release (bench/peer/release: AddField with a default, AddIndex, a RunPython updating
rows) is deployed, measured:
  - DT standard:  django-tenants `migrate_schemas --tenant` (standard executor),
  - DT 2 proc.:   the same with `--executor=multiprocessing`, 2 processes,
  - ours:         `migratealltenants --jobs J`,
  - floor:        the release's SQL (`sqlmigrate`, plus the RunPython's UPDATE) replayed on J
                  connections, one round trip and transaction per migration and tenant, with
                  its django_migrations row; then the content types and permissions the
                  post_migrate handlers insert (none missing: one statement per table).
Then the no-op (the same command again, nothing pending) for the three tools. Printed: wall
seconds, per tenant, client CPU (the command's process tree), server CPU (the backends serving
that database and their parallel workers, polled from /proc every 20 ms: a backend's last
<20 ms are missed), peak RSS (largest process of the tree, started from a small
process: a child's peak starts at its parent's), ratios. `--noop-tenants` adds
ours' no-op on many tenants holding only a history table (all a no-op reads).

Usage: python bench/peer_bench.py [--tenants 300 1000] [--jobs 2] [--noop-tenants 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deploy_bench import copy_project, postmaster_pid
from psycopg import sql
from run_bench import PG, admin, manage
from status_bench import clone_tenants

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "bench" / "peer"
RELEASE = sorted(p.stem for p in (PEER / "release").glob("0*.py"))
FILL_SQL = "UPDATE products_product SET stock = 100 WHERE stock = 0"  # 0004's RunPython
TICKS = os.sysconf("SC_CLK_TCK")


def recreate(dbname: str, template: str | None = None) -> None:
    drop(dbname)
    with admin() as conn:
        create = "CREATE DATABASE {}" + (" TEMPLATE {}" if template else "")
        conn.execute(sql.SQL(create).format(sql.Identifier(dbname), sql.Identifier(template or "")))


def drop(dbname: str) -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def envs(project: Path, dbname: str) -> dict[str, dict[str, str]]:
    """Environments of the two projects on `dbname`: the example project (ours) and django-tenants'."""
    common = {**os.environ, "TM_PG_NAME": dbname, "TM_PG_HOST": PG["host"], "TM_PG_USER": PG["user"]}
    ours = {
        **common,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "TM_DB_ENGINE": "postgresql",
        "TM_TENANT_APPS": "contenttypes,auth,users,products,orders",
        "TM_SHARED_APPS": "all",
        "TM_TENANT_DIR": str(project.parent / "tenants"),
    }
    dt = {**common, "DJANGO_SETTINGS_MODULE": "dt_settings", "PYTHONPATH": f"{project}{os.pathsep}{PEER}"}
    return {"ours": ours, "dt": dt}


def commands(jobs: int) -> dict[str, tuple[str, str, list[str]]]:
    """Each tool's deploy command: name -> (row label, environment, argv), run in the project folder."""
    dt = [sys.executable, "-m", "django", "migrate_schemas", "--tenant", "-v", "0"]
    ours = [sys.executable, "manage.py", "migratealltenants", f"--jobs={jobs}", "-v", "0"]
    return {
        "ours": ("ours", "ours", ours),
        "dt": ("DT standard", "dt", dt),
        "dt-procs": (f"DT {jobs} proc.", "dt", [*dt, "--executor=multiprocessing"]),
    }


class ServerCpu(threading.Thread):
    """CPU seconds of the PostgreSQL backends serving one database, polled from /proc."""

    def __init__(self, dbname: str) -> None:
        super().__init__(daemon=True)
        self.dbname, self.postmaster = dbname, postmaster_pid()
        self.ticks: dict[str, int] = {}
        self.done = threading.Event()

    def ours(self, pid: str) -> bool:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        # "postgres: user db host(port) state", or "postgres: parallel worker for PID n".
        return f" {self.dbname} " in title or title.split(" for PID ")[-1].strip("\0 ") in self.ticks

    def poll(self) -> None:
        pm = self.postmaster
        for pid in Path(f"/proc/{pm}/task/{pm}/children").read_text().split():
            if pid in self.ticks or self.ours(pid):
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                self.ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.poll()

    def stop(self) -> float:
        self.done.set()
        self.join()
        self.poll()
        return sum(self.ticks.values()) / TICKS


# Runs the measured command and writes its tree's CPU and peak RSS. A child's peak RSS starts at
# its parent's at exec, so the command is started from this small process, not from the bench.
MEASURER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "open(sys.argv[1], 'w').write(f'{u.ru_utime + u.ru_stime} {u.ru_maxrss}'); sys.exit(code)"
)


def measure(argv: list[str], cwd: Path, env: dict[str, str], dbname: str) -> dict[str, float]:
    """Wall, client CPU and peak RSS of `argv`'s process tree, server CPU for `dbname`."""
    server = ServerCpu(dbname)
    server.start()
    with tempfile.NamedTemporaryFile("r") as usage:
        began = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", MEASURER, usage.name, *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            check=False,
        )
        wall = time.perf_counter() - began
        if proc.returncode:
            raise SystemExit(f"{' '.join(argv)} failed:\n{(proc.stdout + proc.stderr)[-3000:].decode()}")
        client, rss = usage.read().split()
    return {"wall": wall, "client": float(client), "server": server.stop(), "rss": int(rss) / 1024}


def build_base(project: Path, dbname: str, n: int) -> None:
    """N tenant schemas at the last release, registered for both tools (not measured)."""
    env = envs(project, dbname)
    recreate(dbname)
    manage(project, env["ours"], "migrate", "--no-input", "-v", "0")
    subprocess.run(
        [sys.executable, "-m", "django", "migrate_schemas", "--shared", "-v", "0"],
        cwd=project,
        env=env["dt"],
        check=True,
        capture_output=True,
    )
    schemas = [f"t{i:05}" for i in range(n)]
    with admin(dbname) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO tenant_migrate_tenant (tenant_id, name, isolation, database_name, "
            "schema_name, connection, created_at, updated_at) "
            "VALUES (%s, %s, 'schema', '', %s, '{}', now(), now())",
            [(s, s.upper(), s) for s in schemas],
        )
        register = "INSERT INTO customers_client (schema_name, name) VALUES (%s, %s)"
        cur.executemany(register, [(s, s) for s in schemas])
        cur.execute("CREATE SCHEMA t00000")
    manage(project, env["ours"], "migratetenant", "--tenant-id=t00000", "-v", "0")
    with admin(dbname) as conn:
        conn.execute(
            "INSERT INTO t00000.products_product (sku, name, price) "
            "SELECT 'sku' || i, 'product ' || i, i FROM generate_series(1, 20) i"
        )
    # The others: t00000 dumped once and restored under each name (pg_dump's text names the
    # schema in every statement), in one psql session: linear in N, where copying from the
    # catalog (tenant_migrate.schemaclone) reads a catalog that grows with every copy.
    connect = ["-h", PG["host"], "-U", PG["user"], "-d", dbname]
    dump = subprocess.run(["pg_dump", "-n", "t00000", *connect], capture_output=True, text=True, check=True)

    def restore(part: list[str]) -> None:
        script = "".join(re.sub(r"\bt00000\b", schema, dump.stdout) for schema in part)
        psql = ["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", *connect]
        subprocess.run(psql, input=script, text=True, check=True, stdout=subprocess.DEVNULL)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(restore, [schemas[1::2], schemas[2::2]]))


def floor_batches(project: Path, dbname: str) -> list[str]:
    """Per tenant, in order: one batch per release migration, then post_migrate's inserts.
    `{schema}` marks where the tenant's schema goes."""
    batches = []
    for name in RELEASE:
        out = manage(project, envs(project, dbname)["ours"], "sqlmigrate", "products", name).stdout
        statements = [s for s in out.splitlines() if s.strip() and not s.startswith("--")]
        statements = [s for s in statements if s not in ("BEGIN;", "COMMIT;")] or [FILL_SQL + ";"]
        record = f"INSERT INTO django_migrations (app, name, applied) VALUES ('products', '{name}', now());"
        batches.append("\n".join([*statements, record]))
    with admin(dbname) as conn:
        types = conn.execute("SELECT app_label, model FROM t00000.django_content_type ORDER BY id").fetchall()
        perms = conn.execute(
            "SELECT c.app_label, c.model, p.name, p.codename FROM t00000.auth_permission p "
            "JOIN t00000.django_content_type c ON c.id = p.content_type_id ORDER BY p.id"
        ).fetchall()

        def values(rows: list[tuple[str, ...]]) -> str:
            literal = [", ".join(sql.Literal(x).as_string(conn) for x in r) for r in rows]
            return ", ".join(f"({x})" for x in literal)

        batches.append(
            "INSERT INTO django_content_type (app_label, model) SELECT v.* FROM "
            f"(VALUES {values(types)}) v(app_label, model) WHERE NOT EXISTS (SELECT 1 FROM "
            "django_content_type c WHERE c.app_label = v.app_label AND c.model = v.model);\n"
            "INSERT INTO auth_permission (name, content_type_id, codename) SELECT v.name, c.id, "
            f"v.codename FROM (VALUES {values(perms)}) v(app_label, model, name, codename) JOIN "
            "django_content_type c ON c.app_label = v.app_label AND c.model = v.model WHERE NOT EXISTS "
            "(SELECT 1 FROM auth_permission p WHERE p.content_type_id = c.id AND p.codename = v.codename);"
        )
    return batches


def floor_worker(dbname: str, jobs: int, batches_file: str) -> None:
    """The floor's client: `jobs` connections, tenants shared out in turn."""
    batches = json.loads(Path(batches_file).read_text())
    with admin(dbname) as conn:
        schemas = [r[0] for r in conn.execute("SELECT schema_name FROM customers_client ORDER BY 1")]

    def replay(part: list[str]) -> None:
        with admin(dbname) as conn:
            for schema in part:
                path = sql.Identifier(schema).as_string(conn)
                for batch in batches:
                    conn.execute(f"BEGIN; SET LOCAL search_path TO {path};\n{batch}\nCOMMIT;".encode())

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(replay, [schemas[k::jobs] for k in range(jobs)]))


def check_deployed(dbname: str, n: int) -> None:
    """Every tenant has the release: its index, its history row, every product's stock filled."""
    with admin(dbname) as conn:
        parts = [
            sql.SQL(
                "SELECT (SELECT count(*) FROM {s}.django_migrations WHERE name = %(last)s), "
                "(SELECT count(*) FILTER (WHERE stock <> 100) FROM {s}.products_product)"
            ).format(s=sql.Identifier(f"t{i:05}"))
            for i in range(n)
        ]
        got = []
        # In parts (autocommit: each its own transaction): one query over thousands of
        # schemas needs more locks than the server's lock table holds.
        for start in range(0, n, 500):
            query = sql.SQL(" UNION ALL ").join(parts[start : start + 500])
            got += conn.execute(query, {"last": RELEASE[-1]}).fetchall()
        index = "SELECT count(*) FROM pg_class WHERE relname = 'product_name_idx'"
        indexes = conn.execute(index).fetchone()[0]
    if indexes != n or any(r != (1, 0) for r in got):
        raise SystemExit(f"{dbname}: the release is not deployed to every tenant")


def run(n: int, jobs: int, tools: list[str], header: str) -> None:
    """Build the base, then measure and print each tool's rows (deploy, no-op) as they come."""
    project = copy_project("tm_peer_")
    base = f"tm_peer_{n}_base"
    ours: dict[str, dict[str, float]] = {}
    try:
        build_base(project, base, n)
        for name in RELEASE:  # the release arrives after the last one was deployed
            shutil.copy(PEER / "release" / f"{name}.py", project / "products" / "migrations")
        print(f"\nN = {n} tenants, --jobs {jobs}, release: {', '.join(RELEASE)}\n{header}", flush=True)
        for key in tools:  # in the order given: ours first, for the ratios
            if key == "floor":
                dbname = f"tm_peer_{n}_floor"
                recreate(dbname, template=base)
                batches = project.parent / "floor.json"
                batches.write_text(json.dumps(floor_batches(project, base)))
                argv = [sys.executable, __file__, "--floor-worker", dbname, str(jobs), str(batches)]
                floor = measure(argv, ROOT, dict(os.environ), dbname)
                check_deployed(dbname, n)
                drop(dbname)
                print(row("floor", floor, n, ours.get("deploy")), flush=True)
                continue
            label, side, argv = commands(jobs)[key]
            dbname = f"tm_peer_{n}_{side}"
            recreate(dbname, template=base)
            env = envs(project, dbname)[side]
            deploy = measure(argv, project, env, dbname)
            check_deployed(dbname, n)
            noop = measure(argv, project, env, dbname)
            drop(dbname)
            ours = ours or {"deploy": deploy, "no-op": noop}
            print(row(label, deploy, n, ours.get("deploy")), flush=True)
            print(row(f"{label} no-op", noop, n, ours.get("no-op")), flush=True)
    finally:
        drop(base)
        shutil.rmtree(project.parent, ignore_errors=True)


def noop_many(n: int, jobs: int) -> dict[str, float]:
    """Ours with nothing pending on N tenants holding their history only (all a no-op reads)."""
    project = copy_project("tm_peer_")
    work = project.parent
    dbname = f"tm_peer_noop_{n}"
    env = envs(project, dbname)["ours"]
    try:
        recreate(dbname)
        manage(project, env, "migrate", "--no-input", "-v", "0")
        manage(project, env, "createtenant", "--tenant-id=t0", "--isolation=schema", "--no-input", "-v", "0")
        manage(project, env, "migratetenant", "--tenant-id=t0", "-v", "0")
        for first in range(1, n, 1000):  # one transaction each: a lock per new table until commit
            clone_tenants(dbname, "schema", [f"t{i}" for i in range(first, min(first + 1000, n))])
        return measure(commands(jobs)["ours"][2], project, env, dbname)
    finally:
        drop(dbname)
        shutil.rmtree(work, ignore_errors=True)


def row(label: str, r: dict[str, float], n: int, ours: dict[str, float] | None = None) -> str:
    ratio = f"{ours['wall'] / r['wall']:>8.2f}" if ours and ours is not r else ""
    return (
        f"{label:<22}{r['wall']:>8.2f}{1000 * r['wall'] / n:>9.1f}{r['client']:>9.2f}"
        f"{r['server']:>9.2f}{1000 * r['server'] / n:>10.1f}{r['rss']:>8.1f} {ratio}"
    )


def main() -> None:
    if sys.argv[1:2] == ["--floor-worker"]:
        return floor_worker(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, nargs="*", default=[300])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--noop-tenants", type=int, nargs="*", default=[])
    tools = ["ours", "dt", "dt-procs", "floor"]
    parser.add_argument("--tools", nargs="+", choices=tools, default=tools, help="rows to measure")
    args = parser.parse_args()
    header = (
        f"{'':<22}{'wall s':>8}{'ms/ten.':>9}{'client s':>9}{'server s':>9}{'srv ms/t.':>10}"
        f"{'RSS MB':>8} {'ours / it':>9}"
    )
    for n in args.tenants:
        run(n, args.jobs, args.tools, header)
    for n in args.noop_tenants:
        print(f"\nno-op, N = {n} tenants (history only), --jobs {args.jobs}\n{header}")
        print(row("ours no-op", noop_many(n, args.jobs), n), flush=True)


if __name__ == "__main__":
    main()
