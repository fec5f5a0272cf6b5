"""Differential tests on a "real-world" project: migratetenant against Django's own migrate.

The project (tests/projects/realworld) installs Django's contrib apps and popular third-party
apps with long migration histories: 214 migrations run inside each tenant. Every tenant is
compared with a fresh database that Django's ``migrate`` built from the same project: schema
(exact SQL on SQLite, the catalog on PostgreSQL), history, content types, permissions and sites.
Then every app goes back to zero and forward again, on both sides, and they are compared after
each step.

Needs the packages of tests/requirements-realworld.txt and is skipped without them. Django
runs only in manage.py subprocesses (as users run it), so third-party import-time warnings
cannot trip the pytest process's ``filterwarnings = error``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import ROOT, Project, migration_rows, sqlite_schema
from pgutil import catalog, connect, create_database, history, pg_env
from psycopg import sql

THIRD_PARTY = (
    "admin_interface",
    "allauth",
    "auditlog",
    "axes",
    "celery",
    "colorfield",
    "constance",
    "django_celery_beat",
    "django_celery_results",
    "django_otp",
    "guardian",
    "knox",
    "oauth2_provider",
    "post_office",
    "rest_framework",
    "reversion",
    "taggit",
    "timezone_field",
    "waffle",
)
_missing = [name for name in THIRD_PARTY if importlib.util.find_spec(name) is None]
if _missing:
    _why = (
        f"third-party apps of the real-world project are not installed ({', '.join(_missing)}): "
        "pip install -r tests/requirements-realworld.txt"
    )
    if os.environ.get("TM_REQUIRE_POSTGRES") == "1":  # CI: nothing may be skipped
        pytest.fail(_why, pytrace=False)
    pytest.skip(_why, allow_module_level=True)

REALWORLD = ROOT / "tests" / "projects" / "realworld"
REGISTRY_TABLES = "tenant_migrate_"
REGISTRY_APP = "tenant_migrate"
# System checks run once per project (its master's migrate); the many later commands skip
# them, on both sides alike: they change nothing in a database.
SKIP_CHECKS = "--skip-checks"

CONTENT_TYPES = "SELECT app_label, model FROM django_content_type WHERE app_label != 'tenant_migrate'"
PERMISSIONS = (
    "SELECT ct.app_label, ct.model, p.codename, p.name FROM auth_permission p "
    "JOIN django_content_type ct ON ct.id = p.content_type_id WHERE ct.app_label != 'tenant_migrate'"
)
SITES = "SELECT id, domain, name FROM django_site"
USERNAMES = "SELECT username FROM auth_user"
# Rows that post_migrate handlers write, with the tables each query needs.
DATA_QUERIES = {
    "content_types": (("django_content_type",), CONTENT_TYPES),
    "permissions": (("auth_permission", "django_content_type"), PERMISSIONS),
    "sites": (("django_site",), SITES),
}

T = TypeVar("T")


class ManagementModuleHandlersBug(Exception):
    """A post_migrate handler registered in an app's management module did not run."""


# -- the project ------------------------------------------------------------------------------


def make_realworld(base: Path, **env: str) -> Project:
    """A private copy of the real-world project, on SQLite unless ``env`` says otherwise."""
    root = base / "realworld"
    shutil.copytree(REALWORLD, root, ignore=shutil.ignore_patterns("*.sqlite3", "tenants", "__pycache__"))
    run_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "realworld_site.settings",
        "TM_DB_ENGINE": "sqlite",
        "TM_MASTER_SQLITE": str(base / "master.sqlite3"),
        "TM_TENANT_DIR": str(base / "tenants"),
        "TM_DATABASE_NAME": "{tenant_id}_db",
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    return Project(root, run_env)


def concurrently(*calls: Callable[[], T]) -> list[T]:
    """Run independent manage.py commands side by side (each in its own subprocess)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def app_order(migrate_stdout: str) -> list[str]:
    """Apps in the order Django's migrate first applied one of their migrations."""
    order: list[str] = []
    for app in re.findall(r"^  Applying (\w+)\.\w+\.\.\.", migrate_stdout, re.MULTILINE):
        if app not in order and app != REGISTRY_APP:
            order.append(app)
    return order


def describe(rows: list | None) -> str:
    return "has no such table" if rows is None else f"has {len(rows)} rows"


