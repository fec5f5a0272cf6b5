"""The test suite on every supported Django version, each in its own virtualenv.

``nox`` runs them all; ``nox -s "tests(django='4.2')"`` runs one. Each session installs the
release wheel named by ``TM_WHEEL`` (``scripts/test.sh`` builds one per run), or builds one
with maturin, so the suite tests what users install.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
DJANGO = {"4.2": "Django>=4.2,<4.3", "5.2": "Django>=5.2,<5.3"}
TEST_DEPS = ["pytest>=8", "hypothesis>=6", "psycopg[binary]>=3.1"]

nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True

_built: list[str] = []


def wheel(session: nox.Session) -> str:
    if os.environ.get("TM_WHEEL"):
        return os.environ["TM_WHEEL"]
    if not _built:
        out = ROOT / "dist"
        shutil.rmtree(out, ignore_errors=True)
        session.run("maturin", "build", "--release", "--out", str(out), external=True)
        _built.append(str(next(out.glob("*.whl"))))
    return _built[0]


@nox.session
@nox.parametrize("django", list(DJANGO))
def tests(session: nox.Session, django: str) -> None:
    # One resolver run, so no third-party app of the real-world project drags in another Django.
    session.install(DJANGO[django], *TEST_DEPS, "-r", "tests/requirements-realworld.txt", wheel(session))
    session.run("python", "-c", "import django; print('Django', django.get_version())")
    # From the repository root but never from python/: the installed wheel is what is tested.
    session.run("python", "-m", "pytest", *session.posargs)
