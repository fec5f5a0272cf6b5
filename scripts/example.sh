#!/usr/bin/env bash
# Quick start, command 1: build and install the package, then create tenant "acme" in the
# example project and migrate it on SQLite. Safe to re-run: it starts from fresh databases.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore .
cd django_app
rm -rf master.sqlite3 tenants
python3 manage.py migrate --no-input --verbosity 0
python3 manage.py createtenant --tenant-id=acme --name="ACME Corporation" --no-input
python3 manage.py migratetenant --tenant-id=acme --plan
python3 manage.py migratetenant --tenant-id=acme
