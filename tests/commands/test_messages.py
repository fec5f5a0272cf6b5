"""What a Django user meets first: one message for an id that can never exist, on every
command; the registry's absence, an unknown --database, an unreachable server named; --help
that documents every option."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from helpers.project import Project, make_project

SLUG_RULE = "1 to 63 characters: lower-case letters, digits, '_' and '-', starting with a letter or digit."
LONG = "a" * 300

# An id that can never exist, and the one line every command says of it.
NEVER = [
    ("a b", f"Error: Invalid tenant id 'a b': {SLUG_RULE}"),
    ("Acme", f"Error: Invalid tenant id 'Acme': {SLUG_RULE}"),
    (LONG, f"Error: Invalid tenant id {LONG[:40]!r}...: it is 300 bytes long; at most 63."),
    ("a\x01b", "Error: Invalid tenant id 'a\\x01b': it contains control characters."),
    ("", "Error: Invalid tenant id '': it is empty."),
]


def id_commands(tenant_id: str) -> list[tuple[str, ...]]:
    return [
        ("createtenant", f"--tenant-id={tenant_id}", "--no-input"),
        ("migratetenant", f"--tenant-id={tenant_id}"),
        ("migratetenant", f"--tenant-id={tenant_id}", "--sql"),
        ("migratealltenants", f"--tenant-id={tenant_id}"),
        ("migratealltenants", f"--exclude={tenant_id}"),
        ("showtenantmigrations", f"--tenant-id={tenant_id}"),
        ("showtenantmigrations", f"--exclude={tenant_id}"),
        ("deletetenant", f"--tenant-id={tenant_id}", "--no-input"),
        ("showmigrations", f"--database={tenant_id}"),
        ("migrate", f"--database={tenant_id}"),
    ]


def only_line(proc: object) -> str:
    assert proc.returncode == 1, (proc.args, proc.stdout, proc.stderr)  # type: ignore[attr-defined]
    assert "Traceback" not in proc.stderr and "usage:" not in proc.stderr, proc.stderr  # type: ignore[attr-defined]
    return proc.stderr  # type: ignore[attr-defined]


@pytest.mark.parametrize(("tenant_id", "message"), NEVER, ids=["space", "upper", "long", "control", "empty"])
def test_an_id_that_can_never_exist_has_one_message_on_every_command(
    project: Project, tenant_id: str, message: str
) -> None:
    project.create_tenant("acme")
    for args in id_commands(tenant_id):
        if args[0] in ("showmigrations", "migrate") and not tenant_id:
            continue  # --database= (empty) is Django's own default alias
        proc = project.manage(*args, check=False)
        assert only_line(proc) == message + "\n", args


def test_a_well_formed_unknown_id_does_not_exist_on_every_command(project: Project) -> None:
    project.create_tenant("acme")
    spec = "Error: Tenant 'nosuch' does not exist.\nPlease create one with the tenant id 'nosuch' first.\n"
    for args in id_commands("nosuch")[1:8]:
        assert only_line(project.manage(*args, check=False)) == spec, args


def test_a_registered_id_that_is_not_a_slug_is_still_found(project: Project) -> None:
    """Rows written before (or by a project's own model) need not be slugs: lookups find them."""
    project.create_tenant("acme")
    project.manage(
        "shell",
        "-c",
        "from tenant_migrate.models import Tenant\n"
        "Tenant.objects.filter(tenant_id='acme').update(tenant_id='Old Acme', database_name='acme_db')",
    )
    project.manage("migratetenant", "--tenant-id=Old Acme")
    shown = project.manage("showtenantmigrations", "--tenant-id=Old Acme", "--summary").stdout
    assert shown.splitlines()[1].startswith("Old Acme ")
    assert "[X]" in project.manage("showmigrations", "--database=Old Acme").stdout
    # Still refused as a new id.
    proc = project.manage("createtenant", "--tenant-id=Old Acme", "--no-input", check=False)
    assert only_line(proc) == f"Error: Invalid tenant id 'Old Acme': {SLUG_RULE}\n"


def test_createtenant_before_the_masters_migrate_says_run_migrate(tmp_path: Path) -> None:
    project = make_project(tmp_path, master=False)
    expected = (
        "Error: The tenant registry table 'tenant_migrate_tenant' does not exist in the master "
        "database. Run 'python manage.py migrate' first.\n"
    )
    for extra in ((), ("--migrate",)):
        proc = project.manage("createtenant", "--tenant-id=acme", "--no-input", *extra, check=False)
        assert only_line(proc) == expected
    # Asked before any question, as the other commands refuse at once.
    proc = project.manage("createtenant", check=False, input="acme\n")
    assert only_line(proc) == expected and proc.stdout == ""
    # The same words as the other commands.
    assert only_line(project.manage("migratetenant", "--tenant-id=acme", check=False)) == expected
    project.manage("migrate", "--no-input")
    project.create_tenant("acme")


def test_unknown_database_alias_is_one_line(project: Project) -> None:
    project.create_tenant("acme")
    for command in ("showmigrations", "migrate", "dbshell", "sqlmigrate"):
        args = (command, "--database=nosuch") + (("users", "0001") if command == "sqlmigrate" else ())
        proc = project.manage(*args, check=False)
        assert only_line(proc) == "Error: No database alias or tenant is named 'nosuch'.\n", command
    assert "[X]" in project.manage("showmigrations", "--database=default").stdout


def test_unknown_database_alias_before_the_masters_migrate(tmp_path: Path) -> None:
    project = make_project(tmp_path, master=False)
    proc = project.manage("showmigrations", "--database=acme", check=False)
    assert only_line(proc) == (
        "Error: No database alias is named 'acme', and there are no tenants yet: The tenant registry "
        "table 'tenant_migrate_tenant' does not exist in the master database. Run 'python manage.py "
        "migrate' first.\n"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("isolation", ["database", "schema"])
def test_a_connection_failure_names_the_host_and_port(tmp_path: Path, pg_prefix: str, isolation: str) -> None:
    from helpers.project import make_tenant, pg_project

    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", isolation)
    make_tenant(project, "globex", isolation)
    port = closed_port()
    where = f'server at "127.0.0.1", port {port}: '
    overrides = json.dumps({"HOST": "127.0.0.1", "PORT": port})
    project.manage(
        "shell",
        "-c",
        "from tenant_migrate.models import Tenant\n"
        f"Tenant.objects.filter(tenant_id='acme').update(connection={json.loads(overrides)!r})",
    )

    proc = project.manage("migratetenant", "--tenant-id=acme", check=False)
    lines = only_line(proc).splitlines()
    assert lines[0] == "Error: Cannot connect to tenant database"
    assert lines[1].startswith(where) and "refused" in lines[1].lower(), lines

    proc = project.manage("migratealltenants", "--json", check=False)
    assert proc.returncode == 1
    report = {t["tenant_id"]: t for t in json.loads(proc.stdout)["tenants"]}
    assert where in report["acme"]["error"] and report["globex"]["status"] != "failed"

    for args in (("showtenantmigrations", "--summary"), ("listtenants",)):
        out = project.manage(*args, check=False).stdout
        acme = next(line for line in out.splitlines() if line.startswith("acme"))
        assert f"error (Cannot connect to tenant database: {where}" in acme, (args, acme)

    proc = project.manage(
        "createtenant",
        "--tenant-id=far",
        f"--isolation={isolation}",
        f"--connection={overrides}",
        "--no-input",
        check=False,
    )
    assert f'"127.0.0.1", port {port} failed' in only_line(proc)


# --- --help ------------------------------------------------------------------------------

COMMANDS = (
    "createtenant",
    "migratetenant",
    "migratealltenants",
    "showtenantmigrations",
    "listtenants",
    "deletetenant",
)
# BaseCommand's options, Django's to document.
DJANGO_OPTIONS = {
    "-h",
    "--help",
    "--version",
    "-v",
    "--verbosity",
    "--settings",
    "--pythonpath",
    "--traceback",
    "--no-color",
    "--force-color",
    "--skip-checks",
}


READABLE_METAVARS = ("", "ID", "N", "SECONDS", "DURATION", "FILE", "NAME", "JSON", "{database,schema}")


def options_of(help_text: str) -> dict[str, tuple[str, str]]:
    """Each option of an argparse help's options section: (what follows the names, help text)."""
    section = help_text.split("\noptions:\n", 1)[1]
    entries: list[list[str]] = []
    for line in section.splitlines():
        if re.match(r"^  -", line):
            entries.append([line])
        elif line.startswith("    ") and entries:
            entries[-1].append(line)
        elif not line.strip():
            break
    found: dict[str, tuple[str, str]] = {}
    for entry in entries:
        head, _, same_line_help = entry[0].strip().partition("  ")
        text = " ".join([same_line_help.strip(), *(line.strip() for line in entry[1:])]).strip()
        for spec in head.split(", "):
            name, _, metavar = spec.partition(" ")
            found[name] = (metavar, text)
    return found


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """--help needs no database: one project, its master not even migrated."""
    return make_project(tmp_path_factory.mktemp("help"), master=False)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_documents_every_option(bare: Project, command: str) -> None:
    proc = bare.manage(command, "--help")
    options = {name: v for name, v in options_of(proc.stdout).items() if name not in DJANGO_OPTIONS}
    assert options, proc.stdout
    undocumented = [name for name, (_, text) in options.items() if not text]
    assert not undocumented, proc.stdout
    for name, (metavar, text) in options.items():
        # Metavars a user reads, not argparse's dest names (TENANT_IDS, JOBS_PER_SERVER).
        assert metavar in READABLE_METAVARS, (name, metavar)
        if metavar in ("N", "SECONDS", "DURATION") and name not in ("--limit", "--batch-size"):
            assert "default" in text.lower(), (name, text)
    if "--tenant-id" in options:
        assert options["--tenant-id"][0] == "ID"
    if "--jobs" in options:
        assert re.search(r"\(default: \d+[,)]", options["--jobs"][1]), options["--jobs"]


def test_help_shows_the_jobs_default_of_this_machine(bare: Project) -> None:
    text = " ".join(bare.manage("migratealltenants", "--help").stdout.split())
    assert re.search(r"--jobs N Tenants migrated concurrently \(default: \d+", text), text
    text = " ".join(bare.manage("showtenantmigrations", "--help").stdout.split())
    assert "(default: 8)" in text, text


# --- unreachable servers and a missing master ---------------------------------------------


def test_showmigrations_of_a_tenant_whose_server_is_unreachable_is_one_line(
    tmp_path: Path, pg_prefix: str
) -> None:
    from helpers.project import make_tenant, pg_project

    project = pg_project(tmp_path, pg_prefix)
    make_tenant(project, "acme", "database")
    port = closed_port()
    project.manage(
        "shell",
        "-c",
        "from tenant_migrate.models import Tenant\n"
        f"Tenant.objects.filter(tenant_id='acme').update(connection={{'HOST': '127.0.0.1', 'PORT': {port}}})",
    )
    proc = project.manage("showmigrations", "--database=acme", check=False)
    line = only_line(proc)
    assert line.count("\n") == 1 and line.startswith("Error: Cannot connect to tenant database 'acme': "), (
        line
    )
    assert f'"127.0.0.1", port {port}' in line, line


@pytest.mark.parametrize(
    "command", [("migratetenant", "--tenant-id=acme"), ("listtenants",), ("migratealltenants",)]
)
def test_an_unreachable_master_is_called_the_master(
    tmp_path: Path, pg_prefix: str, command: tuple[str, ...]
) -> None:
    from helpers.project import pg_project

    project = pg_project(tmp_path, pg_prefix)
    port = closed_port()
    proc = project.manage(*command, check=False, env={"TM_PG_HOST": "127.0.0.1", "TM_PG_PORT": str(port)})
    line = only_line(proc)
    assert line.startswith("Error: Cannot connect to the master database"), line
    assert "tenant database" not in line and f"port {port}" in line, line


@pytest.mark.parametrize(
    "command",
    [
        ("migratetenant", "--tenant-id=acme"),
        ("listtenants",),
        ("showtenantmigrations",),
        ("createtenant", "--tenant-id=acme", "--no-input"),
    ],
)
def test_a_missing_sqlite_master_file_says_so(tmp_path: Path, command: tuple[str, ...]) -> None:
    project = make_project(tmp_path, master=False)
    missing = tmp_path / "nowhere" / "master.sqlite3"
    proc = project.manage(*command, check=False, env={"TM_MASTER_SQLITE": str(missing)})
    assert only_line(proc) == (
        f"Error: The master database file {missing} does not exist. Run 'python manage.py migrate' "
        "first, or check DATABASES['default']['NAME'].\n"
    )
