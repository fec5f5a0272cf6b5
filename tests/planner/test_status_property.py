"""showtenantmigrations' list against Django's own ``showmigrations`` code, on the planner
property test's random graphs and histories (squashes used, partly applied, unrecorded...).

Django is the oracle: ``showmigrations.Command.show_list`` itself runs, with its loader reading
the case instead of the disk and its recorder returning the case's rows (as in
``test_planner_property``). The Rust side reads the same rows from a real SQLite
``django_migrations`` table through ``_core.tenant_status``, and the list is printed by
``status.list_lines``, as the command prints it.
"""

from __future__ import annotations

import io
import json
import sqlite3
import tempfile
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from django.core.management.base import OutputWrapper
from django.core.management.color import no_style
from django.core.management.commands import showmigrations
from django.db.migrations.exceptions import CircularDependencyError, NodeNotFoundError
from helpers.graph_cases import (  # noqa: F401  (oracle_environment: autouse fixture)
    Case,
    CaseLoader,
    cases,
    event,
    oracle_environment,
    production_graph,
)
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from tenant_migrate import _core
from tenant_migrate.status import Standing, list_lines

SCRATCH = Path(tempfile.mkdtemp(prefix="tm-status-property-"))


def django_list(case: Case) -> list[str] | str:
    """What Django's showmigrations prints for the case, or the error it raises."""
    connection = SimpleNamespace(alias="default", recorded=list(case.recorded))
    command = showmigrations.Command(stdout=io.StringIO(), no_color=True)
    command.verbosity = 1
    out = io.StringIO()
    command.stdout = OutputWrapper(out)
    command.style = no_style()
    with mock.patch.object(
        showmigrations, "MigrationLoader", lambda conn, **kwargs: CaseLoader(case, conn, **kwargs)
    ):
        try:
            command.show_list(connection)
        except (NodeNotFoundError, CircularDependencyError) as exc:
            return type(exc).__name__
    return out.getvalue().splitlines()


def history_file(rows: list[tuple[str, str]]) -> str:
    path = SCRATCH / "tenant.sqlite3"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute(
            'CREATE TABLE "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
            '"app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL)'
        )
        conn.executemany(
            "INSERT INTO django_migrations (app, name, applied) VALUES (?, ?, '2026-01-01 00:00:00')", rows
        )
    conn.close()
    return json.dumps({"vendor": "sqlite", "path": str(path)})


def rust_list(case: Case, graph: dict) -> list[str] | str:
    apps = sorted(graph["migrated_apps"])
    status = _core.tenant_status(json.dumps(graph), [history_file(case.recorded)], apps)[0]
    if status.state == "error" and not status.apps:
        return status.error_kind or "error"
    standing = Standing("t", "t", status.state, history=status.history, apps=status.apps)
    return list_lines(standing, 1, no_style())


def check_case(case: Case) -> None:
    expected = django_list(case)
    try:
        graph = production_graph(case)
    except (NodeNotFoundError, CircularDependencyError, ValueError) as exc:
        # Production refuses the graph before any tenant is read: nothing to list.
        event(f"production refuses the graph ({type(exc).__name__}); Django: {str(expected)[:20]}")
        return
    got = rust_list(case, graph)
    if isinstance(expected, str):
        event(f"django refuses: {expected}")
        assert got == "plan", (expected, got)
        return
    marks = {line[:4] for line in expected if line.startswith(" [")}
    event(f"marks: {' '.join(sorted(marks))}")
    assert got == expected


@hsettings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases())
def test_list_matches_djangos_showmigrations(case: Case) -> None:
    check_case(case)