def differences(ours: dict[str, Any], django: dict[str, Any]) -> list[str]:
    """Readable differences between two states (dicts of row lists; None: table missing)."""
    lines: list[str] = []
    for key, want in django.items():
        got = ours.get(key)
        if got == want:
            continue
        if got is None or want is None:
            lines.append(f"{key}: tenant {describe(got)}; Django's {describe(want)}")
            continue
        only_ours = [row for row in got if row not in want]
        only_django = [row for row in want if row not in got]
        lines += [f"{key}: only in the tenant: {row}" for row in only_ours[:15]]
        lines += [f"{key}: only in Django's: {row}" for row in only_django[:15]]
        if not only_ours and not only_django:
            lines.append(f"{key}: the same rows in another order or number")
    return lines


def assert_same(ours: dict[str, Any], django: dict[str, Any], when: str) -> None:
    problems = differences(ours, django)
    assert not problems, f"{when}: the tenant differs from Django's own migrate:\n" + "\n".join(problems)


def failure_text(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {proc.returncode}\nstdout (end):\n{proc.stdout[-2000:]}\nstderr (end):\n{proc.stderr[-3000:]}"
    )


# A tenant in the round trip: how to run ``migratetenant <app> zero`` on it, and its state.
Tenant = tuple[Callable[[str], subprocess.CompletedProcess[str]], Callable[[], dict[str, Any]]]


def zero_every_app(
    apps: Iterable[str],
    tenants: dict[str, Tenant],
    django: Callable[[str], subprocess.CompletedProcess[str]],
    django_state: Callable[[], dict[str, Any]],
    skip_unapplied: bool = False,
) -> set[str]:
    """``<app> zero`` for each app on every tenant and on Django's side, all run side by side,
    each tenant compared with Django's database after each step.

    Both sides must agree on success; where Django refuses (an irreversible migration) each
    tenant must refuse too, naming the same migration, and stop at the same point. Returns the
    apps that Django could not take back to zero.
    """
    refused: set[str] = set()
    for app in apps:
        if skip_unapplied and app not in {row[0] for row in django_state()["history"]}:
            continue  # already unapplied, on both sides, by an earlier app's zero
        *results, want = concurrently(
            *(partial(run, app) for run, _ in tenants.values()), partial(django, app)
        )
        wanted = django_state()
        for (tenant, (_, state)), got in zip(tenants.items(), results, strict=True):
            if want.returncode != 0:
                reason = (want.stderr.strip().splitlines() or [""])[-1]
                assert got.returncode != 0, (
                    f"{tenant}: {app} zero: Django refused ({reason}), the tenant did not"
                )
                named = set(re.findall(r"\b\w+\.\d{4}\w*\b", reason))
                assert named and all(label in got.stderr for label in named), (
                    f"{tenant}: {app} zero: Django failed on {named}; the tenant said:\n{got.stderr}"
                )
            else:
                assert got.returncode == 0, (
                    f"{tenant}: {app} zero: Django succeeded, the tenant failed:\n{failure_text(got)}"
                )
            assert_same(state(), wanted, f"{tenant}: after '{app} zero'")
        if want.returncode != 0:
            refused.add(app)
    return refused


def assert_all_zero(state: dict[str, Any], refused: set[str]) -> None:
    left = {row[0] for row in state["history"]}
    assert left <= refused, f"apps still applied after zero: {sorted(left - refused)}"
    # Sanity: most of the 214 migrations must be gone (only irreversible ones stay).
    assert len(state["history"]) < 40, state["history"]


# -- SQLite -----------------------------------------------------------------------------------


def sqlite_rows(path: Path, query: str) -> list[tuple]:
    with closing(sqlite3.connect(path)) as conn:
        return sorted(conn.execute(query).fetchall())


