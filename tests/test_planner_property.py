"""The Rust planner against Django 5.2's own ``migrate`` decisions, on random graphs.

Django is the oracle: for every generated case the same migrations are handed to a real
``MigrationLoader`` (``build_graph``, ``check_consistent_history``, ``detect_conflicts``), the
target logic of ``django/core/management/commands/migrate.py`` is replayed verbatim and
``MigrationExecutor.migration_plan`` computes the plan (with its "reload without replacements"
branch), followed by the mixed-plan check of ``MigrationExecutor.migrate``. The Rust side gets the
graph exactly as production builds it (``serialize_graph`` on a loader made with
``connection=None, replace_migrations=False``) and the recorded set as a plain list.

Nothing touches a database: the loader's ``load_disk`` returns in-memory ``Migration`` objects and
``MigrationRecorder.applied_migrations`` is patched (in the oracle only) to return the case's
recorded set.

Where Django's output depends on hash order (``set`` iteration with randomised string hashing),
the comparison accepts every answer Django could give:

* ``InconsistentMigrationHistory``: Django walks ``node_map[m].parents`` (a set), so with several
  unapplied parents any of them may be named; the recorded rows come in database order. Rust's
  message must name *some* (applied migration, unapplied dependency) pair Django's check refuses.
* Conflicts: ``detect_conflicts`` builds its dict from a set of app labels, so with several
  conflicting apps the ``;``-separated parts come in any order; they are compared as a set
  (the migration names inside one part are sorted by Django and compared exactly).
* ``CircularDependencyError``: the cycle reported depends on ``set.pop()``; only the class is
  compared.

The migrate command's ``apps.get_app_config(app_label)`` check is not replayed: the generated app
labels are not installed apps, and production (``run.flow.migrate_tenant``) does that check in
Python before it calls the planner. ``MigrationExecutor.migrate``'s mixed-plan check is replayed
but cannot fire on ``migrate``'s own targets (one specific target, or leaves only).

Generated cases (``cases()``): 2-4 apps in a random INSTALLED_APPS order, a chain per app, edges
to earlier migrations of other apps, now and then ``(app, "__first__")``/``(app, "__latest__")``,
a same-app ``__first__`` (ignored by Django), a dependency on an unmigrated app or on a missing
migration, a second leaf (merged later or left as a conflict), cross-app ``run_before``, up to two
squashes per app (a contiguous run of the chain, with the external dependencies of what they
replace; later migrations depend on the squash or on the replaced ones; sometimes the replaced
files are deleted, sometimes the run is one Django cannot squash into an acyclic graph), an empty
migrations package, and recorded sets that are empty, complete, dependency-closed, stopped inside
a squash, or perturbed (inconsistent, unknown rows). Targets: all apps, an app, a full name, a
prefix (often ambiguous), ``zero``, a squash or what it replaces, unknown names, another app's
names, an app without migrations. ``--hypothesis-show-statistics`` shows the mix of outcomes.

The divergences this test found (an empty app's header, empty-string arguments, dangling
references to deleted replaced migrations, ``__first__`` resolved at the wrong moment) are fixed;
their minimal cases stay at the end of the file as regression tests. Should production's
``serialize_graph`` ever refuse a graph Django accepts, the planner is still compared on the
graph serialisation would have produced (``UncheckedCaseLoader``).
"""

# ruff: noqa: UP031  (migrate.py's %-formatted messages are replayed verbatim)

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from unittest import mock

import django
import pytest
from django.apps import apps as django_apps
from django.conf import settings

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["tenant_migrate"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        TENANT_MIGRATE={"TENANT_APPS": None},
        USE_TZ=True,
    )
if not django_apps.ready:
    django.setup()

from django.db.migrations.exceptions import (
    AmbiguityError,
    CircularDependencyError,
    InconsistentMigrationHistory,
    InvalidMigrationPlan,
    NodeNotFoundError,
)
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings
from hypothesis import HealthCheck, currently_in_test_context, given
from hypothesis import event as _event
from hypothesis import note as _note
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from tenant_migrate import _core
from tenant_migrate.graph import RawGraphLoader, serialize_graph

Key = tuple[str, str]

APPS = ("alpha", "beta", "gamma", "delta")
EMPTY_APP = "empty"  # has a migrations package without any migration in it
PLAIN_APP = "plain"  # installed app without a migrations package
WORDS = ("initial", "auto", "add_price", "alter_name", "data")

MAX_EXAMPLES = 4000

# When a property fails, Hypothesis' pytest plugin imports libcst to suggest an @example patch;
# libcst triggers this DeprecationWarning, which `filterwarnings = error` would turn into an
# INTERNALERROR hiding the actual failure report.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")


# --------------------------------------------------------------------------------------------
# The cases


@dataclass
class Mig:
    app: str
    name: str
    dependencies: list[Key] = field(default_factory=list)
    replaces: list[Key] = field(default_factory=list)
    run_before: list[Key] = field(default_factory=list)
    initial: bool | None = None

    @property
    def key(self) -> Key:
        return (self.app, self.name)


