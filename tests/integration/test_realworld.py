"""Differential tests on a "real-world" project: migratetenant against Django's own migrate.

The project (tests/projects/realworld) installs Django's contrib apps and popular third-party
apps with long migration histories: 302 migrations run inside each tenant. Every tenant is
compared with a fresh database that Django's ``migrate`` built from the same project: schema
(exact SQL on SQLite, the catalog on PostgreSQL), history, content types, permissions, sites,
and the rows that Wagtail's data migrations write through default managers (pages, sites,
collections, locales, workflows, groups and their permissions). Then every app goes back to
zero and forward again, on both sides, and they are compared after each step; before that,
Wagtail's admin goes back to zero alone and forward again, its reverse and forward data code
meeting the rows the rest of the project keeps. The master, which has the same tables
(TENANT_APPS is None), must not receive a single row of the tenants' runs.

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
from helpers.pg import catalog, connect, create_database, data, history, pg_env
from helpers.project import ROOT, Project, migration_rows, sqlite_schema
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
    "modelcluster",
    "oauth2_provider",
    "post_office",
    "rest_framework",
    "reversion",
    "taggit",
    "timezone_field",
    "waffle",
    "wagtail",
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
# Rows that Wagtail's data migrations write with default managers (``apps.get_model(...)
# .objects``): the squashed wagtailcore 0001-0016 (root and home pages, default site, the
# Moderators and Editors groups and their page permissions), 0025 (root collection), 0048
# (default workflow and approval task), 0054 (locale), 0086 (page permissions), and
# wagtailadmin 0001 (a content type, a permission and the groups' hold of it; its reverse
# deletes them). Keyed by natural keys (paths, names, codenames), not ids.
GROUPS = "SELECT name FROM auth_group"
GROUP_PERMISSIONS = (
    "SELECT g.name, ct.app_label, ct.model, p.codename FROM auth_group_permissions gp "
    "JOIN auth_group g ON g.id = gp.group_id JOIN auth_permission p ON p.id = gp.permission_id "
    "JOIN django_content_type ct ON ct.id = p.content_type_id"
)
PAGES = (
    "SELECT p.path, p.depth, p.numchild, p.title, p.draft_title, p.slug, p.url_path, p.live, "
    "ct.app_label, ct.model, l.language_code FROM wagtailcore_page p "
    "JOIN django_content_type ct ON ct.id = p.content_type_id "
    "JOIN wagtailcore_locale l ON l.id = p.locale_id"
)
WAGTAIL_SITES = (
    "SELECT s.hostname, s.port, s.site_name, s.is_default_site, p.url_path FROM wagtailcore_site s "
    "JOIN wagtailcore_page p ON p.id = s.root_page_id"
)
COLLECTIONS = "SELECT path, depth, numchild, name FROM wagtailcore_collection"
LOCALES = "SELECT language_code FROM wagtailcore_locale"
PAGE_PERMISSIONS = (
    "SELECT g.name, pg.url_path, p.codename FROM wagtailcore_grouppagepermission gpp "
    "JOIN auth_group g ON g.id = gpp.group_id JOIN wagtailcore_page pg ON pg.id = gpp.page_id "
    "JOIN auth_permission p ON p.id = gpp.permission_id"
)
WORKFLOW_TASKS = (
    "SELECT w.name, w.active, wt.sort_order, t.name, t.active, ct.app_label, ct.model "
    "FROM wagtailcore_workflowtask wt JOIN wagtailcore_workflow w ON w.id = wt.workflow_id "
    "JOIN wagtailcore_task t ON t.id = wt.task_id JOIN django_content_type ct ON ct.id = t.content_type_id"
)
WORKFLOW_PAGES = (
    "SELECT w.name, p.url_path FROM wagtailcore_workflowpage wp "
    "JOIN wagtailcore_workflow w ON w.id = wp.workflow_id JOIN wagtailcore_page p ON p.id = wp.page_id"
)
APPROVAL_GROUPS = (
    "SELECT t.name, g.name FROM wagtailcore_groupapprovaltask_groups tg "
    "JOIN wagtailcore_task t ON t.id = tg.groupapprovaltask_id JOIN auth_group g ON g.id = tg.group_id"
)
# Rows that post_migrate handlers and data migrations write, with the tables each query needs.
DATA_QUERIES = {
    "content_types": (("django_content_type",), CONTENT_TYPES),
    "permissions": (("auth_permission", "django_content_type"), PERMISSIONS),
    "sites": (("django_site",), SITES),
    "groups": (("auth_group",), GROUPS),
    "group_permissions": (
        ("auth_group_permissions", "auth_group", "auth_permission", "django_content_type"),
        GROUP_PERMISSIONS,
    ),
    "wagtail_pages": (("wagtailcore_page", "django_content_type", "wagtailcore_locale"), PAGES),
    "wagtail_sites": (("wagtailcore_site", "wagtailcore_page"), WAGTAIL_SITES),
    "wagtail_collections": (("wagtailcore_collection",), COLLECTIONS),
    "wagtail_locales": (("wagtailcore_locale",), LOCALES),
    "wagtail_page_permissions": (
        ("wagtailcore_grouppagepermission", "auth_group", "wagtailcore_page", "auth_permission"),
        PAGE_PERMISSIONS,
    ),
    "wagtail_workflow_tasks": (
        ("wagtailcore_workflowtask", "wagtailcore_workflow", "wagtailcore_task", "django_content_type"),
        WORKFLOW_TASKS,
    ),
    "wagtail_workflow_pages": (
        ("wagtailcore_workflowpage", "wagtailcore_workflow", "wagtailcore_page"),
        WORKFLOW_PAGES,
    ),
    "wagtail_approval_groups": (
        ("wagtailcore_groupapprovaltask_groups", "wagtailcore_task", "auth_group"),
        APPROVAL_GROUPS,
    ),
}
# The data-writing app that goes back to zero alone and forward again, the rest of the project
# staying: wagtailadmin, whose 0001 gets or creates a content type and a permission and gives
# it to Wagtail's groups, and whose reverse deletes it, all through default managers. (Cheap:
# five migrations. wagtailcore's own zero, 83 migrations, is in the SQLite round trip.)
CMS_APP = "wagtailadmin"

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


def differences(
    ours: dict[str, Any], django: dict[str, Any], names: tuple[str, str] = ("the tenant", "Django's")
) -> list[str]:
    """Readable differences between two states (dicts of row lists; None: table missing)."""
    lines: list[str] = []
    for key, want in django.items():
        got = ours.get(key)
        if got == want:
            continue
        if got is None or want is None:
            lines.append(f"{key}: {names[0]} {describe(got)}; {names[1]} {describe(want)}")
            continue
        only_ours = [row for row in got if row not in want]
        only_django = [row for row in want if row not in got]
        lines += [f"{key}: only in {names[0]}: {row}" for row in only_ours[:15]]
        lines += [f"{key}: only in {names[1]}: {row}" for row in only_django[:15]]
        if not only_ours and not only_django:
            lines.append(f"{key}: the same rows in another order or number")
    return lines


def assert_same(ours: dict[str, Any], django: dict[str, Any], when: str) -> None:
    problems = differences(ours, django)
    assert not problems, f"{when}: the tenant differs from Django's own migrate:\n" + "\n".join(problems)


def assert_master_untouched(now: dict[str, Any], before: dict[str, Any], when: str) -> None:
    """The master has the tenants' tables too (TENANT_APPS is None): code that reaches it
    instead of the tenant (a default manager, ``django.db.connection``) shows up here. Every
    row with its ids: a permission deleted and created again differs (its id does)."""
    problems = differences(now, before, names=("the master now", "the master before"))
    assert not problems, f"{when}: the tenants' runs changed the master:\n" + "\n".join(problems)


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
    # Sanity: most of the 302 migrations must be gone (only irreversible ones stay).
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


def sqlite_every_row(path: Path) -> dict[str, Any]:
    """A database's schema and every row of every table (ids included), the registry aside."""
    state: dict[str, Any] = {"schema": sqlite_schema(path, exclude_prefix=(REGISTRY_TABLES,))}
    tables = {name for kind, name, _ in state["schema"] if kind == "table"}
    with closing(sqlite3.connect(path)) as conn:
        for table in sorted(tables):
            state[table] = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
    return state


