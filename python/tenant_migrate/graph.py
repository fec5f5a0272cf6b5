"""Serialise Django's migration graph for the Rust planner.

``RawGraphLoader`` runs the first half of Django's ``MigrationLoader.build_graph`` (nodes,
internal then external dependencies, each resolved by Django's own ``check_key`` at the moment
Django resolves it) and stops before squash replacement and validation, which depend on a
tenant's history: those are decided in Rust, per tenant.
"""

from __future__ import annotations

import json
from typing import Any

import django
from django.db.migrations import operations as ops
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.operations.fields import FieldOperation
from django.db.migrations.operations.models import ModelOperation

from . import _core, conf
from .exceptions import TenantMigrateError

# The version of the graph's JSON form, which the core checks.
GRAPH_FORMAT_VERSION = _core.GRAPH_FORMAT_VERSION

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


class GraphError(TenantMigrateError, ValueError):
    """The project's migrations cannot be run inside tenants as configured."""


def _is_plain_django(operation: Any) -> bool:
    """One of Django's own operations, whose database effect is exactly the SQL it emits.

    A subclass or a third-party operation may do more than emit SQL (catch errors, register
    type handlers, read data), so its migration is applied by Django itself.
    """
    if not type(operation).__module__.startswith("django.db.migrations.operations."):
        return False
    if isinstance(operation, ops.SeparateDatabaseAndState):
        return all(_is_plain_django(o) for o in operation.database_operations)
    return True


def _models_read(operation: Any, app_label: str) -> list[tuple[str, str]] | None:
    """The models whose live catalog this operation may read (constraint names...), or None
    when that is unknown."""
    if isinstance(operation, ops.RenameIndex):
        return [(app_label, operation.model_name_lower)]
    if isinstance(operation, FieldOperation):
        models = [(app_label, operation.model_name_lower)]
        field = getattr(operation, "field", None)
        remote = getattr(field, "remote_field", None)
        if remote is not None:
            target = remote.model
            if isinstance(target, str):
                app, _, name = target.rpartition(".")
                models.append(((app or app_label), name.lower()))
            else:
                models.append((target._meta.app_label, target._meta.model_name))
        return models
    if isinstance(operation, ModelOperation):
        return [(app_label, operation.name_lower)]
    return None


def _noop_in(operation: Any, backwards: bool) -> bool:
    """A ``RunPython`` whose code in the direction run is Django's ``RunPython.noop``: it runs
    nothing on the database."""
    if type(operation) is not ops.RunPython:
        return False
    code = operation.reverse_code if backwards else operation.code
    return code is ops.RunPython.noop


def needs_python(migration: Migration, backwards: bool) -> bool:
    """Whether applying (or unapplying) this migration means running Python (RunPython, an
    operation that is not one of Django's own, or a non-atomic migration): Django applies it
    on every tenant.

    A ``RunPython`` whose code in that direction is ``RunPython.noop`` does
    not count: it runs no SQL and no code, so the migration's SQL is all of its effect
    (Django's many ``RunPython(forwards, RunPython.noop)`` cost nothing when unapplied)."""
    if not migration.atomic:
        return True
    return any(
        not _noop_in(op, backwards) and (not op.reduces_to_sql or not _is_plain_django(op))
        for op in migration.operations
    )


def order_sensitive(migration: Migration, backwards: bool) -> bool:
    """Whether SQL compiled for this migration in one go could differ from what Django runs.

    Django compiles a migration's SQL without running it; an operation that reads the live
    catalog (to find a constraint's name, say) then sees the catalog as it was before the
    migration. That is what Django would see too, unless an earlier operation of the same
    migration touched one of the models this operation reads. Such a migration is applied by
    Django on the first tenant, and the SQL Django actually ran there is what other tenants in
    the same state replay.
    """
    app = migration.app_label
    for index, operation in enumerate(migration.operations):
        if index == 0 or type(operation) in _CATALOG_INDEPENDENT or _noop_in(operation, backwards):
            continue
        models = _models_read(operation, app)
        if models is None:
            return True
        earlier = [prev for prev in migration.operations[:index] if not _noop_in(prev, backwards)]
        if any(prev.references_model(name, model_app) for prev in earlier for model_app, name in models):
            return True
    return False