@dataclass
class Case:
    """Migrations on disk (in ``disk_migrations`` order), recorded rows and the command line."""

    migrations: list[Mig]
    migrated_apps: list[str]
    recorded: list[Key]
    app_label: str | None = None
    migration_name: str | None = None

    def __repr__(self) -> str:
        """Pasteable Python (``initial`` left out: it plays no part in planning)."""
        lines = ["Case(", "    ["]
        for m in self.migrations:
            extra = ""
            if m.replaces:
                extra += f", replaces={m.replaces!r}"
            if m.run_before:
                extra += f", run_before={m.run_before!r}"
            lines.append(f"        Mig({m.app!r}, {m.name!r}, {m.dependencies!r}{extra}),")
        lines.append("    ],")
        lines.append(f"    migrated_apps={self.migrated_apps!r},")
        lines.append(f"    recorded={self.recorded!r},")
        lines.append(f"    app_label={self.app_label!r},")
        lines.append(f"    migration_name={self.migration_name!r},")
        lines.append(")")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # how Hypothesis prints a failing case
        printer.text(repr(self))


def event(value: str) -> None:
    """``hypothesis.event``, also callable from the hand-written tests."""
    if currently_in_test_context():
        _event(value)


def note(value: str) -> None:
    if currently_in_test_context():
        _note(value)


def make_migration(spec: Mig) -> Migration:
    migration = Migration(spec.name, spec.app)
    migration.dependencies = list(spec.dependencies)
    migration.replaces = list(spec.replaces)
    migration.run_before = list(spec.run_before)
    migration.initial = spec.initial
    migration.operations = []
    return migration


class CaseLoader(MigrationLoader):
    """A ``MigrationLoader`` whose "disk" is a ``Case``; everything else is Django's code."""

    def __init__(self, case: Case, connection, **kwargs):
        self.case = case
        super().__init__(connection, **kwargs)

    def load_disk(self):
        self.disk_migrations = {m.key: make_migration(m) for m in self.case.migrations}
        self.unmigrated_apps = {PLAIN_APP}
        self.migrated_apps = set(self.case.migrated_apps)


class UncheckedCaseLoader(CaseLoader):
    """``build_graph`` without the final ``validate_consistency``/``ensure_not_cyclic``.

    Only used when production's own serialisation loader refuses the graph (see
    ``test_serialize_graph_refuses_dangling_reference_to_deleted_replaced_migration``), so that
    the Rust planner can still be compared with Django on such graphs.

    ``check_key`` answers are replayed from ``build_graph``: Django resolves ``__first__`` and
    ``__latest__`` while dummy nodes are still being added (one may become an app's root or leaf
    halfway through), whereas ``serialize_graph`` asks afterwards. Both walk ``disk_migrations``
    and each migration's dependencies then ``run_before`` in the same order, so the n-th call of
    one is the n-th call of the other (checked; a mismatch raises ``ReplayMismatch``).
    """

    class ReplayMismatch(Exception):
        pass

    def build_graph(self):
        self.resolved = []
        self.replay = None
        with (
            mock.patch.object(MigrationGraph, "validate_consistency"),
            mock.patch.object(MigrationGraph, "ensure_not_cyclic"),
        ):
            super().build_graph()
        self.replay = iter(self.resolved)

    def check_key(self, key, current_app):
        if self.replay is None:
            result = super().check_key(key, current_app)
            self.resolved.append(((key, current_app), result))
            return result
        call, result = next(self.replay, (None, None))
        if call != (key, current_app):
            raise self.ReplayMismatch(f"{call} != {(key, current_app)}")
        return result


def _recorded_rows(recorder):
    """Stand-in for ``MigrationRecorder.applied_migrations``: a fresh dict, in row order."""
    return {key: SimpleNamespace(app=key[0], name=key[1]) for key in recorder.connection.recorded}


@pytest.fixture(autouse=True, scope="module")
def oracle_environment():
    with (
        override_settings(TENANT_MIGRATE={"TENANT_APPS": None}),
        mock.patch.object(MigrationRecorder, "applied_migrations", _recorded_rows),
    ):
        yield


# --------------------------------------------------------------------------------------------
# Django's decision (the oracle)


@dataclass
class Outcome:
    error: type | None = None
    message: str = ""
    steps: list[tuple[str, str, bool]] | None = None
    full_plan: list[Key] | None = None
    header: tuple[str, list[str]] | None = None
    replace_migrations: bool | None = None
    # InconsistentHistory: every message Django may produce (it iterates a set of parents).
    acceptable: set[str] = field(default_factory=set)
    django_crash: str | None = None

    @property
    def kind(self) -> str:
        if self.django_crash:
            return "crash"
        return "ok" if self.error is None else self.error.__name__


def inconsistent_messages(loader: MigrationLoader, recorded: dict) -> set[str]:
    """All messages ``check_consistent_history`` could raise, whatever the set order."""
    messages = set()
    for migration in recorded:
        if migration not in loader.graph.nodes:
            continue
        for parent in loader.graph.node_map[migration].parents:
            if parent in recorded:
                continue
            if parent in loader.replacements and all(
                m in recorded for m in loader.replacements[parent].replaces
            ):
                continue
            messages.add(
                f"Migration {migration[0]}.{migration[1]} is applied before its dependency "
                f"{parent[0]}.{parent[1]}."
            )
    return messages


