"""Sessions handed from one schema tenant to the next within a worker, for real.

``migratealltenants`` reuses a worker's PostgreSQL sessions across the schema tenants of one
database: the core's run-lock and migration connections (its pool) and Django's connection
(``reuse.py``, after ``DISCARD ALL``). Nothing a tenant's migration leaves in its session may
reach the next tenant: a migration written the way projects write them (``django.db.connection``,
session-level ``SET``, a temporary table that shadows a real one, an advisory lock) runs on
every tenant and records what it finds on arrival. Counted from the server's statistics: the
sessions a run opens.
"""

from __future__ import annotations

import json

from helpers.pg import connect
from helpers.project import Project, pg_project

TENANTS = [f"t{i}" for i in range(12)]

# What a migration finds in its session when it starts, then what it leaves behind: a
# session-level search path and setting, a temporary table named like a real one (temporary
# tables come first on any search path), a session-level advisory lock. A session handed on
# without being reset would show all of it to the next tenant's migration.
LEAVES_STATE = """
from django.db import connection, migrations


def forwards(apps, schema_editor):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid(), "
            "(SELECT count(*) FROM pg_catalog.pg_class WHERE relpersistence = 't'), "
            "current_setting('tm_test.left_by', true), "
            "(SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND objid = 4242), "
            "(SELECT count(*) FROM products_product)"
        )
        pid, temp_tables, left_by, advisory, products = cursor.fetchone()
        cursor.execute(
            "INSERT INTO products_arrival (pid, temp_tables, left_by, advisory, products) "
            "VALUES (%s, %s, %s, %s, %s)",
            [pid, temp_tables, left_by, advisory, products],
        )
        cursor.execute("SELECT set_config('tm_test.left_by', current_schema(), false)")
        cursor.execute("CREATE TEMP TABLE products_product (id int)")
        cursor.execute("INSERT INTO products_product VALUES (1), (2), (3)")
        cursor.execute("SELECT pg_advisory_lock(4242)")


class Migration(migrations.Migration):
    dependencies = [("products", "0001_initial")]
    operations = [
        migrations.RunSQL(
            "CREATE TABLE products_arrival (pid int, temp_tables int, left_by text, "
            "advisory int, products int)",
            "DROP TABLE products_arrival",
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
"""


def sessions_opened(dbname: str) -> int:
    with connect("postgres") as conn:
        row = conn.execute("SELECT sessions FROM pg_catalog.pg_stat_database WHERE datname = %s", [dbname])
        return int(row.fetchone()[0])


def test_a_tenant_finds_nothing_the_previous_one_left_in_the_session(tmp_path, pg_prefix: str) -> None:
    project: Project = pg_project(tmp_path, pg_prefix)
    master = project.master  # type: ignore[attr-defined]
    for tenant in TENANTS:
        project.create_tenant(tenant, tenant, "--isolation=schema")
    project.add_migration("products", "0002_leaves_state", LEAVES_STATE)
    before = sessions_opened(master)
    proc = project.manage("migratealltenants", "--jobs=1", "--json")
    opened = sessions_opened(master) - before
    summary = json.loads(proc.stdout)["summary"]
    assert summary["migrated"] == len(TENANTS) and summary["failed"] == 0, summary

    pids = set()
    with connect(master) as conn:
        for tenant in TENANTS:
            table = f'"public_{tenant}".products_arrival'
            rows = conn.execute(
                f"SELECT pid, temp_tables, left_by, advisory, products FROM {table}"
            ).fetchall()
            assert len(rows) == 1, (tenant, rows)
            pid, temp_tables, left_by, advisory, products = rows[0]
            # Nothing of the previous tenant's session: no temporary table (which would also
            # have answered for this tenant's products_product), no setting (a custom one
            # reset reads as '' where a new session has none), no lock.
            assert (temp_tables, left_by or None, advisory, products) == (0, None, 0, 0), (tenant, rows[0])
            pids.add(pid)
    # One worker: Django's session was handed on from tenant to tenant.
    assert len(pids) == 1, pids
    # Per tenant before: the run lock's session, the core's (pooled) and Django's, 3 x 12.
    # Now the whole run opens a handful (about 7 here: the master's, the registry's and the
    # status reads, then one run lock, one core and one Django session), not one per tenant.
    assert opened < len(TENANTS), f"{opened} sessions for {len(TENANTS)} tenants"