def needs_django(migration: Migration, backwards: bool) -> bool:
    """Whether Django must apply this migration itself, in the direction given, instead of
    handing SQL to Rust."""
    return needs_python(migration, backwards) or order_sensitive(migration, backwards)


class RawGraphLoader(MigrationLoader):
    """Django's graph before squashes are applied and before it is validated.

    Dependencies on migrations that only a squash can stand for (their files deleted after
    squashing) stay dangling here, as in Django at that point; whether they are replaced is a
    per-tenant decision.
    """

    def __init__(self) -> None:
        self.resolved: dict[tuple[str, str], tuple[list[Any], list[Any]]] = {}
        super().__init__(None, replace_migrations=False)

    def build_graph(self) -> None:
        # Mirrors MigrationLoader.build_graph and add_external_dependencies (Django 4.2-5.2),
        # recording what check_key returns while the graph is still being built.
        self.load_disk()
        self.applied_migrations: dict[tuple[str, str], Any] = {}
        self.graph = MigrationGraph()
        self.replacements = {}
        for key, migration in self.disk_migrations.items():
            self.graph.add_node(key, migration)
            if migration.replaces:
                self.replacements[key] = migration
        for key, migration in self.disk_migrations.items():
            self.add_internal_dependencies(key, migration)
        for key, migration in self.disk_migrations.items():
            parents, children = [], []
            for dependency in migration.dependencies:
                if key[0] == dependency[0]:
                    continue
                parent = self.check_key(dependency, key[0])
                if parent is not None:
                    self.graph.add_dependency(migration, key, parent, skip_validation=True)
                    parents.append(parent)
            for before in migration.run_before:
                child = self.check_key(before, key[0])
                if child is not None:
                    self.graph.add_dependency(migration, child, key, skip_validation=True)
                    children.append(child)
            self.resolved[key] = (parents, children)


def serialize_graph(loader: MigrationLoader | None = None) -> dict[str, Any]:
    """The graph of tenant apps' migrations, as the Rust core's ``GraphSpec``."""
    if loader is None:
        loader = RawGraphLoader()
    resolved = getattr(loader, "resolved", None)
    migrations = []
    for key, migration in loader.disk_migrations.items():
        app = key[0]
        if not conf.is_tenant_app(app):
            continue
        dependencies = [
            list(parent) for parent in migration.dependencies if parent[0] == app and parent[1] != "__first__"
        ]
        if resolved is not None:
            external, children = resolved[key]
        else:
            external = [loader.check_key(p, app) for p in migration.dependencies if p[0] != app]
            children = [loader.check_key(c, app) for c in migration.run_before]
        for parent in external:
            if parent is None:
                continue
            if not conf.is_tenant_app(parent[0]):
                raise GraphError(
                    f"Migration {app}.{key[1]} depends on {parent[0]}.{parent[1]}, "
                    f"but app '{parent[0]}' is not a tenant app "
                    "(add it to TENANT_MIGRATE['TENANT_APPS'])."
                )
            dependencies.append(list(parent))
        run_before = [list(c) for c in children if c is not None and conf.is_tenant_app(c[0])]
        migrations.append(
            {
                "app": app,
                "name": key[1],
                "dependencies": dependencies,
                "run_before": run_before,
                "replaces": [list(r) for r in migration.replaces],
                "initial": migration.initial,
                "atomic": migration.atomic,
                "needs_python": needs_python(migration, backwards=False),
                "needs_python_backwards": needs_python(migration, backwards=True),
            }
        )
    return {
        "version": GRAPH_FORMAT_VERSION,
        "migrations": migrations,
        "migrated_apps": sorted(a for a in loader.migrated_apps if conf.is_tenant_app(a)),
        # Django 6.0 moved migration_plan's "reload without replacements" ahead of the
        # applied check, so an unapplied replaced migration is a valid target there.
        "reload_missing_targets": django.VERSION >= (6, 0),
    }


def graph_json(loader: MigrationLoader | None = None) -> str:
    return json.dumps(serialize_graph(loader))
