"""While a tenant migrates, Django's ``default`` database must be that tenant.

Real migration code does not say which database it works on: RunPython bodies use default
managers (``Model.objects.create``, ``ContentType.objects.get_or_create``), run SQL through
``django.db.connection``, call ``create_permissions(app_config)`` (whose ``using`` defaults to
``"default"``); ``post_migrate`` receivers do the same, or catch the error of a query on an
optional table and carry on. Under Django's own ``migrate`` all of that works because
``default`` is the database being migrated. The project ``tests/projects/idioms`` is written
that way, and its tenant apps are also shared apps, so the master holds tables of the same names:
a tenant's row written into the master lands there and is caught, instead of being hidden behind
a "no such table" error.

Each tenant is compared with what Django's own ``migrate`` leaves on a fresh database of the same
project (schema, history, the apps' rows, content types, permissions, groups), and the master is
snapshotted before the tenant's run and must be unchanged after it. Every row the project's
code writes names the place ``django.db.connection`` reached (``audit.Footprint.place``); it
must be the tenant's own database or schema, in each of 20 tenants migrated 4 at a time too.

Every command skips Django's system checks (they run once, in ``test_system_checks_pass``), so a
settings check cannot hide what a run does to the databases.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from helpers.pg import (
    catalog,
    connect,
    create_database,
    data,
    databases,
    drop_databases,
    history,
    pg_env,
    require_server,
    schemas,
)
from helpers.project import ROOT, Project, migration_rows, sqlite_schema
from psycopg import sql

IDIOMS = ROOT / "tests" / "projects" / "idioms"
REGISTRY_TABLES = "tenant_migrate_"
REGISTRY_APP = "tenant_migrate"
SKIP_CHECKS = "--skip-checks"
# What a footprint's place becomes once checked to be the database (or schema) it was read from.
OWN_PLACE = "<its own place>"
T = TypeVar("T")

# The project's rows, by natural keys (ids depend on what else a database holds: the master
# and Django's fresh database also have tenant_migrate's content types and permissions, which
# tenants, where tenant_migrate is not an app, do not).
CONTENT_TYPES = "SELECT app_label, model FROM django_content_type WHERE app_label != 'tenant_migrate'"
PERMISSIONS = (
    "SELECT ct.app_label, ct.model, p.codename, p.name FROM auth_permission p "
    "JOIN django_content_type ct ON ct.id = p.content_type_id WHERE ct.app_label != 'tenant_migrate'"
)
# After 'staff zero' and forward again, staff 0002's create_permissions on Django's database
# also sees tenant_migrate's models (migrated there, never in a tenant): left out on both sides.
GROUPS = (
    "SELECT g.name, ct.app_label, p.codename FROM auth_group g "
    "LEFT JOIN auth_group_permissions gp ON gp.group_id = g.id "
    "LEFT JOIN auth_permission p ON p.id = gp.permission_id "
    "LEFT JOIN django_content_type ct ON ct.id = p.content_type_id "
    "WHERE ct.app_label IS NULL OR ct.app_label != 'tenant_migrate'"
)
DATA_QUERIES = {
    "footprints": (("audit_footprint",), "SELECT kind, place, note FROM audit_footprint"),
    "currencies": (("billing_currency",), "SELECT code, name, symbol, rate FROM billing_currency"),
    "members": (
        ("staff_team", "staff_member"),
        "SELECT t.name, m.name FROM staff_team t LEFT JOIN staff_member m ON m.team_id = t.id",
    ),
    "content_types": (("django_content_type",), CONTENT_TYPES),
    "permissions": (("auth_permission", "django_content_type"), PERMISSIONS),
    "groups": (("auth_group", "auth_group_permissions", "auth_permission", "django_content_type"), GROUPS),
}
# What every database migrated from zero must hold: one footprint per idiom, each naming the
# database it was written in (checked, then replaced by OWN_PLACE).
EXPECTED_FOOTPRINTS = sorted(
    [
        ("cursor", OWN_PLACE, "inserted"),
        ("cursor", OWN_PLACE, "counted 1"),
        ("orm", OWN_PLACE, "seeded currencies"),
        ("orm", OWN_PLACE, "symbols for EUR,JPY,USD"),
        ("post_migrate", OWN_PLACE, ""),
    ],
    key=repr,
)


# -- helpers ----------------------------------------------------------------------------------


def make_idioms(base: Path, **env: str) -> Project:
    """A private copy of the idioms project, on SQLite unless ``env`` says otherwise."""
    root = base / "idioms"
    shutil.copytree(IDIOMS, root, ignore=shutil.ignore_patterns("*.sqlite3", "tenants", "__pycache__"))
    run_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "idioms_site.settings",
        "TM_DB_ENGINE": "sqlite",
        "TM_MASTER_SQLITE": str(base / "master.sqlite3"),
        "TM_TENANT_DIR": str(base / "tenants"),
        "TM_DATABASE_NAME": "{tenant_id}_db",
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    return Project(root, run_env)


def concurrently(*calls: Callable[[], T]) -> list[T]:
    """Independent manage.py commands side by side (each in its own subprocess)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def manage(project: Project, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return project.manage(*args, SKIP_CHECKS, **kwargs)


def create_tenants(project: Project, tenant_ids: list[str], *options: str) -> None:
    """Many ``createtenant`` in one process (one interpreter start instead of one each)."""
    code = "\n".join(
        [
            "from django.core.management import call_command",
            f"for tenant_id in {tenant_ids!r}:",
            "    call_command('createtenant', '--no-input', '--skip-checks', "
            + "".join(f"{option!r}, " for option in options)
            + "tenant_id=tenant_id)",
        ]
    )
    project.manage("shell", "-c", code)


def failure_text(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {proc.returncode}\nstdout (end):\n{proc.stdout[-2000:]}\nstderr (end):\n{proc.stderr[-3000:]}"
    )


def rows_of(cursor_rows: Any) -> list[tuple]:
    # repr as the key: LEFT JOINs give None beside text, which tuples cannot order.
    return sorted((tuple(row) for row in cursor_rows), key=repr)


def read_rows(conn: Any, query: str) -> list[tuple]:
    """The query's rows; a half-migrated database (a failed run) may lack a column: then a
    row saying so, to be reported with the rest rather than hide it."""
    try:
        return rows_of(conn.execute(query))
    except (sqlite3.Error, psycopg.Error) as err:
        return [("unreadable", str(err).strip().splitlines()[0])]


def normalized(state: dict[str, Any], place: str) -> dict[str, Any]:
    """Footprints written in ``place`` (where the state was read) get OWN_PLACE; any other place
    stays as it is, so a row written through the wrong connection shows where it was written."""
    footprints = state.get("footprints")
    if footprints is not None:
        state["footprints"] = rows_of(
            (kind, OWN_PLACE if where == place else where, note) for kind, where, note in footprints
        )
    return state


def describe(rows: Any) -> str:
    return "has no such table" if rows is None else f"has {len(rows)} rows"


def differences(got: dict[str, Any], want: dict[str, Any], ours: str, theirs: str) -> list[str]:
    """Readable differences between two states (dicts of row lists; None: table missing)."""
    lines: list[str] = []
    for key in sorted(set(want) | set(got)):
        have, wanted = got.get(key), want.get(key)
        if have == wanted:
            continue
        if have is None or wanted is None:
            lines.append(f"{key}: {ours} {describe(have)}; {theirs} {describe(wanted)}")
            continue
        only_ours = [row for row in have if row not in wanted]
        only_theirs = [row for row in wanted if row not in have]
        lines += [f"{key}: only in {ours}: {row}" for row in only_ours[:15]]
        lines += [f"{key}: only in {theirs}: {row}" for row in only_theirs[:15]]
        if not only_ours and not only_theirs:
            lines.append(f"{key}: the same rows in another order or number")
    return lines


def tenant_problems(got: dict[str, Any], fresh: dict[str, Any], tenant: str) -> list[str]:
    return [f"{tenant}: {line}" for line in differences(got, fresh, "the tenant", "Django's database")]


def master_problems(before: dict[str, Any], after: dict[str, Any], when: str) -> list[str]:
    return [
        f"the master changed ({when}): {line}"
        for line in differences(after, before, "the master now", "the master before")
    ]


def run_problems(proc: subprocess.CompletedProcess[str], what: str) -> list[str]:
    if proc.returncode == 0:
        return []
    try:  # migratealltenants --json: each tenant's outcome, rather than the end of a long report
        outcomes = json.loads(proc.stdout)["tenants"]
    except (ValueError, KeyError, TypeError):
        return [f"{what} failed: {failure_text(proc)}"]
    return [f"{what} failed (exit {proc.returncode}); stderr:\n{proc.stderr[-1500:]}"] + [
        f"{what}: {o['tenant_id']} {o['status']}: {o['error']}" for o in outcomes if o["status"] != "migrated"
    ]


def assert_no_problems(problems: list[str], what: str, limit: int = 120) -> None:
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    assert not problems, f"{what}:\n" + "\n".join(problems[:limit]) + more


# -- SQLite -----------------------------------------------------------------------------------


def sqlite_place(path: Path) -> str:
    """What audit.places.current_place() records for a SQLite database."""
    return path.name


def sqlite_state(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = {
        "schema": sqlite_schema(path, exclude_prefix=(REGISTRY_TABLES,)),
        "history": migration_rows(path, exclude_apps=(REGISTRY_APP,)),
    }
    tables = {name for kind, name, _ in state["schema"] if kind == "table"}
    with closing(sqlite3.connect(path)) as conn:
        for key, (needs, query) in DATA_QUERIES.items():
            state[key] = read_rows(conn, query) if set(needs) <= tables else None
    return normalized(state, sqlite_place(path))


def sqlite_master(path: Path) -> dict[str, Any]:
    """Every row of every table of the master but the registry's (migratealltenants journals
    its runs there), and its schema."""
    snapshot: dict[str, Any] = {"schema": sqlite_schema(path)}
    with closing(sqlite3.connect(path)) as conn:
        tables = [name for kind, name, _ in snapshot["schema"] if kind == "table"]
        for table in tables:
            if not table.startswith(REGISTRY_TABLES):
                snapshot[table] = rows_of(conn.execute(f'SELECT * FROM "{table}"'))
    return snapshot


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class SqliteWorld:
    project: Project
    master: Path
    plain: Path  # migrated by Django's own migrate; changed by the round trip
    fresh: dict[str, Any]  # its state right after that migrate

    def django(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Django's own migrate on the plain database."""
        return manage(self.project, "migrate", "--no-input", *args, env={"TM_MASTER_SQLITE": str(self.plain)})


@pytest.fixture(scope="module")
def sqlite_world(tmp_path_factory: pytest.TempPathFactory) -> SqliteWorld:
    base = tmp_path_factory.mktemp("idioms-sqlite")
    project = make_idioms(base)
    master, plain = base / "master.sqlite3", base / "plain.sqlite3"
    world = SqliteWorld(project, master, plain, {})
    concurrently(partial(manage, project, "migrate", "--no-input"), world.django)
    world.fresh = sqlite_state(plain)
    assert world.fresh["footprints"] == EXPECTED_FOOTPRINTS, world.fresh["footprints"]
    assert ("Team managers", "staff", "view_report") in world.fresh["groups"], world.fresh["groups"]
    # The master ran the same code for itself: its own rows, naming itself.
    assert sqlite_state(master)["footprints"] == EXPECTED_FOOTPRINTS
    return world


def test_system_checks_pass(sqlite_world: SqliteWorld) -> None:
    """SHARED_APPS is a setting (no tenant_migrate.E002), and the project is consistent."""
    proc = sqlite_world.project.manage("check", check=False)
    assert proc.returncode == 0, failure_text(proc)


def test_sqlite_tenant_matches_django_master_untouched_and_round_trips(sqlite_world: SqliteWorld) -> None:
    """migratetenant gives the tenant exactly what Django's migrate gives a fresh database,
    writes nothing into the master (not a byte), and so do 'staff zero', 'billing zero' and
    forward again, each compared with Django doing the same."""
    world, project = sqlite_world, sqlite_world.project
    project.create_tenant("t1", "T1", "--isolation=database", SKIP_CHECKS)
    tenant = project.tenant_db("t1")
    before, digest = sqlite_master(world.master), sha256(world.master)

    proc = manage(project, "migratetenant", "--tenant-id=t1", check=False)
    problems = run_problems(proc, "migratetenant --tenant-id=t1")
    problems += master_problems(before, sqlite_master(world.master), "migratetenant t1")
    if proc.returncode == 0:
        problems += tenant_problems(sqlite_state(tenant), world.fresh, "t1")
    assert_no_problems(problems, "a SQLite tenant migrated from zero")
    assert sha256(world.master) == digest, "the master's file changed"

    for step in (("staff", "zero"), ("billing", "zero"), ()):
        proc, _ = concurrently(
            partial(manage, project, "migratetenant", "--tenant-id=t1", *step, check=False),
            partial(world.django, *step),
        )
        when = " ".join(step) or "forward again"
        problems = run_problems(proc, f"migratetenant {when}")
        problems += master_problems(before, sqlite_master(world.master), when)
        problems += tenant_problems(sqlite_state(tenant), sqlite_state(world.plain), f"t1 after {when}")
        assert_no_problems(problems, f"after {when}")
    assert sqlite_state(world.plain) == world.fresh, "Django's round trip should end where it began"
    assert sha256(world.master) == digest, "the master's file changed"


def test_sqlite_createtenant_migrate(sqlite_world: SqliteWorld) -> None:
    """createtenant --migrate: the same tenant, the master changed only by the registry row."""
    world = sqlite_world
    before = sqlite_master(world.master)
    proc = manage(world.project, "createtenant", "--tenant-id=born", "--no-input", "--migrate", check=False)
    problems = run_problems(proc, "createtenant --migrate")
    problems += master_problems(before, sqlite_master(world.master), "createtenant --migrate")
    if proc.returncode == 0:
        problems += tenant_problems(sqlite_state(world.project.tenant_db("born")), world.fresh, "born")
    assert_no_problems(problems, "createtenant --migrate")


def test_sqlite_migratealltenants_each_tenant_writes_only_its_own(sqlite_world: SqliteWorld) -> None:
    """20 tenants, 4 at a time: in every thread ``default`` is that thread's tenant, so each
    tenant holds exactly its own rows (every footprint names its own file) and the master none.
    Later tenants replay what the first ones compiled or ran through Django (RunPython aside):
    that SQL must replay as it ran."""
    world, project = sqlite_world, sqlite_world.project
    tenants = [f"many{i:02d}" for i in range(20)]
    create_tenants(project, tenants, "--isolation=database")
    before = sqlite_master(world.master)

    selection = [f"--tenant-id={tenant}" for tenant in tenants]
    proc = manage(project, "migratealltenants", "--jobs=4", "--json", *selection, check=False)
    problems = run_problems(proc, "migratealltenants --jobs=4")
    problems += master_problems(before, sqlite_master(world.master), "migratealltenants")
    for tenant in tenants:
        problems += tenant_problems(sqlite_state(project.tenant_db(tenant)), world.fresh, tenant)
    assert_no_problems(problems, "20 SQLite tenants migrated 4 at a time")
    summary = json.loads(proc.stdout)["summary"]
    assert summary["migrated"] == len(tenants) and summary["failed"] == 0, summary


# -- PostgreSQL -------------------------------------------------------------------------------


def pg_place(dbname: str, schema: str = "public") -> str:
    """What audit.places.current_place() records for a PostgreSQL database and schema."""
    return f"{dbname}/{schema}"


def pg_state(dbname: str, schema: str = "public") -> dict[str, Any]:
    state: dict[str, Any] = catalog(dbname, schema, exclude_prefix=REGISTRY_TABLES)
    state["history"] = history(dbname, schema, exclude_apps=(REGISTRY_APP,))
    tables = {row[0] for row in state["tables"]}
    with connect(dbname) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        for key, (needs, query) in DATA_QUERIES.items():
            state[key] = read_rows(conn, query) if set(needs) <= tables else None
    return normalized(state, pg_place(dbname, schema))


def pg_master(dbname: str, prefix: str) -> dict[str, Any]:
    """The master database: its schemas, the catalog and every row of its public schema (the
    registry's tables aside), and the test's databases on the server."""
    snapshot: dict[str, Any] = {
        "schemas": schemas(dbname),
        "databases": databases(prefix),
        **{f"catalog {k}": v for k, v in catalog(dbname, exclude_prefix=REGISTRY_TABLES).items()},
    }
    for table, rows in data(dbname).items():
        if not table.startswith(REGISTRY_TABLES):
            snapshot[f"public.{table}"] = rows
    return snapshot


@pytest.fixture(scope="module")
def pg_module_prefix() -> Iterator[str]:
    """pgutil's pg_prefix, for the whole module: the migrated master and Django's fresh
    database are made once (same server checks and skip reasons, same clean-up)."""
    require_server()
    prefix = f"tmt_{uuid.uuid4().hex[:10]}_"
    try:
        yield prefix
    finally:
        drop_databases(prefix)


@dataclass
class PgWorld:
    project: Project
    prefix: str
    master: str
    plain: str  # migrated by Django's own migrate; changed by the round trip
    fresh: dict[str, Any]

    def django(self, *args: str) -> subprocess.CompletedProcess[str]:
        return manage(self.project, "migrate", "--no-input", *args, env={"TM_PG_NAME": self.plain})

    def snapshot(self) -> dict[str, Any]:
        return pg_master(self.master, self.prefix)


@pytest.fixture(scope="module")
def pg_world(tmp_path_factory: pytest.TempPathFactory, pg_module_prefix: str) -> PgWorld:
    prefix = pg_module_prefix
    master, plain = f"{prefix}shared", f"{prefix}plain"
    create_database(master)
    create_database(plain)
    project = make_idioms(
        tmp_path_factory.mktemp("idioms-pg"),
        TM_DB_ENGINE="postgresql",
        TM_PG_NAME=master,
        TM_DATABASE_NAME=prefix + "{tenant_id}_db",
        **pg_env(prefix),
    )
    world = PgWorld(project, prefix, master, plain, {})
    concurrently(partial(manage, project, "migrate", "--no-input"), world.django)
    world.fresh = pg_state(plain)
    assert world.fresh["footprints"] == EXPECTED_FOOTPRINTS, world.fresh["footprints"]
    assert ("Team managers", "staff", "view_report") in world.fresh["groups"], world.fresh["groups"]
    assert pg_state(master)["footprints"] == EXPECTED_FOOTPRINTS
    return world


def pg_migrate_one(world: PgWorld, tenant: str, dbname: str, schema: str, *args: str) -> list[str]:
    """``migratetenant`` for one tenant: what went wrong, master and tenant checked."""
    before = world.snapshot()
    proc = manage(world.project, "migratetenant", f"--tenant-id={tenant}", *args, check=False)
    problems = run_problems(proc, f"migratetenant --tenant-id={tenant}")
    problems += master_problems(before, world.snapshot(), f"migratetenant {tenant}")
    if proc.returncode == 0:
        problems += tenant_problems(pg_state(dbname, schema), world.fresh, tenant)
    return problems


def test_postgres_database_isolation_matches_django(pg_world: PgWorld) -> None:
    """A tenant database: everything the project's code writes lands in it, none in the master."""
    pg_world.project.create_tenant("d1", "D1", "--isolation=database", SKIP_CHECKS)
    problems = pg_migrate_one(pg_world, "d1", f"{pg_world.prefix}d1_db", "public")
    assert_no_problems(problems, "a PostgreSQL database tenant migrated from zero")


def test_postgres_schema_isolation_matches_django_and_round_trips(pg_world: PgWorld) -> None:
    """A tenant schema in the master's own database: the project's code reaches the tenant's
    schema (only it on the search path), never public; its post_migrate receivers run
    after a failed query on an optional table as under Django (no transaction of ours left
    aborted). Then 'staff zero', 'billing zero' and forward again, each compared with Django."""
    world, project = pg_world, pg_world.project
    project.create_tenant("s1", "S1", "--isolation=schema", SKIP_CHECKS)
    problems = pg_migrate_one(world, "s1", world.master, "public_s1")
    assert_no_problems(problems, "a PostgreSQL schema tenant migrated from zero")

    before = world.snapshot()
    for step in (("staff", "zero"), ("billing", "zero"), ()):
        proc, _ = concurrently(
            partial(manage, project, "migratetenant", "--tenant-id=s1", *step, check=False),
            partial(world.django, *step),
        )
        when = " ".join(step) or "forward again"
        problems = run_problems(proc, f"migratetenant {when}")
        problems += master_problems(before, world.snapshot(), when)
        tenant = pg_state(world.master, "public_s1")
        problems += tenant_problems(tenant, pg_state(world.plain), f"s1 after {when}")
        assert_no_problems(problems, f"after {when}")
    assert pg_state(world.plain) == world.fresh, "Django's round trip should end where it began"


def test_postgres_schema_migratealltenants_each_tenant_writes_only_its_own(pg_world: PgWorld) -> None:
    """20 schema tenants, 4 at a time, all in the master's database: each tenant's rows name
    its own schema, and public gets none."""
    world, project = pg_world, pg_world.project
    tenants = [f"many{i:02d}" for i in range(20)]
    create_tenants(project, tenants, "--isolation=schema")
    before = world.snapshot()

    selection = [f"--tenant-id={tenant}" for tenant in tenants]
    proc = manage(project, "migratealltenants", "--jobs=4", "--json", *selection, check=False)
    problems = run_problems(proc, "migratealltenants --jobs=4")
    problems += master_problems(before, world.snapshot(), "migratealltenants")
    for tenant in tenants:
        problems += tenant_problems(pg_state(world.master, f"public_{tenant}"), world.fresh, tenant)
    assert_no_problems(problems, "20 PostgreSQL schema tenants migrated 4 at a time")
    summary = json.loads(proc.stdout)["summary"]
    assert summary["migrated"] == len(tenants) and summary["failed"] == 0, summary
