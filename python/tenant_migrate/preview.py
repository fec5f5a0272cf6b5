"""``migratetenant --sql``: the SQL a run would execute on one tenant, migration by migration,
compiled by Django's schema editor exactly as a run compiles it (``collect_sql``), without
executing anything. Each migration's block is what ``sqlmigrate`` prints for it; migrations
that run Python are marked, and Django's own comment stands where their Python runs.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

from . import _core
from .connections import register_alias, tenant_settings
from .graph import needs_python
from .lookup import lookup
from .names import quote_ident
from .output import Output, migration_label
from .params import rust_params
from .run.hooks import DjangoHooks
from .run.options import MigrateOptions, check_app_label
from .run.shared import Shared


def print_sql(tenant_id: str, opts: MigrateOptions, out: Output) -> None:
    record = lookup(tenant_id)
    settings_dict, schema = tenant_settings(record)
    register_alias(record.tenant_id, settings_dict, schema)
    check_app_label(opts)
    shared = Shared()
    database = _core.TenantDatabase(rust_params(settings_dict, schema))
    try:
        plan = database.plan(shared.graph, opts.app_label, opts.migration_name)
    finally:
        database.close()
    connection = connections[record.tenant_id]
    try:
        out.write(f"-- SQL for tenant '{record.tenant_id}' (nothing is executed):")
        if schema is not None:
            out.write(f"-- Each transaction starts with: SET LOCAL search_path TO {quote_ident(schema)};")
        if not plan.steps:
            out.write("-- No migrations to apply.")
            return
        for migration, backwards, statements in compile_plan(connection, plan, shared, out):
            _print_migration(out, connection, migration, backwards, statements)
    finally:
        connection.close()


def compile_plan(
    connection: Any, plan: _core.Plan, shared: Shared, out: Output
) -> list[tuple[Any, bool, list[str]]]:
    """``(migration, backwards, statements)`` in execution order, states carried from one
    migration to the next as Django's executor carries them."""
    executor = shared.executor(connection)
    if not plan.replace_migrations:
        executor.loader.replace_migrations = False
        executor.loader.build_graph()
    nodes = executor.loader.graph.nodes
    steps = plan.execution_order
    compiled = []
    if steps and steps[0][2]:
        django_plan = [(nodes[(app, name)], True) for app, name, _ in steps]
        full_plan = [nodes[key] for key in plan.full_plan if key in nodes]
        states = DjangoHooks(executor, django_plan, full_plan, None, out).states
        for migration, _ in django_plan:
            with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                migration.unapply(states[migration], editor, collect_sql=True)
            compiled.append((migration, True, list(editor.collected_sql)))
        return compiled
    state = executor._create_project_state(with_applied_migrations=True)
    for app, name, _ in steps:
        migration = nodes[(app, name)]
        if "apps" not in state.__dict__:
            state.apps  # noqa: B018  (render once, as Django does)
        with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
            state = migration.apply(state, editor, collect_sql=True)
        compiled.append((migration, False, list(editor.collected_sql)))
    return compiled


def _print_migration(
    out: Output, connection: Any, migration: Any, backwards: bool, statements: list[str]
) -> None:
    verb = "Unapply " if backwards else ""
    header = f"-- {verb}{migration_label(migration.app_label, migration.name)}"
    if needs_python(migration, backwards):
        header += (
            " -- runs Python (RunPython or a non-SQL operation): applied through Django; "
            "what runs in Python cannot be shown as SQL"
        )
    out.write(header, out.style.MIGRATE_HEADING)
    # sqlmigrate's framing: a transaction when the migration is atomic and DDL can roll back.
    in_transaction = migration.atomic and connection.features.can_rollback_ddl
    if in_transaction:
        out.write(connection.ops.start_transaction_sql())
    for statement in statements:
        out.write(statement)
    if in_transaction:
        out.write(connection.ops.end_transaction_sql())
