"""One tenant's run, in the order Django's ``migrate`` uses: lookup, run lock, plan, header,
``pre_migrate``, migrations, ``post_migrate``."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import Any

from django.apps import apps as global_apps
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.exceptions import (
    InconsistentMigrationHistory,
    MigrationSchemaMissing,
    NodeNotFoundError,
)
from django.db.migrations.state import ProjectState
from django.db.models import signals

from .. import _core, conf
from ..connections import register_alias, tenant_settings
from ..context import tenant_as_default
from ..exceptions import TenantRunError, UnappliedMigrations
from ..heartbeat import Heartbeat, same_terminal
from ..interrupt import INTERRUPTER, cancel_django
from ..lookup import Record, lookup
from ..names import printable
from ..output import Output, print_header, print_plan
from ..params import add_read_committed, rust_params, vendor_of
from ..reuse import adopt, release
from .hooks import DjangoHooks
from .lazy import LazyHooks
from .options import MigrateOptions, check_app_label, check_arguments
from .shared import DJANGO_LOCK, CopiedLoader, Shared
from .sharing import state_key
from .signals import emit, post_migrate_apps


def migrate_tenant(
    tenant_id: str, opts: MigrateOptions, out: Output, shared: Shared | None = None
) -> _core.Report | None:
    """Run (or, with ``opts.plan``, show) one tenant's migrations. Returns the Rust report."""
    return migrate_record(lookup(tenant_id), opts, out, shared)


def migrate_record(
    record: Record, opts: MigrateOptions, out: Output, shared: Shared | None = None
) -> _core.Report | None:
    settings_dict, schema = tenant_settings(record)
    if vendor_of(settings_dict) == "postgresql":
        add_read_committed(settings_dict)
    alias = record.tenant_id
    register_alias(alias, settings_dict, schema)
    check_arguments(opts)
    shared = shared or Shared()
    # From here to the end of the run, in this thread, Django's default database is the
    # tenant: migrations and signal receivers written for plain `migrate` reach it.
    with tenant_as_default(alias) as connection:
        # Lock, history, plan and execution are the core's, in one call; it calls the
        # session back for Django's part.
        return _core.run_tenant(
            rust_params(settings_dict, schema, opts.lock_timeout, opts.statement_timeout),
            record.tenant_id,
            shared.graph,
            TenantSession(connection, record, opts, out, shared),
            app_label=opts.app_label,
            migration_name=opts.migration_name,
            lock_wait=opts.lock_wait if opts.writes else None,
            fake=opts.fake,
            fake_initial=opts.fake_initial,
            cache=shared.cache,
            retries=opts.retries,
            retry_delay=opts.retry_delay,
        )


