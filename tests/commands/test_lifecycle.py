"""listtenants and deletetenant, run as users run them: SQLite files, PostgreSQL databases and
schemas dropped for real, the confirmation prompt on a terminal, and every registry row that
names storage the tenant does not own alone refused with nothing dropped."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from helpers.pg import HOST, PORT, catalog, connect, databases, history, schemas
from helpers.project import Project, make_tenant, pg_project, sqlite_schema
from helpers.spec import ALL_ROWS
from helpers.swapped import DJANGO_TENANTS, swapped_project
from tenant_migrate import _core, lifecycle
from tenant_migrate.connections import tenant_settings
from tenant_migrate.lookup import lookup
from tenant_migrate.params import rust_params

UNKNOWN = "Error: Tenant 'nope' does not exist.\nPlease create one with the tenant id 'nope' first.\n"
NEEDS_TERMINAL = "Error: deletetenant needs confirmation: run it on a terminal or pass --no-input.\n"
STILL = "tenant 'acme' is still registered"
KEEP_HINT = "Nothing was dropped or unregistered (--keep-data only unregisters the tenant)."


def on_terminal(project: Project, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """manage.py with standard input on a pseudo-terminal that types ``answer``."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=project.root,
            env=project.env,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(terminal)
        os.write(controller, answer.encode() + b"\n")
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        os.close(controller)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def refused(project: Project, tenant_id: str, *facts: str, env: dict[str, str] | None = None) -> str:
    """deletetenant refuses the tenant in one line naming ``facts`` (the refusal may come from
    deletetenant's own checks or from the registry checks every command applies)."""
    proc = project.manage("deletetenant", f"--tenant-id={tenant_id}", "--no-input", check=False, env=env)
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line, no traceback
    message = proc.stderr.strip()
    assert message.startswith("Error: ") and message.endswith(KEEP_HINT), message
    for fact in (f"'{tenant_id}'", *facts):
        assert fact in message, message
    return message


def registered(project: Project) -> list[str]:
    return [t["tenant_id"] for t in json.loads(project.manage("listtenants", "--json").stdout)]


def write_sqlite_row(project: Project, tenant_id: str, database_name: str) -> None:
    """A registry row written behind the commands' back."""
    with sqlite3.connect(project.env["TM_MASTER_SQLITE"]) as conn:
        conn.execute(
            "INSERT INTO tenant_migrate_tenant (tenant_id, name, isolation, database_name, schema_name, "
            "connection, created_at, updated_at) VALUES (?, ?, 'database', ?, '', '{}', "
            "datetime('now'), datetime('now'))",
            [tenant_id, tenant_id.title(), database_name],
        )


def write_pg_row(project: Project, tenant_id: str, isolation: str, name: str) -> None:
    database_name, schema_name = (name, "") if isolation == "database" else ("", name)
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        conn.execute(
            "INSERT INTO tenant_migrate_tenant (tenant_id, name, isolation, database_name, schema_name, "
            "connection, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, '{}', now(), now())",
            [tenant_id, tenant_id.title(), isolation, database_name, schema_name],
        )


def delete_pg_rows(project: Project, *tenant_ids: str) -> None:
    """Rows written behind the commands' back, taken away the same way (--keep-data, which can
    remove them too, is tested on SQLite)."""
    with connect(project.master) as conn:  # type: ignore[attr-defined]
        conn.execute("DELETE FROM tenant_migrate_tenant WHERE tenant_id = ANY(%s)", [list(tenant_ids)])


