"""Hostile input, generated: quotes, semicolons, NUL, newlines, terminal escapes, unicode, path
separators and very long strings, thrown at every argument and at the registry's fields.

Every run either succeeds or ends with a clear error (printable lines, no traceback); it never
touches another tenant, never creates a file outside the tenants' folder, and never reaches SQL
unquoted (a tenant whose schema name is an injection attempt gets exactly that schema).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from helpers.pg import admin, catalog
from helpers.project import pg_project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tenant_migrate import conf
from tenant_migrate.models import Tenant

PAYLOADS = [
    "acme'; DROP TABLE tenant_migrate_tenant; --",
    '"; DROP SCHEMA public CASCADE; --',
    "../../../../tmp/escaped",
    "..",
    "/etc/passwd",
    "a\\b",
    "acme\nError: forged line",
    "\x1b[31mred",
    "nul\x00byte",
    "ünïcødé-テナント",
    "x" * 300,
    " ",
    "",
    "sentinel",
    "%s%s%s",
    "{tenant_id}",
]
hostile = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(alphabet=st.sampled_from([*list("ab-_.'\";/\\ \x00\n\t%{}ü"), "テ"]), max_size=80),
    st.text(max_size=40),
)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


def run(command: str, **options: object) -> str | None:
    """Run a command in-process; None on success, the error message on a CommandError.
    Anything else (a traceback) fails the test."""
    try:
        call_command(command, stdout=io.StringIO(), stderr=io.StringIO(), interactive=False, **options)
    except CommandError as err:
        message = str(err)
        lines = message.splitlines()
        assert 1 <= len(lines) <= 3, message
        assert all(line.isprintable() for line in lines), repr(message)
        return message
    return None


def folder_state(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".migrate-lock")
    }


@pytest.fixture(scope="module")
def sentinel() -> Path:
    """The in-process project with a migrated tenant nobody may touch."""
    call_command("migrate", verbosity=0, interactive=False)
    Tenant.objects.filter(tenant_id__in=["sentinel", "victim"]).delete()
    folder = conf.sqlite_dir()
    for stem in ("sentinel_db", "victim_db"):
        (folder / f"{stem}.sqlite3").unlink(missing_ok=True)
    assert (
        run("createtenant", tenant_id="sentinel", name="Sentinel", isolation="database", migrate=True) is None
    )
    assert run("createtenant", tenant_id="victim", name="Victim", isolation="database", migrate=True) is None
    return folder / "sentinel_db.sqlite3"


def outside_files(folder: Path) -> set[str]:
    """Files a run could have created next to the tenants' folder (its parent)."""
    return {p.name for p in folder.parent.iterdir()}


VALID_ID = st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(tenant_id=st.one_of(hostile, VALID_ID), name=hostile, database_name=st.one_of(st.none(), hostile))
def test_createtenant_then_migratetenant(
    sentinel: Path, tenant_id: str, name: str, database_name: str | None
) -> None:
    folder = sentinel.parent
    before, around = folder_state(folder), outside_files(folder)
    tenants_before = set(Tenant.objects.values_list("tenant_id", flat=True))
    created = run(
        "createtenant", tenant_id=tenant_id, name=name, database_name=database_name, isolation="database"
    )
    migrated = run("migratetenant", tenant_id=tenant_id)
    after = folder_state(folder)
    assert after["sentinel_db.sqlite3"] == before["sentinel_db.sqlite3"]
    assert outside_files(folder) == around
    if created is None:
        assert migrated is None
        new = Tenant.objects.get(tenant_id=tenant_id)
        path = folder / f"{new.database_name}.sqlite3"
        assert path.resolve().parent == folder.resolve()
        assert set(after) - set(before) == {path.name}
        new.delete()
        path.unlink()
    else:
        assert set(Tenant.objects.values_list("tenant_id", flat=True)) == tenants_before
        assert after == before


