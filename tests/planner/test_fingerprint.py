"""The catalog fingerprint that decides whether compiled SQL may be replayed on a tenant.

For a schema tenant the core finds the schema's relations through ``pg_depend`` (served by an
index: the cost stays flat however many tenants share the database); for a database of its
own it filters ``pg_class`` by namespace. Both must give the same digest for the same
structure and history, or replays would be refused (or, worse, allowed) depending on the
isolation. Checked here on the same tables migrated both ways, then with every kind of
relation PostgreSQL has added by hand to both (views, a materialized view, a partitioned table
and its index, a sequence, a composite type, an expression index), and with drift on one side.
Also: the recorder's existence check and the fingerprint read no catalog in full (counted by
PostgreSQL's own statistics), so a tenant's cost does not grow with the number of tenants.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers.pg import connect
from helpers.project import make_tenant, pg_project
from psycopg import sql

EXTRA_OBJECTS = [
    "CREATE VIEW v_orders AS SELECT id FROM orders_order",
    "CREATE MATERIALIZED VIEW mv_one AS SELECT 1 AS x",
    "CREATE TABLE part (id int, k int) PARTITION BY RANGE (k)",
    "CREATE TABLE part_1 PARTITION OF part FOR VALUES FROM (0) TO (10)",
    "CREATE INDEX part_k ON part (k)",
    "CREATE SEQUENCE seq_x START 7",
    "CREATE TYPE comp AS (a int, b text)",
    "CREATE TABLE plain (id int, note text)",
    "CREATE INDEX users_lower_email ON users_user (lower(email))",
]


def params(dbname: str, schema: str | None) -> str:
    return json.dumps(
        {
            "vendor": "postgresql",
            "host": "127.0.0.1",
            "port": 5432,
            "user": "postgres",
            "dbname": dbname,
            "schema": schema,
        }
    )


def fingerprint(dbname: str, schema: str | None) -> str:
    from tenant_migrate import _core

    database = _core.TenantDatabase(params(dbname, schema))
    try:
        return database.fingerprint()
    finally:
        database.close()


def run_in(dbname: str, schema: str, statements: list[str]) -> None:
    with connect(dbname) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        for statement in statements:
            conn.execute(statement)


def test_postgres_schema_and_database_tenants_fingerprint_alike(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "database")
    make_tenant(project, "globex", "schema")
    make_tenant(project, "initech", "schema")
    for tenant in ("acme", "globex", "initech"):
        project.manage("migratetenant", f"--tenant-id={tenant}")
    acme = (f"{pg_prefix}acme_db", None)
    globex = (project.master, "public_globex")  # type: ignore[attr-defined]
    initech = (project.master, "public_initech")  # type: ignore[attr-defined]
    assert fingerprint(*acme) == fingerprint(*globex) == fingerprint(*initech)

    run_in(acme[0], "public", EXTRA_OBJECTS)
    run_in(globex[0], "public_globex", EXTRA_OBJECTS)
    assert fingerprint(*acme) == fingerprint(*globex)
    # The extra objects are seen: the third tenant, without them, differs.
    assert fingerprint(*globex) != fingerprint(*initech)

    # Drift in one schema only (a column default, an index, a composite type's attribute).
    for drift in (
        ["ALTER TABLE plain ALTER COLUMN note SET DEFAULT 'x'"],
        ["CREATE INDEX drift_idx ON products_product (id)"],
        ["ALTER TYPE comp ADD ATTRIBUTE c int"],
    ):
        before = fingerprint(*globex)
        run_in(globex[0], "public_globex", drift)
        assert fingerprint(*globex) != before, drift


def test_postgres_a_schema_tenant_reads_no_catalog_in_full(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "schema")
    project.manage("migratetenant", "--tenant-id=acme")
    master = project.master  # type: ignore[attr-defined]

    def seq_scans() -> int:
        time.sleep(1.2)  # statistics are flushed by each backend about once a second
        with connect(master) as conn:
            row = conn.execute(
                "SELECT seq_scan FROM pg_stat_sys_tables WHERE relname = 'pg_class'"
            ).fetchone()
        assert row is not None
        return int(row[0])

    from tenant_migrate import _core

    database = _core.TenantDatabase(params(master, "public_acme"))
    try:
        before = seq_scans()
        for _ in range(5):
            assert database.recorder_exists()
            database.fingerprint()
            database.applied()
        after = seq_scans()
    finally:
        database.close()
    assert after - before == 0, f"{after - before} sequential scans of pg_class"

    # Django's own question, on the tenant's connection (the migration loader and recorder ask
    # it once per tenant and per migration Django records): answered by name.
    code = (
        "from django.db import connections\n"
        "from django.db.migrations.recorder import MigrationRecorder\n"
        "print([MigrationRecorder(connections['acme']).has_table() for _ in range(5)])"
    )
    before = seq_scans()
    out = project.manage("shell", "-c", code).stdout
    after = seq_scans()
    assert out.strip().splitlines()[-1] == "[True, True, True, True, True]", out
    # manage.py's own start-up (system checks) lists the master's tables once, not per call.
    assert after - before <= 1, f"{after - before} sequential scans of pg_class"