def django_decision(case: Case) -> Outcome:
    connection = SimpleNamespace(alias="default", recorded=list(case.recorded))
    # MigrationExecutor.__init__, with our loader in place of MigrationLoader(connection).
    executor = MigrationExecutor.__new__(MigrationExecutor)
    executor.connection = connection
    executor.progress_callback = None
    executor.recorder = MigrationRecorder(connection)
    try:
        executor.loader = CaseLoader(case, connection)
    except NodeNotFoundError as exc:
        return Outcome(error=_core.NodeNotFound, message=str(exc))
    except CircularDependencyError as exc:
        return Outcome(error=_core.CircularDependency, message=str(exc))
    except ValueError as exc:
        # check_key: `__first__`/`__latest__` of an app whose migrations all have an in-app
        # parent/child (a cycle). Production's serialize_graph calls the same check_key.
        return Outcome(error=ValueError, message=str(exc))
    loader = executor.loader

    # migrate.py:117
    try:
        loader.check_consistent_history(connection)
    except InconsistentMigrationHistory as exc:
        message = str(exc).removesuffix(f" on database '{connection.alias}'.") + "."
        acceptable = inconsistent_messages(loader, MigrationRecorder(connection).applied_migrations())
        assert message in acceptable
        return Outcome(error=_core.InconsistentHistory, message=message, acceptable=acceptable)

    # migrate.py:121-130
    conflicts = loader.detect_conflicts()
    if conflicts:
        name_str = "; ".join("%s in %s" % (", ".join(names), app) for app, names in conflicts.items())
        return Outcome(
            error=_core.ConflictingMigrations,
            message="Conflicting migrations detected; multiple leaf nodes in the "
            "migration graph: (%s).\nTo fix them run "
            "'python manage.py makemigrations --merge'" % name_str,
        )

    # migrate.py:134-149 (apps.get_app_config() skipped: see the module docstring; no syncdb)
    app_label = case.app_label
    migration_name = case.migration_name
    target_app_labels_only = True
    if app_label:
        if app_label not in loader.migrated_apps:
            return Outcome(
                error=_core.AppWithoutMigrations,
                message="App '%s' does not have migrations." % app_label,
            )

    # migrate.py:151-186
    if app_label and migration_name:
        if migration_name == "zero":
            targets = [(app_label, None)]
        else:
            try:
                migration = loader.get_migration_by_prefix(app_label, migration_name)
            except AmbiguityError:
                return Outcome(
                    error=_core.AmbiguousMigration,
                    message="More than one migration matches '%s' in app '%s'. "
                    "Please be more specific." % (migration_name, app_label),
                )
            except KeyError:
                return Outcome(
                    error=_core.MigrationNotFound,
                    message="Cannot find a migration matching '%s' from app '%s'."
                    % (migration_name, app_label),
                )
            target = (app_label, migration.name)
            # Partially applied squashed migrations are not included in the
            # graph, use the last replacement instead.
            if target not in loader.graph.nodes and target in loader.replacements:
                incomplete_migration = loader.replacements[target]
                target = incomplete_migration.replaces[-1]
                event("target: partially applied squash -> its last replaced migration")
            targets = [target]
        target_app_labels_only = False
    elif app_label:
        targets = [key for key in loader.graph.leaf_nodes() if key[0] == app_label]
    else:
        targets = loader.graph.leaf_nodes()

    # migrate.py:239
    try:
        plan = executor.migration_plan(targets)
    except NodeNotFoundError as exc:
        return Outcome(error=_core.NodeNotFound, message=str(exc))
    except CircularDependencyError as exc:
        # Django 6.0+: a target missing from the graph reloads it without replacements,
        # where the squashed-away dependencies can form a cycle.
        return Outcome(error=_core.CircularDependency, message=str(exc))
    except KeyError as exc:
        # executor.py:56-60 after the reload: `node_map[target]` for a recorded target that is
        # in no graph (its file was deleted after a squash). Django crashes with a KeyError.
        return Outcome(django_crash=f"KeyError: {exc}")
    loader = executor.loader  # rebuilt (same object) if migration_plan reloaded the graph

    # migrate.py:281-296: the "Operations to perform" header.
    if target_app_labels_only:
        header = ("apply_all", sorted({a for a, n in targets}))
    elif targets[0][1] is None:
        header = ("unapply_all", [str(targets[0][0])])
    else:
        header = ("specific", [targets[0][0], targets[0][1]])

    # executor.py:111-130 (MigrationExecutor.migrate)
    full_plan = executor.migration_plan(loader.graph.leaf_nodes(), clean_start=True)
    all_forwards = all(not backwards for mig, backwards in plan)
    all_backwards = all(backwards for mig, backwards in plan)
    if plan and all_forwards == all_backwards:
        mixed = InvalidMigrationPlan(
            "Migration plans with both forwards and backwards migrations "
            "are not supported. Please split your migration process into "
            "separate plans of only forwards OR backwards migrations.",
            plan,
        )
        return Outcome(error=_core.InvalidPlan, message=mixed.args[0])

    return Outcome(
        steps=[(m.app_label, m.name, backwards) for m, backwards in plan],
        full_plan=[(m.app_label, m.name) for m, _ in full_plan],
        header=header,
        replace_migrations=loader.replace_migrations,
    )


