"""One tenant's migration run: Rust plans and executes, Django compiles SQL and runs Python.

The order of events mirrors Django's ``migrate`` command: plan, header, ``pre_migrate``,
migrations, ``post_migrate``. Everything printed goes through the command's ``stdout`` so
``call_command`` can capture it.
"""

from __future__ import annotations

import copy
import functools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.apps import apps as global_apps
from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import DatabaseError as DjangoDatabaseError
from django.db import connections
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.exceptions import (
    InconsistentMigrationHistory,
    MigrationSchemaMissing,
    NodeNotFoundError,
)
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ModelState, ProjectState
from django.db.models import signals
from django.utils.module_loading import module_has_submodule

from . import _core, conf
from .connections import (
    _transaction_started,
    check_tenant_id,
    check_text,
    master_params,
    milliseconds,
    printable,
    reading_master,
    register_alias,
    reset_session_path,
    rust_params,
    tenant_settings,
)
from .context import master_alias, tenant_as_default
from .graph import RawGraphLoader, graph_json, needs_django, needs_python
from .heartbeat import Heartbeat, same_terminal
from .interrupt import INTERRUPTER, cancel_django
from .registry import get_tenant_model, id_filter, ordering, record_values, registry_json

# Django's migration machinery is not thread-safe: rendered project states share model classes
# (ProjectState.clone() copies the registry, not the classes), and rendering a model mutates
# the _meta of the models it relates to. Concurrent tenants of one process therefore take
# turns for everything that touches Django's side (compiling, Python steps, rendering,
# signals); Rust's replay, where the time goes, runs outside this lock.
DJANGO_LOCK = threading.RLock()


def django_side(method: Any) -> Any:
    """Run a hook that works on Django's side under DJANGO_LOCK."""

    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with DJANGO_LOCK:
            return method(*args, **kwargs)

    return locked


@dataclass
class MigrateOptions:
    app_label: str | None = None
    migration_name: str | None = None
    plan: bool = False
    check: bool = False
    prune: bool = False
    fake: bool = False
    fake_initial: bool = False
    interactive: bool = True
    verbosity: int = 1
    # migratealltenants: an up-to-date tenant is left alone (no signals, no Django work).
    skip_up_to_date: bool = False
    # Seconds a migration may run before a heartbeat line goes to stderr (0: never).
    heartbeat: float = 0.0
    # Seconds to wait for another run of the same tenant (its run lock) to finish.
    lock_wait: float = 10.0
    # Zero-downtime mode (PostgreSQL): lock_timeout / statement_timeout in seconds, and how
    # many times a migration rolled back by either is retried.
    lock_timeout: float | None = None
    statement_timeout: float | None = None
    retries: int = 3
    retry_delay: float = 1.0

    @property
    def writes(self) -> bool:
        """Whether this run changes the tenant (and so must hold its run lock)."""
        return not (self.plan or self.check) or self.prune


