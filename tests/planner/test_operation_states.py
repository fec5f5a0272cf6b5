"""The states a migration Django applies runs its operations on, computed once per history group.

``operation_states`` must hand each operation exactly what ``Migration.apply`` hands it: the
same models before and after every operation, and, for a ``RunPython``, apps that hold what
Django's fresh render of its ``from_state`` holds, with no model still pointing at a class an
earlier reload replaced (Django re-renders a delayed state there; ours is rendered once and
shared by every tenant). Checked on the example project's real migrations, in plan order, the
state carried from one migration to the next as ``migrate`` carries it, with ``RunPython``
operations inserted at random places, and migrations of a synthetic app inserted between them:
a chain of foreign keys A -> B -> C whose models gain fields (an ``AddField`` reloads lazily:
B is rendered again, A still points at the old B until a full render). In-process, nothing executed: every
``database_forwards`` is replaced by a recorder.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, models
from django.db.migrations import operations
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.operations.special import RunPython
from django.db.migrations.state import ProjectState
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tenant_migrate.run.operation_states import applied_on, operation_states, shareable

CONNECTION = connections["default"]
EXECUTOR = MigrationExecutor(CONNECTION)
PLAN = [m for m, _ in EXECUTOR.migration_plan(EXECUTOR.loader.graph.leaf_nodes(), clean_start=True)]


def models_of(state: ProjectState) -> dict[Any, Any]:
    return {key: model.clone() for key, model in state.models.items()}


def apps_summary(apps: Any) -> tuple[dict[str, list[tuple[str, str, str | None]]], list[str]]:
    """Every model's fields with the model each relation points to, and the relations pointing
    at a class that is no longer the registry's (a stale render)."""
    models, stale = {}, []
    for model in apps.get_models(include_auto_created=True):
        fields = []
        for field in model._meta.get_fields(include_hidden=True):
            related = field.related_model
            if related is not None and not isinstance(related, str):
                if apps.get_model(related._meta.label) is not related:
                    stale.append(f"{model._meta.label}.{field.name}")
                related = related._meta.label_lower
            fields.append((field.name, type(field).__name__, related))
        models[model._meta.label_lower] = sorted(fields)
    return models, stale


@contextmanager
def recording(migration: Migration, seen: list[tuple[Any, Any, Any]]) -> Iterator[None]:
    """Each operation's database_forwards records what Django's apply hands it."""

    def recorder(operation: Any) -> Any:
        def database_forwards(app_label: str, editor: Any, from_state: Any, to_state: Any) -> None:
            render = None
            if isinstance(operation, RunPython):
                from_state.clear_delayed_apps_cache()  # as RunPython.database_forwards does
                render = apps_summary(from_state.apps)
            seen.append((models_of(from_state), models_of(to_state), render))

        return database_forwards

    for operation in migration.operations:
        operation.database_forwards = recorder(operation)
    try:
        yield
    finally:
        for operation in migration.operations:
            del operation.database_forwards


def with_python_steps(migration: Migration, positions: set[int]) -> Migration:
    """The migration with a RunPython inserted before each operation index in ``positions``
    (len(operations) = at the end)."""
    operations = []
    for index in range(len(migration.operations) + 1):
        if index in positions:
            operations.append(RunPython(RunPython.noop, RunPython.noop))
        if index < len(migration.operations):
            operations.append(copy.copy(migration.operations[index]))
    changed = copy.copy(migration)
    changed.operations = operations
    return changed


def pointing(model: str) -> models.ForeignKey:
    return models.ForeignKey(model, models.CASCADE)


def chain() -> Migration:
    migration = Migration("0001_chain", "chain")
    migration.operations = [
        operations.CreateModel("C", [("id", models.AutoField(primary_key=True))]),
        operations.CreateModel("B", [("id", models.AutoField(primary_key=True)), ("c", pointing("chain.C"))]),
        operations.CreateModel("A", [("id", models.AutoField(primary_key=True)), ("b", pointing("chain.B"))]),
    ]
    return migration


def touch(number: int, model: str) -> Migration:
    migration = Migration(f"{number:04}_touch", "chain")
    field = models.CharField(max_length=3, default="")
    migration.operations = [operations.AddField(model, f"extra{number}", field)]
    return migration


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_operation_gets_the_states_migration_apply_gives_it(data: Any) -> None:
    plan = [chain()]
    for number, migration in enumerate(PLAN, start=2):
        model = data.draw(st.sampled_from([None, "A", "B", "C"]), label=f"touched before {migration.name}")
        if model is not None:
            plan.append(touch(number, model))
        plan.append(migration)
    migrations = [
        with_python_steps(m, data.draw(st.sets(st.integers(0, len(m.operations))), label=m.name))
        for m in plan
    ]
    django_state = ProjectState(real_apps=EXECUTOR.loader.unmigrated_apps)
    django_state.apps  # noqa: B018  (migrate renders before the first migration)
    ours = django_state.clone()
    for migration in migrations:
        seen: list[tuple[Any, Any, Any]] = []
        with recording(migration, seen), CONNECTION.schema_editor(collect_sql=True, atomic=False) as editor:
            django_state = migration.apply(django_state, editor)
        states = operation_states(ours, migration)
        assert len(states) == len(migration.operations) + 1
        for index, operation in enumerate(migration.operations):
            where = f"{migration.app_label}.{migration.name} operation {index} ({operation.describe()})"
            before, after, render = seen[index]
            assert models_of(states[index]) == before, where
            assert models_of(states[index + 1]) == after, where
            if render is not None:
                # Shared by every tenant: RunPython must not render it again (or mutate it).
                assert not states[index].is_delayed, where
                models, stale = apps_summary(states[index].apps)
                assert not stale, f"{where}: stale relations {stale}"
                assert (models, stale) == render, where
        ours = states[-1].clone()