def test_sqlite_delete_drops_that_tenants_file_only(project: Project) -> None:
    project.create_tenant("acme")
    project.create_tenant("globex")
    project.manage("migratetenant", "--tenant-id=acme")
    project.manage("migratetenant", "--tenant-id=globex")
    acme, globex = project.tenant_db("acme"), project.tenant_db("globex")
    globex_before = (sqlite_schema(globex), globex.read_bytes())

    out = project.manage("deletetenant", "--tenant-id=acme", "--no-input").stdout
    assert out.splitlines() == [f"Dropped the database file {acme}.", "Tenant 'acme' unregistered."]
    # The file, and what SQLite and the run lock keep beside it; globex's own untouched.
    left = sorted(p.name for p in project.tenant_dir.iterdir())
    assert left == ["globex_db.sqlite3", "globex_db.sqlite3.migrate-lock"]
    assert (sqlite_schema(globex), globex.read_bytes()) == globex_before
    assert registered(project) == ["globex"]

    # An unknown tenant (acme included, now) gets the text every command gives.
    for tenant in ("nope", "acme"):
        gone = project.manage("deletetenant", f"--tenant-id={tenant}", "--no-input", check=False)
        assert gone.returncode == 1 and gone.stderr == UNKNOWN.replace("nope", tenant)
    assert project.manage("migratetenant", "--tenant-id=nope", check=False).stderr == UNKNOWN


def test_keep_data_and_missing_storage_unregister_only(project: Project) -> None:
    for tenant in ("acme", "globex"):
        project.create_tenant(tenant)
    acme, globex = project.tenant_db("acme"), project.tenant_db("globex")
    out = project.manage("deletetenant", "--tenant-id=acme", "--keep-data", "--no-input").stdout
    assert out.splitlines() == [f"Tenant 'acme' unregistered; its database file {acme} was kept."]
    assert acme.exists()

    globex.unlink()
    out = project.manage("deletetenant", "--tenant-id=globex", "--no-input").stdout
    assert out.splitlines() == [
        f"The database file {globex} does not exist: nothing to drop.",
        "Tenant 'globex' unregistered.",
    ]
    assert registered(project) == []


def test_prompt_names_what_is_dropped_and_needs_a_terminal(project: Project) -> None:
    project.create_tenant("acme")
    acme = project.tenant_db("acme")
    question = (
        f"This will permanently delete the database file {acme} and unregister tenant 'acme'. "
        "Type 'yes' to continue: "
    )
    # Standard input that is not a terminal (CI, a pipe): refused, not hung, not assumed.
    piped = project.manage("deletetenant", "--tenant-id=acme", check=False, input="yes\n")
    assert (piped.returncode, piped.stderr, piped.stdout) == (1, NEEDS_TERMINAL, "")

    no = on_terminal(project, "no", "deletetenant", "--tenant-id=acme")
    assert (no.returncode, no.stdout) == (1, question)
    assert no.stderr == f"Error: Deletion cancelled: nothing was dropped and {STILL}.\n"
    assert acme.exists() and registered(project) == ["acme"]

    yes = on_terminal(project, "yes", "deletetenant", "--tenant-id=acme")
    assert yes.returncode == 0, yes.stderr
    assert yes.stdout == f"{question}Dropped the database file {acme}.\nTenant 'acme' unregistered.\n"
    assert not acme.exists() and registered(project) == []


def test_sqlite_rows_naming_another_tenants_file_or_the_master_are_refused(project: Project) -> None:
    project.create_tenant("globex")
    project.manage("migratetenant", "--tenant-id=globex")
    globex = project.tenant_db("globex")
    write_sqlite_row(project, "evil", "globex_db")
    refused(project, "evil", str(globex), "'globex'")
    # The other way round too: globex cannot be dropped while another row names its file.
    refused(project, "globex", str(globex), "'evil'")
    # A tenant folder that is the master's own: the row naming master.sqlite3 is refused.
    master = Path(project.env["TM_MASTER_SQLITE"])
    write_sqlite_row(project, "master", "master")
    refused(project, "master", str(master), "master database", env={"TM_TENANT_DIR": str(master.parent)})
    assert master.exists() and globex.exists() and registered(project) == ["evil", "globex", "master"]
    # --keep-data drops nothing, so it can remove such rows.
    project.manage("deletetenant", "--tenant-id=evil", "--keep-data", "--no-input")
    project.manage("deletetenant", "--tenant-id=master", "--keep-data", "--no-input")
    assert globex.exists() and master.exists() and registered(project) == ["globex"]