class Shared:
    """What one process computes once and every tenant of the run reuses.

    The migration graph is loaded from disk and serialised once; SQL compiled for a migration
    on one tenant is replayed on every tenant verified to be in the same state (``cache``);
    rendered project states, which depend only on the applied set and the plan, are kept per
    such group for the signals.
    """

    def __init__(self, replay: bool = False) -> None:
        import_management_modules()
        self.loader = RawGraphLoader()
        self.graph = graph_json(self.loader)
        self.cache = _core.ReplayCache() if replay else None
        self._states: dict[Any, Any] = {}
        self._step_states: dict[Any, ProjectState] = {}
        self._recorder_ddl: dict[Any, list[str]] = {}
        self._lock = threading.Lock()
        # Migrations taking part in a squash: their graph depends on the applied set as it
        # changes during a run, so tenants whose plan touches them are never handled lazily.
        self.squash_related: set[tuple[str, str]] = set()
        for key, migration in self.loader.disk_migrations.items():
            if migration.replaces:
                self.squash_related.add(key)
                self.squash_related.update(tuple(r) for r in migration.replaces)

    def clone(self, key: tuple[str, str]) -> Migration:
        """A tenant's own copy of a migration (handlers may add operations to it)."""
        migration = copy.copy(self.loader.disk_migrations[key])
        migration.operations = list(migration.operations)
        return migration

    def applied_state(self, plan: _core.Plan) -> ProjectState:
        """Django's ``_create_project_state(with_applied_migrations=True)``, without a database:
        the graph and the tenant's applied set (from Rust) are all it depends on."""
        state = ProjectState(real_apps=self.loader.unmigrated_apps)
        applied = set(plan.applied)
        for key in plan.full_plan:
            if key in applied:
                self.loader.disk_migrations[key].mutate_state(state, preserve=False)
        return state

    def step_state(self, key: Any) -> ProjectState | None:
        """A tenant's own copy of the rendered state before a Python step, when a tenant with
        the same history and plan already rendered it (rendering is the costly part)."""
        if self.cache is None:
            return None
        with self._lock:
            state = self._step_states.get(key)
        return state.clone() if state is not None else None

    def keep_step_state(self, key: Any, state: ProjectState) -> None:
        if self.cache is not None:
            with self._lock:
                self._step_states.setdefault(key, state.clone())

    def recorder_ddl(self, connection: Any) -> list[str]:
        settings = connection.settings_dict
        key = (connection.vendor, settings.get("HOST"), settings.get("PORT"))
        with self._lock:
            if key in self._recorder_ddl:
                return self._recorder_ddl[key]
        ddl = recorder_ddl(connection)
        with self._lock:
            return self._recorder_ddl.setdefault(key, ddl)

    def executor(self, connection: Any) -> MigrationExecutor:
        """A MigrationExecutor whose loader copies the migrations loaded once from disk.

        Each tenant gets its own Migration instances (``pre_migrate`` handlers such as
        contenttypes' rename injection mutate them), without re-importing or re-listing files.
        """
        executor = MigrationExecutor.__new__(MigrationExecutor)
        executor.connection = connection
        executor.progress_callback = None
        executor.recorder = MigrationRecorder(connection)
        executor.loader = _CopiedLoader(connection, self)
        return executor

    def state_apps(self, key: Any, make: Any) -> Any:
        """Rendered apps for a (applied set, plan) group, computed by the first tenant."""
        if self.cache is None:
            return make()
        with self._lock:
            if key in self._states:
                return self._states[key]
        apps = make()
        with self._lock:
            return self._states.setdefault(key, apps)


def import_management_modules() -> None:
    """As Django's migrate does first: apps connect pre/post_migrate handlers there."""
    for app_config in global_apps.get_app_configs():
        if module_has_submodule(app_config.module, "management"):
            import_module(".management", app_config.name)


class _CopiedLoader(MigrationLoader):
    def __init__(self, connection: Any, shared: Shared) -> None:
        self.shared = shared
        super().__init__(connection)

    def load_disk(self) -> None:
        t = self.shared.loader
        self.disk_migrations = {key: self.shared.clone(key) for key in t.disk_migrations}
        self.unmigrated_apps = set(t.unmigrated_apps)
        self.migrated_apps = set(t.migrated_apps)


class TenantRunError(Exception):
    """A failure to report to the user as one clear message."""


class UnappliedMigrations(Exception):
    """``--check`` found migrations to run (the command exits with status 1)."""


def split_target(app_label: str | None, migration_name: str | None) -> tuple[str | None, str | None]:
    """Accept the forms the output prints: ``users/0002_alter_user_email.py`` as one argument
    (the spec's ``--fake apps/0002_undo_change``), and the ``.py`` suffix on a name."""
    if app_label and migration_name is None and "/" in app_label:
        app_label, _, migration_name = app_label.partition("/")
    if migration_name and migration_name.endswith(".py"):
        migration_name = migration_name[: -len(".py")]
    return app_label, migration_name


def migration_label(app: str, name: str) -> str:
    """How the spec names a migration in output: ``users/0001_initial.py``."""
    return f"{app}/{name}.py"


@dataclass(frozen=True)
class RegistryRow:
    """A registry row read through Django, shaped like ``_core.TenantRecord``."""

    tenant_id: str
    name: str
    isolation: str
    database_name: str
    schema_name: str
    connection: str


def _master_in_memory() -> bool:
    master = connections[master_alias()]
    return master.vendor == "sqlite" and master.is_in_memory_db()


def _row(tenant: Any) -> RegistryRow:
    return RegistryRow(*record_values(tenant))


