"""The migration graph built once per applied set and handed to every tenant with that set.

A tenant's loader (``CopiedLoader``) reuses the graph another tenant's loader built for the same
recorded history: it must end exactly as Django's own ``MigrationLoader.build_graph`` ends for
that tenant, with and without squashes (``replace_migrations``): the same nodes, the same edges,
the same replacements, the same applied set (squashes counted as applied when all their
originals are) and nodes that are the tenant's own Migration copies. Generated graphs with
squashes, partially applied ones, ``run_before`` and cross-app dependencies
(``helpers.graph_cases``); the recorder answers from the case, no database.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from helpers.graph_cases import (  # noqa: F401  (oracle_environment: autouse fixture)
    Case,
    CaseLoader,
    ProductionCaseLoader,
    cases,
    oracle_environment,
)
from hypothesis import HealthCheck, assume, given, settings
from tenant_migrate.run.shared import CopiedLoader, Shared


def shared_for(case: Case) -> Shared:
    """A ``Shared`` holding only what a loader uses: the migrations loaded once, the cache."""
    shared = Shared.__new__(Shared)
    shared.loader = ProductionCaseLoader(case)
    shared._graphs = {}
    shared._lock = threading.Lock()
    return shared


def shape(loader: MigrationLoader) -> dict[str, Any]:
    graph = loader.graph
    return {
        "nodes": sorted(graph.nodes),
        "edges": sorted(
            (key, sorted(p.key for p in node.parents), sorted(c.key for c in node.children))
            for key, node in graph.node_map.items()
        ),
        "replacements": sorted(loader.replacements),
        # A usable squash's entry is the squash itself; the others are the recorded rows.
        "applied": sorted((key, isinstance(v, Migration)) for key, v in loader.applied_migrations.items()),
        "leaves": graph.leaf_nodes(),
        "plan": [graph.forwards_plan(leaf) for leaf in graph.leaf_nodes()],
    }


def loaded(make: Any, replace: bool) -> MigrationLoader | None:
    try:
        loader = make()
        if not replace:
            loader.replace_migrations = False
            loader.build_graph()
        return loader
    except Exception:  # a graph Django refuses: nothing to share
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_shared_graph_is_the_graph_django_builds(case: Case) -> None:
    # in_atomic_block: the loader reads the history without opening a transaction of its own.
    connection = SimpleNamespace(alias="default", recorded=list(case.recorded), in_atomic_block=True)
    for replace in (True, False):
        django = loaded(lambda: CaseLoader(case, connection), replace)
        assume(django is not None)
        shared = shared_for(case)
        first = loaded(lambda shared=shared: CopiedLoader(connection, shared), replace)
        assert first is not None
        assert shared._graphs, "the first tenant's graph is kept"
        second = loaded(lambda shared=shared: CopiedLoader(connection, shared), replace)
        assert second is not None
        assert shape(first) == shape(django)
        assert shape(second) == shape(django)
        # The tenant's own copies, never the first tenant's.
        assert all(second.graph.nodes[key] is second.disk_migrations[key] for key in second.graph.nodes)
        assert all(
            value is second.disk_migrations[key]
            for key, value in second.applied_migrations.items()
            if isinstance(value, Migration)
        )
