"""The package's import structure: no circle among module-level imports, and every module
importable on its own in a fresh interpreter (with the example project's settings, as
tests/conftest.py sets them up).

A circle only works while each of its modules is first imported from the "right" side; it
breaks, with a partly initialised module, as soon as one is imported alone (a command, a test,
a user's script). An import moved into a function only hides a circle (it breaks as soon as
someone moves it back up), so circles through such deferred imports are refused too.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tenant_migrate

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / "python"
PACKAGE = PYTHON / "tenant_migrate"
EXAMPLE = ROOT / "django_app"
INSTALLED = Path(tenant_migrate.__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PYTHON).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    """Every Python module of the package, Django's migration files excepted (Django imports
    them by itself, and they import nothing of ours)."""
    return {
        module_name(path): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.relative_to(PACKAGE).parts
    }


def _everywhere(body: list[ast.stmt]) -> list[ast.stmt]:
    """Every import statement of the module, deferred ones (inside functions) included."""
    return [
        node for stmt in body for node in ast.walk(stmt) if isinstance(node, (ast.Import, ast.ImportFrom))
    ]


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements run when the module is imported: the module body, and the bodies of its
    top-level ``if``/``try``/``with`` blocks (``if TYPE_CHECKING:`` excepted)."""
    found: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If):
            test = node.test
            if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            ):
                found.extend(_top_level(node.orelse))
                continue
            found.extend(_top_level(node.body) + _top_level(node.orelse))
        elif isinstance(node, ast.Try):
            inner = node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                inner += handler.body
            found.extend(_top_level(inner))
        elif isinstance(node, ast.With):
            found.extend(_top_level(node.body))
        else:
            found.append(node)
    return found


def imported_modules(name: str, path: Path, known: set[str], deferred: bool = False) -> set[str]:
    """The package's modules that importing ``name`` imports at module level (with
    ``deferred``, in its functions too), parent packages included: importing ``a.b.c`` runs
    ``a/__init__`` and ``a/b/__init__`` first."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in (_everywhere if deferred else _top_level)(tree.body):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets.add(module)
            # `from . import conf` imports the submodule conf.
            targets.update(f"{module}.{alias.name}" for alias in node.names)
    edges: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in known and prefix != name:
                edges.add(prefix)
    return edges


def import_graph(deferred: bool = False) -> dict[str, set[str]]:
    modules = package_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known, deferred) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan), each
    named as a path ``a -> b -> ... -> a``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_circle_in(graph, component) for component in components]


def _circle_in(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest circle through the first module of a strongly connected component."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return component  # unreachable for a strongly connected component


def test_the_cycle_finder_names_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve_to_package_modules() -> None:
    graph = import_graph()
    assert "tenant_migrate.registry" in graph["tenant_migrate.connections"]
    assert "tenant_migrate.run.shared" in graph["tenant_migrate.run.flow"]
    # Parent packages run first: importing run.flow imports run/__init__.
    assert "tenant_migrate.run" in graph["tenant_migrate.run.flow"]


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "Module-level import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_cycles_hidden_in_functions() -> None:
    cycles = find_cycles(import_graph(deferred=True))
    assert not cycles, "Import circles through deferred imports:\n" + "\n".join(
        " -> ".join(c) for c in cycles
    )


# Run in a fresh interpreter per module: import it alone after django.setup() (as a command,
# the test runner or a user's script would), then check that every exception class it defines
# derives from the package's one root (management.errors.Error is the CommandError boundary).
_IMPORT_ALONE = """
import importlib, inspect, sys
import django
django.setup()
name = sys.argv[1]
module = importlib.import_module(name)
from tenant_migrate.exceptions import TenantMigrateError
for attr, value in vars(module).items():
    if (
        inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == name
        and not issubclass(value, TenantMigrateError)
        and (name, attr) != ("tenant_migrate.management.errors", "Error")
    ):
        sys.exit(f"{name}.{attr} does not derive from TenantMigrateError")
"""


@pytest.mark.parametrize("module", sorted(package_modules()))
def test_module_imports_alone(module: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "TM_MASTER_SQLITE": str(tmp_path / "master.sqlite3"),
        "TM_TENANT_DIR": str(tmp_path / "tenants"),
        # The package this test process imported (the worktree's, or an installed one).
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(INSTALLED), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALONE, module],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"importing {module} alone failed:\n{proc.stderr[-3000:]}"
