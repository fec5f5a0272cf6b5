"""A migration Django applies, run on project states computed once for every tenant of a
history group instead of once per tenant.

``Migration.apply`` clones the project state before each operation and mutates it with the
operation's ``state_forwards``, which re-renders the affected models: on a project of many
models that is most of the cost of a migration Django applies, and it is the same for every
tenant with the same history and plan. Here the states before and after each operation are
computed the way ``Migration.apply`` computes them, by the first tenant of the group, and kept;
every tenant then runs each operation's ``database_forwards`` on them, through Django's own
``MigrationExecutor.apply_migration`` (schema editor, atomicity, the history row).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db.migrations.migration import Migration
from django.db.migrations.operations.models import RenameModel
from django.db.migrations.operations.special import RunPython
from django.db.migrations.state import ProjectState
from django.db.transaction import atomic


def shareable(migration: Migration, pristine: Migration | None) -> bool:
    """Whether the tenant's migration holds the operations loaded from disk, applied by
    Django's own ``Migration.apply``, and at most the ``RenameContentType`` contenttypes'
    ``pre_migrate`` handler puts after each ``RenameModel``.

    Other handlers may change a tenant's copy in ways of their own: states computed for
    another tenant's list would not line up with them. contenttypes' additions are the same for
    every tenant of a group (the handler adds one after every RenameModel or none, on the
    plan alone), and they change no state (a RunPython), so states computed on one tenant's
    list line up with every other's with them in the same places (see
    ``DjangoHooks._operations_key``).
    """
    if type(migration).apply is not Migration.apply:  # a migration class with its own apply
        return False
    if pristine is None:
        return False
    ops, at = migration.operations, 0
    for operation in pristine.operations:
        if at >= len(ops) or ops[at] is not operation:
            return False
        at += 1
        if isinstance(operation, RenameModel) and at < len(ops):
            at += _renames_content_type(ops[at], migration.app_label, operation)
    return at == len(ops)


def _renames_content_type(operation: Any, app_label: str, renamed: RenameModel) -> bool:
    """Whether ``operation`` is what contenttypes' ``inject_rename_contenttypes_operations``
    puts after ``renamed``."""
    kind = type(operation)
    return (
        kind.__name__ == "RenameContentType"
        and kind.__module__ == "django.contrib.contenttypes.management"
        and (operation.app_label, operation.old_model, operation.new_model)
        == (app_label, renamed.old_name_lower, renamed.new_name_lower)
    )


def operation_states(start: ProjectState, migration: Migration) -> list[ProjectState]:
    """The states ``Migration.apply`` hands each operation: item i is the state before operation
    i, item i + 1 the state after it; ``start`` (rendered) is consumed."""
    states = []
    project_state = start
    for operation in migration.operations:
        states.append(project_state.clone())
        operation.state_forwards(migration.app_label, project_state)
    states.append(project_state)
    for operation, state in zip(migration.operations, states[:-1], strict=True):
        if isinstance(operation, RunPython):
            undelay(state)
    return states


def starts_with_python(migration: Migration) -> bool:
    return bool(migration.operations) and isinstance(migration.operations[0], RunPython)


def undelay(state: ProjectState) -> None:
    """Make a state a RunPython can be given as its from_state by every tenant of a group.

    After delayed reloads (AddField and the like re-render only the model and its neighbours)
    some models still point at classes that were replaced, so RunPython renders a delayed
    from_state again from its models (``clear_delayed_apps_cache``), for each tenant. Rendered
    here once, the apps match the models exactly, which is what "not delayed" means.
    """
    if state.is_delayed:
        if "apps" in state.__dict__:
            del state.apps
        state.apps  # noqa: B018
        state.is_delayed = False


@contextmanager
def applied_on(
    migration: Migration,
    states: list[ProjectState],
    before: Callable[[Any], None] | None = None,
    after: Callable[[Any], None] | None = None,
) -> Iterator[None]:
    """Within the block, ``migration.apply`` runs its operations on ``states`` (shared: they are
    not mutated) exactly as ``Migration.apply`` runs them on the states it computes, calling
    ``before`` and ``after`` (with the schema editor) around them."""

    def apply(project_state: ProjectState, schema_editor: Any, collect_sql: bool = False) -> ProjectState:
        assert not collect_sql
        if before is not None:
            before(schema_editor)
        for index, operation in enumerate(migration.operations):
            old_state, new_state = states[index], states[index + 1]
            atomic_operation = operation.atomic or (migration.atomic and operation.atomic is not False)
            if not schema_editor.atomic_migration and atomic_operation:
                with atomic(schema_editor.connection.alias):
                    operation.database_forwards(migration.app_label, schema_editor, old_state, new_state)
            else:
                operation.database_forwards(migration.app_label, schema_editor, old_state, new_state)
        if after is not None:
            after(schema_editor)
        return states[-1]

    # The tenant's own copy of the migration: nothing shared is changed.
    migration.apply = apply  # type: ignore[method-assign]
    try:
        yield
    finally:
        del migration.apply