# --------------------------------------------------------------------------------------------
# The Rust decision


class ProductionCaseLoader(RawGraphLoader):
    """Production's own serialisation loader, whose "disk" is a ``Case``."""

    def __init__(self, case: Case):
        self.case = case
        super().__init__()

    def load_disk(self):
        CaseLoader.load_disk(self)


def production_graph(case: Case) -> dict:
    """What production hands to Rust: ``serialize_graph`` on its ``RawGraphLoader``."""
    return serialize_graph(ProductionCaseLoader(case))


def rust_decision(case: Case, graph: dict) -> Outcome:
    try:
        plan = _core.compute_plan(json.dumps(graph), list(case.recorded), case.app_label, case.migration_name)
    except _core.PlanError as exc:
        return Outcome(error=type(exc), message=str(exc))
    kind, values = plan.header
    return Outcome(
        steps=[tuple(s) for s in plan.steps],
        full_plan=[tuple(k) for k in plan.full_plan],
        header=(kind, list(values)),
        replace_migrations=plan.replace_migrations,
    )


def conflict_parts(message: str) -> tuple[str, set[str], str]:
    head, _, rest = message.partition("(")
    inner, _, tail = rest.rpartition(")")
    return head, set(inner.split("; ")), tail


def assert_same_decision(expected: Outcome, got: Outcome, case: Case | None = None) -> None:
    if expected.django_crash:
        # Django itself crashes (uncaught KeyError); Rust must at least refuse cleanly.
        assert got.error is not None and issubclass(got.error, _core.PlanError), (
            f"Django crashes ({expected.django_crash}); Rust planned {got.steps}"
        )
        return
    if expected.error is None:
        assert got.error is None, f"Django plans {expected.steps}; Rust raised {got.kind}: {got.message}"
        assert got.steps == expected.steps, "plan steps differ"
        assert got.full_plan == expected.full_plan, "full_plan differs"
        assert got.header == expected.header, "header differs"
        assert got.replace_migrations == expected.replace_migrations, "replace_migrations differs"
        return
    assert got.error is expected.error, f"Django raises {expected.kind}: {expected.message!r}; " + (
        f"Rust raised {got.kind}: {got.message!r}" if got.error else f"Rust planned {got.steps}"
    )
    if expected.error is _core.CircularDependency:
        return
    if expected.error is _core.InconsistentHistory:
        assert got.message in expected.acceptable, (got.message, expected.acceptable)
    elif expected.error is _core.ConflictingMigrations:
        assert conflict_parts(got.message) == conflict_parts(expected.message), (
            got.message,
            expected.message,
        )
    else:
        assert got.message == expected.message


# --------------------------------------------------------------------------------------------
# Random cases


def _closure(seeds, prerequisites: dict[Key, set[Key]]) -> set[Key]:
    done: set[Key] = set()
    todo = list(seeds)
    while todo:
        key = todo.pop()
        if key in done:
            continue
        done.add(key)
        todo.extend(prerequisites.get(key, ()))
    return done


def one_in(draw, n: int) -> bool:
    """True with probability 1/n (a middle value: Hypothesis favours drawing the bounds)."""
    return draw(st.integers(0, n - 1)) == n // 2


