"""migratetenant --sql: the SQL a run would execute, per migration, compared with Django's own
sqlmigrate for the same tenant, changing nothing."""

from __future__ import annotations

from pathlib import Path

from helpers.pg import catalog
from helpers.project import CONTRIB, Project, make_project, make_tenant, pg_project, sqlite_schema

MIGRATIONS = [
    ("users", "0001_initial"),
    ("users", "0002_alter_user_email"),
    ("products", "0001_initial"),
    ("orders", "0001_initial"),
]


def sections(stdout: str) -> dict[str, list[str]]:
    """``-- app/name.py`` header -> the lines under it."""
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for line in stdout.splitlines():
        if (line.startswith("-- ") and line.split(" ")[1].endswith(".py")) or line.startswith("-- Unapply "):
            current = result.setdefault(line.split(" -- ")[0][3:], [])
        else:
            current.append(line)
    return result


def test_sqlite_sql_is_sqlmigrates_migration_by_migration_and_changes_nothing(project: Project) -> None:
    project.create_tenant("acme")
    out = project.manage("migratetenant", "--tenant-id=acme", "--sql").stdout
    assert out.splitlines()[:2] == [
        "-- SQL for tenant 'acme' (nothing is executed):",
        "-- users/0001_initial.py",
    ]
    blocks = sections(out)
    assert list(blocks) == [f"{app}/{name}.py" for app, name in MIGRATIONS]
    for app, name in MIGRATIONS:
        if (app, name) == ("users", "0002_alter_user_email"):
            continue  # below: sqlmigrate orders the remade table's columns differently
        django = project.manage("sqlmigrate", app, name, "--database=acme").stdout.splitlines()
        assert blocks[f"{app}/{name}.py"] == django, (app, name)
    assert sqlite_schema(project.tenant_db("acme")) == [], "--sql must not create anything"

    project.manage("migratetenant", "--tenant-id=acme")
    # SQLite remakes the table for an AlterField. sqlmigrate renders the model from a fresh state
    # and lists "email" second; a real run (Django's migrate too) carries the state along and
    # appends it: --sql shows what the run executes, the table the run left proves it.
    remade = next(s for s in blocks["users/0002_alter_user_email.py"] if s.startswith('CREATE TABLE "new__'))
    table = dict((name, sql) for _, name, sql in sqlite_schema(project.tenant_db("acme")))["users_user"]
    assert remade.removesuffix(";").replace('"new__users_user"', '"users_user"') == table
    up_to_date = project.manage("migratetenant", "--tenant-id=acme", "--sql").stdout.splitlines()
    assert up_to_date == ["-- SQL for tenant 'acme' (nothing is executed):", "-- No migrations to apply."]
    # Backwards: sqlmigrate --backwards, in unapply order.
    back = sections(project.manage("migratetenant", "--tenant-id=acme", "--sql", "users", "0001").stdout)
    assert list(back) == ["Unapply orders/0001_initial.py", "Unapply users/0002_alter_user_email.py"]
    django = project.manage("sqlmigrate", "--backwards", "users", "0002", "--database=acme").stdout
    assert back["Unapply users/0002_alter_user_email.py"] == django.splitlines()
    assert len(sqlite_schema(project.tenant_db("acme"))) > 3


def test_python_steps_are_marked(tmp_path: Path) -> None:
    project = make_project(tmp_path, tenant_apps=CONTRIB)
    project.create_tenant("acme")
    out = project.manage("migratetenant", "--tenant-id=acme", "--sql", "auth").stdout
    lines = out.splitlines()
    mark = (
        "-- runs Python (RunPython or a non-SQL operation): applied through Django; "
        "what runs in Python cannot be shown as SQL"
    )
    python_step = "auth/0011_update_proxy_permissions.py"
    assert next(line for line in lines if python_step in line).endswith(mark)
    assert "-- THIS OPERATION CANNOT BE WRITTEN AS SQL" in out
    # contenttypes 0002's RunPython is RunPython.noop forwards: its SQL is all it runs.
    noop_forwards = "contenttypes/0002_remove_content_type_name.py"
    assert not next(line for line in lines if noop_forwards in line).endswith(mark)
    assert sqlite_schema(project.tenant_db("acme")) == []


def test_bad_combinations_are_one_error_line(project: Project) -> None:
    project.create_tenant("acme")
    for args, message in {
        ("--fake",): "Error: --sql cannot be combined with --fake.",
        ("--plan", "--check"): "Error: --sql cannot be combined with --plan, --check.",
    }.items():
        proc = project.manage("migratetenant", "--tenant-id=acme", "--sql", *args, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.splitlines()[0] == message
    proc = project.manage("migratetenant", "--tenant-id=nope", "--sql", check=False)
    assert proc.returncode == 1 and proc.stderr.splitlines()[0] == "Error: Tenant 'nope' does not exist."


def test_postgres_schema_tenant(tmp_path: Path, pg_prefix: str) -> None:
    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "schema")
    out = project.manage("migratetenant", "--tenant-id=acme", "--sql").stdout
    assert out.splitlines()[1] == '-- Each transaction starts with: SET LOCAL search_path TO "public_acme";'
    blocks = sections(out)
    for app, name in MIGRATIONS:
        django = project.manage("sqlmigrate", app, name, "--database=acme").stdout.splitlines()
        assert blocks[f"{app}/{name}.py"] == django, (app, name)
    assert catalog(project.master, "public_acme")["tables"] == []  # type: ignore[attr-defined]