def test_listtenants_table_and_json(project: Project) -> None:
    assert project.manage("listtenants").stdout == "No tenants.\n"
    assert json.loads(project.manage("listtenants", "--json").stdout) == []
    project.create_tenant("acme", "ACME Corporation")
    project.create_tenant("globex")
    project.create_tenant("initech")
    project.manage("migratetenant", "--tenant-id=acme")
    project.manage("migratetenant", "--tenant-id=globex", "users", "0001")
    project.tenant_db("initech").unlink()
    acme, globex, initech = (str(project.tenant_db(t)) for t in ("acme", "globex", "initech"))
    width = len(initech)
    assert project.manage("listtenants").stdout.splitlines() == [
        f"tenant   name              isolation  {'location':<{width}}  state",
        f"acme     ACME Corporation  database   {acme:<{width}}  up to date",
        f"globex   globex            database   {globex:<{width}}  3 pending migrations",
        f"initech  initech           database   {initech}  missing (database file {initech} does not exist)",
    ]
    report = json.loads(project.manage("listtenants", "--json").stdout)
    assert report[0] == {
        "tenant_id": "acme",
        "name": "ACME Corporation",
        "isolation": "database",
        "file": acme,
        "database": None,
        "schema": None,
        "host": None,
        "port": None,
        "exists": True,
        "state": "up-to-date",
        "applied": 4,
        "pending": [],
        "last_migration": "orders.0001_initial",
        "error": None,
    }
    assert (report[1]["state"], report[1]["applied"], len(report[1]["pending"])) == ("pending", 1, 3)
    assert (report[2]["exists"], report[2]["state"]) == (False, "missing")


def test_swapped_tenant_model_is_listed_and_deleted_through_the_model(tmp_path: Path) -> None:
    project = swapped_project(tmp_path, DJANGO_TENANTS)
    project.create_tenant("acme", "ACME Corporation")
    project.create_tenant("globex")
    listed = project.manage("listtenants").stdout.splitlines()
    assert [line.split()[0] for line in listed] == ["tenant", "acme", "globex"]
    out = project.manage("deletetenant", "--tenant-id=acme", "--no-input").stdout
    assert out.splitlines()[-1] == "Tenant 'acme' unregistered."
    assert not project.tenant_db("acme").exists() and project.tenant_db("globex").exists()
    with sqlite3.connect(tmp_path / "master.sqlite3") as conn:
        assert conn.execute("SELECT schema_name FROM customers_client").fetchall() == [("globex",)]


