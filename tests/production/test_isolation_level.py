"""Migrations run at READ COMMITTED whatever the database's default isolation.

The history guard (the core's and the one on Django's rows) takes the tenant's record lock,
then reads the history in a later statement of the same transaction: under READ COMMITTED that
statement sees a row another run committed while this one waited for the lock. Under REPEATABLE
READ, which a database or a role can make the default (``ALTER DATABASE ... SET
default_transaction_isolation``), the transaction's snapshot is its first statement's, taken
before the wait: the row is missed and the migration is applied a second time.
"""

from __future__ import annotations

import pytest
from helpers.pg import HOST, PASSWORD, PORT, USER, connect, history
from helpers.processes import popen, wait_until
from helpers.project import pg_project
from psycopg import sql
from tenant_migrate import _core
from tenant_migrate.params import rust_params

RECORDS_ISOLATION = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("users", "0002_alter_user_email")]
    operations = [
        migrations.RunSQL(
            "CREATE TABLE users_isolation (route text, isolation text); "
            "INSERT INTO users_isolation VALUES ('sql', current_setting('transaction_isolation'))",
            "DROP TABLE users_isolation",
        ),
    ]
"""

PYTHON_TOO = """
from django.db import connection, migrations


def forwards(apps, schema_editor):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO users_isolation VALUES ('python', current_setting('transaction_isolation'))"
        )


class Migration(migrations.Migration):
    dependencies = [("users", "0003_isolation")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
"""

DATA = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("users", "0002_alter_user_email")]
    operations = [
        migrations.RunSQL(
            "CREATE TABLE users_seen (x integer); INSERT INTO users_seen VALUES (1)",
            "DROP TABLE users_seen",
        ),
    ]
"""

DATA_PYTHON = """
from django.db import connection, migrations


def forwards(apps, schema_editor):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE users_seen (x integer)")
        cursor.execute("INSERT INTO users_seen VALUES (1)")


class Migration(migrations.Migration):
    dependencies = [("users", "0002_alter_user_email")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
"""


def repeatable_read_by_default(master: str) -> None:
    with connect(master) as conn:
        alter = "ALTER DATABASE {} SET default_transaction_isolation = 'repeatable read'"
        conn.execute(sql.SQL(alter).format(sql.Identifier(master)))


def test_both_routes_run_at_read_committed_under_a_repeatable_read_default(tmp_path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    master = project.master  # type: ignore[attr-defined]
    project.create_tenant("acme", "ACME", "--isolation=schema")
    project.add_migration("users", "0003_isolation", RECORDS_ISOLATION)
    project.add_migration("users", "0004_python", PYTHON_TOO)
    repeatable_read_by_default(master)
    project.manage("migratetenant", "--tenant-id=acme")
    with connect(master) as conn:
        assert conn.execute("SHOW transaction_isolation").fetchone()[0] == "repeatable read"
        rows = conn.execute("SELECT route, isolation FROM public_acme.users_isolation ORDER BY 1").fetchall()
    assert rows == [("python", "read committed"), ("sql", "read committed")]


@pytest.mark.parametrize("route", ["sql", "django"])
def test_a_row_committed_during_the_record_lock_wait_is_seen(tmp_path, pg_prefix: str, route: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    master = project.master  # type: ignore[attr-defined]
    project.create_tenant("acme", "ACME", "--isolation=schema")
    project.manage("migratetenant", "--tenant-id=acme")
    project.add_migration("users", "0003_data", DATA if route == "sql" else DATA_PYTHON)
    repeatable_read_by_default(master)
    settings = {"ENGINE": "django.db.backends.postgresql", "NAME": master, "HOST": HOST, "PORT": PORT}
    settings.update({"USER": USER, "PASSWORD": PASSWORD})
    record_lock, _ = _core.history_guard(rust_params(settings, "public_acme"))
    # Another run, as far as this one can tell: it holds the record lock and writes the row.
    other = connect(master)
    other.autocommit = False
    other.execute(record_lock)
    other.execute(
        "INSERT INTO public_acme.django_migrations (app, name, applied) VALUES ('users', '0003_data', now())"
    )
    run = popen(project, "migratetenant", "--tenant-id=acme", "--lock-wait=60")
    try:
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s"
        with connect(master) as watcher:
            wait_until(lambda: watcher.execute(waiting, [master]).fetchone()[0], run, "the lock wait")
        other.commit()
    finally:
        other.close()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1, (out, err)
    assert "another run recorded this migration meanwhile" in err, err
    names = [name for app, name, *_ in history(master, "public_acme") if app == "users"]
    assert names.count("0003_data") == 1, names
    with connect(master) as conn:
        found = conn.execute("SELECT to_regclass('public_acme.users_seen')").fetchone()[0]
    assert found is None  # the second application rolled back with its row
