"""What one process computes once and every tenant of a run reuses, and the lock that lets
concurrent tenants take turns on Django's side."""

from __future__ import annotations

import copy
import functools
import threading
from collections import deque
from importlib import import_module
from typing import Any

from django.apps import apps as global_apps
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ProjectState
from django.utils.module_loading import module_has_submodule

from .. import _core
from ..graph import RawGraphLoader, graph_json
from ..search_path import one_transaction

# Django's migration machinery is not thread-safe: rendered project states share model classes
# (ProjectState.clone() copies the registry, not the classes), and rendering a model mutates
# the _meta of the models it relates to; nor is user code (a data migration's body, a signal
# receiver) written to run in two threads at once. Concurrent tenants of one process therefore
# take turns for everything that touches Django's side (compiling, Python steps, rendering,
# signals). Outside this lock: Rust's replay, and the statements of a tenant's own connection
# that need nothing of it (around the operations of a step on shared states, see Holding;
# the built-in post_migrate receivers' rows, see Batch.write).
DJANGO_LOCK = threading.RLock()


def django_side(method: Any) -> Any:
    """Run a hook that works on Django's side under DJANGO_LOCK."""

    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with DJANGO_LOCK:
            return method(*args, **kwargs)

    return locked


class Holding:
    """DJANGO_LOCK taken and let go within one step by the thread that runs it.

    A migration Django applies on shared operation states runs its operations (user code,
    rendering) under the lock, and the statements of ours and Django's around them (the
    transaction's start, the history row and its guard, the commit) outside it: those round
    trips were most of the time the lock was held, while the other tenants waited."""

    def __init__(self) -> None:
        self.held = False

    def take(self) -> None:
        if not self.held:
            DJANGO_LOCK.acquire()
            self.held = True

    def let_go(self) -> None:
        if self.held:
            self.held = False
            DJANGO_LOCK.release()


class Shared:
    """What one process computes once and every tenant of the run reuses.

    The migration graph is loaded from disk and serialised once; SQL compiled for a migration
    on one tenant is replayed on every tenant verified to be in the same state (``cache``);
    rendered project states, which depend only on the applied set and the plan, are kept per
    such group for the signals. ``alongside``: how many tenants run at a time.
    """

    def __init__(self, replay: bool = False, alongside: int = 1) -> None:
        import_management_modules()
        self.loader = RawGraphLoader()
        self.graph = graph_json(self.loader)
        self.cache = _core.ReplayCache() if replay else None
        self._states: dict[Any, Any] = {}
        self.alongside = max(1, alongside)
        self._passing: deque[tuple[Any, ...]] = deque()
        self._step_states: dict[Any, ProjectState] = {}
        self._recorder_ddl: dict[Any, list[str]] = {}
        self._graphs: dict[Any, BuiltGraph] = {}
        self._lock = threading.Lock()
        # Steps (app, name, backwards) whose compile computed a value for its tenant (a callable
        # default): compiled on every tenant, the later ones on the group's shared states.
        self.per_tenant: set[tuple[str, str, bool]] = set()
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

    def executor(
        self, connection: Any, history: frozenset[tuple[str, str]] | None = None
    ) -> MigrationExecutor:
        """A MigrationExecutor whose loader copies the migrations loaded once from disk.

        Each tenant gets its own Migration instances (``pre_migrate`` handlers such as
        contenttypes' rename injection mutate them), without re-importing or re-listing files.
        ``history``, when the caller knows the tenant's applied set exactly, spares the loader
        reading it (a transaction of four statements a tenant).
        """
        executor = MigrationExecutor.__new__(MigrationExecutor)
        executor.connection = connection
        executor.progress_callback = None
        executor.recorder = MigrationRecorder(connection)
        if history:
            executor.recorder._has_table = True  # rows were read from it, or recorded in it
        # One recorder for the loader's history read and the executor's history writes: it
        # remembers the table it found (as Django 5.1+ does), one catalog query less a tenant.
        executor.loader = CopiedLoader(connection, self, executor.recorder, history)
        executor.record_migration = _recording_together(executor)  # type: ignore[method-assign]
        return executor

    def passing(self, *keys: Any) -> None:
        """What ``once`` and ``keep_step_state`` kept for ``keys`` is of use only to the tenants
        running alongside the one that used it, the others replaying what it ran: it is kept
        while it is among the last ``alongside`` such, then dropped.

        States of migrations Django applies on a group's first tenants only (order-sensitive
        ones), kept for the run, were most of its memory on a project of many models (a render
        of the models each operation touches: 500 MB where 320 is needed); dropped at once,
        a tenant that started with the first one (they go through the first steps together)
        computed them all again."""
        with self._lock:
            if keys in self._passing:
                self._passing.remove(keys)
            self._passing.append(keys)
            while len(self._passing) > self.alongside:
                for key in self._passing.popleft():
                    self._states.pop(key, None)
                    self._step_states.pop(key, None)

    def forget(self, key: Any) -> None:
        """Drop what ``once`` kept for ``key`` (it may no longer be what it was computed as)."""
        with self._lock:
            self._states.pop(key, None)

    def built_graph(self, key: Any) -> BuiltGraph | None:
        with self._lock:
            return self._graphs.get(key)

    def keep_built_graph(self, key: Any, built: BuiltGraph) -> None:
        with self._lock:
            self._graphs.setdefault(key, built)

    def once(self, key: Any, make: Any) -> Any:
        """What ``make`` computes for a history group (applied set, plan), computed by the
        group's first tenant: rendered apps, operation states."""
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


