"""Where tenants stand: every tenant's ``django_migrations`` read by Rust, concurrently, and
Django's ``showmigrations`` list and ``migrate`` plan computed from it.

A tenant whose database file, database or schema does not exist is "missing": reported and
skipped, an error only when the caller is strict. Printing (Django's own list format, one
summary line per tenant, or JSON) is done here, at the edge.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from django.apps import apps as global_apps

from . import _core, conf
from .connections import tenant_settings
from .exceptions import TenantConfigError, TenantRunError
from .lookup import list_tenants
from .names import unknown_tenant
from .output import migration_label
from .params import rust_params


@dataclass
class Standing:
    """One tenant's standing: ``state`` is ``up-to-date``, ``pending``, ``missing`` or ``error``."""

    tenant_id: str
    name: str
    state: str
    error: str | None = None
    # (app, name, applied) rows in id order.
    history: list[tuple[str, str, str]] = field(default_factory=list)
    # (app, name, backwards): what migrate (with the requested target) would run.
    plan: list[tuple[str, str, bool]] = field(default_factory=list)
    # showmigrations: (app, [(name, replaces, mark)]).
    apps: list[tuple[str, list[tuple[str, int, str]]]] = field(default_factory=list)

    @property
    def missing(self) -> bool:
        return self.state == "missing"

    @property
    def last_migration(self) -> str | None:
        return f"{self.history[-1][0]}.{self.history[-1][1]}" if self.history else None

    def lacks(self) -> list[str]:
        """The plan as JSON names it: ``app.name`` (``-app.name`` for a migration to unapply)."""
        return [f"{'-' if back else ''}{app}.{name}" for app, name, back in self.plan]

    def lacks_labels(self) -> list[str]:
        """The plan as human output names it, as ``--plan`` does: ``app/name.py``
        (``Unapply app/name.py`` for a migration to unapply)."""
        return [f"{'Unapply ' if back else ''}{migration_label(app, name)}" for app, name, back in self.plan]


def _error_text(status: _core.TenantStatus) -> str:
    if status.error_kind == "connect":
        # The core's text names the server it tried (`server_text` in src/backend/client.rs).
        return f"Cannot connect to tenant database: {status.error}"
    if status.error_kind == "permission":
        return f"User does not have permission to read the migration history: {status.error}"
    return str(status.error)


def read_standings(
    records: Sequence[Any],
    graph: str,
    *,
    list_apps: Sequence[str] = (),
    app_label: str | None = None,
    migration_name: str | None = None,
    plan_apps: Sequence[str] | None = None,
    jobs: int = 8,
) -> list[Standing]:
    """Every record's standing, in the order given (one Rust call, the GIL released).
    ``plan_apps`` limits what counts as pending to those apps' migrations."""
    params: list[str] = []
    readable: list[int] = []
    standings: list[Standing | None] = []
    for record in records:
        try:
            settings_dict, schema = tenant_settings(record)
            params.append(rust_params(settings_dict, schema))
        except (TenantConfigError, ValueError) as err:
            standings.append(Standing(record.tenant_id, record.name, "error", error=str(err)))
            continue
        readable.append(len(standings))
        standings.append(None)
    statuses = _core.tenant_status(graph, params, list(list_apps), app_label, migration_name, max(1, jobs))
    for index, status in zip(readable, statuses, strict=True):
        record = records[index]
        if status.state == "missing":
            standings[index] = Standing(record.tenant_id, record.name, "missing", error=status.error)
        elif status.state == "error":
            standings[index] = Standing(
                record.tenant_id,
                record.name,
                "error",
                error=_error_text(status),
                history=status.history,
                apps=status.apps,
            )
        else:
            plan = [step for step in status.plan if plan_apps is None or step[0] in plan_apps]
            standings[index] = Standing(
                record.tenant_id,
                record.name,
                "pending" if plan else "up-to-date",
                history=status.history,
                plan=plan,
                apps=status.apps,
            )
    return [s for s in standings if s is not None]


# Selection of tenants, shared by showtenantmigrations and migratealltenants.


def read_tenant_ids(source: str, stdin: TextIO | None = None) -> list[str]:
    """Tenant ids from a file (``-``: standard input): one per line; blank lines and ``#``
    comments are ignored."""
    if source == "-":
        text = (stdin or sys.stdin).read()
    else:
        try:
            text = Path(source).read_text()
        except OSError as err:
            raise TenantRunError(f"Cannot read tenant ids from {source}: {err.strerror or err}") from None
    ids = []
    for line in text.splitlines():
        tenant_id = line.split("#", 1)[0].strip()
        if tenant_id:
            ids.append(tenant_id)
    return ids


