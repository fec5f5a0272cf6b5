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
labels are not installed apps, and production (``runner.migrate_tenant``) does that check in
Python before it calls the planner.
"""

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

from django.db.migrations.exceptions import (  # noqa: E402
    AmbiguityError,
    CircularDependencyError,
    InconsistentMigrationHistory,
    InvalidMigrationPlan,
    NodeNotFoundError,
)
from django.db.migrations.executor import MigrationExecutor  # noqa: E402
from django.db.migrations.graph import MigrationGraph  # noqa: E402
from django.db.migrations.loader import MigrationLoader  # noqa: E402
from django.db.migrations.migration import Migration  # noqa: E402
from django.db.migrations.recorder import MigrationRecorder  # noqa: E402
from django.test import override_settings  # noqa: E402
from hypothesis import HealthCheck, event, given, note, settings as hsettings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tenant_migrate import _core  # noqa: E402
from tenant_migrate.graph import serialize_graph  # noqa: E402

Key = tuple[str, str]

APPS = ("alpha", "beta", "gamma", "delta")
EMPTY_APP = "empty"  # has a migrations package without any migration in it
PLAIN_APP = "plain"  # installed app without a migrations package
WORDS = ("initial", "auto", "add_price", "alter_name", "data")

MAX_EXAMPLES = 2500


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
        lines = ["Case("]
        for m in self.migrations:
            extra = ""
            if m.replaces:
                extra += f", replaces={m.replaces!r}"
            if m.run_before:
                extra += f", run_before={m.run_before!r}"
            lines.append(f"  Mig({m.app!r}, {m.name!r}, {m.dependencies!r}{extra}),")
        lines.append(f"  migrated_apps={self.migrated_apps!r},")
        lines.append(f"  recorded={self.recorded!r},")
        lines.append(f"  target=({self.app_label!r}, {self.migration_name!r}))")
        return "\n".join(lines)


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
    ``test_serialize_graph_accepts_dangling_reference_to_deleted_squashed_migration``), so that
    the Rust planner can still be compared with Django on such graphs.
    """

    def build_graph(self):
        with (
            mock.patch.object(MigrationGraph, "validate_consistency"),
            mock.patch.object(MigrationGraph, "ensure_not_cyclic"),
        ):
            super().build_graph()


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
        name_str = "; ".join(
            "%s in %s" % (", ".join(names), app) for app, names in conflicts.items()
        )
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
        try:
            raise InvalidMigrationPlan(
                "Migration plans with both forwards and backwards migrations "
                "are not supported. Please split your migration process into "
                "separate plans of only forwards OR backwards migrations.",
                plan,
            )
        except InvalidMigrationPlan as exc:
            return Outcome(error=_core.InvalidPlan, message=exc.args[0])

    return Outcome(
        steps=[(m.app_label, m.name, backwards) for m, backwards in plan],
        full_plan=[(m.app_label, m.name) for m, _ in full_plan],
        header=header,
        replace_migrations=loader.replace_migrations,
    )


# --------------------------------------------------------------------------------------------
# The Rust decision


def production_graph(case: Case) -> dict:
    """What production hands to Rust: ``serialize_graph`` on ``MigrationLoader(None, False)``."""
    return serialize_graph(CaseLoader(case, None, replace_migrations=False))


def rust_decision(case: Case, graph: dict) -> Outcome:
    try:
        plan = _core.compute_plan(
            json.dumps(graph), list(case.recorded), case.app_label, case.migration_name
        )
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


