"""migratetenant and createtenant on a real PostgreSQL server, in both isolation modes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.pg import admin, catalog, connect, create_database, data, databases, history, pg_env, schemas
from helpers.project import CONTRIB, make_project, make_tenant, pg_project, tenant_location
from helpers.spec import ALL_ROWS, SPEC_PLAN, SPEC_RUN
from psycopg import sql


@pytest.mark.parametrize("isolation", ["database", "schema"])
def test_spec_flow(tmp_path: Path, pg_prefix: str, isolation: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", isolation)
    dbname, schema = tenant_location(project, pg_prefix, "acme", isolation)
    public_before = catalog(project.master)  # type: ignore[attr-defined]

    plan = project.manage("migratetenant", "--tenant-id=acme", "--plan").stdout
    assert plan.splitlines() == SPEC_PLAN.splitlines()
    out = project.manage("migratetenant", "--tenant-id=acme").stdout
    assert out.splitlines() == SPEC_RUN.splitlines()
    assert history(dbname, schema) == ALL_ROWS
    # Nothing of the tenant's leaks into the shared database's public schema.
    assert catalog(project.master) == public_before  # type: ignore[attr-defined]

    back = project.manage("migratetenant", "--tenant-id=acme", "users", "zero").stdout
    assert "  Unapplying orders/0001_initial.py ... OK" in back.splitlines()
    assert history(dbname, schema) == [("products", "0001_initial")]
    project.manage("migratetenant", "--tenant-id=acme")
    assert history(dbname, schema) == ALL_ROWS


def test_differential_both_modes_match_djangos_own_migrate(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix, tenant_apps=CONTRIB)
    make_tenant(project, "acme", "database")
    make_tenant(project, "globex", "schema")
    project.manage("migratetenant", "--tenant-id=acme")
    project.manage("migratetenant", "--tenant-id=globex")

    plain = f"{pg_prefix}plain"
    create_database(plain)
    project.manage("migrate", "--no-input", env={"TM_PG_NAME": plain})
    expected = catalog(plain, exclude_prefix="tenant_migrate_")
    expected_rows = history(plain, exclude_apps=("tenant_migrate",))
    assert expected["tables"], "Django's migrate created nothing?"

    for dbname, schema in [(f"{pg_prefix}acme_db", "public"), (project.master, "public_globex")]:  # type: ignore[attr-defined]
        assert catalog(dbname, schema) == expected, f"{dbname}/{schema}"
        assert history(dbname, schema) == expected_rows

    def rows(dbname: str, schema: str, query: str) -> list[tuple]:
        with connect(dbname) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            return sorted(tuple(r) for r in conn.execute(query).fetchall())

    perms = (
        "SELECT ct.app_label, ct.model, p.codename FROM auth_permission p "
        "JOIN django_content_type ct ON ct.id = p.content_type_id "
        "WHERE ct.app_label != 'tenant_migrate'"
    )
    want = rows(plain, "public", perms)
    assert want
    assert rows(f"{pg_prefix}acme_db", "public", perms) == want
    assert rows(project.master, "public_globex", perms) == want  # type: ignore[attr-defined]


def test_isolation_other_tenants_untouched(tmp_path: Path, pg_prefix: str) -> None:
    """Migrating acme (schema) and hooli (database), forwards, back to zero and forwards again,
    changes no other tenant's catalog, history or rows, nothing in the shared database's
    public schema (its registry, its own django_migrations, content types, permissions), and
    creates no schema or database."""
    project = pg_project(tmp_path, pg_prefix, tenant_apps=CONTRIB)
    master = project.master  # type: ignore[attr-defined]
    make_tenant(project, "acme", "schema")
    make_tenant(project, "hooli", "database")
    make_tenant(project, "globex", "schema")
    make_tenant(project, "initech", "database")
    project.manage("migratetenant", "--tenant-id=globex")
    project.manage("migratetenant", "--tenant-id=initech")
    others = [(master, "public_globex"), (f"{pg_prefix}initech_db", "public"), (master, "public")]
    for dbname, schema in others[:2]:
        with connect(dbname) as conn:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.users_user (username, email, date_joined) VALUES (%s, 'x@x', now())"
                ).format(sql.Identifier(schema)),
                [f"{schema}-user"],
            )

    def snapshot() -> list:
        return [(catalog(d, s), data(d, s)) for d, s in others] + [schemas(master), databases(pg_prefix)]

    before = snapshot()
    assert (
        before[0][1]["users_user"]
        and before[0][1]["auth_permission"]
        and before[2][1]["tenant_migrate_tenant"]
    )
    for tenant in ("acme", "hooli"):
        project.manage("migratetenant", f"--tenant-id={tenant}")
        for app in ("orders", "products", "users", "auth", "contenttypes"):
            project.manage("migratetenant", f"--tenant-id={tenant}", app, "zero")
        project.manage("migratetenant", f"--tenant-id={tenant}")
    assert snapshot() == before
    assert history(master, "public_acme") == history(f"{pg_prefix}hooli_db")


@pytest.mark.parametrize("isolation", ["schema", "database"])
@pytest.mark.parametrize("mode", ["batch", "step-by-step", "django"])
def test_failing_statement_names_tenant_migration_and_statement(
    tmp_path: Path, pg_prefix: str, isolation: str, mode: str
) -> None:
    """Batch mode sends a migration in one round trip and re-runs it statement by statement only
    to name the one that failed; zero-downtime mode (--lock-timeout) runs one per round trip; a
    migration that runs Python is applied by Django."""
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", isolation)
    dbname, schema = tenant_location(project, pg_prefix, "acme", isolation)
    project.add_migration(
        "products",
        "0002_broken",
        "from django.db import migrations\n\n"
        "def through_django(apps, schema_editor):\n"
        "    pass\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [\n"
        # A function of its own: RunPython.noop in the direction run is compiled to SQL.
        + ("        migrations.RunPython(through_django),\n" if mode == "django" else "")
        + "        migrations.RunSQL('CREATE TABLE made_before_failure (id int)'),\n"
        "        migrations.RunSQL('INSERT INTO no_such_table VALUES (1)'),\n"
        "    ]\n",
    )
    extra = ["--lock-timeout=5s"] if mode == "step-by-step" else []
    proc = project.manage("migratetenant", "--tenant-id=acme", *extra, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "Error: Migration products/0002_broken.py failed for tenant 'acme': "
        'relation "no_such_table" does not exist',
        "Statement: INSERT INTO no_such_table VALUES (1)",
    ], proc.stderr
    assert "  products/0001_initial.py ... OK" in proc.stdout.splitlines()
    # Earlier migrations kept; nothing of the failing one, not even its first statement.
    assert ("products", "0002_broken") not in history(dbname, schema)
    assert ("products", "0001_initial") in history(dbname, schema)
    with connect(dbname) as conn:
        found = conn.execute(
            sql.SQL("SELECT to_regclass({})").format(sql.Literal(f"{schema}.made_before_failure"))
        ).fetchone()[0]
    assert found is None


def test_fake_initial_looks_in_the_tenants_schema_only(tmp_path: Path, pg_prefix: str) -> None:
    """public holds tables of the same names (the master has the tenant apps too): --fake-initial
    must not take them for the tenant's and fake its initial migrations."""
    project = pg_project(tmp_path, pg_prefix)
    master = project.master  # type: ignore[attr-defined]
    make_tenant(project, "acme", "schema")
    with connect(master) as conn:
        assert conn.execute("SELECT to_regclass('public.users_user')").fetchone()[0] is not None
    out = project.manage("migratetenant", "--tenant-id=acme", "--fake-initial").stdout.splitlines()
    assert "  users/0001_initial.py ... OK" in out and "FAKED" not in " ".join(out)
    with connect(master) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public_acme' ORDER BY 1"
        ).fetchall()
    assert [t for (t,) in tables] == ["django_migrations", "orders_order", "products_product", "users_user"]
    # Now the tables exist in the tenant's schema: initial migrations are faked as Django does.
    with connect(master) as conn:
        conn.execute("DELETE FROM public_acme.django_migrations WHERE app IN ('products', 'orders')")
    out = project.manage("migratetenant", "--tenant-id=acme", "--fake-initial").stdout.splitlines()
    assert out[-3:] == [
        "  products/0001_initial.py ... FAKED",
        "  orders/0001_initial.py ... FAKED",
        "Migrations completed successfully for tenant 'acme'.",
    ]
    assert history(master, "public_acme") == ALL_ROWS