def select_tenants(
    tenant_ids: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    records: list[Any] | None = None,
) -> list[Any]:
    """Registry rows in tenant-id order: all of them, or those named (an unknown id is an
    error), minus the excluded ones (an unknown excluded id is an error too: a typo there
    would silently include the tenant it meant to protect)."""
    records = list_tenants() if records is None else records
    by_id = {r.tenant_id: r for r in records}
    wanted = None if tenant_ids is None else list(dict.fromkeys(tenant_ids))
    for tenant_id in [*(wanted or []), *exclude]:
        if tenant_id not in by_id:
            raise unknown_tenant(tenant_id)
    excluded = set(exclude)
    chosen = set(wanted) if wanted is not None else None
    return [r for r in records if (chosen is None or r.tenant_id in chosen) and r.tenant_id not in excluded]


def check_list_apps(app_labels: Sequence[str], migrated_apps: Sequence[str]) -> list[str]:
    """showmigrations' app arguments, limited to tenant apps; none: every migrated tenant app."""
    if not app_labels:
        return sorted(migrated_apps)
    for label in app_labels:
        try:
            global_apps.get_app_config(label)
        except LookupError as err:
            raise TenantRunError(str(err)) from None
        if not conf.is_tenant_app(label):
            raise TenantRunError(f"App '{label}' is not a tenant app.")
    return list(app_labels)


# Printing.


def list_lines(standing: Standing, verbosity: int, style: Any) -> list[str]:
    """Django's ``showmigrations --list`` lines for one tenant, exactly as Django prints them."""
    applied_at = {(app, name): when for app, name, when in standing.history}
    lines = []
    for app, migrations in standing.apps:
        lines.append(style.MIGRATE_LABEL(app))
        for name, replaces, mark in migrations:
            title = name
            if replaces:
                title += f" ({replaces} squashed migrations)"
            if mark == "unapplied":
                lines.append(f" [ ] {title}")
                continue
            if mark == "applied":
                output = f" [X] {title}"
                # Django's loader stands a squash's Migration (no timestamp) for its row.
                when = None if replaces else applied_at.get((app, name))
                if verbosity >= 2 and when:
                    output += f" (applied at {when})"
            else:
                output = f" [-] {title} Run 'manage.py migrate' to finish recording."
            lines.append(output)
        if not migrations:
            lines.append(style.ERROR(" (no migrations)"))
    return lines


def summary_lines(standings: Sequence[Standing], apps: Sequence[str] | None = None) -> list[str]:
    """One line per tenant: tenant, applied, pending, last migration, state."""
    rows = [("tenant", "applied", "pending", "last migration", "state")]
    for s in standings:
        if s.state in ("missing", "error"):
            state = s.state + (f" ({s.error.splitlines()[0]})" if s.error else "")
            rows.append((s.tenant_id, "-", "-", "-", state))
            continue
        last = migration_label(*s.history[-1][:2]) if s.history else "-"
        rows.append((s.tenant_id, str(len(s.history)), str(len(s.plan)), last, s.state))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return [
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:<{widths[3]}}  {r[4]}"
        for r in rows
    ]


def as_json(standing: Standing, with_apps: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tenant_id": standing.tenant_id,
        "name": standing.name,
        "state": standing.state,
        "applied": len(standing.history),
        "pending": standing.lacks(),
        "last_migration": standing.last_migration,
        "error": standing.error,
    }
    if with_apps:
        data["apps"] = {
            app: [{"name": name, "replaces": replaces, "mark": mark} for name, replaces, mark in lines]
            for app, lines in standing.apps
        }
    return data


def dump_json(payload: Any) -> str:
    return json.dumps(payload, indent=2)


def unreadable(standings: list[Standing], listed: bool, strict: bool) -> str | None:
    """What makes showtenantmigrations fail, in one sentence (None: nothing): tenants whose
    history could not be read and, with ``strict``, missing ones. A history migrate would
    refuse that was still ``listed`` as Django lists it is not a failure to read."""
    failed = [s.tenant_id for s in standings if s.state == "error" and not (listed and s.apps)]
    missing = [s.tenant_id for s in standings if s.missing]
    if not (failed or (missing and strict)):
        return None
    problems = []
    if failed:
        problems.append(f"{len(failed)} in error ({', '.join(failed)})")
    if missing and strict:
        problems.append(f"{len(missing)} missing ({', '.join(missing)})")
    return f"Of {len(standings)} tenants, {' and '.join(problems)}."