def assert_same_decision(expected: Outcome, got: Outcome) -> None:
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
    assert got.error is expected.error, (
        f"Django raises {expected.kind}: {expected.message!r}; "
        + (f"Rust raised {got.kind}: {got.message!r}" if got.error else f"Rust planned {got.steps}")
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


@st.composite
def cases(draw) -> Case:
    labels = list(draw(st.permutations(APPS)))[: draw(st.integers(2, 4))]
    lengths = {a: draw(st.integers(1, 5)) for a in labels}
    order = draw(st.permutations([a for a in labels for _ in range(lengths[a])]))

    migs: dict[Key, Mig] = {}
    created: list[Key] = []  # creation order: dependencies only point backwards in it
    chain: dict[str, list[str]] = {a: [] for a in labels}
    open_branch: dict[str, Key] = {}
    missing_dependency = draw(st.integers(0, 39)) == 0

    for app in order:
        i = len(chain[app])
        deps: list[Key] = []
        if i:
            deps.append((app, chain[app][-1]))
        elif draw(st.integers(0, 9)) == 0:
            deps.append((app, "__first__"))  # ignored by Django (#22325)
        if app in open_branch and draw(st.booleans()):
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
        if i and app not in open_branch and draw(st.integers(0, 11)) == 0:
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
    for app in labels:
        if len(chain[app]) < 2 or draw(st.integers(0, 2)) != 0:
            continue
        pre = edges()
        post: dict[Key, set[Key]] = {k: set() for k in pre}
        for k, ps in pre.items():
            for p in ps:
                post.setdefault(p, set()).add(k)
        n = len(chain[app])
        ranges = [(s, e) for s in range(n) for e in range(s + 1, n)]

        def clean(r, app=app, pre=pre, post=post) -> bool:
            # No outside migration both after and before the run (else merging makes a cycle).
            run = {(app, x) for x in chain[app][r[0] : r[1] + 1]}
            below = _closure(run, pre) - run
            above = _closure(run, post) - run
            return not (below & above)

        candidates = [r for r in ranges if clean(r)]
        if not candidates or draw(st.integers(0, 6)) == 0:
            candidates = ranges
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
        delete_originals = draw(st.integers(0, 3)) == 0
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
        for k, ps in pre.items():
            if squash.key in ps:
                ps.update(squash.replaces)
    recordable = sorted(set(migs))
    mode = draw(st.integers(0, 9))
    if mode <= 1:
        applied: set[Key] = set()
    elif mode == 2:
        applied = _closure(recordable, pre)
    else:
        seeds = draw(st.lists(st.sampled_from(recordable), max_size=4))
        applied = _closure(seeds, pre)
    applied -= {s.key for s in squashes}
    for squash in squashes:
        if all(r in applied for r in squash.replaces) and draw(st.integers(0, 3)) != 0:
            applied.add(squash.key)
    if mode >= 7:  # inconsistent or odd histories
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
    if draw(st.integers(0, 4)) == 0:
        migrated_apps.append(EMPTY_APP)

    # The command line.
    def names_of(app: str) -> list[str]:
        return [m.name for m in disk if m.app == app] or ["0001_initial"]

    kind = draw(
        st.sampled_from(
            ["all", "all", "app", "name", "name", "name", "prefix", "prefix", "zero", "unknown",
             "other_app", "plain", "empty"]
        )
    )
    app = draw(st.sampled_from(labels))
    name: str | None = None
    if kind == "all":
        app = None
    elif kind == "app":
        app = draw(st.sampled_from(migrated_apps))
    elif kind == "name":
        name = draw(st.sampled_from(names_of(app)))
    elif kind == "prefix":
        full = draw(st.sampled_from(names_of(app)))
        name = full[: draw(st.integers(1, len(full)))]
    elif kind == "zero":
        name = "zero"
    elif kind == "unknown":
        gone = sorted(k[1] for k in deleted if k[0] == app)
        name = draw(st.sampled_from(["0099", "9", "initial"] + gone))
    elif kind == "other_app":
        name = draw(st.sampled_from(names_of(draw(st.sampled_from(labels)))))
    elif kind == "plain":
        app, name = PLAIN_APP, draw(st.sampled_from([None, "zero", "0001"]))
    elif kind == "empty":
        app, name = EMPTY_APP, draw(st.sampled_from([None, "zero", "0001"]))

    return Case(disk, migrated_apps, recorded, app, name)


def check_case(case: Case) -> Outcome:
    expected = django_decision(case)
    event(f"django: {expected.kind}")
    try:
        graph = production_graph(case)
    except (NodeNotFoundError, CircularDependencyError) as exc:
        # Production cannot even serialise this graph (see the xfail test below); compare the
        # planner on the graph it would have received had serialisation not refused it.
        event(f"serialize_graph refuses ({type(exc).__name__}), django: {expected.kind}")
        note(f"serialize_graph raised {exc!r}")
        graph = serialize_graph(UncheckedCaseLoader(case, None, replace_migrations=False))
    got = rust_decision(case, graph)
    note(f"django: {expected}")
    note(f"rust:   {got}")
    assert_same_decision(expected, got)
    return expected


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