@st.composite
def cases(draw) -> Case:
    labels = list(draw(st.permutations(APPS)))[: draw(st.integers(2, 4))]
    lengths = {a: draw(st.integers(1, 5)) for a in labels}
    order = draw(st.permutations([a for a in labels for _ in range(lengths[a])]))

    migs: dict[Key, Mig] = {}
    created: list[Key] = []  # creation order: dependencies only point backwards in it
    chain: dict[str, list[str]] = {a: [] for a in labels}
    open_branch: dict[str, Key] = {}
    missing_dependency = one_in(draw, 60)

    for app in order:
        i = len(chain[app])
        deps: list[Key] = []
        if i:
            deps.append((app, chain[app][-1]))
        elif one_in(draw, 10):
            deps.append((app, "__first__"))  # ignored by Django (#22325)
        if app in open_branch and not one_in(draw, 4):
            deps.append(open_branch.pop(app))
            name = f"{i + 1:04d}_merge"
        else:
            name = f"{i + 1:04d}_{draw(st.sampled_from(WORDS))}"
        others = [k for k in created if k[0] != app]
        if others:
            deps += draw(st.lists(st.sampled_from(others), max_size=2, unique=True))
        symbolic = draw(st.integers(0, 11))
        started = [b for b in labels if b != app and chain[b]]
        finished = [b for b in started if len(chain[b]) == lengths[b] and b not in open_branch]
        if symbolic == 0 and started:
            deps.append((draw(st.sampled_from(started)), "__first__"))
        elif symbolic == 1 and finished:
            deps.append((draw(st.sampled_from(finished)), "__latest__"))
        elif symbolic == 2:
            deps.append((PLAIN_APP, "__first__"))  # unmigrated app: ignored
        key = (app, name)
        migs[key] = Mig(app, name, deps, initial=True if i == 0 else None)
        created.append(key)
        chain[app].append(name)
        if i and app not in open_branch and one_in(draw, 15):
            # A second leaf from the same parent: merged later, or left as a conflict.
            branch = (app, f"{i + 1:04d}_branch")
            migs[branch] = Mig(app, branch[1], [(app, chain[app][-2])])
            created.append(branch)
            open_branch[app] = branch

    if missing_dependency:
        victim = draw(st.sampled_from(created))
        migs[victim].dependencies.append((draw(st.sampled_from(labels)), "0099_missing"))

    # run_before: X runs before a later-created Y of another app.
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        j = draw(st.integers(1, len(created) - 1)) if len(created) > 1 else 0
        earlier = [k for k in created[:j] if k[0] != created[j][0]]
        if earlier:
            x = draw(st.sampled_from(earlier))
            migs[x].run_before.append(created[j])

    # Prerequisites between recordable names (approximate: symbolic dependencies ignored).
    def edges() -> dict[Key, set[Key]]:
        pre: dict[Key, set[Key]] = {k: set() for k in migs}
        for m in migs.values():
            pre[m.key].update(d for d in m.dependencies if d in migs)
            for child in m.run_before:
                pre.setdefault(child, set()).add(m.key)
        return pre

    # Squashes: a contiguous run of an app's main chain.
    squashes: list[Mig] = []
    deleted: set[Key] = set()
    for app in [a for a in labels for _ in range(2)]:  # up to two squashes per app
        if len(chain[app]) < 2 or not one_in(draw, 3):
            continue
        taken = {r for sq in squashes if sq.app == app for r in sq.replaces}
        pre = edges()
        post: dict[Key, set[Key]] = {k: set() for k in pre}
        for k, ps in pre.items():
            for p in ps:
                post.setdefault(p, set()).add(k)
        n = len(chain[app])
        ranges = [
            (s, e)
            for s in range(n)
            for e in range(s + 1, n)
            if not any((app, x) in taken for x in chain[app][s : e + 1])
        ]

        def clean(r, app=app, pre=pre, post=post) -> bool:
            # No outside migration both after and before the run (else merging makes a cycle).
            run = {(app, x) for x in chain[app][r[0] : r[1] + 1]}
            below = _closure(run, pre) - run
            above = _closure(run, post) - run
            return not (below & above)

        candidates = [r for r in ranges if clean(r)]
        if one_in(draw, 10):
            candidates = ranges  # now and then a squash Django cannot use: a cycle
        if not candidates:
            continue
        s, e = draw(st.sampled_from(candidates))
        replaced = [(app, x) for x in chain[app][s : e + 1]]
        squash_deps: list[Key] = []
        for r in replaced:
            for d in migs[r].dependencies:
                if d not in replaced and d not in squash_deps:
                    squash_deps.append(d)
        squash = Mig(
            app,
            f"{s + 1:04d}_squashed_{e + 1:04d}_{draw(st.sampled_from(WORDS))}",
            squash_deps,
            replaces=replaced,
            initial=True if s == 0 else None,
        )
        delete_originals = one_in(draw, 4)
        # Later migrations depend on the squash or (as before the squash) on what it replaces.
        for m in migs.values():
            if m.key in replaced:
                continue
            for index, d in enumerate(m.dependencies):
                if d in replaced and draw(st.integers(0, 9)) < (7 if delete_originals else 5):
                    m.dependencies[index] = squash.key
        migs[squash.key] = squash
        squashes.append(squash)
        if delete_originals:
            deleted.update(replaced)

    # Applied history, over every name that can be recorded (deleted files included).
    pre = edges()
    for squash in squashes:
        for ps in pre.values():
            if squash.key in ps:
                ps.update(squash.replaces)
    recordable = sorted(set(migs))
    mode = draw(st.integers(0, 11))
    if mode <= 1:
        applied: set[Key] = set()
    elif mode == 2:
        applied = _closure(recordable, pre)
    elif mode in (3, 4, 5) and squashes:
        # Stopped in the middle of what a squash replaces.
        squash = draw(st.sampled_from(squashes))
        applied = _closure(squash.replaces[: draw(st.integers(1, len(squash.replaces) - 1))], pre)
    else:
        seeds = draw(st.lists(st.sampled_from(recordable), max_size=4))
        applied = _closure(seeds, pre)
    applied -= {s.key for s in squashes}
    for squash in squashes:
        if all(r in applied for r in squash.replaces) and not one_in(draw, 4):
            applied.add(squash.key)
    if mode >= 9:  # inconsistent or odd histories
        for _ in range(draw(st.integers(1, 2))):
            action = draw(st.sampled_from(["add", "remove", "unknown"]))
            if action == "add":
                applied.add(draw(st.sampled_from(recordable)))
            elif action == "remove" and applied:
                applied.discard(draw(st.sampled_from(sorted(applied))))
            elif action == "unknown":
                applied.add(draw(st.sampled_from([(labels[0], "0042_gone"), ("ghost", "0001_initial")])))
    position = {k: i for i, k in enumerate(created)}
    recorded = sorted(applied, key=lambda k: (position.get(k, len(position)), k))

    for k in deleted:
        del migs[k]
    disk = [migs[k] for a in labels for k in sorted(migs) if k[0] == a]

    migrated_apps = list(labels)
    if one_in(draw, 5):
        migrated_apps.append(EMPTY_APP)

    # The command line.
    def names_of(app: str) -> list[str]:
        return [m.name for m in disk if m.app == app] or ["0001_initial"]

    kind = draw(
        st.sampled_from(
            [
                "all",
                "all",
                "app",
                "name",
                "name",
                "name",
                "name",
                "prefix",
                "prefix",
                "zero",
                "unknown",
                "other_app",
                "plain",
                "empty",
            ]
        )
    )
    if squashes and one_in(draw, 2):
        kind = "squash"
    app = draw(st.sampled_from(labels))
    name: str | None = None
    if kind == "squash":
        # Preferably a partially applied one: Django then targets its last replaced migration.
        partial = [s for s in squashes if 0 < sum(r in applied for r in s.replaces) < len(s.replaces)]
        squash = draw(st.sampled_from(partial or squashes))
        app = squash.app
        others = [squash.name[:13]] + [r[1] for r in squash.replaces]
        name = squash.name if draw(st.booleans()) else draw(st.sampled_from(others))
    elif kind == "all":
        app = None
    elif kind == "app":
        app = draw(st.sampled_from(migrated_apps))
    elif kind == "name":
        # Favour the interesting targets: applied ones (backwards), squashes and what they replace.
        pools = [
            names_of(app),
            [k[1] for k in recorded if k[0] == app and k in migs],
            [s.name for s in squashes if s.app == app],
            [r[1] for s in squashes if s.app == app for r in s.replaces if r in migs],
        ]
        pool = draw(st.sampled_from([p for p in pools if p]))
        name = draw(st.sampled_from(pool))
    elif kind == "prefix":
        full = draw(st.sampled_from(names_of(app)))
        name = full[: draw(st.integers(1, len(full)))]
    elif kind == "zero":
        name = "zero"
    elif kind == "unknown":
        gone = sorted(k[1] for k in deleted if k[0] == app)
        name = draw(st.sampled_from(["0099", "9", "initial", *gone]))
    elif kind == "other_app":
        name = draw(st.sampled_from(names_of(draw(st.sampled_from(labels)))))
    elif kind == "plain":
        app, name = PLAIN_APP, draw(st.sampled_from([None, "zero", "0001"]))
    elif kind == "empty":
        app, name = EMPTY_APP, draw(st.sampled_from([None, "zero", "0001"]))

    return Case(disk, migrated_apps, recorded, app, name)


