"""The release wheel, installed as a user installs it: a fresh virtualenv without system site
packages, Django from PyPI, no Rust toolchain on PATH, no psycopg; then the quick start.

The wheel is ``TM_WHEEL`` (``scripts/test.sh`` builds one per run) or, without it, one built
here with maturin. The sdist is checked the same way (``TM_SDIST`` or ``maturin sdist``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import django
import pytest
from helpers.project import EXAMPLE, ROOT
from helpers.spec import SPEC_PLAN, SPEC_RUN

# scripts/test.sh builds manylinux2014 with zig; a plain `maturin build --release` gets the
# machine's own glibc policy (manylinux_2_34 here). Both are abi3 for CPython 3.10+.
WHEEL_NAME = re.compile(
    r"django_tenant_migrate-[\w.]+-cp310-abi3-(manylinux2014_x86_64\.)?manylinux_2_\d+_x86_64\.whl"
)


def built(kind: str, env_var: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get(env_var):
        return Path(os.environ[env_var])
    maturin = shutil.which("maturin")
    if maturin is None:
        pytest.skip(f"no {kind} to test: set {env_var} (scripts/test.sh does) or install maturin")
    out = tmp_path_factory.mktemp(kind)
    args = ["build", "--release"] if kind == "wheel" else ["sdist"]
    subprocess.run([maturin, *args, "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    return next(out.iterdir())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built("wheel", "TM_WHEEL", tmp_path_factory)


def test_wheel_is_one_abi3_manylinux_wheel_with_honest_metadata(wheel: Path) -> None:
    assert WHEEL_NAME.fullmatch(wheel.name), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "tenant_migrate/_core.abi3.so" in names
    assert {"tenant_migrate/py.typed", "tenant_migrate/_core.pyi"} <= set(names)
    assert "tenant_migrate/migrations/0001_initial.py" in names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    unconditional = [r for r in requires if "extra ==" not in r]
    assert [r.lower() for r in unconditional] == [
        "requires-dist: django>=4.2,<6.1",
        "requires-dist: rich>=13",
    ], requires
    assert any(r.startswith("Requires-Dist: psycopg") and "extra == 'postgres'" in r for r in requires)
    for classifier in ("Framework :: Django :: 4.2", "Framework :: Django :: 5.2"):
        assert f"Classifier: {classifier}" in metadata
    assert "Requires-Python: >=3.10" in metadata
    assert "Project-URL:" in metadata


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_wheel_installs_and_runs_the_quick_start_without_a_toolchain(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = str(env_dir / "bin" / "python")
    path = os.pathsep.join([str(env_dir / "bin"), "/usr/bin", "/bin"])
    for tool in ("cargo", "rustc", "maturin"):
        assert shutil.which(tool, path=path) is None, f"{tool} is on the test PATH"
    env = {"PATH": path, "HOME": str(tmp_path), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # --only-binary: nothing may be compiled; the Django of this test run, from PyPI.
    run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--only-binary=:all:",
            str(wheel),
            f"Django=={django.get_version()}",
        ],
        tmp_path,
        env,
    )
    run([python, "-m", "pip", "check"], tmp_path, env)
    where = run([python, "-c", "import tenant_migrate, sys; print(tenant_migrate.__file__)"], tmp_path, env)
    assert where.stdout.startswith(str(env_dir)), where.stdout
    missing = run([python, "-c", "import importlib.util as u; print(u.find_spec('psycopg'))"], tmp_path, env)
    assert missing.stdout.strip() == "None"

    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("*.sqlite3", "tenants", "__pycache__"))
    env |= {
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "TM_MASTER_SQLITE": str(tmp_path / "master.sqlite3"),
        "TM_TENANT_DIR": str(tmp_path / "tenants"),
    }
    # Every module imports with only Django installed (tenant_migrate.testing is a pytest
    # plugin: it needs pytest, which whoever loads it has).
    every_module = (
        "import django, importlib, pkgutil, tenant_migrate; django.setup(); "
        "names = [m.name for m in pkgutil.walk_packages(tenant_migrate.__path__, 'tenant_migrate.')]; "
        "[importlib.import_module(n) for n in names if n != 'tenant_migrate.testing']; print(len(names))"
    )
    assert int(run([python, "-c", every_module], project, env).stdout) > 20
    manage = [python, "manage.py"]
    run([*manage, "migrate", "--no-input", "--verbosity=0"], project, env)
    created = run(
        [*manage, "createtenant", "--tenant-id=acme", "--name=ACME Corporation", "--no-input"], project, env
    )
    assert created.stdout.startswith("Tenant 'acme' created (ACME Corporation, database isolation:")
    plan = run([*manage, "migratetenant", "--tenant-id=acme", "--plan"], project, env)
    assert plan.stdout.splitlines() == SPEC_PLAN.splitlines()
    migrated = run([*manage, "migratetenant", "--tenant-id=acme"], project, env)
    assert migrated.stdout.splitlines() == SPEC_RUN.splitlines()
    assert migrated.stderr == ""
    assert (tmp_path / "tenants" / "acme_db.sqlite3").exists()


def test_sdist_has_what_a_source_build_needs(tmp_path_factory: pytest.TempPathFactory) -> None:
    sdist = built("sdist", "TM_SDIST", tmp_path_factory)
    assert sdist.name.endswith(".tar.gz"), sdist.name
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    needed = {
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "src/lib.rs",
        "src/tenant.rs",
        "python/tenant_migrate/__init__.py",
        "python/tenant_migrate/_core.pyi",
        "python/tenant_migrate/py.typed",
        "PKG-INFO",
    }
    assert needed <= names, sorted(needed - names)
    assert not any(n.startswith(("target/", "dist/", ".nox/")) for n in names)


def test_this_run_uses_the_python_the_wheel_supports() -> None:
    assert sys.version_info >= (3, 10)