def pg_every_row(dbname: str) -> dict[str, Any]:
    """The public schema's catalog and every row of every table (ids included), the registry
    aside."""
    state: dict[str, Any] = {
        f"catalog: {key}": rows for key, rows in catalog(dbname, exclude_prefix=REGISTRY_TABLES).items()
    }
    state.update(
        (table, rows) for table, rows in data(dbname).items() if not table.startswith(REGISTRY_TABLES)
    )
    return state


def sqlite_migrate_all(project: Project, tenant_id: str) -> None:
    """``migratetenant`` for every app, in one run: all 302 migrations really applied, including
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
    master: Path
    master_before: dict[str, Any]  # the master's state before any tenant ran

    def assert_master_untouched(self, when: str) -> None:
        assert_master_untouched(sqlite_every_row(self.master), self.master_before, when)


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
    assert len(fresh["history"]) >= 300, "the real-world project should have 300+ migrations"
    assert all(fresh[key] for key in DATA_QUERIES), {key: rows for key, rows in fresh.items() if not rows}
    master = Path(project.env["TM_MASTER_SQLITE"])
    return SqliteWorld(
        project,
        plain,
        fresh,
        sqlite_rows(plain, USERNAMES),
        app_order(django.stdout),
        master,
        sqlite_every_row(master),
    )


def test_sqlite_post_migrate_handlers_of_management_modules(sqlite_world: SqliteWorld) -> None:
    project = sqlite_world.project
    project.create_tenant("guarded", "Guarded", "--isolation=database")
    project.manage("migratetenant", SKIP_CHECKS, "--tenant-id=guarded", "guardian")
    assert sqlite_world.fresh_usernames == [("AnonymousUser",)]
    usernames = sqlite_rows(project.tenant_db("guarded"), USERNAMES)
    if usernames != sqlite_world.fresh_usernames:
        raise ManagementModuleHandlersBug(f"tenant: {usernames}, Django: {sqlite_world.fresh_usernames}")
    sqlite_world.assert_master_untouched("after guardian's tenant")


def _sqlite_zero(sqlite_world: SqliteWorld, tenant_id: str) -> tuple[dict[str, Tenant], Any]:
    """``<app> zero`` on the tenant and on Django's database, for ``zero_every_app``."""
    project = sqlite_world.project
    tenant = project.tenant_db(tenant_id)
    tenants: dict[str, Tenant] = {
        tenant_id: (
            lambda app: project.manage(
                "migratetenant", SKIP_CHECKS, f"--tenant-id={tenant_id}", app, "zero", check=False
            ),
            lambda: sqlite_state(tenant),
        )
    }

    def django_zero(app: str) -> subprocess.CompletedProcess[str]:
        return sqlite_django(sqlite_world, app, "zero", "--database=default")

    return tenants, django_zero