def test_postgres_database_isolation(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    shared = project.master  # type: ignore[attr-defined]
    for tenant in ("acme", "globex"):
        make_tenant(project, tenant, "database")
        project.manage("migratetenant", f"--tenant-id={tenant}")
    acme, globex = f"{pg_prefix}acme_db", f"{pg_prefix}globex_db"
    assert project.manage("listtenants").stdout.splitlines()[1:] == [
        f"acme    ACME Corporation  database   {acme}    up to date",
        f"globex  Globex            database   {globex}  up to date",
    ]
    globex_before = (catalog(globex), history(globex))

    # Rows naming the master (the shared database) or another tenant's database: refused.
    write_pg_row(project, "master", "database", shared)
    write_pg_row(project, "evil", "database", globex)
    write_pg_row(project, "system", "database", "postgres")
    refused(project, "master", shared, "master database")
    refused(project, "evil", globex, "'globex'")
    refused(project, "system", "postgres")
    delete_pg_rows(project, "master", "evil", "system")
    assert databases(pg_prefix) == sorted([acme, globex, shared])

    out = project.manage("deletetenant", "--tenant-id=acme", "--no-input").stdout
    dropped = f'Dropped the database "{acme}" on {HOST}:{PORT}.'
    assert out.splitlines() == [dropped, "Tenant 'acme' unregistered."]
    assert databases(pg_prefix) == sorted([globex, shared])
    assert (catalog(globex), history(globex)) == globex_before
    assert registered(project) == ["globex"]


def test_postgres_schema_isolation(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    shared = project.master  # type: ignore[attr-defined]
    for tenant in ("acme", "globex"):
        make_tenant(project, tenant, "schema")
        project.manage("migratetenant", f"--tenant-id={tenant}")
    assert project.manage("listtenants").stdout.splitlines()[1:] == [
        f"acme    ACME Corporation  schema     public_acme in {shared}    up to date",
        f"globex  Globex            schema     public_globex in {shared}  up to date",
    ]
    public_before, globex_before = catalog(shared), catalog(shared, "public_globex")

    write_pg_row(project, "public", "schema", "public")
    write_pg_row(project, "catalog", "schema", "pg_catalog")
    write_pg_row(project, "evil", "schema", "public_globex")
    refused(project, "public", "public", "schema")
    refused(project, "catalog", "pg_catalog", "schema")
    refused(project, "evil", "public_globex", "'globex'")
    delete_pg_rows(project, "public", "catalog", "evil")

    # CASCADE would reach an object of another schema that depends on the tenant's: refused.
    with connect(shared) as conn:
        conn.execute("CREATE TABLE public_globex.spy (user_id bigint REFERENCES public_acme.users_user (id))")
    where = f'in database "{shared}" on {HOST}:{PORT}'
    assert refused(project, "acme") == (
        f"Error: Refusing to drop the schema \"public_acme\" {where} for tenant 'acme': 1 object(s) outside "
        "it depend on it and DROP SCHEMA ... CASCADE would drop them (constraint spy_user_id_fkey on table "
        f"public_globex.spy). {KEEP_HINT}"
    )
    with connect(shared) as conn:
        conn.execute("DROP TABLE public_globex.spy")
    assert "public_acme" in schemas(shared)

    question = (
        f"This will permanently drop schema \"public_acme\" {where} and unregister tenant 'acme'. "
        "Type 'yes' to continue: "
    )
    no = on_terminal(project, "no", "deletetenant", "--tenant-id=acme")
    assert (no.returncode, no.stdout) == (1, question)
    assert history(shared, "public_acme") == ALL_ROWS

    out = project.manage("deletetenant", "--tenant-id=acme", "--no-input").stdout
    assert out.splitlines() == [f'Dropped the schema "public_acme" {where}.', "Tenant 'acme' unregistered."]
    assert "public_acme" not in schemas(shared)
    assert (catalog(shared), catalog(shared, "public_globex")) == (public_before, globex_before)
    assert history(shared, "public_globex") == ALL_ROWS
    assert registered(project) == ["globex"]


def test_a_tenant_being_migrated_is_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, through call_command: the tenant's run lock, held as a migration holds it."""
    call_command("migrate", interactive=False, verbosity=0)
    call_command("createtenant", tenant_id="busy", interactive=False, verbosity=0)
    settings_dict, _ = tenant_settings(lookup("busy"))
    path = Path(settings_dict["NAME"])
    with pytest.raises(CommandError, match=r"^deletetenant needs confirmation"):
        call_command("deletetenant", tenant_id="busy")  # pytest's standard input is no terminal
    monkeypatch.setattr(lifecycle, "LOCK_WAIT", 0.2)
    held = _core.RunLock(rust_params(settings_dict), "busy", 0)
    try:
        with pytest.raises(CommandError) as refusal:
            call_command("deletetenant", tenant_id="busy", interactive=False)
    finally:
        held.release()
    assert str(refusal.value) == (
        "A migration of tenant 'busy' is running: nothing was dropped or unregistered "
        "(try again when it has finished)."
    )
    assert path.exists() and lookup("busy").tenant_id == "busy"
    call_command("deletetenant", tenant_id="busy", interactive=False, verbosity=0)
    assert not path.exists()
    with pytest.raises(_core.TenantNotFound):
        lookup("busy")
