"""Serialise Django's migration graph for the Rust planner.

Dependencies are resolved with Django's own ``check_key`` on a loader built without squash
replacement, exactly as ``MigrationLoader.build_graph`` resolves them before it replaces
anything; which squashes apply to a tenant is decided in Rust from that tenant's history.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.migrations import operations as ops
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration

from . import conf

GRAPH_FORMAT_VERSION = 1

# Operations whose SQL does not depend on the live catalog. Any other operation placed after
# another one in the same migration would introspect a catalog that the earlier operations'
# SQL (collected, not yet run) has not changed yet, so such migrations are applied by Django.
_CATALOG_INDEPENDENT = (
    ops.CreateModel,
    ops.DeleteModel,
    ops.AddField,
    ops.AddIndex,
    ops.RemoveIndex,
    ops.AddConstraint,
    ops.RemoveConstraint,
    ops.AlterModelOptions,
    ops.AlterModelManagers,
    ops.RunSQL,
)


class GraphError(ValueError):
    """The project's migrations cannot be run inside tenants as configured."""


def needs_django(migration: Migration) -> bool:
    """Whether Django must apply this migration itself instead of handing SQL to Rust."""
    if not migration.atomic:
        return True
    for index, operation in enumerate(migration.operations):
        if not operation.reduces_to_sql:
            return True
        if index > 0 and not isinstance(operation, _CATALOG_INDEPENDENT):
            return True
    return False


def serialize_graph(loader: MigrationLoader | None = None) -> dict[str, Any]:
    """The graph of tenant apps' migrations, as the Rust core's ``GraphSpec``."""
    if loader is None:
        loader = MigrationLoader(None, replace_migrations=False)
    migrations = []
    for key, migration in loader.disk_migrations.items():
        app = key[0]
        if not conf.is_tenant_app(app):
            continue
        dependencies = []
        for parent in migration.dependencies:
            if parent[0] == app:
                if parent[1] != "__first__":
                    dependencies.append(list(parent))
                continue
            resolved = loader.check_key(parent, app)
            if resolved is None:
                continue
            if not conf.is_tenant_app(resolved[0]):
                raise GraphError(
                    f"Migration {app}.{key[1]} depends on {resolved[0]}.{resolved[1]}, "
                    f"but app '{resolved[0]}' is not a tenant app "
                    "(add it to TENANT_MIGRATE['TENANT_APPS'])."
                )
            dependencies.append(list(resolved))
        run_before = []
        for child in migration.run_before:
            resolved = loader.check_key(child, app)
            if resolved is not None and conf.is_tenant_app(resolved[0]):
                run_before.append(list(resolved))
        migrations.append(
            {
                "app": app,
                "name": key[1],
                "dependencies": dependencies,
                "run_before": run_before,
                "replaces": [list(r) for r in migration.replaces],
                "initial": migration.initial,
                "atomic": migration.atomic,
                "needs_python": needs_django(migration),
            }
        )
    return {
        "version": GRAPH_FORMAT_VERSION,
        "migrations": migrations,
        "migrated_apps": sorted(a for a in loader.migrated_apps if conf.is_tenant_app(a)),
    }


def graph_json(loader: MigrationLoader | None = None) -> str:
    return json.dumps(serialize_graph(loader))
