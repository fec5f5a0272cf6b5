"""Generated migration graphs for the planner's property tests: migrations on disk, recorded
rows and a command line (``Case``), drawn by ``cases()``; loaders that read a case as Django's
and as production's "disk"; and the oracle's environment (no database: the recorder answers from
the case). Django is set up by then (tests/conftest.py, or the property test's own fallback)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from unittest import mock

import pytest
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings
from hypothesis import currently_in_test_context
from hypothesis import event as _event
from hypothesis import note as _note
from hypothesis import strategies as st
from tenant_migrate.graph import RawGraphLoader, serialize_graph

Key = tuple[str, str]

APPS = ("alpha", "beta", "gamma", "delta")
EMPTY_APP = "empty"  # has a migrations package without any migration in it
PLAIN_APP = "plain"  # installed app without a migrations package
WORDS = ("initial", "auto", "add_price", "alter_name", "data")


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
