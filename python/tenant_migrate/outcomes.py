"""What a run over many tenants did to each: a tenant's outcome and the run's counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import _core
from .run.options import MigrateOptions


@dataclass
class TenantOutcome:
    tenant_id: str
    # "migrated", "up-to-date", "planned", "pending", "failed", "missing", "not-reached",
    # "interrupted": see report.py for what each means.
    status: str
    seconds: float = 0.0
    applied: list[str] = field(default_factory=list)
    replayed: int = 0
    compiled: int = 0
    via_django: int = 0
    drift: int = 0
    error: str | None = None


def outcome_of(
    tenant_id: str, report: _core.Report | None, seconds: float, opts: MigrateOptions
) -> TenantOutcome:
    if report is None:
        status = "planned" if opts.plan else "up-to-date"
        return TenantOutcome(tenant_id, status, seconds)
    steps = report.steps
    return TenantOutcome(
        tenant_id,
        "migrated" if steps else "up-to-date",
        seconds,
        applied=[f"{'-' if s.backwards else ''}{s.app}.{s.name}" for s in steps],
        replayed=sum(s.route == "replay" for s in steps),
        compiled=sum(s.route == "sql" for s in steps),
        via_django=sum(s.route == "django" for s in steps),
        drift=sum(s.drift for s in steps),
    )


def summary(outcomes: list[TenantOutcome], cache: _core.ReplayCache | None) -> dict[str, Any]:
    """The run's counts, by status and by route (``--json``'s ``summary``)."""
    count = {
        s: sum(o.status == s for o in outcomes)
        for s in (
            "migrated",
            "up-to-date",
            "failed",
            "interrupted",
            "not-reached",
            "missing",
            "pending",
            "planned",
        )
    }
    return {
        "tenants": len(outcomes),
        **count,
        "replayed": sum(o.replayed for o in outcomes),
        "compiled": sum(o.compiled for o in outcomes),
        "via_django": sum(o.via_django for o in outcomes),
        # Counted by the cache: a tenant that failed later still drifted.
        "drift": cache.drifts if cache is not None else 0,
        "cached_sql": len(cache) if cache is not None else 0,
        # Catalog fingerprints read to verify replays (SQL built from the project state alone
        # needs none).
        "fingerprints": cache.fingerprints if cache is not None else 0,
    }