def sqlite_django(sqlite_world: SqliteWorld, *args: str) -> subprocess.CompletedProcess[str]:
    """Django's own ``migrate`` on its database."""
    return sqlite_world.project.manage(
        "migrate",
        SKIP_CHECKS,
        "--no-input",
        *args,
        env={"TM_MASTER_SQLITE": str(sqlite_world.plain)},
        check=False,
    )


def sqlite_fresh_tenant(sqlite_world: SqliteWorld, tenant_id: str) -> Path:
    project = sqlite_world.project
    project.create_tenant(tenant_id, tenant_id, "--isolation=database")
    sqlite_migrate_all(project, tenant_id)
    tenant = project.tenant_db(tenant_id)
    assert_same(sqlite_state(tenant), sqlite_world.fresh, "fresh tenant")
    sqlite_world.assert_master_untouched("after a fresh tenant")
    return tenant


def test_sqlite_tenant_matches_django_then_cms_round_trips(sqlite_world: SqliteWorld) -> None:
    project, plain = sqlite_world.project, sqlite_world.plain
    tenant = sqlite_fresh_tenant(sqlite_world, "acme")
    tenants, django_zero = _sqlite_zero(sqlite_world, "acme")

    # Wagtail's admin alone back to zero and forward again, the rest of the project staying.
    assert not zero_every_app([CMS_APP], tenants, django_zero, lambda: sqlite_state(plain))
    assert CMS_APP not in {app for app, _ in sqlite_state(tenant)["history"]}
    sqlite_world.assert_master_untouched(f"after '{CMS_APP} zero'")
    ours, theirs = concurrently(
        partial(project.manage, "migratetenant", SKIP_CHECKS, "--tenant-id=acme", check=False),
        partial(sqlite_django, sqlite_world),
    )
    assert theirs.returncode == 0, f"Django: {failure_text(theirs)}"
    assert ours.returncode == 0, f"tenant: {failure_text(ours)}"
    assert_same(sqlite_state(tenant), sqlite_state(plain), f"after '{CMS_APP} zero' and forward again")
    sqlite_world.assert_master_untouched(f"after '{CMS_APP} zero' and forward again")