class TenantSession:
    """Django's part of one tenant's run, called back by ``_core.run_tenant`` in Django's
    ``migrate`` order: the plan's output, ``pre_migrate``, the hooks the executor calls,
    ``post_migrate``."""

    def __init__(
        self, connection: Any, record: Record, opts: MigrateOptions, out: Output, shared: Shared
    ) -> None:
        self.connection = connection
        self.record = record
        self.opts = opts
        self.out = out
        self.shared = shared
        self.database: _core.TenantDatabase | None = None
        self.hooks: DjangoHooks | LazyHooks | None = None
        self.django_plan: list[tuple[Any, bool]] = []
        self.group: tuple[Any, ...] = ()
        # Undone by ``closing``: the heartbeat (already by ``finished``), then the
        # interrupt registrations, which cover post_migrate too.
        self.registered = ExitStack()
        self.beating = ExitStack()

    def waiting(self, notice: str) -> None:
        self.out.write(notice)

    def opened(self, database: _core.TenantDatabase) -> None:
        self.database = database
        adopt(self.connection)
        for stop in (database.interrupt, cancel_django(self.connection)):
            self.registered.callback(INTERRUPTER.unregister, INTERRUPTER.register(stop))

    def target_checked(self) -> None:
        check_app_label(self.opts)

    def planned(self, plan: _core.Plan) -> tuple[DjangoHooks | LazyHooks, list[str], str | None] | None:
        opts, out = self.opts, self.out
        # Only then --prune, so that a run refused by the history, the app label or the
        # target has deleted nothing.
        if opts.prune:
            assert self.database is not None
            prune(self.database, self.shared.graph, opts, out)
        if opts.plan:
            print_plan(out, self.record.tenant_id, plan, self.shared.loader)
        if opts.check and plan.steps:
            raise UnappliedMigrations(self.record.tenant_id)
        # As Django's migrate: --prune, --plan and --check change no schema.
        if opts.plan or opts.check or opts.prune:
            return None
        if opts.skip_up_to_date and not plan.steps:
            return None
        self.hooks = self._prepare(plan)
        key = state_key(self.group, self.connection) if self.shared.cache is not None else None
        return self.hooks, self.shared.recorder_ddl(self.connection), key

    def finished(self, report: _core.Report) -> None:
        self.beating.close()
        assert self.hooks is not None
        hooks, shared, out = self.hooks, self.shared, self.out
        with DJANGO_LOCK:
            post_apps = shared.once(("post", *self.group), lambda: post_migrate_apps(hooks.final_state()))
            batch = emit(
                signals.post_migrate, out, self.connection.alias, self.opts, post_apps, self.django_plan
            )
        if batch is not None:
            # The last of post_migrate, after every other receiver: statements on this tenant's
            # connection only, outside the lock that every tenant's Django work takes in turn.
            batch.write()
        out.write(
            f"Migrations completed successfully for tenant '{self.record.tenant_id}'.", out.style.SUCCESS
        )

    def closing(self) -> None:
        try:
            self.beating.close()
        finally:
            try:
                self.registered.close()
            finally:
                release(self.connection)

    def _prepare(self, plan: _core.Plan) -> DjangoHooks | LazyHooks:
        """The header, ``pre_migrate`` and the heartbeat, up to the first migration."""
        opts, out, shared, connection = self.opts, self.out, self.shared, self.connection
        out.write(f"Running migrations for tenant: {printable(self.record.name)}", out.style.MIGRATE_HEADING)
        connection.prepare_database()
        # Connected here, outside the Django lock that every later use of it holds.
        connection.ensure_connection()
        steps = plan.steps
        django_plan = self.django_plan = [(shared.clone((a, n)), b) for a, n, b in steps]
        by_key = {(m.app_label, m.name): m for m, _ in django_plan}
        group = self.group = (frozenset(plan.applied), tuple(steps), opts.fake)

        def make_hooks(history: frozenset[tuple[str, str]] | None = None) -> DjangoHooks:
            executor = shared.executor(connection, history)
            if not plan.replace_migrations:
                executor.loader.replace_migrations = False
                executor.loader.build_graph()
            # The executor works on the very objects the pre_migrate handlers saw (and may
            # have extended, as contenttypes does after a RenameModel).
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
            hooks: DjangoHooks | LazyHooks
            hooks = LazyHooks(make_hooks, out, plan.applied) if lazy else make_hooks()
            pre_apps = shared.once(("pre", *group), lambda: shared.applied_state(plan).apps)
            emit(signals.pre_migrate, out, connection.alias, opts, pre_apps, django_plan)

        out.write("Running migrations:", out.style.MIGRATE_HEADING)
        if not django_plan:
            out.write("  No migrations to apply.")
            if opts.verbosity >= 1:
                unreflected_changes_notice(out, shared)
        self._start_heartbeat()
        return hooks

    def _start_heartbeat(self) -> None:
        out, database = self.out, self.database
        assert database is not None
        shares_terminal = same_terminal(out.stdout, sys.stderr) and not out.whole_lines
        if self.opts.heartbeat > 0 and not out.stdout.isatty():
            # In a log a beat would land in the middle of "name ... OK": print the line whole.
            out.whole_lines = True
        heartbeat = Heartbeat(
            sys.stderr,
            self.opts.heartbeat,
            self.record.tenant_id,
            database.backend_pid(),
            self.connection.settings_dict,
            running=database.running_statement,
            open_line=lambda: (out.open_step or "") if shares_terminal else "",
        )
        out.heartbeat = heartbeat

        def stop() -> None:
            out.heartbeat = None
            out.close_line()

        self.beating.callback(stop)
        self.beating.enter_context(heartbeat)


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
            loader = CopiedLoader(None, shared)
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
