#!/usr/bin/env bash
# Quick start, command 1: build the package into a virtualenv of its own (.venv-example at the
# repository root; no other Python is touched), then create tenant "acme" in the example project
# and migrate it on SQLite. Safe to re-run: the virtualenv is reused, later builds reuse Cargo's
# (so take far less time), and the example starts from fresh databases.
# PYTHON=python3.12 bash scripts/example.sh makes the virtualenv from another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$PWD/.venv-example"
PYTHON="${PYTHON:-python3}"

if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        echo "error: the example needs Python 3.10 or newer as '$PYTHON' (set PYTHON=...)." >&2
        exit 1
    fi
    echo "Creating a virtualenv for the example in .venv-example/ ..."
    rm -rf "$VENV"  # half made by an interrupted run
    if ! "$PYTHON" -m venv "$VENV"; then
        echo "error: '$PYTHON -m venv' failed (Debian and Ubuntu: apt install python3-venv)." >&2
        exit 1
    fi
fi

# pip shows nothing while Cargo compiles: say what is going on, and that it is still going on.
echo "Building the Rust extension (first time: about 3-9 minutes, more on a busy machine; later runs reuse the build)..."
log="$VENV/build.log"
started=$SECONDS
(
    waited=0
    while sleep 30 </dev/null >/dev/null 2>&1; do
        waited=$((waited + 30))
        printf '  still building (%dm%02ds so far; log: .venv-example/build.log)\n' $((waited / 60)) $((waited % 60))
    done
) &
ticker=$!
trap 'kill "$ticker" 2>/dev/null || true' EXIT
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check . >"$log" 2>&1; then
    kill "$ticker" 2>/dev/null || true
    echo "error: building or installing the package failed; the end of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
fi
kill "$ticker" 2>/dev/null || true
trap - EXIT
echo "Installed django-tenant-migrate into .venv-example/ in $((SECONDS - started))s."

python="$VENV/bin/python"
cd django_app
rm -rf master.sqlite3 tenants
"$python" manage.py migrate --no-input --verbosity 0
"$python" manage.py createtenant --tenant-id=acme --name="ACME Corporation" --no-input
"$python" manage.py migratetenant --tenant-id=acme --plan
"$python" manage.py migratetenant --tenant-id=acme
