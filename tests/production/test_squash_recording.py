"""A squash's history rows are written together, or not at all.

Django records a squash as one row per migration it replaces, each its own autocommit
statement when the migration's transaction is already over (the schema editor had deferred
SQL, as foreign keys and indexes give on PostgreSQL; a non-atomic migration; ``--fake``). Seen
for real on the real-world project: a failure after wagtailcore's squash's first row left its
tables in their final shape and only ``0001_initial`` recorded, and every later run then
applied ``0002_initial_data`` on those tables and failed. Here the executor a tenant's run
uses records on a database of its own, and the second row fails as a lost connection would.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.db import OperationalError, connections
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from tenant_migrate.run.shared import Shared

ALIAS = "squash_recording"


class Squash(Migration):
    replaces = [("products", "0001_initial"), ("products", "0002_stock"), ("products", "0003_index")]


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[object]:
    settings = copy.deepcopy(connections.settings["default"])
    settings["NAME"] = str(tmp_path / "tenant.sqlite3")
    connections.settings[ALIAS] = settings
    try:
        yield connections[ALIAS]
    finally:
        connections[ALIAS].close()
        del connections[ALIAS]
        del connections.settings[ALIAS]


def record(executor: Any, migration: Migration) -> None:
    """Django's ``record_migration`` as the executor calls it after applying ``migration``."""
    if django.VERSION >= (6, 0):  # by name, the migration looked up among those on disk
        executor.loader.disk_migrations[(migration.app_label, migration.name)] = migration
        executor.record_migration(migration.app_label, migration.name)
    else:
        executor.record_migration(migration)


def rows(connection: object) -> list[tuple[str, str]]:
    recorder = MigrationRecorder(connection)
    return list(recorder.migration_qs.order_by("id").values_list("app", "name"))


def test_a_squash_whose_second_row_fails_leaves_none_of_its_rows(connection, monkeypatch) -> None:
    executor = Shared().executor(connection)
    executor.recorder.ensure_schema()
    written = []
    record_applied = executor.recorder.record_applied

    def fails_second(app: str, name: str) -> None:
        if written:
            raise OperationalError("server closed the connection unexpectedly")
        record_applied(app, name)
        written.append(name)

    monkeypatch.setattr(executor.recorder, "record_applied", fails_second)
    with pytest.raises(OperationalError):
        record(executor, Squash("0001_squashed_0003_index", "products"))
    assert written == ["0001_initial"]  # written, then taken back with the rest
    assert rows(connection) == []


def test_a_squash_records_every_replaced_migration_in_order(connection) -> None:
    executor = Shared().executor(connection)
    executor.recorder.ensure_schema()
    record(executor, Squash("0001_squashed_0003_index", "products"))
    # Django 6.0 records the squash's own row after them.
    own = [("products", "0001_squashed_0003_index")] if django.VERSION >= (6, 0) else []
    assert rows(connection) == [*Squash.replaces, *own]
    record(executor, Migration("0004_more", "products"))
    assert rows(connection)[-1] == ("products", "0004_more")
