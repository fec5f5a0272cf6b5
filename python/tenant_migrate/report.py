"""How a run over many tenants is told in words: counts with thousands separators, lists kept
short, and one vocabulary (docs/commands.md, "Outcomes of a run"):

- ``missing``: the tenant's database, file or schema does not exist; the run skips it (an error
  with ``--strict``).
- ``skipped``: what a run does with a missing tenant: it is not run and does not fail the run.
  It is never a tenant's status (the status says why: ``missing``).
- ``not reached`` (``not-reached`` in JSON): the tenant was due to run, but the run stopped
  before starting it (``--fail-fast``, a failed wave, Ctrl-C); nothing was done to it.
- ``interrupted``: the tenant was running when Ctrl-C came; its migration in progress was
  rolled back, the migrations before it stay applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

# Beyond this many tenants a list is a count: a run over thousands of tenants that stopped
# early must not print thousands of lines (``--json`` keeps every tenant).
LISTED = 10

# A tenant's status, in the order the summary counts them, and its words there.
WORDS = {
    "migrated": "migrated",
    "up-to-date": "up-to-date",
    "planned": "planned",
    "pending": "pending",
    "failed": "failed",
    "interrupted": "interrupted",
    "not-reached": "not reached",
    "missing": "missing",
}


def counted(number: int, word: str) -> str:
    return f"{number:,} {word}"


def counts(count: dict[str, int]) -> str:
    """``12 migrated, 1 failed, 2,931 not reached`` (statuses with none left out)."""
    return ", ".join(counted(count[s], w) for s, w in WORDS.items() if count.get(s))


def routes(replayed: int, compiled: int, via_django: int, drift: int) -> list[str]:
    """How the migrations were applied, in a user's words."""
    parts = []
    if compiled:
        parts.append(f"{compiled:,} compiled to SQL and run")
    if replayed:
        parts.append(f"{replayed:,} replayed from SQL compiled for another tenant")
    if via_django:
        parts.append(f"{via_django:,} run by Django")
    if not parts:
        return []
    total = compiled + replayed + via_django
    lines = [f"  {total:,} migration{'s' if total != 1 else ''} applied: {', '.join(parts)}."]
    if drift:
        lines.append(
            f"  {drift:,} compiled again for a tenant whose schema differed from the one the SQL "
            "was compiled for."
        )
    return lines


def listing(
    write: Callable[[str], None],
    title: str,
    rows: Sequence[tuple[str, str]],
    more: str,
) -> None:
    """``title``, then ``  tenant: detail`` for the first LISTED rows (continuation lines of a
    detail indented under it), then how many more (``more`` says what they are)."""
    if not rows:
        return
    write(title)
    for tenant_id, detail in rows[:LISTED]:
        first, *rest = detail.splitlines() or [""]
        write(f"  {tenant_id}: {first}" if first else f"  {tenant_id}")
        for line in rest:
            write(f"    {line}")
    if len(rows) > LISTED:
        write(f"  ... and {len(rows) - LISTED:,} more {more} (--json lists every tenant).")


def names(tenant_ids: Sequence[str]) -> str:
    """``acme, globex`` or, beyond LISTED, ``acme, ..., and 2,921 more``."""
    if len(tenant_ids) <= LISTED:
        return ", ".join(tenant_ids)
    return ", ".join(tenant_ids[:LISTED]) + f" and {len(tenant_ids) - LISTED:,} more"


def run_failed(outcomes: Sequence[Any]) -> str | None:
    """The command's error when tenants failed or were not reached, None otherwise."""
    failed = [o.tenant_id for o in outcomes if o.status == "failed"]
    unreached = sum(o.status == "not-reached" for o in outcomes)
    if not failed and not unreached:
        return None
    text = f"{len(failed):,} of {len(outcomes):,} tenants failed"
    if failed:
        text += f": {names(failed)}"
    if unreached:
        text += f"; {counted(unreached, 'not reached')}"
    return text


def print_run(
    write: Callable[[str], None],
    style: Any,
    outcomes: Sequence[Any],
    summary: dict[str, Any],
    seconds: float,
    *,
    json_report: bool,
    verbosity: int,
    stopped_by: str,
    journal: tuple[int, str | None] | None,
) -> None:
    """The end of ``migratealltenants``: the summary and the tenants worth naming, or with
    ``json_report`` every tenant as JSON. ``journal`` is the run's journal (its id, and why it
    could not be completed, if it could not)."""
    summary["seconds"] = round(seconds, 3)
    lost = journal[1] if journal is not None else None
    if lost is not None:
        summary["journal_error"] = lost
    if json_report:
        write(json.dumps({"summary": summary, "tenants": [asdict(o) for o in outcomes]}, indent=2))
        return
    if verbosity < 1:
        return
    write(
        style.MIGRATE_HEADING(f"Summary: {summary['tenants']:,} tenants in {seconds:.1f}s")
        + (": " + counts(summary) if counts(summary) else "")
        + "."
    )
    for line in routes(summary["replayed"], summary["compiled"], summary["via_django"], summary["drift"]):
        write(line)

    def rows(status: str) -> list[tuple[str, str]]:
        return [(o.tenant_id, o.error or "") for o in outcomes if o.status == status]

    listing(write, style.ERROR("Failed tenants:"), rows("failed"), "failed")
    listing(
        write,
        style.ERROR("Interrupted tenants (the migration in progress was rolled back):"),
        rows("interrupted"),
        "interrupted",
    )
    unreached = rows("not-reached")
    if len(unreached) > LISTED:
        write(style.ERROR(f"{counted(len(unreached), 'not reached')} ({stopped_by})."))
    else:
        listing(write, style.ERROR("Tenants not reached:"), unreached, "not reached")
    listing(write, style.WARNING("Missing tenants (skipped):"), rows("missing"), "missing")
    listing(write, "Tenants with unapplied migrations:", rows("pending"), "pending")
    if lost is not None and journal is not None:
        write(
            style.WARNING(
                f"Warning: the run journal (run #{journal[0]}) could not be completed in the "
                f"master database ({lost}); --resume would run again the tenants it did not record."
            )
        )