def test_each_tenant_runs_the_operations_on_the_shared_states_in_order() -> None:
    migration = with_python_steps(PLAN[-1], {0, len(PLAN[-1].operations)})
    start = ProjectState(real_apps=EXECUTOR.loader.unmigrated_apps)
    for earlier in PLAN[:-1]:
        earlier.mutate_state(start, preserve=False)
    start.apps  # noqa: B018
    states = operation_states(start, migration)
    handed: list[tuple[Any, Any]] = []
    for operation in migration.operations:
        operation.database_forwards = lambda app, editor, old, new: handed.append((old, new))
    try:
        for _tenant in range(2):
            handed.clear()
            with applied_on(migration, states), CONNECTION.schema_editor(collect_sql=True) as editor:
                assert migration.apply(None, editor) is states[-1]
            assert len(handed) == len(migration.operations)
            for index, (old, new) in enumerate(handed):
                assert old is states[index] and new is states[index + 1], index
    finally:
        for operation in migration.operations:
            del operation.database_forwards
    assert "apply" not in migration.__dict__, "Django's own apply is back afterwards"


def test_only_migrations_as_loaded_and_applied_by_django_share_states() -> None:
    pristine = PLAN[-1]
    copy_of = copy.copy(pristine)
    copy_of.operations = list(pristine.operations)
    assert shareable(copy_of, pristine)
    changed = copy.copy(pristine)
    changed.operations = [*pristine.operations, RunPython(RunPython.noop)]  # as contenttypes adds one
    assert not shareable(changed, pristine)

    class OwnApply(Migration):
        def apply(self, project_state: Any, schema_editor: Any, collect_sql: bool = False) -> Any:
            return super().apply(project_state, schema_editor, collect_sql)

    own = OwnApply(pristine.name, pristine.app_label)
    own.operations = list(pristine.operations)
    assert not shareable(own, pristine)


def test_contenttypes_renames_after_each_rename_model_still_share_states() -> None:
    """contenttypes' pre_migrate handler puts a RenameContentType after each RenameModel of a
    tenant's copy (Django's own handler, run here): the same for every tenant of a group, so
    the copy still shares states; anything else added, or added elsewhere, does not."""
    from django.apps import apps as global_apps
    from django.contrib.contenttypes.management import (
        RenameContentType,
        inject_rename_contenttypes_operations,
    )

    pristine = Migration("0009_renames", "products")
    pristine.operations = [
        operations.RenameModel("Product", "Article"),
        operations.AddField("article", "stock", models.IntegerField(default=0)),
        operations.RenameModel("Order", "Purchase"),
    ]

    def tenant_copy() -> Migration:
        copy_of = copy.copy(pristine)
        copy_of.operations = list(pristine.operations)
        return copy_of

    injected = tenant_copy()
    inject_rename_contenttypes_operations(plan=[(injected, False)], apps=global_apps, using="default")
    assert [type(op).__name__ for op in injected.operations] == [
        "RenameModel",
        "RenameContentType",
        "AddField",
        "RenameModel",
        "RenameContentType",
    ]
    assert shareable(injected, pristine)
    assert shareable(tenant_copy(), pristine)  # a tenant without contenttypes: none added

    misplaced = tenant_copy()
    misplaced.operations.insert(2, RenameContentType("products", "product", "article"))
    assert not shareable(misplaced, pristine)
    other_names = tenant_copy()
    other_names.operations.insert(1, RenameContentType("products", "product", "item"))
    assert not shareable(other_names, pristine)
    other_app = tenant_copy()
    other_app.operations.insert(1, RenameContentType("orders", "product", "article"))
    assert not shareable(other_app, pristine)

    class RenameContentTypeLookalike(RunPython):  # same idea, another class
        def __init__(self, app_label: str, old_model: str, new_model: str) -> None:
            super().__init__(RunPython.noop)
            self.app_label, self.old_model, self.new_model = app_label, old_model, new_model

    RenameContentTypeLookalike.__name__ = "RenameContentType"
    lookalike = tenant_copy()
    lookalike.operations.insert(1, RenameContentTypeLookalike("products", "product", "article"))
    assert not shareable(lookalike, pristine)
    twice = tenant_copy()
    twice.operations[1:1] = [RenameContentType("products", "product", "article")] * 2
    assert not shareable(twice, pristine)
