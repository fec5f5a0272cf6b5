"""Shared fixtures: a private copy of the example project, run as users run it (subprocesses).

The in-process Django used by planner tests is configured here too, on the example settings,
with its databases under a temporary folder so the repository is never written to.
"""

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
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "django_app"

_scratch = Path(tempfile.mkdtemp(prefix="tm-inprocess-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
os.environ.setdefault("TM_MASTER_SQLITE", str(_scratch / "master.sqlite3"))
os.environ.setdefault("TM_TENANT_DIR", str(_scratch / "tenants"))
sys.path.insert(0, str(EXAMPLE))

import django

django.setup()

from pgutil import pg_prefix  # noqa: F401  (fixture: a real PostgreSQL, per test)

# pytester runs the users' side of tenant_migrate.testing; the plugin itself is used in-process.
pytest_plugins = ["pytester", "tenant_migrate.testing"]


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
        project.manage("migrate", "--no-input")
    return project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


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
