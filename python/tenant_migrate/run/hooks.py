"""What the Rust executor asks of Django for one tenant: compile a migration's SQL, run one
through Django, keep the project state as Django's executor keeps it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError as DjangoDatabaseError
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ProjectState

from .. import _core
from ..graph import needs_django, needs_python
from ..interrupt import INTERRUPTER
from ..output import Output
from ..search_path import begin_transaction, reset_session_path
from .operation_states import applied_on, operation_states, shareable, starts_with_python, undelay
from .shared import Holding, Shared, django_side
from .sharing import Sharing, watching
from .signals import heard
from .statements import capturing, guarded, server_pid, sqlstate


class DjangoHooks:
    """What the Rust executor asks of Django, in execution order, on the tenant connection.

    It keeps the project state exactly as ``MigrationExecutor.migrate`` does, so SQL compiled
    for a migration sees the models as Django would see them at that point.
    """

    def __init__(
        self,
        executor: MigrationExecutor,
        plan: list[tuple[Migration, bool]],
        full_plan: list[Migration],
        state: ProjectState | None,
        out: Output,
        shared: Shared | None = None,
        group: tuple[Any, ...] = (),
    ) -> None:
        self.shared = shared
        self.group = group
        self.executor = executor
        self.connection = executor.connection
        self.nodes = executor.loader.graph.nodes
        self.plan = plan
        self.full_plan = full_plan
        self.out = out
        self.state = state
        # Migrations replayed by Rust whose state changes are not yet applied to self.state.
        self.pending: list[Migration] = []
        self.backwards = bool(plan) and plan[0][1]
        # (lock_timeout, statement_timeout) in seconds for the steps Django runs (PostgreSQL).
        self.timeouts: tuple[float | None, float | None] = (None, None)
        self.failed_statement: str | None = None
        self.states: dict[Migration, ProjectState] = {}
        if self.backwards:
            self._render_backwards_states()

    def _render_backwards_states(self) -> None:
        # Django's _migrate_all_backwards: the state before each migration to unapply.
        to_run = {m for m, _ in self.plan}
        state = self.executor._create_project_state()
        self.applied = {
            self.nodes[key] for key in self.executor.loader.applied_migrations if key in self.nodes
        }
        for migration in self.full_plan:
            if not to_run:
                break
            if migration in to_run:
                if "apps" not in state.__dict__:
                    state.apps  # noqa: B018  (render once, as Django does)
                self.states[migration] = state
                state = migration.mutate_state(state, preserve=True)
                to_run.remove(migration)
            elif migration in self.applied:
                migration.mutate_state(state, preserve=False)

    @django_side
    def final_state(self) -> ProjectState:
        if not self.backwards:
            self._catch_up()
            return self.state
        for migration, _ in self.plan:
            self.applied.discard(migration)
        last = self.plan[-1][0]
        state = self.states[last]
        del state.apps
        index = self.full_plan.index(last)
        for migration in self.full_plan[index:]:
            if migration in self.applied:
                migration.mutate_state(state, preserve=False)
        return state

    def _catch_up(self) -> None:
        if self.state is None:
            # From the history the loader read when it was made: LazyHooks makes it late, after
            # the steps replayed so far; a tenant whose plan Django's side needed from the start
            # read it before its first step. The steps replayed since that read are still to
            # come (without them a step compiled after replayed ones saw a state missing their
            # models: a race between concurrent tenants, the cache filled by another).
            self.state = self.executor._create_project_state(with_applied_migrations=True)
            read = self.executor.loader.applied_migrations
            self.pending = [m for m in self.pending if (m.app_label, m.name) not in read]
        if not self.pending:
            return
        # Mutating a rendered state reloads every affected model, once per migration; one
        # fresh render afterwards is much cheaper when several replayed migrations are pending.
        if "apps" in self.state.__dict__:
            del self.state.apps
        for migration in self.pending:
            self.state = migration.mutate_state(self.state, preserve=False)
        self.pending.clear()

    def _render(self) -> None:
        self._catch_up()
        assert self.state is not None  # made by _catch_up
        if "apps" not in self.state.__dict__:
            self.state.apps  # noqa: B018

    # The callbacks, named as in the executor's Hooks trait.

    def started(self, app: str, name: str, backwards: bool, fake: bool) -> None:
        self.out.step_started(app, name, backwards)

    @django_side
    def soft_applied(self, app: str, name: str) -> bool:
        state = self._state_before(self.nodes[(app, name)])
        applied, self.state = self.executor.detect_soft_applied(state, self.nodes[(app, name)])
        return bool(applied)

    @django_side
    def compile(self, app: str, name: str, backwards: bool) -> tuple[list[str], Sharing] | None:
        """The migration's SQL and whom it is good for (see ``sharing.py``)."""
        migration = self.nodes[(app, name)]
        if needs_django(migration, backwards):
            return None
        connection = self.connection
        with self._naming_failures(app, name), watching(connection) as watch:
            states = self._per_tenant_states(migration, backwards)
            if states is None and not backwards:
                self._render()
            with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                with watch.reads():
                    if backwards:
                        migration.unapply(self.states[migration], editor)
                    elif states is not None:
                        with self._forgetting_on_failure(migration), applied_on(migration, states):
                            migration.apply(states[0], editor)
                    else:
                        self.state = migration.apply(self.state, editor)
            if states is not None:
                self.state = states[-1].clone()
        sharing = watch.sharing(self._shareable(migration))
        if sharing == "tenant" and self.shared is not None:
            self.shared.per_tenant.add((app, name, backwards))
        return list(editor.collected_sql), sharing

    def _per_tenant_states(self, migration: Migration, backwards: bool) -> list[ProjectState] | None:
        """For a step every tenant compiles (its SQL holds a value computed for the tenant),
        after the first: the states its operations run on, shared by the history group, so
        that compiling it renders nothing of this tenant's own."""
        key = (migration.app_label, migration.name, backwards)
        if backwards or self.shared is None or key not in self.shared.per_tenant:
            return None
        return self._operation_states(migration)

    def _shareable(self, migration: Migration) -> bool:
        shared = self.shared
        key = (migration.app_label, migration.name)
        return shared is not None and shareable(migration, shared.loader.disk_migrations.get(key))

    def _step_key(self, migration: Migration) -> tuple[Any, ...]:
        return ("step", *self.group, migration.app_label, migration.name)

    def _state_before(self, migration: Migration) -> ProjectState:
        key = self._step_key(migration)
        if self.shared is not None:
            cached = self.shared.step_state(key)
            if cached is not None:
                self.pending.clear()
                self.state = cached
                return cached
        self._render()
        assert self.state is not None  # made by _render
        if self.state.is_delayed and starts_with_python(migration):
            # Kept for the tenants of the group: see undelay.
            undelay(self.state)
        if self.shared is not None:
            self.shared.keep_step_state(key, self.state)
        return self.state

    def apply_with_django(self, app: str, name: str, backwards: bool) -> tuple[list[str], Sharing] | None:
        """Django applies (or unapplies) the step. For a migration that runs no Python: the
        SQL it ran, for replay on other tenants, and whom it is good for (``sharing.py``).
        Under DJANGO_LOCK, but for the statements around the operations (see ``_apply``)."""
        hold = Holding()
        hold.take()
        try:
            return self._apply_with_django(app, name, backwards, hold)
        finally:
            hold.let_go()

    def _apply_with_django(
        self, app: str, name: str, backwards: bool, hold: Holding
    ) -> tuple[list[str], Sharing] | None:
        migration = self.nodes[(app, name)]
        ran: list[str] | None = None if needs_python(migration, backwards) else []
        # A non-atomic migration's statements must not be wrapped in transactions.
        self.connection.tenant_migrate_outside_transaction = not migration.atomic
        if self.out.heartbeat is not None:
            self.out.heartbeat.django_step(server_pid(self.connection))
        try:
            with (
                self._naming_failures(app, name),
                watching(self.connection) as watch,
                capturing(self.connection, ran),
                guarded(self.connection, migration.atomic, self.timeouts, self.out, self._note_failed),
                watch.reads_among_effects(),
            ):
                if backwards:
                    self.executor.unapply_migration(self.states[migration], migration)
                else:
                    self._apply(migration, hold)
        finally:
            self.connection.tenant_migrate_outside_transaction = False
            if not migration.atomic:
                reset_session_path(self.connection)
        if ran is None:
            return None
        sharing = watch.sharing(self._shareable(migration))
        if sharing != "tenant" and not backwards and self.shared is not None:
            # Django applied it here only because it is order-sensitive: the group's later
            # tenants replay the SQL it ran (all but one whose catalog differs, which computes
            # the states again).
            self.shared.passing(self._operations_key(migration), self._step_key(migration))
        return ran, sharing

    def _apply(self, migration: Migration, hold: Holding) -> None:
        states = self._operation_states(migration)
        if states is None:
            self.state = self.executor.apply_migration(self._state_before(migration), migration)
            return
        before = after = None
        if migration.atomic:
            # The operations, where user code runs and states may render, under the lock;
            # the transaction's first statements, the history row with its guard and the
            # commit outside it: nothing is rendered there and no user code runs (unless the
            # operations queued some for the commit, or the row's save has receivers).
            def before(editor: Any) -> None:
                begin_transaction(self.connection)
                hold.take()

            def after(editor: Any) -> None:
                if not self._user_code_follows():
                    hold.let_go()

            hold.let_go()
        with self._forgetting_on_failure(migration), applied_on(migration, states, before, after):
            self.executor.apply_migration(states[0], migration)
        hold.take()
        # The tenant's own state from here on: compiling and catching up mutate it.
        self.state = states[-1].clone()

    def _user_code_follows(self) -> bool:
        """Whether Django runs code not its own after the operations: callbacks they queued
        with ``transaction.on_commit``, receivers of the history row's making and saving."""
        return bool(self.connection.run_on_commit) or heard(self.executor.recorder.Migration)

    @contextmanager
    def _forgetting_on_failure(self, migration: Migration) -> Iterator[None]:
        """An operation that failed half-way may have left the shared states changed (AddField
        without preserve_default sets the field's default on the target model and resets it
        only on success): the next tenant computes them afresh."""
        try:
            yield
        except BaseException:
            self.shared.forget(self._operations_key(migration))  # type: ignore[union-attr]
            raise

    def _operation_states(self, migration: Migration) -> list[ProjectState] | None:
        """The states each operation runs on, shared by the tenants of this history group;
        None where Django's own apply must compute them (one tenant, or a migration that a
        handler changed for this tenant)."""
        shared = self.shared
        if shared is None or shared.cache is None or not self._shareable(migration):
            return None
        states = shared.once(
            self._operations_key(migration),
            lambda: operation_states(self._state_before(migration), migration),
        )
        # Whether computed now or by another tenant: the state before this step, with every
        # step replayed so far.
        self.pending.clear()
        return states

    def _operations_key(self, migration: Migration) -> tuple[Any, ...]:
        # Where contenttypes' RenameContentType operations stand, if any (see shareable): the
        # kinds in order say it, the operations loaded from disk being the same for all.
        kinds = tuple(type(operation).__name__ for operation in migration.operations)
        return ("operations", *self.group, migration.app_label, migration.name, kinds)

    @contextmanager
    def _naming_failures(self, app: str, name: str) -> Iterator[None]:
        """What Django raises for a step becomes the Rust route's error for it; timeouts and
        permission errors keep their own kinds (retried, and their own message)."""
        self.failed_statement = None
        try:
            yield
        except _core.TenantMigrateError:
            raise
        except DjangoDatabaseError as exc:
            if INTERRUPTER.fired.is_set():
                raise
            if sqlstate(exc) in _core.TIMEOUT_SQLSTATES:
                raise _core.LockTimeout(str(exc).strip()) from exc
            if sqlstate(exc) == _core.INSUFFICIENT_PRIVILEGE:  # as the Rust route reports it
                raise _core.PermissionDenied(str(exc).strip()) from exc
            # The server's primary message, as the Rust route reports it (psycopg adds the
            # statement's text and a caret on the next lines).
            raise self._failed(app, name, (str(exc).strip().splitlines() or [""])[0]) from exc
        except Exception as exc:
            if INTERRUPTER.fired.is_set():
                raise
            raise self._failed(app, name, f"{type(exc).__name__}: {exc}") from exc

    def _note_failed(self, statement: str) -> None:
        self.failed_statement = statement

    def _failed(self, app: str, name: str, reason: str) -> _core.MigrationFailed:
        """The Rust route's text for a failed migration: which tenant, which migration, and
        the statement Django was running when it failed (none for a Python error)."""
        return _core.migration_failed(
            self.connection.alias, f"{app}.{name}", reason, self.failed_statement or None
        )

    def replayed(self, app: str, name: str, backwards: bool) -> None:
        if not backwards:
            self.pending.append(self.nodes[(app, name)])

    def finished(self, report: _core.StepReport) -> None:
        self.out.step_finished(report)

    @django_side
    def retrying(self, app: str, name: str, attempt: int, retries: int, delay: float, reason: str) -> None:
        self.out.step_retrying(attempt, retries, delay, reason)
        self.reset_state()

    @django_side
    def reset_state(self) -> None:
        """After a step was rolled back: the project state as the tenant's history now says.

        Compiling and applying mutate the state as they go, so the state kept here may already
        include the rolled-back step; it is rebuilt from the history table, as Django builds it.
        """
        if self.backwards:
            return  # the states before each unapplied step were computed up front, unmutated
        loader = self.executor.loader
        applied = dict(MigrationRecorder(self.connection).applied_migrations())
        done = set(applied)  # the keys of `applied`, kept as it grows, built once
        for key, migration in loader.graph.nodes.items():
            if migration.replaces and _core.all_replaced_applied(
                [tuple(r) for r in migration.replaces], done
            ):
                applied.setdefault(key, migration)
                done.add(key)
        loader.applied_migrations = applied
        self.state = self.executor._create_project_state(with_applied_migrations=True)
        self.pending.clear()