def sqlite_state(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = {
        "schema": sqlite_schema(path, exclude_prefix=(REGISTRY_TABLES,)),
        "history": migration_rows(path, exclude_apps=(REGISTRY_APP,)),
    }
    tables = {name for kind, name, _ in state["schema"] if kind == "table"}
    for key, (needs, query) in DATA_QUERIES.items():
        state[key] = sqlite_rows(path, query) if set(needs) <= tables else None
    return state


def sqlite_migrate_all(project: Project, tenant_id: str) -> None:
    """``migratetenant`` for every app, in one run: all 214 migrations really applied, including
    django_celery_results 0010 (its TryRemoveIndex swallows "no such index": a custom operation,
    so Django applies it, as its own migrate does)."""
    out = project.manage("migratetenant", SKIP_CHECKS, f"--tenant-id={tenant_id}").stdout.splitlines()
    assert "  django_celery_results/0010_remove_duplicate_indices.py ... OK" in out


@dataclass
class SqliteWorld:
    project: Project
    plain: Path  # a database migrated by Django's own migrate (changed by the round trip)
    fresh: dict[str, Any]  # its state right after that migrate
    fresh_usernames: list[tuple]
    order: list[str]  # apps, in the order Django's migrate reached them


@pytest.fixture(scope="module")
def sqlite_world(tmp_path_factory: pytest.TempPathFactory) -> SqliteWorld:
    base = tmp_path_factory.mktemp("realworld-sqlite")
    project = make_realworld(base)
    plain = base / "plain.sqlite3"
    _, django = concurrently(
        partial(project.manage, "migrate", "--no-input"),
        partial(project.manage, "migrate", "--no-input", env={"TM_MASTER_SQLITE": str(plain)}),
    )
    fresh = sqlite_state(plain)
    assert len(fresh["history"]) >= 200, "the real-world project should have 200+ migrations"
    assert fresh["content_types"] and fresh["permissions"] and fresh["sites"]
    return SqliteWorld(project, plain, fresh, sqlite_rows(plain, USERNAMES), app_order(django.stdout))


def test_sqlite_fresh_tenant_in_one_run(sqlite_world: SqliteWorld) -> None:
    project = sqlite_world.project
    project.create_tenant("direct", "Direct", "--isolation=database")
    proc = project.manage("migratetenant", SKIP_CHECKS, "--tenant-id=direct", check=False)
    assert proc.returncode == 0, failure_text(proc)
    assert_same(sqlite_state(project.tenant_db("direct")), sqlite_world.fresh, "fresh tenant")


def test_sqlite_post_migrate_handlers_of_management_modules(sqlite_world: SqliteWorld) -> None:
    project = sqlite_world.project
    project.create_tenant("guarded", "Guarded", "--isolation=database")
    project.manage("migratetenant", SKIP_CHECKS, "--tenant-id=guarded", "guardian")
    assert sqlite_world.fresh_usernames == [("AnonymousUser",)]
    usernames = sqlite_rows(project.tenant_db("guarded"), USERNAMES)
    if usernames != sqlite_world.fresh_usernames:
        raise ManagementModuleHandlersBug(f"tenant: {usernames}, Django: {sqlite_world.fresh_usernames}")


def test_sqlite_tenant_matches_django_then_round_trips(sqlite_world: SqliteWorld) -> None:
    project, plain, fresh = sqlite_world.project, sqlite_world.plain, sqlite_world.fresh
    project.create_tenant("acme", "ACME Corporation", "--isolation=database")
    tenant = project.tenant_db("acme")
    sqlite_migrate_all(project, "acme")
    assert_same(sqlite_state(tenant), fresh, "fresh tenant")

    # Back to zero, app by app, those nothing depends on first.
    refused = zero_every_app(
        reversed(sqlite_world.order),
        {
            "acme": (
                lambda app: project.manage(
                    "migratetenant", SKIP_CHECKS, "--tenant-id=acme", app, "zero", check=False
                ),
                lambda: sqlite_state(tenant),
            )
        },
        lambda app: project.manage(
            "migrate",
            SKIP_CHECKS,
            "--no-input",
            app,
            "zero",
            "--database=default",
            env={"TM_MASTER_SQLITE": str(plain)},
            check=False,
        ),
        lambda: sqlite_state(plain),
    )
    assert_all_zero(sqlite_state(tenant), refused)

    # Forward again: both back to what a fresh migrate makes.
    concurrently(
        partial(sqlite_migrate_all, project, "acme"),
        partial(project.manage, "migrate", SKIP_CHECKS, "--no-input", env={"TM_MASTER_SQLITE": str(plain)}),
    )
    assert_same(sqlite_state(plain), fresh, "Django's database after its round trip")
    assert_same(sqlite_state(tenant), fresh, "after migrating forward again")


# -- PostgreSQL -------------------------------------------------------------------------------


def pg_state(dbname: str, schema: str = "public") -> dict[str, Any]:
    state: dict[str, Any] = catalog(dbname, schema, exclude_prefix=REGISTRY_TABLES)
    state["history"] = history(dbname, schema, exclude_apps=(REGISTRY_APP,))
    tables = {row[0] for row in state["tables"]}
    with connect(dbname) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        for key, (needs, query) in DATA_QUERIES.items():
            rows = conn.execute(query).fetchall() if set(needs) <= tables else None
            state[key] = None if rows is None else sorted(tuple(r) for r in rows)
    return state


def postgres_realworld(tmp_path: Path, pg_prefix: str) -> tuple[Project, str, str, str]:
    """The project on a shared PostgreSQL master, and Django's own migrate on a fresh database
    beside it (run concurrently): (project, master, plain, Django's migrate output)."""
    master, plain = f"{pg_prefix}shared", f"{pg_prefix}plain"
    create_database(master)
    create_database(plain)
    project = make_realworld(
        tmp_path,
        TM_DB_ENGINE="postgresql",
        TM_PG_NAME=master,
        TM_DATABASE_NAME=pg_prefix + "{tenant_id}_db",
        **pg_env(pg_prefix),
    )
    _, django = concurrently(
        partial(project.manage, "migrate", "--no-input"),
        partial(project.manage, "migrate", "--no-input", env={"TM_PG_NAME": plain}),
    )
    return project, master, plain, django.stdout


def test_postgres_both_isolations_match_django_then_round_trip(tmp_path: Path, pg_prefix: str) -> None:
    project, master, plain, django_stdout = postgres_realworld(tmp_path, pg_prefix)
    fresh = pg_state(plain)
    assert len(fresh["history"]) >= 200 and fresh["tables"] and fresh["permissions"] and fresh["sites"]
    public_before = catalog(master)

    project.create_tenant("acme", "ACME Corporation", "--isolation=database")
    project.create_tenant("globex", "Globex", "--isolation=schema")
    concurrently(
        partial(project.manage, "migratetenant", SKIP_CHECKS, "--tenant-id=acme"),
        partial(project.manage, "migratetenant", SKIP_CHECKS, "--tenant-id=globex"),
    )
    places = {"database": (f"{pg_prefix}acme_db", "public"), "schema": (master, "public_globex")}
    problems = [
        f"{mode} isolation: {line}"
        for mode, (dbname, schema) in places.items()
        for line in differences(pg_state(dbname, schema), fresh)
    ]
    assert not problems, "fresh tenants differ from Django's own migrate:\n" + "\n".join(problems)

    def tenant(tenant_id: str, dbname: str, schema: str) -> Tenant:
        def run(app: str) -> subprocess.CompletedProcess[str]:
            return project.manage(
                "migratetenant", SKIP_CHECKS, f"--tenant-id={tenant_id}", app, "zero", check=False
            )

        return run, partial(pg_state, dbname, schema)

    # Back to zero on both tenants (database and schema isolation) side by side with Django,
    # roots first: each app's zero also unapplies whatever depends on it (contenttypes takes
    # most of the project along), as Django does.
    tenants = {
        "acme (database)": tenant("acme", *places["database"]),
        "globex (schema)": tenant("globex", *places["schema"]),
    }
    refused = zero_every_app(
        app_order(django_stdout),
        tenants,
        lambda app: project.manage(
            "migrate",
            SKIP_CHECKS,
            "--no-input",
            app,
            "zero",
            "--database=default",
            env={"TM_PG_NAME": plain},
            check=False,
        ),
        lambda: pg_state(plain),
        skip_unapplied=True,
    )
    for dbname, schema in places.values():
        assert_all_zero(pg_state(dbname, schema), refused)

    concurrently(
        partial(project.manage, "migratetenant", SKIP_CHECKS, "--tenant-id=acme"),
        partial(project.manage, "migratetenant", SKIP_CHECKS, "--tenant-id=globex"),
        partial(project.manage, "migrate", SKIP_CHECKS, "--no-input", env={"TM_PG_NAME": plain}),
    )
    assert_same(pg_state(plain), fresh, "Django's database after its round trip")
    for mode, (dbname, schema) in places.items():
        assert_same(pg_state(dbname, schema), fresh, f"{mode} isolation: after migrating forward again")
    assert catalog(master) == public_before, "the shared database's public schema changed"


def test_postgres_migratealltenants_replay_matches_django(tmp_path: Path, pg_prefix: str) -> None:
    """Compile once, replay many, on 200+ real migrations: every tenant, whether it compiled,
    replayed or ran a step through Django, ends as Django's own migrate leaves a database."""
    project, master, plain, _ = postgres_realworld(tmp_path, pg_prefix)
    fresh = pg_state(plain)
    tenants = ["t1", "t2", "t3", "t4"]
    for tenant in tenants:
        project.create_tenant(tenant, tenant.upper(), "--isolation=schema")
    proc = project.manage("migratealltenants", SKIP_CHECKS, "--jobs=2", "--json")
    summary = json.loads(proc.stdout)["summary"]
    assert summary["migrated"] == len(tenants) and summary["failed"] == 0, summary
    assert summary["replayed"] > 100, summary
    for tenant in tenants:
        assert_same(pg_state(master, f"public_{tenant}"), fresh, f"tenant {tenant}")
