"""The test suite on every supported Django version, each in its own virtualenv.

``nox`` runs them all; ``nox -s "tests(django='4.2')"`` runs one. Each session installs the
release wheel named by ``TM_WHEEL`` (``scripts/test.sh`` builds one per run), or builds one
with maturin, so the suite tests what users install.

The whole suite runs on the primary version (Django 5.2). The other versions run everything
whose outcome can depend on Django's version (the planner against Django's loader, every
command's output, Django's migrate, signals and third-party apps on SQLite) and leave out
what tests the Rust core, the PostgreSQL server or the package once for all versions (all of
``tests/production``: reliability, crash and fault injection, connection limits, a second
server, pgbouncer, hostile input, the rollout; the catalog fingerprint, the wheel, the suite's
layout, the real-world project on PostgreSQL and its every app back to zero one at a time).
Arguments after ``--`` replace that selection.
Tests run in two processes (pytest-xdist, whole files per process).

Django 6.0 needs Python 3.12+: its session, ``django6``, runs on the first ``python3.12`` or
``python3.13`` found (on PATH or among pyenv's versions); ``scripts/test.sh`` says when there
is none.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
DJANGO = {"4.2": "Django>=4.2,<4.3", "5.2": "Django>=5.2,<5.3"}
TEST_DEPS = ["pytest>=8", "hypothesis>=6", "psycopg[binary]>=3.1", "pytest-django>=4.8", "pytest-xdist>=3.5"]
PRIMARY = "5.2"
# Left out on the other versions: their outcome does not depend on Django's version. The whole
# of tests/production/ (run lock, timeouts, Ctrl-C, crash and fault injection, connection
# limits, a second server, pgbouncer, hostile input, the rollout's selection, waves and journal:
# the package and the Rust core against the server and the operating system); the catalog
# fingerprint (Rust against PostgreSQL's catalogs, both sides migrated by the same Django); the
# wheel; the suite's own layout; the real-world project on PostgreSQL; what draws our own
# output (the progress bar, the heartbeat, the run's summary: rich and threads, not Django);
# the second PostgreSQL isolation of the aliases test (database against schema is our
# connection's search path, not Django's); the real-world project's every app back to zero one
# at a time (about three minutes of subprocesses; the fresh tenant, Wagtail's admin back to
# zero and forward, and the batched receivers' steps still run on every version).
ONCE = [
    "--ignore=tests/production",
    "--ignore=tests/commands/test_progress.py",
    "--ignore=tests/commands/test_heartbeat.py",
    "--ignore=tests/commands/test_summary.py",
    "--deselect=tests/commands/test_aliases.py::test_postgres_tenant_aliases[database]",
    "--ignore=tests/planner/test_fingerprint.py",
    "--ignore=tests/packaging/test_wheel.py",
    "--ignore=tests/packaging/test_layout.py",
    "--deselect=tests/integration/test_realworld.py::test_postgres_both_isolations_match_django_then_round_trip",
    "--deselect=tests/integration/test_realworld.py::test_sqlite_every_app_back_to_zero_and_forward_as_django",
    "--deselect=tests/integration/test_realworld.py::test_postgres_migratealltenants_replay_matches_django",
]
PARALLEL = ["-n", "2", "--dist", "loadfile"]

nox.options.sessions = ["tests"]
# uv makes each session's virtualenv and installs into it in seconds (pip took about a
# minute a session); plain virtualenv and pip where uv is not installed. Compiled to bytecode
# at install, as pip does: the tests' subprocesses write no bytecode (PYTHONDONTWRITEBYTECODE),
# so without it every one of them compiled Django and the real-world apps anew, which made
# the Django 5.2 session twice as long.
nox.options.default_venv_backend = "uv|virtualenv"
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
nox.options.error_on_missing_interpreters = True

_built: list[str] = []


def python312_or_later() -> str | None:
    for version in ("3.12", "3.13"):
        found = shutil.which(f"python{version}") and _works(f"python{version}")
        if found:
            return found
        pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
        for candidate in sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}")):
            if _works(candidate):
                return candidate
    return None


def _works(python: str) -> str | None:
    # pyenv's shims exist for every version but fail for one that is not selected.
    import subprocess

    ok = subprocess.run([python, "-c", "pass"], capture_output=True, check=False).returncode == 0
    return shutil.which(python) if ok else None


PYTHON_FOR_DJANGO6 = python312_or_later()


def wheel(session: nox.Session) -> str:
    if os.environ.get("TM_WHEEL"):
        return os.environ["TM_WHEEL"]
    if not _built:
        out = ROOT / "dist"
        shutil.rmtree(out, ignore_errors=True)
        session.run("maturin", "build", "--release", "--out", str(out), external=True)
        _built.append(str(next(out.glob("*.whl"))))
    return _built[0]


def run_suite(session: nox.Session, django: str, primary: bool) -> None:
    # One resolver run, so no third-party app of the real-world project drags in another Django.
    session.install(django, *TEST_DEPS, "-r", "tests/requirements-realworld.txt", wheel(session))
    session.run("python", "-c", "import sys, django; print('Django', django.get_version(), sys.version)")
    selection = session.posargs or ([] if primary else ONCE)
    # From the repository root but never from python/: the installed wheel is what is tested.
    session.run("python", "-m", "pytest", *PARALLEL, *selection)


@nox.session
@nox.parametrize("django", list(DJANGO))
def tests(session: nox.Session, django: str) -> None:
    run_suite(session, DJANGO[django], primary=django == PRIMARY)


@nox.session(python=PYTHON_FOR_DJANGO6 or "3.12")
def django6(session: nox.Session) -> None:
    run_suite(session, "Django>=6.0,<6.1", primary=False)
