"""Runs caught in the middle: a manage.py process started in the background, a migration that
signals when it starts (a marker file) and then runs long, and a wait for that signal."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from helpers.project import Project, make_project

# A migration that signals when it starts (a marker file) and then runs long, issuing a query
# every 50 ms, so a run can be caught in the middle of it.
SLOW_PYTHON = """
import os
import time

from django.db import migrations


def slow(apps, schema_editor):
    User = apps.get_model("users", "User")
    User.objects.using(schema_editor.connection.alias).create(username="inside-0003", email="x@example.com")
    open(os.environ["TM_MARKER"], "w").close()
    for _ in range(int(os.environ.get("TM_SLOW_TICKS", "60"))):
        User.objects.using(schema_editor.connection.alias).count()
        time.sleep(0.05)


class Migration(migrations.Migration):
    dependencies = [("users", "0002_alter_user_email")]
    operations = [migrations.RunPython(slow, migrations.RunPython.noop)]
"""

BUSY = "Error: another migration is running for tenant 'acme'"


def popen(project: Project, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=project.root,
        env={**project.env, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(
    condition: Callable[[], object],
    proc: subprocess.Popen[str],
    what: str,
    timeout: float = 60,
    detail: Callable[[], object] = lambda: "",
) -> None:
    """Wait for ``condition`` while ``proc`` runs; fail if it ends first or ``timeout`` passes
    (saying ``detail()`` then, such as what the server's sessions are doing)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process ended before {what}:\n{out}\n{err}")
        assert time.monotonic() < deadline, f"never: {what}: {detail()}"
        time.sleep(0.05)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    wait_until(path.exists, proc, f"{path.name} appeared", timeout)


def slow_project(tmp_path: Path, source: str = SLOW_PYTHON) -> tuple[Project, Path]:
    project = make_project(tmp_path)
    project.add_migration("users", "0003_slow", source)
    marker = tmp_path / "marker"
    project.env["TM_MARKER"] = str(marker)
    return project, marker


# Long enough for several beats at --heartbeat=0.2 on any machine, short enough for a test.
SLOW_SQL = (
    "CREATE TABLE big AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
    "WHERE x < 3000000) SELECT x FROM c"
)


def slow_migration(project: Project, through_django: bool) -> None:
    # A function of its own: RunPython.noop in the direction run is compiled to SQL, not Django's.
    python = "        migrations.RunPython(through_django),\n" if through_django else ""
    project.add_migration(
        "products",
        "0002_big",
        "from django.db import migrations\n\n"
        "def through_django(apps, schema_editor):\n"
        "    pass\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0001_initial')]\n"
        "    operations = [\n" + python + f"        migrations.RunSQL({SLOW_SQL!r}, 'DROP TABLE big'),\n"
        "    ]\n",
    )