def test_sqlite_every_app_back_to_zero_and_forward_as_django(sqlite_world: SqliteWorld) -> None:
    """Every app back to zero, one at a time, those nothing depends on first, each step
    compared with Django's; then forward again. Run on the primary Django version only (see
    noxfile.py): about three minutes of subprocesses."""
    project, plain, fresh = sqlite_world.project, sqlite_world.plain, sqlite_world.fresh
    tenant = sqlite_fresh_tenant(sqlite_world, "roundtrip")
    tenants, django_zero = _sqlite_zero(sqlite_world, "roundtrip")

    refused = zero_every_app(reversed(sqlite_world.order), tenants, django_zero, lambda: sqlite_state(plain))
    assert_all_zero(sqlite_state(tenant), refused)

    # Forward again: both back to what a fresh migrate makes.
    concurrently(
        partial(sqlite_migrate_all, project, "roundtrip"),
        partial(project.manage, "migrate", SKIP_CHECKS, "--no-input", env={"TM_MASTER_SQLITE": str(plain)}),
    )
    assert_same(sqlite_state(plain), fresh, "Django's database after its round trip")
    assert_same(sqlite_state(tenant), fresh, "after migrating forward again")
    sqlite_world.assert_master_untouched("after the round trip")


# Django's own content-type and permission receivers, one app at a time, instead of the
# batched ones (TENANT_MIGRATE["BATCH_POST_MIGRATE"] in the project's settings).
DJANGO_RECEIVERS = {"TM_BATCH_POST_MIGRATE": "0"}
# The steps both tenants take, side by side: a first run that stops half way through
# Wagtail's history (content types for the models of that state only, so that the next run's
# new ones interleave), the rest, then Wagtail's admin back to zero (its reverse deletes a
# content type and a permission) and forward again.
RECEIVER_STEPS = (("wagtailcore", "0040"), (), (CMS_APP, "zero"), ())


# Columns whose values data migrations draw at random or from the clock.
DRAWN = {
    "auth_user": ("password", "date_joined"),
    "django_migrations": ("applied",),
    "wagtailcore_page": ("translation_key",),
}


def sqlite_rows_with_ids(path: Path) -> dict[str, Any]:
    """Every row of every table, ids included, but the columns in ``DRAWN``."""
    state: dict[str, Any] = {}
    with closing(sqlite3.connect(path)) as conn:
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith(REGISTRY_TABLES)
        ]
        for table in sorted(tables):
            drawn = DRAWN.get(table, ())
            columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")') if row[1] not in drawn]
            listed = ", ".join(f'"{column}"' for column in columns)
            state[table] = sorted(repr(row) for row in conn.execute(f'SELECT {listed} FROM "{table}"'))
    return state


def test_sqlite_batched_receivers_write_djangos_rows(sqlite_world: SqliteWorld) -> None:
    """The built-in post_migrate receivers batched (content types, permissions) against
    Django's own, on 40 published apps: every row the same, ids included, after each step."""
    project = sqlite_world.project
    project.create_tenant("batched", "Batched", "--isolation=database")
    project.create_tenant("receivers", "Django's receivers", "--isolation=database")
    batched, receivers = project.tenant_db("batched"), project.tenant_db("receivers")
    for step in RECEIVER_STEPS:
        ours, theirs = concurrently(
            partial(project.manage, "migratetenant", SKIP_CHECKS, "--tenant-id=batched", *step, check=False),
            partial(
                project.manage,
                "migratetenant",
                SKIP_CHECKS,
                "--tenant-id=receivers",
                *step,
                env=DJANGO_RECEIVERS,
                check=False,
            ),
        )
        assert theirs.returncode == 0, f"Django's receivers, {step}: {failure_text(theirs)}"
        assert ours.returncode == 0, f"batched, {step}: {failure_text(ours)}"
        got, want = sqlite_rows_with_ids(batched), sqlite_rows_with_ids(receivers)
        assert want["django_content_type"] and want["auth_permission"]
        problems = differences(got, want, names=("batched", "Django's receivers"))
        assert not problems, f"after {step or 'all'}:\n" + "\n".join(problems)
    sqlite_world.assert_master_untouched("after the batched receivers' tenants")


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


# Rows whose ids the built-in post_migrate receivers decide (with those referring to them).
ID_QUERIES = {
    "content_types": "SELECT id, app_label, model FROM django_content_type",
    "permissions": "SELECT id, content_type_id, codename, name FROM auth_permission",
    "group_permissions": "SELECT group_id, permission_id FROM auth_group_permissions",
    "page_types": "SELECT path, content_type_id FROM wagtailcore_page",
}