def lookup(tenant_id: str) -> _core.TenantRecord | RegistryRow:
    """The registry row, read by Rust from the master database; through Django only when the
    master is an in-memory SQLite database (a test run), which another connection cannot see."""
    check_tenant_id(tenant_id)
    if _master_in_memory():
        tenants = get_tenant_model()._default_manager.using(master_alias())
        tenant = tenants.filter(**id_filter(tenant_id)).first()
        if tenant is None:
            raise _core.TenantNotFound(
                f"Tenant '{tenant_id}' does not exist.\n"
                f"Please create one with the tenant id '{tenant_id}' first."
            )
        return _row(tenant)
    with reading_master():
        return _core.lookup_tenant(master_params(), registry_json(), tenant_id)


def list_tenants() -> list[Any]:
    if _master_in_memory():
        tenants = get_tenant_model()._default_manager.using(master_alias())
        return [_row(t) for t in tenants.order_by(ordering())]
    with reading_master():
        return _core.list_tenants(master_params(), registry_json())


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
            # Built late (see LazyHooks): the history read now already includes every step
            # replayed so far.
            self.state = self.executor._create_project_state(with_applied_migrations=True)
            self.pending.clear()
            return
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
    def compile(self, app: str, name: str, backwards: bool) -> list[str] | None:
        migration = self.nodes[(app, name)]
        if needs_django(migration):
            return None
        with self._naming_failures(app, name):
            if backwards:
                with self.connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                    migration.unapply(self.states[migration], editor)
                return list(editor.collected_sql)
            self._render()
            with self.connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                self.state = migration.apply(self.state, editor)
            return list(editor.collected_sql)

    def _state_before(self, migration: Migration) -> ProjectState:
        key = ("step", *self.group, migration.app_label, migration.name)
        if self.shared is not None:
            cached = self.shared.step_state(key)
            if cached is not None:
                self.pending.clear()
                self.state = cached
                return cached
        self._render()
        if self.shared is not None:
            self.shared.keep_step_state(key, self.state)
        return self.state

    @django_side
    def apply_with_django(self, app: str, name: str, backwards: bool) -> list[str] | None:
        migration = self.nodes[(app, name)]
        # What Django runs for a migration without Python can be replayed on other tenants.
        ran: list[str] | None = None if needs_python(migration) else []
        # A non-atomic migration's statements must not be wrapped in transactions.
        self.connection.tenant_migrate_outside_transaction = not migration.atomic
        if self.out.heartbeat is not None:
            self.out.heartbeat.django_step(server_pid(self.connection))
        try:
            with self._naming_failures(app, name), self._capturing(ran), self._guarded(migration.atomic):
                if backwards:
                    self.executor.unapply_migration(self.states[migration], migration)
                else:
                    state = self._state_before(migration)
                    self.state = self.executor.apply_migration(state, migration)
        finally:
            self.connection.tenant_migrate_outside_transaction = False
            if not migration.atomic:
                reset_session_path(self.connection)
        return ran

    @contextmanager
    def _naming_failures(self, app: str, name: str) -> Iterator[None]:
        """What Django raises for a step becomes the Rust route's error for it; timeouts and
        permission errors keep their own kinds (retried, and the spec's text)."""
        self.failed_statement = None
        try:
            yield
        except _core.TenantMigrateError:
            raise
        except DjangoDatabaseError as exc:
            if INTERRUPTER.fired.is_set():
                raise
            if sqlstate(exc) in TIMEOUT_SQLSTATES:
                raise _core.LockTimeout(str(exc).strip()) from exc
            if sqlstate(exc) == "42501":  # insufficient_privilege, as the Rust route reports it
                raise _core.PermissionDenied(str(exc).strip()) from exc
            # The server's primary message, as the Rust route reports it (psycopg adds the
            # statement's text and a caret on the next lines).
            raise self._failed(app, name, (str(exc).strip().splitlines() or [""])[0]) from exc
        except Exception as exc:
            if INTERRUPTER.fired.is_set():
                raise
            raise self._failed(app, name, f"{type(exc).__name__}: {exc}") from exc

    def _failed(self, app: str, name: str, reason: str) -> _core.MigrationFailed:
        """The Rust route's text for a failed migration: which tenant, which migration, and
        the statement Django was running when it failed (none for a Python error)."""
        text = f"Migration {app}.{name} failed for tenant '{self.connection.alias}': {reason}"
        if self.failed_statement is not None:
            text += f"\nStatement: {self.failed_statement}"
        return _core.MigrationFailed(text)

    @contextmanager
    def _guarded(self, atomic: bool) -> Iterator[None]:
        """Every statement Django runs for a step: stopped when the run is interrupted, and
        with the zero-downtime timeouts set inside its transaction (SET LOCAL), as the Rust
        side does. A non-atomic step gets them for the session, reset afterwards."""
        settings = _timeout_settings(*self.timeouts) if self.connection.vendor == "postgresql" else []
        busy = False

        def guard(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            nonlocal busy
            INTERRUPTER.check()
            connection = context["connection"]
            if settings and not busy and connection.in_atomic_block and not _transaction_started(connection):
                busy = True
                try:
                    _set_config(connection, settings, local=True)
                finally:
                    busy = False
            heartbeat = self.out.heartbeat
            if heartbeat is not None:
                if heartbeat.via_django and heartbeat.django_pid is None:
                    heartbeat.django_pid = server_pid(connection)
                heartbeat.statement(sql)
            try:
                return execute(sql, params, many, context)
            except DjangoDatabaseError:
                self.failed_statement = statement_text(connection, sql, None if many else params)
                raise
            finally:
                if heartbeat is not None:
                    heartbeat.statement(None)

        if settings and not atomic:
            _set_config(self.connection, settings, local=False)
        try:
            with self.connection.execute_wrapper(guard):
                yield
        finally:
            if settings and not atomic:
                _set_config(self.connection, [(name, "0") for name, _ in settings], local=False)

    @contextmanager
    def _capturing(self, ran: list[str] | None) -> Iterator[None]:
        if ran is None:
            yield
            return
        quoter = self.connection.schema_editor(collect_sql=True)

        def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            head = sql.lstrip()[:10].split(None, 1)[0].upper() if sql.strip() else ""
            # Reads, pragmas, transaction control (Django's SQLite backend sends its own BEGIN
            # and savepoints through the wrappers) and the history row are not part of the
            # migration's effect: Rust runs each replay in its own transaction and writes the
            # row itself.
            if not many and head not in _NOT_EFFECTS and "django_migrations" not in sql:
                text = sql if params is None else sql % tuple(quoter.quote_value(p) for p in params)
                ran.append(text)
            return execute(sql, params, many, context)

        with self.connection.execute_wrapper(capture):
            yield

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
        for key, migration in loader.graph.nodes.items():
            if migration.replaces and all(tuple(r) in applied for r in migration.replaces):
                applied.setdefault(key, migration)
        loader.applied_migrations = applied
        self.state = self.executor._create_project_state(with_applied_migrations=True)
        self.pending.clear()


_NOT_EFFECTS = ("SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "")

TIMEOUT_SQLSTATES = ("55P03", "57014")  # lock_not_available, query_canceled


def server_pid(connection: Any) -> int | None:
    """The PostgreSQL server process of an open Django connection (psycopg 3 or 2)."""
    if connection.vendor != "postgresql" or connection.connection is None:
        return None
    info = getattr(connection.connection, "info", None)
    pid = getattr(info, "backend_pid", None)
    if pid is None and hasattr(connection.connection, "get_backend_pid"):
        pid = connection.connection.get_backend_pid()
    return pid


def statement_text(connection: Any, sql: str, params: Any) -> str:
    """A statement as the user would write it: values in, no closing ';' (as the Rust route)."""
    if params:
        quoter = connection.schema_editor(collect_sql=True)
        try:
            sql = sql % tuple(quoter.quote_value(p) for p in params)
        except (TypeError, ValueError, KeyError):
            pass  # dict parameters or an odd value: the statement as sent is still useful
    return sql.rstrip().removesuffix(";").rstrip()


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error raised through Django (psycopg 3 or psycopg2)."""
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


def _timeout_settings(lock_timeout: float | None, statement_timeout: float | None) -> list[tuple[str, str]]:
    pairs = (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout))
    return [(name, f"{milliseconds(seconds)}ms") for name, seconds in pairs if seconds is not None]


def _set_config(connection: Any, settings: list[tuple[str, str]], local: bool) -> None:
    # Bound values; the names are fixed above.
    flag = "true" if local else "false"
    sql = "SELECT " + ", ".join(f"pg_catalog.set_config(%s, %s, {flag})" for _ in settings)
    with connection.cursor() as cursor:
        cursor.execute(sql, [part for pair in settings for part in pair])


class LazyHooks:
    """Hooks that build Django's side only when a callback needs it.

    In an all-tenants run most migrations are replayed: such a tenant never loads a graph or
    renders a state. When a compile or a Python migration is needed, the executor is built
    then: its loader reads the tenant's history as it is at that moment, so its project state
    is exactly the state before the current step.
    """

    def __init__(self, make: Any, out: Output) -> None:
        self._make = make
        self._hooks: DjangoHooks | None = None
        self.out = out

    @django_side
    def real(self) -> DjangoHooks:
        if self._hooks is None:
            self._hooks = self._make()
        return self._hooks

    def started(self, app: str, name: str, backwards: bool, fake: bool) -> None:
        self.out.step_started(app, name, backwards)

    def soft_applied(self, app: str, name: str) -> bool:
        return self.real().soft_applied(app, name)

    def compile(self, app: str, name: str, backwards: bool) -> list[str] | None:
        return self.real().compile(app, name, backwards)

    def apply_with_django(self, app: str, name: str, backwards: bool) -> list[str] | None:
        return self.real().apply_with_django(app, name, backwards)

    def replayed(self, app: str, name: str, backwards: bool) -> None:
        if self._hooks is not None:
            self._hooks.replayed(app, name, backwards)

    def finished(self, report: _core.StepReport) -> None:
        self.out.step_finished(report)

    def retrying(self, app: str, name: str, attempt: int, retries: int, delay: float, reason: str) -> None:
        self.out.step_retrying(attempt, retries, delay, reason)
        if self._hooks is not None:
            self._hooks.reset_state()

    def final_state(self) -> ProjectState:
        return self.real().final_state()


class Output:
    """Django-style output for one tenant, written to the command's stdout."""

    # One lock for every Output of the process: lines of concurrent tenants never mix.
    lock = threading.Lock()

    def __init__(
        self,
        stdout: OutputWrapper,
        style: Style,
        verbosity: int,
        prefix: str = "",
        whole_lines: bool = False,
    ):
        self.stdout = stdout
        self.style = style
        self.verbosity = verbosity
        self.prefix = prefix
        # Concurrent runs print each step once, finished, instead of "name ..." then " OK".
        self.whole_lines = whole_lines
        self.open_step: str | None = None
        self.heartbeat: Any = None
        # What an interrupted run reports: the step in progress and the steps done.
        self.current: str | None = None
        self.done: list[str] = []

    def write(self, text: str, style_func: Any = None, min_verbosity: int = 1) -> None:
        if self.verbosity >= min_verbosity:
            with self.lock:
                # Each line of a multi-line text (an error's "Statement: ...") says whose it is.
                self.stdout.write(self.prefix + text.replace("\n", "\n" + self.prefix), style_func)

    def step_started(self, app: str, name: str, backwards: bool) -> None:
        self.current = ("Unapplying " if backwards else "") + migration_label(app, name)
        if self.heartbeat is not None:
            self.heartbeat.step(self.current)
        if self.verbosity < 1:
            return
        self.open_step = f"{self.prefix}  {self.current} ..."
        if not self.whole_lines:
            with self.lock:
                self.stdout.write(self.open_step, ending="")
                self.stdout.flush()

    def step_finished(self, report: _core.StepReport) -> None:
        if self.current is not None:
            self.done.append(self.current)
        self.current = None
        if self.heartbeat is not None:
            self.heartbeat.step(None)
        if self.verbosity < 1:
            return
        text = f" {report.outcome}"
        if self.verbosity >= 2:
            text += f" ({report.seconds:.3f}s)"
        with self.lock:
            if self.whole_lines:
                self.stdout.write((self.open_step or "") + self.style.SUCCESS(text))
            else:
                self.stdout.write(self.style.SUCCESS(text))
        self.open_step = None

    def step_retrying(self, attempt: int, retries: int, delay: float, reason: str) -> None:
        """A step rolled back by a lock or statement timeout, about to be retried."""
        if self.heartbeat is not None:
            self.heartbeat.clear()
        detail = (
            f"{self.prefix}    Waited on: {reason}\n"
            f"{self.prefix}    Rolled back; retry {attempt} of {retries} in {delay:.1f}s."
        )
        with self.lock:
            if self.open_step is not None and not self.whole_lines:
                self.stdout.write(self.style.WARNING(" TIMEOUT"))
            elif self.open_step is not None:
                self.stdout.write(self.open_step + self.style.WARNING(" TIMEOUT"))
            self.stdout.write(self.style.WARNING(detail))
            if self.open_step is not None and not self.whole_lines:
                self.stdout.write(self.open_step, ending="")
                self.stdout.flush()

    def close_line(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.clear()
        if self.open_step is None:
            return
        word = " INTERRUPTED" if INTERRUPTER.fired.is_set() else " FAILED"
        with self.lock:
            if self.whole_lines:
                self.stdout.write(self.open_step + self.style.ERROR(word))
            else:
                self.stdout.write(self.style.ERROR(word))
        self.open_step = None


def ordered_apps(labels: list[str]) -> list[str]:
    """Apps in INSTALLED_APPS order, as the spec's header lists them."""
    order = {c.label: i for i, c in enumerate(global_apps.get_app_configs())}
    return sorted(labels, key=lambda a: (order.get(a, len(order)), a))


def print_plan(out: Output, tenant_id: str, plan: _core.Plan, loader: MigrationLoader) -> None:
    out.write(f"Planned operations for tenant '{tenant_id}':", out.style.MIGRATE_HEADING)
    if not plan.steps:
        out.write("  No planned migration operations.")
        return
    for app, name, backwards in plan.steps:
        verb = "Unapply " if backwards else ""
        migration = loader.disk_migrations[(app, name)]
        # A non-atomic migration is the one step a crash or Ctrl-C can leave half done.
        suffix = "" if migration.atomic else out.style.WARNING(" (non-atomic)")
        out.write(f"  {verb}{migration_label(app, name)}{suffix}")
        if out.verbosity < 2:
            continue
        if not migration.atomic:
            out.write("    (non-atomic: runs outside a transaction)", out.style.WARNING)
        for operation in migration.operations:
            text, is_error = DjangoMigrate.describe_operation(operation, backwards)
            out.write("    " + text, out.style.WARNING if is_error else None)


def prune(database: _core.TenantDatabase, graph: str, opts: MigrateOptions, out: Output) -> None:
    """Django's ``migrate --prune``, with its output."""
    if not opts.app_label:
        raise TenantRunError("Migrations can be pruned only when an app is specified.")
    out.write("Pruning migrations:", out.style.MIGRATE_HEADING)
    pruned, blocking = database.prune(graph, opts.app_label)
    if blocking:
        out.write(
            "  Cannot use --prune because the following squashed migrations have their "
            "'replaces' attributes and may not be recorded as applied:",
            out.style.NOTICE,
        )
        for app, name in blocking:
            out.write(f"    {app}.{name}")
        out.write(
            "  Re-run 'manage.py migrate' if they are not marked as applied, and remove "
            "'replaces' attributes in their Migration classes.",
            out.style.NOTICE,
        )
        return
    for app, name in pruned:
        out.write(out.style.MIGRATE_LABEL(f"  Pruning {app}.{name}") + out.style.SUCCESS(" OK"))
    if not pruned:
        out.write("  No migrations to prune.")


def print_header(out: Output, plan: _core.Plan) -> None:
    kind, values = plan.header
    out.write("Operations to perform:", out.style.MIGRATE_HEADING)
    if kind == "apply_all":
        apps = ", ".join(ordered_apps(values)) or "(none)"
        out.write(out.style.MIGRATE_LABEL("  Apply all migrations: ") + apps)
    elif kind == "specific":
        out.write(out.style.MIGRATE_LABEL("  Target specific migration: ") + f"{values[1]}, from {values[0]}")
    else:
        out.write(out.style.MIGRATE_LABEL("  Unapply all migrations: ") + values[0])


def emit(signal: Any, out: Output, alias: str, opts: MigrateOptions, state_apps: Any, plan: Any) -> None:
    """Django's emit_pre/post_migrate_signal, for the tenant apps only. As under Django, the
    receivers run in autocommit, in no transaction of ours: one that catches a database error
    (an optional table) and carries on leaves nothing broken behind."""
    when = "pre" if signal is signals.pre_migrate else "post"
    for app_config in global_apps.get_app_configs():
        if app_config.models_module is None or not conf.is_tenant_app(app_config.label):
            continue
        out.write(f"Running {when}-migrate handlers for application {app_config.label}", min_verbosity=2)
        signal.send(
            sender=app_config,
            app_config=app_config,
            verbosity=opts.verbosity,
            interactive=opts.interactive,
            using=alias,
            stdout=out.stdout,
            apps=state_apps,
            plan=plan,
        )


def unreflected_changes_notice(out: Output, shared: Shared) -> None:
    """Django's notice when nothing is pending but models of tenant apps have changes no
    migration reflects (they would not be applied).

    Compared on a graph with squashes resolved, as Django's executor loader has it: the raw
    graph holds a squash beside the migrations it replaces, and its end state can put the
    squash's operations after a later migration's (a change that exists nowhere).
    """
    autodetector_class = getattr(DjangoMigrate, "autodetector", MigrationAutodetector)
    with DJANGO_LOCK:
        try:
            # Nothing is pending: every squash is applied, so Django's loader uses it.
            loader = _CopiedLoader(None, shared)
        except (MigrationSchemaMissing, NodeNotFoundError, InconsistentMigrationHistory):
            return
        autodetector = autodetector_class(loader.project_state(), ProjectState.from_apps(global_apps))
        changes = autodetector.changes(graph=loader.graph)
    apps = sorted(app for app in changes if conf.is_tenant_app(app))
    if not apps:
        return
    names = ", ".join(repr(app) for app in apps)
    out.write(
        f"  Your models in app(s): {names} have changes that are not yet reflected in a migration, "
        "and so won't be applied.",
        out.style.NOTICE,
    )
    out.write(
        "  Run 'manage.py makemigrations' to make new migrations, and then re-run "
        "'manage.py migratetenant' to apply them.",
        out.style.NOTICE,
    )


def recorder_ddl(connection: Any) -> list[str]:
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        editor.create_model(MigrationRecorder(connection).Migration)
    return list(editor.collected_sql)


def check_arguments(opts: MigrateOptions) -> None:
    """Hostile input is refused before anything is read."""
    check_text("migration name", opts.migration_name, 255)
    check_text("app label", opts.app_label, 255)


def check_app_label(opts: MigrateOptions) -> None:
    check_arguments(opts)
    if not opts.app_label:
        return
    try:
        global_apps.get_app_config(opts.app_label)
    except LookupError as err:
        raise TenantRunError(str(err)) from None
    if not conf.is_tenant_app(opts.app_label):
        raise TenantRunError(f"App '{opts.app_label}' is not a tenant app.")


def migrate_tenant(
    tenant_id: str, opts: MigrateOptions, out: Output, shared: Shared | None = None
) -> _core.Report | None:
    """Run (or, with ``opts.plan``, show) one tenant's migrations. Returns the Rust report."""
    return migrate_record(lookup(tenant_id), opts, out, shared)


def migrate_record(
    record: _core.TenantRecord, opts: MigrateOptions, out: Output, shared: Shared | None = None
) -> _core.Report | None:
    settings_dict, schema = tenant_settings(record)
    alias = record.tenant_id
    register_alias(alias, settings_dict, schema)
    check_arguments(opts)
    shared = shared or Shared()
    # Taken before the plan is read: another run may be half-way through this tenant.
    run_lock = (
        _core.RunLock(rust_params(settings_dict, schema), record.tenant_id, opts.lock_wait)
        if opts.writes
        else None
    )
    try:
        database = _core.TenantDatabase(
            rust_params(settings_dict, schema, opts.lock_timeout, opts.statement_timeout)
        )
    except BaseException:
        if run_lock is not None:
            run_lock.release()
        raise
    stop_rust = INTERRUPTER.register(database.interrupt)
    try:
        # From here to the end of the run, in this thread, Django's default database is the
        # tenant: migrations and signal receivers written for plain `migrate` reach it.
        with tenant_as_default(alias) as connection:
            stop_django = INTERRUPTER.register(cancel_django(connection))
            try:
                return _plan_and_run(database, connection, record, opts, out, shared)
            finally:
                INTERRUPTER.unregister(stop_django)
                connection.close()
    finally:
        INTERRUPTER.unregister(stop_rust)
        database.close()
        if run_lock is not None:
            run_lock.release()


def _plan_and_run(
    database: _core.TenantDatabase,
    connection: Any,
    record: _core.TenantRecord,
    opts: MigrateOptions,
    out: Output,
    shared: Shared,
) -> _core.Report | None:
    # Django's order: history and conflicts, then the app label, then the target; only
    # then --prune, so that a run refused by any of them has deleted nothing.
    if opts.app_label:
        database.plan(shared.graph, None, None)
        check_app_label(opts)
    plan = database.plan(shared.graph, opts.app_label, opts.migration_name)
    if opts.prune:
        prune(database, shared.graph, opts, out)
    if opts.plan:
        print_plan(out, record.tenant_id, plan, shared.loader)
    if opts.check and plan.steps:
        raise UnappliedMigrations(record.tenant_id)
    # As Django's migrate: --prune, --plan and --check change no schema.
    if opts.plan or opts.check or opts.prune:
        return None
    if opts.skip_up_to_date and not plan.steps:
        return None
    return _run(database, connection, plan, record, opts, out, shared)


def _post_migrate_apps(post_state: ProjectState) -> Any:
    """Django's re-rendering of the final state before ``post_migrate`` (migrate.py)."""
    post_state.clear_delayed_apps_cache()
    post_apps = post_state.apps
    with post_apps.bulk_update():
        model_keys = []
        for model_state in post_apps.real_models:
            model_key = model_state.app_label, model_state.name_lower
            model_keys.append(model_key)
            post_apps.unregister_model(*model_key)
    post_apps.render_multiple([ModelState.from_model(global_apps.get_model(*model)) for model in model_keys])
    return post_apps


def _run(
    database: _core.TenantDatabase,
    connection: Any,
    plan: _core.Plan,
    record: _core.TenantRecord,
    opts: MigrateOptions,
    out: Output,
    shared: Shared,
) -> _core.Report:
    out.write(f"Running migrations for tenant: {printable(record.name)}", out.style.MIGRATE_HEADING)
    connection.prepare_database()
    steps = plan.steps
    django_plan = [(shared.clone((a, n)), b) for a, n, b in steps]
    by_key = {(m.app_label, m.name): m for m, _ in django_plan}
    group = (frozenset(plan.applied), tuple(steps), opts.fake)

    def make_hooks() -> DjangoHooks:
        executor = shared.executor(connection)
        if not plan.replace_migrations:
            executor.loader.replace_migrations = False
            executor.loader.build_graph()
        # The executor works on the very objects the pre_migrate handlers saw (and may have
        # extended, as contenttypes does after a RenameModel).
        executor.loader.graph.nodes.update(by_key)
        nodes = executor.loader.graph.nodes
        full_plan = [nodes[key] for key in plan.full_plan if key in nodes]
        hooks = DjangoHooks(executor, django_plan, full_plan, None, out, shared, group)
        hooks.timeouts = (opts.lock_timeout, opts.statement_timeout)
        return hooks

    lazy = (
        shared.cache is not None
        and bool(steps)
        and not steps[0][2]
        and plan.replace_migrations
        and not (opts.fake or opts.fake_initial)
        and not any((a, n) in shared.squash_related for a, n, _ in steps)
    )
    print_header(out, plan)
    with DJANGO_LOCK:
        hooks: DjangoHooks | LazyHooks = LazyHooks(make_hooks, out) if lazy else make_hooks()
        pre_apps = shared.state_apps(("pre", *group), lambda: shared.applied_state(plan).apps)
        emit(signals.pre_migrate, out, connection.alias, opts, pre_apps, django_plan)

    out.write("Running migrations:", out.style.MIGRATE_HEADING)
    if not django_plan:
        out.write("  No migrations to apply.")
        if opts.verbosity >= 1:
            unreflected_changes_notice(out, shared)
    shares_terminal = same_terminal(out.stdout, sys.stderr) and not out.whole_lines
    if opts.heartbeat > 0 and not out.stdout.isatty():
        # In a log a beat would land in the middle of "name ... OK": print the line whole.
        out.whole_lines = True
    heartbeat = Heartbeat(
        sys.stderr,
        opts.heartbeat,
        record.tenant_id,
        database.backend_pid(),
        connection.settings_dict,
        running=database.running_statement,
        open_line=lambda: (out.open_step or "") if shares_terminal else "",
    )
    out.heartbeat = heartbeat
    try:
        with heartbeat:
            report = database.migrate(
                plan,
                hooks,
                tenant=record.tenant_id,
                recorder_ddl=shared.recorder_ddl(connection),
                fake=opts.fake and bool(django_plan),
                fake_initial=opts.fake_initial and bool(django_plan),
                cache=shared.cache,
                retries=opts.retries,
                retry_delay=opts.retry_delay,
            )
    finally:
        out.heartbeat = None
        out.close_line()

    with DJANGO_LOCK:
        post_apps = shared.state_apps(("post", *group), lambda: _post_migrate_apps(hooks.final_state()))
        emit(signals.post_migrate, out, connection.alias, opts, post_apps, django_plan)
    out.write(f"Migrations completed successfully for tenant '{record.tenant_id}'.", out.style.SUCCESS)
    return report
