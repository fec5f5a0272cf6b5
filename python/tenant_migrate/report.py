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

from collections.abc import Callable, Sequence
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
