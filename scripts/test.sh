#!/usr/bin/env bash
# Quick start, command 2: the whole test suite. Rust units and lints first, then one release
# wheel (and an sdist) for the run, then pytest on every supported Django version through nox
# (Django 5.2, the whole suite; 4.2, and 6.0 where a Python 3.12+ interpreter is found, what
# depends on Django's version: see noxfile.py), each session in its own virtualenv with that
# wheel installed, two test processes each. Arguments go to pytest in every session (and then
# replace the selection).
# PostgreSQL tests need a server (TM_TEST_PG, default
# postgresql://postgres@127.0.0.1:5432/postgres); without one they are skipped with the reason,
# unless TM_REQUIRE_POSTGRES=1 (as in CI), which turns a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    maturin nox uv ruff mypy ziglang
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --quiet
ruff check python tests django_app bench noxfile.py
ruff format --check python tests django_app bench noxfile.py

# One wheel per run: tests/packaging/test_wheel.py and every nox session install this one. It
# is the release wheel: linked by zig for manylinux2014 (glibc 2.17+), so it installs on older
# distributions too, and checked for that policy by maturin.
dist=target/dist-test
rm -rf "$dist"
zig_dir="$(python3 -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))')"
PATH="$zig_dir:$PATH" maturin build --release --zig --compatibility manylinux2014 --quiet --out "$dist"
maturin sdist --out "$dist" >/dev/null
TM_WHEEL="$(realpath "$dist"/*.whl)"
TM_SDIST="$(realpath "$dist"/*.tar.gz)"
export TM_WHEEL TM_SDIST

# The typed stub against the compiled module, on this wheel: installing the package from the
# source tree instead (pip install -e .) was one more release build of the extension, ~3 min.
# Forced, as an earlier install of the same version (an editable one) would be kept; its
# dependencies (Django) then as usual.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --force-reinstall --no-deps "$TM_WHEEL"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$TM_WHEEL"
python3 -m mypy.stubtest tenant_migrate._core
# The package's own types against the stub (Django ships none: what it gives is Any here).
python3 -m mypy --ignore-missing-imports python/tenant_migrate

# Where no wheel fits, pip builds from the sdist with nothing but Rust and Python: done here
# once per run, in a bare virtualenv, and the extension it built imported. It compiles the
# extension from scratch, so it runs alongside the tests, which leave a core idle much of the
# time (subprocesses starting, the database); its outcome is checked, and its output printed,
# when they end. With Cargo's dev profile (MATURIN_PEP517_ARGS): what is checked here is that
# the sdist holds all a build needs; the release profile's build is the wheel's, above, and
# would take the tests' core for about 3 minutes.
python3 -m venv "$dist/sdist-venv"
(
    CARGO_TARGET_DIR="$PWD/target/sdist-build" MATURIN_PEP517_ARGS="--profile dev" \
        nice "$dist/sdist-venv/bin/pip" install --quiet --disable-pip-version-check "$TM_SDIST"
    "$dist/sdist-venv/bin/python" -c 'import tenant_migrate._core as core; print("sdist build:", core.__file__)'
) >"$dist/sdist.log" 2>&1 &
sdist_build=$!
trap 'kill "$sdist_build" 2>/dev/null || true' EXIT

# The primary version (the whole suite) first; see noxfile.py for what the others run.
sessions=("tests(django='5.2')" "tests(django='4.2')")
if python3 -c 'import sys, noxfile; sys.exit(0 if noxfile.PYTHON_FOR_DJANGO6 else 1)'; then
    sessions+=("django6")
else
    echo "Django 6.0: not tested, it needs Python 3.12+ and none was found."
fi
status=0
python3 -m nox --no-reuse-existing-virtualenvs -s "${sessions[@]}" -- "$@" || status=$?
if wait "$sdist_build"; then
    cat "$dist/sdist.log"
else
    cat "$dist/sdist.log"
    echo "The build from the sdist failed (above)."
    status=1
fi
trap - EXIT
exit "$status"
