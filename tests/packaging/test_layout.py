"""The test suite's own layout: no test module imports another test module, nor conftest.

What tests share lives in ``tests/helpers`` (and fixtures in ``tests/conftest.py``). A test
module imported by another drags its tests, fixtures and import-time work along, breaks when
either file moves, and under ``--import-mode=importlib`` is a second copy of that module;
conftest imported by name runs twice (Django set up again).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _forbidden(module: str) -> bool:
    return any(part.startswith("test_") or part == "conftest" for part in module.split("."))


def forbidden_imports(source: str) -> list[str]:
    """The test modules (or conftest) a source imports, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _forbidden(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if _forbidden(module):
                found.append(module)
            else:
                # `from commands import test_aliases` imports a test module too.
                joint = "" if module.endswith(".") else "."
                found += [f"{module}{joint}{a.name}" for a in node.names if a.name.startswith("test_")]
    return found


def suite_files() -> list[Path]:
    # tests/projects holds Django projects the tests run, not tests.
    return sorted(p for p in TESTS.rglob("*.py") if p.relative_to(TESTS).parts[0] != "projects")


def test_no_test_module_imports_another_test_module_or_conftest() -> None:
    offenders = {
        str(path.relative_to(TESTS)): names
        for path in suite_files()
        if (names := forbidden_imports(path.read_text()))
    }
    assert not offenders, f"import these from tests/helpers instead: {offenders}"


def test_the_check_sees_every_form_of_import() -> None:
    source = """
import test_postgres
from test_reliability import popen
from conftest import Project
from commands.test_aliases import make_tenant
from planner import test_fingerprint
from . import test_wheel

def late():
    from test_swappable import swapped_project
"""
    assert sorted(forbidden_imports(source)) == [
        ".test_wheel",
        "commands.test_aliases",
        "conftest",
        "planner.test_fingerprint",
        "test_postgres",
        "test_reliability",
        "test_swappable",
    ]
    allowed = "import json\nfrom helpers.project import make_project\nfrom tenant_migrate import testing\n"
    assert forbidden_imports(allowed) == []


def test_the_suite_is_found_in_its_folders() -> None:
    # The check above reads the files pytest collects: a moved or renamed folder shows here.
    folders = {p.parent.name for p in suite_files() if p.name.startswith("test_")}
    assert {"commands", "planner", "production", "integration", "packaging"} <= folders
