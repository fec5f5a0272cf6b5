#!/usr/bin/env bash
# Quick start, command 2: the whole test suite (Rust units, lints, pytest on SQLite and
# PostgreSQL). PostgreSQL tests need a server (TM_TEST_PG, default
# postgresql://postgres@127.0.0.1:5432/postgres); without one they are skipped with the reason,
# unless TM_REQUIRE_POSTGRES=1 (as in CI), which turns a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    maturin "Django>=5.2,<5.3" "pytest>=8" "hypothesis>=6" "psycopg[binary]>=3.1" ruff mypy
# Third-party apps with long migration histories, for the real-world differential tests.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -r tests/requirements-realworld.txt
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e .
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --quiet
ruff check python tests django_app bench
ruff format --check python tests django_app bench
python3 -m mypy.stubtest tenant_migrate._core
python3 -m pytest "$@"