def rust_graph(case: Case, django_kind: str = "?") -> dict:
    """Production's graph for Rust or, where production refuses it, the unvalidated one."""
    try:
        return production_graph(case)
    except (NodeNotFoundError, CircularDependencyError) as exc:
        # Should production refuse to serialise this graph, compare the
        # planner on the graph it would have received had serialisation not refused it.
        event(f"serialize_graph refuses ({type(exc).__name__}) where Django: {django_kind}")
        note(f"serialize_graph raised {exc!r}")
        return serialize_graph(UncheckedCaseLoader(case, None, replace_migrations=False))


def check_case(case: Case) -> tuple[Outcome, Outcome | None]:
    """Assert Rust decides as Django does; return both decisions (Rust's None if not asked)."""
    expected = django_decision(case)
    event(f"django: {expected.kind}")
    if expected.error is ValueError:
        with pytest.raises(ValueError) as refused:
            production_graph(case)
        assert str(refused.value) == expected.message
        return expected, None
    try:
        graph = rust_graph(case, expected.kind)
    except UncheckedCaseLoader.ReplayMismatch:  # serialize_graph changed its walk
        event("serialize_graph refuses, and check_key replay impossible: not compared")
        return expected, None
    got = rust_decision(case, graph)
    if expected.kind == "ok":
        direction = "empty" if not expected.steps else "backwards" if expected.steps[0][2] else "forwards"
        event(f"plan: {direction}, header {expected.header[0]}")
        if not expected.replace_migrations:
            event("plan: reloaded without replacements")
    note(f"django: {expected}")
    note(f"rust:   {got}")
    assert_same_decision(expected, got, case)
    return expected, got


@hsettings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases())
def test_rust_planner_matches_django(case: Case) -> None:
    check_case(case)


# --------------------------------------------------------------------------------------------
# Hand-picked cases on one readable graph (each also checked against Django, as above)