def test_host_override(tmp_path: Path, pg_prefix: str) -> None:
    """A tenant's HOST override is what both the Rust core and Django connect to."""
    from helpers.pg import HOST

    if HOST not in ("127.0.0.1", "localhost"):
        pytest.skip("the override test needs the server on this machine's loopback")
    project = pg_project(tmp_path, pg_prefix, tenant_apps=CONTRIB)
    make_tenant(project, "acme", "database", '--connection={"HOST": "localhost"}')
    project.manage("migratetenant", "--tenant-id=acme")
    assert ("users", "0002_alter_user_email") in history(f"{pg_prefix}acme_db")
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        conn.execute(
            "UPDATE tenant_migrate_tenant SET connection = %s WHERE tenant_id = 'acme'",
            ['{"HOST": "127.0.0.9"}'],
        )
    proc = project.manage("migratetenant", "--tenant-id=acme", "users", "zero", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == "Error: Cannot connect to tenant database"
    assert "127.0.0.9" in proc.stderr or "refused" in proc.stderr.lower(), proc.stderr


def test_missing_table_never_resolves_to_public(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "schema")
    # A decoy table of the same name in public (the master has the tenant apps' tables too).
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        assert conn.execute("SELECT to_regclass('public.users_user')").fetchone()[0] is not None
    project.add_migration(
        "products",
        "0002_reads_users",
        "from django.db import migrations\n\n"
        "def touch(apps, schema_editor):\n"
        "    with schema_editor.connection.cursor() as cursor:\n"
        "        cursor.execute('SELECT count(*) FROM users_user')\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [migrations.RunSQL('SELECT count(*) FROM users_user')]\n",
    )
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", check=False)
    assert proc.returncode == 1, proc.stdout
    assert 'relation "users_user" does not exist' in proc.stderr
    assert "Traceback" not in proc.stderr
    assert history(project.master, "public_acme") == [("products", "0001_initial")]  # type: ignore[attr-defined]

    # The same through Django (RunPython): its connection sees the tenant's schema only.
    path = project.root / "products" / "migrations" / "0002_reads_users.py"
    path.write_text(
        path.read_text().replace(
            "migrations.RunSQL('SELECT count(*) FROM users_user')", "migrations.RunPython(touch)"
        )
    )
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", check=False)
    assert proc.returncode == 1, proc.stdout
    assert 'relation "users_user" does not exist' in proc.stderr
    assert history(project.master, "public_acme") == [("products", "0001_initial")]  # type: ignore[attr-defined]


def test_permission_denied(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "schema")
    role = f"{pg_prefix}limited"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with connect(project.master) as conn:  # type: ignore[attr-defined]
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public_acme TO {}").format(sql.Identifier(role)))
        with connect(project.master) as conn:  # type: ignore[attr-defined]
            conn.execute(
                "UPDATE tenant_migrate_tenant SET connection = %s WHERE tenant_id = 'acme'",
                [f'{{"USER": "{role}"}}'],
            )
        proc = project.manage("migratetenant", "--tenant-id=acme", check=False)
        assert proc.returncode == 1
        assert proc.stderr.startswith("Error: User does not have permission to create tables\n"), proc.stderr
        assert "permission denied for schema public_acme" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        with connect(project.master) as conn:  # type: ignore[attr-defined]
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with admin() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_connection_refused_and_dropped_schema(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    proc = project.manage(
        "createtenant",
        "--tenant-id=x",
        "--isolation=database",
        "--no-input",
        '--connection={"PORT": 1}',
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: Cannot connect to tenant database\n"), proc.stderr
    make_tenant(project, "acme", "database")
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        conn.execute(
            """UPDATE tenant_migrate_tenant SET connection = '{"PORT": 1}' WHERE tenant_id = 'acme'"""
        )
    proc = project.manage("migratetenant", "--tenant-id=acme", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == "Error: Cannot connect to tenant database"
    assert "refused" in lines[1].lower(), proc.stderr

    make_tenant(project, "globex", "schema")
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        conn.execute("DROP SCHEMA public_globex")
    proc = project.manage("migratetenant", "--tenant-id=globex", check=False)
    assert proc.returncode == 1
    from helpers.pg import HOST, PORT

    assert proc.stderr.splitlines() == [
        "Error: Cannot connect to tenant database",
        f'server at "{HOST}", port {PORT}: schema "public_globex" does not exist',
    ]


def test_awkward_identifiers_are_quoted_or_refused(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    odd = f'{pg_prefix}Acme "Q"; DB'
    make_tenant(project, "acme", "database", f"--database-name={odd}")
    out = project.manage("migratetenant", "--tenant-id=acme").stdout
    assert out.splitlines() == SPEC_RUN.splitlines()
    assert history(odd) == ALL_ROWS

    make_tenant(project, "globex", "schema", '--schema-name=Globex "S"; x')
    project.manage("migratetenant", "--tenant-id=globex")
    assert history(project.master, 'Globex "S"; x') == ALL_ROWS  # type: ignore[attr-defined]

    proc = project.manage(
        "createtenant",
        "--tenant-id=long",
        "--isolation=schema",
        "--no-input",
        "--schema-name=" + "s" * 64,
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "63" in proc.stderr


def test_master_on_sqlite_tenants_on_postgres(tmp_path: Path, pg_prefix: str) -> None:
    shared = f"{pg_prefix}tenants"
    create_database(shared)
    project = make_project(tmp_path, master=False)
    project.env.update(pg_env(pg_prefix))
    project.env.update({"TM_TENANT_PG_NAME": shared, "TM_DATABASE_NAME": pg_prefix + "{tenant_id}_db"})
    project.manage("migrate", "--no-input")
    make_tenant(project, "acme", "schema")
    make_tenant(project, "globex", "database")
    assert project.manage("migratetenant", "--tenant-id=acme").stdout.splitlines() == SPEC_RUN.splitlines()
    project.manage("migratetenant", "--tenant-id=globex")
    assert history(shared, "public_acme") == ALL_ROWS
    assert history(f"{pg_prefix}globex_db") == ALL_ROWS


def test_non_atomic_migration_runs_outside_a_transaction(tmp_path: Path, pg_prefix: str) -> None:
    """CREATE INDEX CONCURRENTLY refuses to run in a transaction: Django's non-atomic path."""
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "schema")
    project.add_migration(
        "products",
        "0002_concurrent_index",
        "from django.contrib.postgres.operations import AddIndexConcurrently\n"
        "from django.db import migrations, models\n\n"
        "class Migration(migrations.Migration):\n"
        "    atomic = False\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [\n"
        "        AddIndexConcurrently('product', models.Index(fields=['name'], name='prod_name_idx')),\n"
        "    ]\n",
    )
    plan = project.manage("migratetenant", "--tenant-id=acme", "products", "--plan", "-v", "2").stdout
    assert "    (non-atomic: runs outside a transaction)" in plan.splitlines()
    out = project.manage("migratetenant", "--tenant-id=acme", "products").stdout.splitlines()
    assert "  products/0002_concurrent_index.py ... OK" in out
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        found = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public_acme' AND indexname = 'prod_name_idx'"
        ).fetchone()[0]
    assert found == 1
    assert history(project.master, "public_acme")[-1] == ("products", "0002_concurrent_index")  # type: ignore[attr-defined]
    project.manage("migratetenant", "--tenant-id=acme", "products", "0001")
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        assert conn.execute("SELECT to_regclass('public_acme.prod_name_idx')").fetchone()[0] is None


def test_django_side_sets_the_schema_in_every_transaction(tmp_path: Path, pg_prefix: str) -> None:
    """Behind a transaction-pooling proxy the next transaction may get a server connection with
    another search path. Simulated: after one migration commits, the session is left on
    `public`; the next one, in its own transaction, must still see only the tenant's schema."""
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "schema")
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        conn.execute("INSERT INTO public.products_product (sku, name, price) VALUES ('decoy', 'Decoy', 1)")
    project.add_migration(
        "products",
        "0002_lose_path",
        "from django.db import migrations\n\n"
        "def lose(apps, schema_editor):\n"
        "    connection = schema_editor.connection\n"
        "    def after_commit():\n"
        "        with connection.cursor() as cursor:\n"
        "            cursor.execute(\"SELECT set_config('search_path', 'public', false)\")\n"
        "    connection.on_commit(after_commit)\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [migrations.RunPython(lose)]\n",
    )
    project.add_migration(
        "products",
        "0003_count",
        "from django.db import migrations\n\n"
        "def check(apps, schema_editor):\n"
        "    with schema_editor.connection.cursor() as cursor:\n"
        "        cursor.execute('SELECT count(*) FROM products_product')\n"
        "        assert cursor.fetchone()[0] == 0, 'read another schema'\n"
        "    Product = apps.get_model('products', 'Product')\n"
        "    Product.objects.using(schema_editor.connection.alias).create(sku='mine', name='M', price=2)\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0002_lose_path')]\n"
        "    operations = [migrations.RunPython(check)]\n",
    )
    project.manage("migratetenant", "--tenant-id=acme", "products")
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        assert conn.execute("SELECT sku FROM public_acme.products_product").fetchall() == [("mine",)]
        assert conn.execute("SELECT sku FROM public.products_product").fetchall() == [("decoy",)]
    # post_migrate handlers and the history rows went to the tenant as well.
    assert history(project.master, "public_acme")[-2:] == [
        ("products", "0002_lose_path"),
        ("products", "0003_count"),
    ]  # type: ignore[attr-defined]


def test_heartbeat_names_the_blocking_process(tmp_path: Path, pg_prefix: str) -> None:
    import subprocess
    import sys
    import time

    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "schema")
    project.manage("migratetenant", "--tenant-id=acme", "products")
    project.add_migration(
        "products",
        "0002_stock",
        "from django.db import migrations, models\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [migrations.AddField('product', 'stock', models.IntegerField(default=0))]\n",
    )
    blocker = connect(project.master)  # type: ignore[attr-defined]
    blocker.autocommit = False
    blocker.execute("SELECT count(*) FROM public_acme.products_product")  # holds ACCESS SHARE
    blocker_pid = blocker.info.backend_pid
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "migratetenant", "--tenant-id=acme", "products", "--heartbeat=0.5"],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until the migration is really blocked on the lock, then for a few heartbeats.
        deadline = time.monotonic() + 60
        with connect(project.master) as watcher:  # type: ignore[attr-defined]
            while time.monotonic() < deadline and proc.poll() is None:
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY (pg_blocking_pids(pid))",
                    [blocker_pid],
                ).fetchone()[0]
                if waiting:
                    break
                time.sleep(0.1)
        assert proc.poll() is None, "the migration should be waiting for the lock"
        time.sleep(2.5)
    finally:
        blocker.rollback()
        blocker.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "  products/0002_stock.py ... OK" in out.splitlines()
    beats = [
        line
        for line in err.splitlines()
        if line.startswith("[heartbeat] tenant 'acme': products/0002_stock.py")
    ]
    assert beats, err
    assert any("waiting for Lock/relation" in b and f"held by pid {blocker_pid} " in b for b in beats), beats
    assert any("ALTER TABLE" in b for b in beats), beats