def pg_ids(dbname: str, schema: str) -> dict[str, list[tuple]]:
    with connect(dbname) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return {key: sorted(tuple(r) for r in conn.execute(query)) for key, query in ID_QUERIES.items()}


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
    assert len(fresh["history"]) >= 300 and fresh["tables"] and all(fresh[key] for key in DATA_QUERIES)
    public_before = catalog(master)
    master_before = pg_every_row(master)

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
    assert_master_untouched(pg_every_row(master), master_before, "after fresh tenants")

    def tenant(tenant_id: str, dbname: str, schema: str) -> Tenant:
        def run(app: str) -> subprocess.CompletedProcess[str]:
            return project.manage(
                "migratetenant", SKIP_CHECKS, f"--tenant-id={tenant_id}", app, "zero", check=False
            )

        return run, partial(pg_state, dbname, schema)

    tenants = {
        "acme (database)": tenant("acme", *places["database"]),
        "globex (schema)": tenant("globex", *places["schema"]),
    }

    def django_zero(app: str) -> subprocess.CompletedProcess[str]:
        return project.manage(
            "migrate",
            SKIP_CHECKS,
            "--no-input",
            app,
            "zero",
            "--database=default",
            env={"TM_PG_NAME": plain},
            check=False,
        )

    def all_forward() -> None:
        concurrently(
            partial(project.manage, "migratetenant", SKIP_CHECKS, "--tenant-id=acme"),
            partial(project.manage, "migratetenant", SKIP_CHECKS, "--tenant-id=globex"),
            partial(project.manage, "migrate", SKIP_CHECKS, "--no-input", env={"TM_PG_NAME": plain}),
        )

    # Wagtail's admin alone back to zero and forward again, its data code reading and writing
    # through default managers amid the rows the rest of the project keeps.
    assert not zero_every_app([CMS_APP], tenants, django_zero, lambda: pg_state(plain))
    assert_master_untouched(pg_every_row(master), master_before, f"after '{CMS_APP} zero'")
    all_forward()
    wanted = pg_state(plain)
    for mode, (dbname, schema) in places.items():
        assert_same(pg_state(dbname, schema), wanted, f"{mode} isolation: after '{CMS_APP} zero' and forward")
    assert_master_untouched(pg_every_row(master), master_before, f"after '{CMS_APP} zero' and forward again")

    # Back to zero on both tenants (database and schema isolation) side by side with Django,
    # roots first: each app's zero also unapplies whatever depends on it (contenttypes takes
    # most of the project along), as Django does.
    refused = zero_every_app(
        app_order(django_stdout), tenants, django_zero, lambda: pg_state(plain), skip_unapplied=True
    )
    for dbname, schema in places.values():
        assert_all_zero(pg_state(dbname, schema), refused)

    all_forward()
    assert_same(pg_state(plain), fresh, "Django's database after its round trip")
    for mode, (dbname, schema) in places.items():
        assert_same(pg_state(dbname, schema), fresh, f"{mode} isolation: after migrating forward again")
    assert catalog(master) == public_before, "the shared database's public schema changed"
    assert_master_untouched(pg_every_row(master), master_before, "after the round trip")


def test_postgres_migratealltenants_replay_matches_django(tmp_path: Path, pg_prefix: str) -> None:
    """Compile once, replay many, on 200+ real migrations: every tenant, whether it compiled,
    replayed or ran a step through Django, ends as Django's own migrate leaves a database."""
    project, master, plain, _ = postgres_realworld(tmp_path, pg_prefix)
    fresh = pg_state(plain)
    master_before = pg_every_row(master)
    # First, a tenant whose content types and permissions Django's own receivers write.
    project.create_tenant("t0", "T0", "--isolation=schema")
    project.manage("migratetenant", SKIP_CHECKS, "--tenant-id=t0", env=DJANGO_RECEIVERS)
    receivers = pg_ids(master, "public_t0")
    assert all(receivers.values()), receivers
    tenants = ["t1", "t2", "t3", "t4"]
    for tenant in tenants:
        project.create_tenant(tenant, tenant.upper(), "--isolation=schema")
    proc = project.manage("migratealltenants", SKIP_CHECKS, "--jobs=2", "--json")
    summary = json.loads(proc.stdout)["summary"]
    assert summary["migrated"] == len(tenants) and summary["failed"] == 0, summary
    assert summary["replayed"] > 100, summary
    for tenant in tenants:
        assert_same(pg_state(master, f"public_{tenant}"), fresh, f"tenant {tenant}")
        ids = pg_ids(master, f"public_{tenant}")
        problems = differences(ids, receivers, ("batched", "Django's receivers"))
        assert not problems, f"tenant {tenant}:\n" + "\n".join(problems)
    assert_master_untouched(pg_every_row(master), master_before, "after migratealltenants")