USR, PRD, ORD = "users", "products", "orders"
USERS_SQUASH = (USR, "0001_squashed_0003_phone")
FIXED = [
    Mig(USR, "0001_initial", [], initial=True),
    Mig(
        USR,
        USERS_SQUASH[1],
        [],
        replaces=[(USR, "0001_initial"), (USR, "0002_email"), (USR, "0003_phone")],
        initial=True,
    ),
    Mig(USR, "0002_email", [(USR, "0001_initial")]),
    Mig(USR, "0003_phone", [(USR, "0002_email")]),
    Mig(USR, "0004_avatar", [(USR, "0003_phone")]),
    Mig(PRD, "0001_initial", [], initial=True, run_before=[(ORD, "0001_initial")]),
    Mig(PRD, "0002_price", [(PRD, "0001_initial"), (USR, "__first__")]),
    Mig(ORD, "0001_initial", [(USR, "0002_email"), (PRD, "__first__")], initial=True),
    Mig(ORD, "0002_total", [(ORD, "0001_initial"), (PRD, "__latest__")]),
]
EVERYTHING = [m.key for m in FIXED]


def decide(recorded, app_label=None, migration_name=None, migrations=FIXED, migrated_apps=(USR, PRD, ORD)):
    """Django's and Rust's decisions must agree; return Rust's for explicit assertions."""
    case = Case(list(migrations), list(migrated_apps), list(recorded), app_label, migration_name)
    _, got = check_case(case)
    assert got is not None
    return got


def forwards(*keys):
    return [(a, n, False) for a, n in keys]


def backwards(*keys):
    return [(a, n, True) for a, n in keys]


def test_fresh_tenant_applies_the_squash_instead_of_its_originals():
    got = decide([])
    assert got.steps == forwards(
        USERS_SQUASH,
        (PRD, "0001_initial"),
        (PRD, "0002_price"),
        (ORD, "0001_initial"),
        (ORD, "0002_total"),
        (USR, "0004_avatar"),
    )
    assert got.header == ("apply_all", [ORD, PRD, USR])
    assert got.replace_migrations is True


def test_partially_applied_squash_uses_originals():
    got = decide([(USR, "0001_initial")])
    assert USERS_SQUASH not in {(a, n) for a, n, _ in got.steps}
    assert got.steps == forwards(
        (PRD, "0001_initial"),
        (PRD, "0002_price"),
        (USR, "0002_email"),
        (ORD, "0001_initial"),
        (ORD, "0002_total"),
        (USR, "0003_phone"),
        (USR, "0004_avatar"),
    )
    assert got.full_plan[0] == (USR, "0001_initial")


def test_squash_counts_as_applied_when_all_its_originals_are():
    got = decide([(USR, "0001_initial"), (USR, "0002_email"), (USR, "0003_phone")])
    assert got.steps == forwards(
        (PRD, "0001_initial"),
        (PRD, "0002_price"),
        (ORD, "0001_initial"),
        (ORD, "0002_total"),
        (USR, "0004_avatar"),
    )
    assert got.full_plan[0] == USERS_SQUASH


def test_targeting_partially_applied_squash_targets_its_last_replaced_migration():
    got = decide([(USR, "0001_initial")], USR, "0001_sq")
    assert got.header == ("specific", [USR, "0003_phone"])
    assert got.steps == forwards((USR, "0002_email"), (USR, "0003_phone"))


def test_backwards_to_replaced_migration_reloads_the_graph_without_squashes():
    got = decide(EVERYTHING, USR, "0002")
    assert got.replace_migrations is False
    assert got.header == ("specific", [USR, "0002_email"])
    assert got.steps == backwards((USR, "0004_avatar"), (USR, "0003_phone"))
    assert USERS_SQUASH in got.full_plan  # the plain graph keeps the squash as its own node


def test_zero_unapplies_dependants_in_other_apps_first():
    got = decide(EVERYTHING, PRD, "zero")
    assert got.header == ("unapply_all", [PRD])
    assert got.steps == backwards(
        (ORD, "0002_total"), (PRD, "0002_price"), (ORD, "0001_initial"), (PRD, "0001_initial")
    )


def test_applied_target_rolls_back_only_its_own_app_children():
    got = decide(EVERYTHING, ORD, "0001_initial")
    assert got.steps == backwards((ORD, "0002_total"))
    assert decide(EVERYTHING, USR, None).steps == []


def test_inconsistent_history_names_the_missing_dependency():
    with pytest.raises(_core.InconsistentHistory) as exc:
        _core.compute_plan(
            json.dumps(production_graph(Case(FIXED, [USR, PRD, ORD], []))), [(USR, "0002_email")]
        )
    assert str(exc.value) == "Migration users.0002_email is applied before its dependency users.0001_initial."
    assert decide([(USR, "0002_email")]).error is _core.InconsistentHistory


def test_conflicting_leaves_are_refused_with_djangos_message():
    branched = [
        *FIXED,
        Mig(USR, "0004_branch", [(USR, "0003_phone")]),
        Mig(PRD, "0002_other", [(PRD, "0001_initial")]),
    ]
    got = decide([], migrations=branched)
    assert got.error is _core.ConflictingMigrations
    head, parts, tail = conflict_parts(got.message)
    assert parts == {"0004_avatar, 0004_branch in users", "0002_other, 0002_price in products"}
    assert head == "Conflicting migrations detected; multiple leaf nodes in the migration graph: "
    assert tail == ".\nTo fix them run 'python manage.py makemigrations --merge'"


