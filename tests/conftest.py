"""Shared fixtures: a private copy of the example project, run as users run it (subprocesses),
and a real PostgreSQL per test. What the tests share besides fixtures is in ``helpers/``
(importable as ``helpers`` from any folder: pyproject's ``pythonpath``).

The in-process Django used by planner tests is configured here too, on the example settings,
with its databases under a temporary folder so the repository is never written to.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from helpers.project import EXAMPLE, Project, drop_migrated_masters, make_project

_scratch = Path(tempfile.mkdtemp(prefix="tm-inprocess-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
os.environ.setdefault("TM_MASTER_SQLITE", str(_scratch / "master.sqlite3"))
os.environ.setdefault("TM_TENANT_DIR", str(_scratch / "tenants"))
sys.path.insert(0, str(EXAMPLE))

import django

django.setup()

from helpers.pg import finish_drops, pg_prefix  # noqa: F401  (pg_prefix: a real PostgreSQL, per test)

# pytester runs the users' side of tenant_migrate.testing; the plugin itself is used in-process.
pytest_plugins = ["pytester", "tenant_migrate.testing"]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


def pytest_sessionfinish() -> None:
    finish_drops()
    drop_migrated_masters()
