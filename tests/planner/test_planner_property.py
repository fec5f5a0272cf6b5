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
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from helpers.graph_cases import (  # noqa: F401  (oracle_environment: autouse fixture)
    EMPTY_APP,
    PLAIN_APP,
    Case,
    CaseLoader,
    Key,
    Mig,
    UncheckedCaseLoader,
    cases,
    event,
    note,
    oracle_environment,
    production_graph,
)
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from tenant_migrate import _core
from tenant_migrate.graph import serialize_graph

MAX_EXAMPLES = 4000

# When a property fails, Hypothesis' pytest plugin imports libcst to suggest an @example patch;
# libcst triggers this DeprecationWarning, which `filterwarnings = error` would turn into an
# INTERNALERROR hiding the actual failure report.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")


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