@pytest.mark.parametrize(
    ("app_label", "migration_name", "error", "message"),
    [
        (
            USR,
            "0001",
            _core.AmbiguousMigration,
            "More than one migration matches '0001' in app 'users'. Please be more specific.",
        ),
        (USR, "0009", _core.MigrationNotFound, "Cannot find a migration matching '0009' from app 'users'."),
        (
            USR,
            "0002_price",
            _core.MigrationNotFound,
            "Cannot find a migration matching '0002_price' from app 'users'.",
        ),
        (PLAIN_APP, None, _core.AppWithoutMigrations, "App 'plain' does not have migrations."),
        (PLAIN_APP, "zero", _core.AppWithoutMigrations, "App 'plain' does not have migrations."),
    ],
)
def test_target_resolution_errors(app_label, migration_name, error, message):
    got = decide([], app_label, migration_name)
    assert (got.error, got.message) == (error, message)


def test_prefix_and_full_name_resolve_to_the_same_target():
    assert decide([], USR, "0004").steps == decide([], USR, "0004_avatar").steps
    assert decide([], ORD, "0002").header == ("specific", [ORD, "0002_total"])


def test_missing_dependency_is_djangos_node_not_found():
    broken = [*FIXED, Mig(ORD, "0003_refund", [(ORD, "0002_total"), (PRD, "0007_gone")])]
    got = decide([], migrations=broken)
    assert got.error is _core.NodeNotFound
    assert got.message == (
        "Migration orders.0003_refund dependencies reference nonexistent parent node "
        "('products', '0007_gone')"
    )


def test_cycle_is_refused():
    cyclic = [
        *FIXED,
        Mig(PRD, "0003_loop", [(PRD, "0002_price"), (ORD, "0003_back")]),
        Mig(ORD, "0003_back", [(ORD, "0002_total"), (PRD, "0003_loop")]),
    ]
    assert decide([], migrations=cyclic).error is _core.CircularDependency


def test_recorded_replaced_migration_without_file_is_refused_where_django_crashes():
    # The originals were deleted after squashing; the tenant recorded only the last of them.
    # Django's migration_plan reloads without replacements and then crashes on
    # `node_map[target]` (KeyError); the planner must refuse cleanly instead.
    squash_only = [
        Mig("alpha", "0001_squashed_0002", [], replaces=[("alpha", "0001_initial"), ("alpha", "0002_x")])
    ]
    got = decide(
        [("alpha", "0002_x")], "alpha", "0001_squashed", migrations=squash_only, migrated_apps=["alpha"]
    )
    assert got.error is _core.NodeNotFound
    # With the first original recorded instead, Django and the planner agree exactly.
    got = decide(
        [("alpha", "0001_initial")], "alpha", "0001_squashed", migrations=squash_only, migrated_apps=["alpha"]
    )
    assert (got.error, got.message) == (_core.NodeNotFound, "Node ('alpha', '0002_x') not a valid node")


# --------------------------------------------------------------------------------------------
# Former divergences, fixed: kept as regression tests


def test_header_for_app_with_empty_migrations_package():
    case = Case(FIXED, [USR, PRD, ORD, EMPTY_APP], [], EMPTY_APP, None)
    expected = django_decision(case)
    assert expected.header == ("apply_all", [])
    assert rust_decision(case, production_graph(case)).header == expected.header


@pytest.mark.parametrize(("app_label", "migration_name"), [(USR, ""), ("", None), ("", "zero")])
def test_empty_strings_mean_not_given_like_django(app_label, migration_name):
    case = Case(FIXED, [USR, PRD, ORD], [], app_label, migration_name)
    assert_same_decision(django_decision(case), rust_decision(case, production_graph(case)))


def test_serialize_graph_refuses_dangling_reference_to_deleted_replaced_migration():
    squashed = [
        Mig(USR, USERS_SQUASH[1], [], replaces=[(USR, "0001_initial"), (USR, "0002_email")], initial=True),
        Mig(ORD, "0001_initial", [(USR, "0002_email")], initial=True),  # written before the squash
    ]
    case = Case(squashed, [USR, ORD], [])
    expected = django_decision(case)
    assert expected.steps == forwards(USERS_SQUASH, (ORD, "0001_initial"))
    assert_same_decision(expected, rust_decision(case, production_graph(case)))


def test_first_is_resolved_when_django_resolves_it():
    migrations = [
        Mig("beta", "0001_initial", [("alpha", "__first__")]),
        Mig("alpha", "0001_initial", []),
        Mig("alpha", "0002_x", [("alpha", "0001_initial")]),
        Mig("alpha", "0003_pre", [], run_before=[("alpha", "0001_initial")]),
    ]
    case = Case(migrations, ["beta", "alpha"], [m.key for m in migrations], "alpha", "0003_pre")
    expected = django_decision(case)
    assert expected.steps == backwards(
        ("beta", "0001_initial"), ("alpha", "0002_x"), ("alpha", "0001_initial")
    )
    assert_same_decision(expected, rust_decision(case, production_graph(case)))