@FUZZ
@given(
    app_label=st.one_of(st.none(), hostile, st.sampled_from(["users", "orders"])),
    migration=st.one_of(st.none(), hostile),
)
def test_migratetenant_targets(sentinel: Path, app_label: str | None, migration: str | None) -> None:
    before = folder_state(sentinel.parent)
    run("migratetenant", tenant_id="victim", app_label=app_label, migration_name=migration, plan=True)
    assert folder_state(sentinel.parent) == before  # --plan changes nothing, anywhere
    run("migratetenant", tenant_id="victim", app_label=app_label, migration_name=migration)
    assert folder_state(sentinel.parent)["sentinel_db.sqlite3"] == before["sentinel_db.sqlite3"]
    run("migratetenant", tenant_id="victim")  # back to the latest state for the next example


@FUZZ
@given(
    name=hostile,
    isolation=st.sampled_from(["database", "schema", "bogus", ""]),
    database_name=hostile,
    schema_name=hostile,
)
def test_registry_rows_written_behind_our_back(
    sentinel: Path, name: str, isolation: str, database_name: str, schema_name: str
) -> None:
    """Rows made through the ORM or admin skip createtenant's checks: the commands must still
    refuse what cannot be reached safely."""
    folder = sentinel.parent
    before, around = folder_state(folder), outside_files(folder)
    Tenant.objects.filter(tenant_id="forged").delete()
    Tenant.objects.create(
        tenant_id="forged",
        name=name[:200],
        isolation=isolation,
        database_name=database_name[:255],
        schema_name=schema_name[:63],
    )
    try:
        error = run("migratetenant", tenant_id="forged")
    finally:
        Tenant.objects.filter(tenant_id="forged").delete()
    after = folder_state(folder)
    assert after["sentinel_db.sqlite3"] == before["sentinel_db.sqlite3"]
    assert outside_files(folder) == around
    if error is None:
        # Reached a database inside the folder: it existed already (migratetenant never
        # creates one), so it can only be one of the tenants' own files.
        assert set(after) == set(before)


PG_NAMES = st.one_of(
    st.sampled_from([p for p in PAYLOADS if "\x00" not in p]),
    st.text(alphabet=st.sampled_from([*list("ab_'\"; -.AZ/"), "ü", "テ"]), min_size=1, max_size=70),
)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(schema_name=PG_NAMES)
def test_postgres_schema_names(tmp_path_factory: pytest.TempPathFactory, schema_name: str) -> None:
    """A schema name is used exactly as given (quoted) or refused; nothing else changes."""
    prefix = f"tmt_h{abs(hash(schema_name)) % 10**9}_"
    from helpers.pg import drop_databases, require_server

    require_server()
    try:
        project = pg_project(tmp_path_factory.mktemp("pg"), prefix)
        db = project.master  # type: ignore[attr-defined]
        project.create_tenant("sentinel", "Sentinel", "--isolation=schema", "--migrate")
        sentinel_before = catalog(db, "public_sentinel")
        with admin() as conn:
            conn.execute("SELECT 1")
        schemas_before = _schemas(db)
        proc = project.manage(
            "createtenant",
            "--tenant-id=hostile",
            "--name=Hostile",
            "--isolation=schema",
            f"--schema-name={schema_name}",
            "--migrate",
            "--no-input",
            check=False,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        new = _schemas(db) - schemas_before
        if proc.returncode == 0:
            assert new == {schema_name}
            assert {r[0] for r in catalog(db, schema_name)["columns"]} >= {"users_user", "orders_order"}
        else:
            assert proc.stderr.startswith("Error: "), proc.stderr
            assert all(line.isprintable() for line in proc.stderr.splitlines())
            assert new == set()
        assert catalog(db, "public_sentinel") == sentinel_before
    finally:
        drop_databases(prefix)


def _schemas(db: str) -> set[str]:
    from helpers.pg import connect

    with connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
