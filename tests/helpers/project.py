"""A private copy of the example project (``django_app/``) in a temporary folder, driven
through manage.py in subprocesses as users run it, on SQLite or on a real PostgreSQL server;
and the SQLite files it leaves, read back."""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import termios
import time
import uuid
from pathlib import Path

from helpers.pg import TEMPLATE_PREFIX, create_database, drop_database, pg_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "django_app"
# The apps Django's own migrate gives a tenant in the differential tests.
CONTRIB = "contenttypes,auth,users,products,orders"


class Project:
    """A copy of the example project in a temporary folder, driven through manage.py."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env
        self.tenant_dir = Path(env["TM_TENANT_DIR"])

    def manage(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        run_env = {**self.env, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=run_env,
            capture_output=True,
            check=False,
            text=True,
            input=input,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def add_migration(self, app: str, name: str, source: str) -> None:
        (self.root / app / "migrations" / f"{name}.py").write_text(source)

    def tenant_db(self, tenant_id: str) -> Path:
        return self.tenant_dir / f"{tenant_id}_db.sqlite3"

    def in_terminal(self, *args: str, width: int = 100, env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run manage.py with stdout and stderr on one pseudo-terminal ``width`` columns wide:
        its exit status and everything it wrote there."""
        controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, width, 0, 0))
        run_env = {k: v for k, v in self.env.items() if k not in ("COLUMNS", "LINES")}
        proc = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env={**run_env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=terminal,
        )
        os.close(terminal)
        chunks = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end closed: the command is done
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(controller)
        return proc.wait(timeout=60), b"".join(chunks).decode()

    def create_tenant(self, tenant_id: str, name: str | None = None, *extra: str) -> None:
        self.manage(
            "createtenant", f"--tenant-id={tenant_id}", f"--name={name or tenant_id}", "--no-input", *extra
        )


def make_project(
    tmp_path: Path, tenant_apps: str | None = None, master: bool = True, shared_apps: str | None = "all"
) -> Project:
    """A private copy of the example project. The master gets every app by default (tenant apps
    too), as plain Django's ``migrate`` does: a differential reference is then Django's own
    result, and a tenant's row written into the master lands in a table there and is caught.
    ``shared_apps=None`` keeps the package's default (tenant-only apps out of the master)."""
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("*.sqlite3", "tenants", "__pycache__"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "TM_MASTER_SQLITE": str(tmp_path / "master.sqlite3"),
        "TM_TENANT_DIR": str(tmp_path / "tenants"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if tenant_apps is not None:
        env["TM_TENANT_APPS"] = tenant_apps
    if shared_apps is not None:
        env["TM_SHARED_APPS"] = shared_apps
    project = Project(root, env)
    if master:
        _migrate_sqlite_master(project)
    return project


def pg_project(tmp_path: Path, prefix: str, tenant_apps: str | None = None) -> Project:
    master = f"{prefix}shared"
    project = make_project(tmp_path, tenant_apps=tenant_apps, master=False)
    project.env.update(pg_env(prefix))
    project.env.update(
        {
            "TM_DB_ENGINE": "postgresql",
            "TM_PG_NAME": master,
            "TM_DATABASE_NAME": prefix + "{tenant_id}_db",
        }
    )
    project.master = master  # type: ignore[attr-defined]
    _migrate_pg_master(project, master)
    return project


# A project's master, migrated: `manage.py migrate` the first time for a given environment (the
# apps, the engine), in each test process; later projects get a copy of what it left, a SQLite
# file or a PostgreSQL database made from it as a template: 2-4 s less per test, hundreds of
# times a run. The copy is what migrate would have left (same Django, same apps, same example
# migrations: a test adds its own only once make_project has returned). What differs from one
# test to the next (its folders, its database names) is no part of the key.
_PER_TEST = {"TM_MASTER_SQLITE", "TM_TENANT_DIR", "TM_PG_NAME", "TM_DATABASE_NAME", "PYTEST_CURRENT_TEST"}
_sqlite_masters: dict[frozenset[tuple[str, str]], Path] = {}
_pg_masters: dict[frozenset[tuple[str, str]], str] = {}


def _environment(project: Project) -> frozenset[tuple[str, str]]:
    return frozenset((k, v) for k, v in project.env.items() if k not in _PER_TEST)


def _migrate_sqlite_master(project: Project) -> None:
    master = Path(project.env["TM_MASTER_SQLITE"])
    key = _environment(project)
    if key in _sqlite_masters:
        shutil.copyfile(_sqlite_masters[key], master)
        return
    project.manage("migrate", "--no-input")
    template = Path(tempfile.mkdtemp(prefix="tm-migrated-master-")) / "master.sqlite3"
    shutil.copyfile(master, template)
    _sqlite_masters[key] = template


def _migrate_pg_master(project: Project, master: str) -> None:
    key = _environment(project)
    if key in _pg_masters:
        create_database(master, template=_pg_masters[key])
        return
    create_database(master)
    project.manage("migrate", "--no-input")
    template = f"{TEMPLATE_PREFIX}{uuid.uuid4().hex[:10]}"
    create_database(template, template=master)
    _pg_masters[key] = template


def drop_migrated_masters() -> None:
    """This test process's migrated masters (at the end of its session)."""
    for template in _pg_masters.values():
        drop_database(template)
    _pg_masters.clear()
    for path in _sqlite_masters.values():
        shutil.rmtree(path.parent, ignore_errors=True)
    _sqlite_masters.clear()


def make_tenant(project: Project, tenant_id: str, isolation: str, *extra: str) -> None:
    name = "ACME Corporation" if tenant_id == "acme" else tenant_id.title()
    project.create_tenant(tenant_id, name, f"--isolation={isolation}", *extra)


def tenant_location(project: Project, prefix: str, tenant_id: str, isolation: str) -> tuple[str, str]:
    if isolation == "database":
        return f"{prefix}{tenant_id}_db", "public"
    return project.master, f"public_{tenant_id}"  # type: ignore[attr-defined]


def sqlite_schema(path: Path, exclude_prefix: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """Every schema object of a SQLite file with its exact SQL (sqlite_sequence aside)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
    return [r for r in rows if not r[1].startswith(exclude_prefix)]


def migration_rows(path: Path, exclude_apps: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT app, name FROM django_migrations ORDER BY app, name").fetchall()
    return [r for r in rows if r[0] not in exclude_apps]
