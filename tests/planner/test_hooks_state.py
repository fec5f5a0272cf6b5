"""The project state a tenant compiles a migration against, after steps replayed by Rust.

In an all-tenants run a tenant replays what another compiled before it and compiles the first
step nobody has compiled yet: that step must see every replayed step before it, exactly the
state Django's ``sqlmigrate`` renders for it. The tenant's Django side may have read its
history before its first step (a plan with a squash, ``--fake``, a backwards plan) or only when
first needed (``LazyHooks``); both are generated here, with random mixes of replayed and
compiled steps before the one compared, on the example project's real migrations (contenttypes,
auth, the example apps: foreign keys across apps, a swapped user model). In-process, nothing
written: the SQL is collected, the history table never created.
"""

from __future__ import annotations

import io
from typing import Any

from django.core.management.base import OutputWrapper
from django.core.management.color import no_style
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tenant_migrate.graph import needs_django
from tenant_migrate.output import Output
from tenant_migrate.run.hooks import DjangoHooks

CONNECTION = connections["default"]


def forward_plan() -> list[Migration]:
    executor = MigrationExecutor(CONNECTION)
    return [m for m, _ in executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)]


PLAN = forward_plan()
COMPILABLE = [i for i, m in enumerate(PLAN) if i > 0 and not needs_django(m, backwards=False)]


def djangos_sql(migration: Migration) -> list[str]:
    """The SQL Django's ``migrate`` runs for the migration: the state before it, from the
    graph, rendered before the migration applies, as ``migrate`` renders it (``sqlmigrate``
    does not, and a table SQLite rebuilds takes its column order from the render order)."""
    executor = MigrationExecutor(CONNECTION)
    state = executor.loader.project_state((migration.app_label, migration.name), at_end=False)
    state.apps  # noqa: B018
    with CONNECTION.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
        migration.apply(state, editor)
    return list(editor.collected_sql)


def hooks_for(plan: list[Migration], history: list[Migration]) -> DjangoHooks:
    """Hooks whose loader read ``history`` as the tenant's applied migrations."""
    executor = MigrationExecutor(CONNECTION)
    nodes = executor.loader.graph.nodes
    executor.loader.applied_migrations = {
        (m.app_label, m.name): nodes[(m.app_label, m.name)] for m in history
    }
    mine = [nodes[(m.app_label, m.name)] for m in plan]
    out = Output(OutputWrapper(io.StringIO()), no_style(), 0)
    return DjangoHooks(executor, [(m, False) for m in mine], mine, None, out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_after_replayed_steps_sees_them(data: Any) -> None:
    target = data.draw(st.sampled_from(COMPILABLE), label="compiled step")
    # The history the hooks' loader read: none (read before the first step) or the steps
    # replayed before LazyHooks made them.
    read = data.draw(st.integers(0, target), label="steps in the history read")
    hooks = hooks_for(PLAN[read:], PLAN[:read])
    # Each later step replayed by Rust, or compiled here (only SQL-only ones can be).
    for m in PLAN[read:target]:
        if not needs_django(m, backwards=False) and data.draw(
            st.booleans(), label=f"compile {m.app_label}.{m.name}"
        ):
            assert hooks.compile(m.app_label, m.name, False) is not None
        else:
            hooks.replayed(m.app_label, m.name, False)
    m = PLAN[target]
    compiled = hooks.compile(m.app_label, m.name, False)
    assert compiled is not None and compiled[0] == djangos_sql(m)