class BuiltGraph:
    """What ``MigrationLoader.build_graph`` made of the migrations on disk for one applied set:
    the graph's edges (read-only once built), which nodes it kept, and which squashes it
    counted as applied. Every tenant with that applied set gets its own ``nodes`` over its own
    Migration copies and shares the rest."""

    def __init__(self, loader: MigrationLoader, history: frozenset[tuple[str, str]]) -> None:
        self.node_map = loader.graph.node_map
        self.keys = list(loader.graph.nodes)
        self.replacements = list(loader.replacements)
        # Django sets a usable squash's entry to the squash itself (a recorded row of it too).
        after = loader.applied_migrations
        self.squashes_applied = {key for key, value in after.items() if isinstance(value, Migration)}
        self.squashes_unapplied = history - set(after)

    def apply(self, loader: MigrationLoader) -> None:
        graph = MigrationGraph()
        graph.node_map = self.node_map
        graph.nodes = {key: loader.disk_migrations[key] for key in self.keys}
        loader.graph = graph
        loader.replacements = {key: loader.disk_migrations[key] for key in self.replacements}
        for key in self.squashes_applied:
            loader.applied_migrations[key] = loader.disk_migrations[key]
        for key in self.squashes_unapplied:
            loader.applied_migrations.pop(key, None)


class CopiedLoader(MigrationLoader):
    def __init__(
        self,
        connection: Any,
        shared: Shared,
        recorder: MigrationRecorder | None = None,
        history: frozenset[tuple[str, str]] | None = None,
    ) -> None:
        self.shared = shared
        self.history_recorder = recorder
        self.known_history = history
        super().__init__(connection)

    def load_disk(self) -> None:
        t = self.shared.loader
        self.disk_migrations = {key: self.shared.clone(key) for key in t.disk_migrations}
        self.unmigrated_apps = set(t.unmigrated_apps)
        self.migrated_apps = set(t.migrated_apps)

    def build_graph(self) -> None:
        # Building the graph (nodes, edges, squashes, the cycle check) costs more than the
        # rest of a tenant's Django side in a deploy; it depends only on the files on disk,
        # loaded once, and the applied set, so it is built once per applied set.
        if self.connection is None:  # no history: the graph of the files alone
            super().build_graph()
            return
        if self.known_history is not None:
            # Only the keys are read (the graph's squashes, the project state), never the rows.
            applied = dict.fromkeys(sorted(self.known_history))
        else:
            applied = _read_history(self.history_recorder or MigrationRecorder(self.connection))
        history = frozenset(applied)
        key = (history, self.replace_migrations)
        built = self.shared.built_graph(key)
        if built is not None:
            self.load_disk()
            self.applied_migrations = applied
            built.apply(self)
            return
        # Django's own build reads the history again: the same rows, the tenant's run lock is held.
        super().build_graph()
        self.shared.keep_built_graph(key, BuiltGraph(self, history))


def _recording_together(executor: MigrationExecutor) -> Any:
    """``record_migration`` writing a squash's rows (one per migration it replaces) in one
    transaction. Django writes them one autocommit statement each when the migration's own
    transaction is over (deferred SQL, a non-atomic migration, ``--fake``): a failure between
    two rows left the schema of the whole squash with only its first rows, a history from which
    no plan leads on (the next run applies the replaced migrations again, on tables already in
    their final shape). Django 6.0 records by ``(app_label, name, forward)``, backwards too, and
    calls itself for a squash's rows: the arguments are passed on as they come."""
    record = executor.record_migration

    def record_migration(*args: Any, **kwargs: Any) -> None:
        with one_transaction(executor.connection):
            record(*args, **kwargs)

    return record_migration


def _read_history(recorder: MigrationRecorder) -> dict[tuple[str, str], Any]:
    # The table check and the read in one transaction: two autocommit statements on a schema
    # tenant would cost six round trips, one transaction four.
    with one_transaction(recorder.connection):
        return recorder.applied_migrations()  # type: ignore[no-any-return]


def recorder_ddl(connection: Any) -> list[str]:
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        editor.create_model(MigrationRecorder(connection).Migration)
    return list(editor.collected_sql)
