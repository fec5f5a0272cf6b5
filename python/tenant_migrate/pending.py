"""``migratealltenants --check``: which tenants have migrations pending, read at once."""

from __future__ import annotations

from typing import Any

from . import _core, report
from .graph import graph_json
from .run.options import MigrateOptions
from .status import as_json, dump_json, read_standings

STATES = ("up-to-date", "pending", "missing", "error")


def check(
    records: list[_core.TenantRecord],
    opts: MigrateOptions,
    *,
    jobs: int,
    strict: bool,
    json_report: bool,
    stdout: Any,
    style: Any,
) -> bool:
    """Every tenant's pending migrations, read at once and changing nothing. True when the
    run should fail: something pending, a tenant that could not be read, or (``strict``) a
    missing one."""
    standings = read_standings(
        records,
        graph_json(),
        app_label=opts.app_label,
        migration_name=opts.migration_name,
        jobs=jobs,
    )
    count = {state: sum(s.state == state for s in standings) for state in STATES}
    if json_report:
        stdout.write(
            dump_json(
                {
                    "summary": {"tenants": len(standings), **count},
                    "tenants": [as_json(s, with_apps=False) for s in standings],
                }
            )
        )
    else:
        sections = (
            ("pending", "Tenants with unapplied migrations:", None),
            ("missing", "Missing tenants" + ("" if strict else " (skipped)") + ":", None),
            ("error", "Tenants whose history could not be read:", style.ERROR),
        )
        for state, title, styled in sections:
            rows = [
                (
                    s.tenant_id,
                    ", ".join(s.lacks_labels()) if state == "pending" else (s.error or "").splitlines()[0],
                )
                for s in standings
                if s.state == state
            ]
            report.listing(stdout.write, styled(title) if styled else title, rows, state)
        parts = [report.counted(count[k], k) for k in STATES if count[k]]
        stdout.write(
            style.MIGRATE_HEADING(f"Summary: {len(standings):,} tenants")
            + (": " + ", ".join(parts) if parts else "")
            + "."
        )
    return bool(count["pending"] or count["error"] or (strict and count["missing"]))
