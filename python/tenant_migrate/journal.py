"""The journal of ``migratealltenants`` runs, in the master database: each run and each
tenant's outcome, written as outcomes arrive, so that ``--resume`` knows which tenants failed
or were never reached, even after the process was killed.

A failure is written at once; successes are gathered for up to ``FLUSH_SECONDS`` and written
together (one UPDATE a tenant, each a commit on the master, was a tenth of a deploy's
statements). A run killed meanwhile leaves the last second's successes "not-reached":
``--resume`` runs those tenants again and finds them up to date."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from .exceptions import TenantRunError
from .models import MigrationRun, MigrationRunTenant
from .run.options import MigrateOptions

# Outcomes that --resume runs again: everything that did not finish (a tenant whose migration
# in progress was rolled back by Ctrl-C is "interrupted").
UNFINISHED = ("not-reached", "failed", "skipped", "interrupted")

# What a run did to each tenant depends on these, and on nothing else: the journal keeps them
# and --resume repeats them. (The option each comes from, for messages.)
REPEATED = {
    "app_label": "the target",
    "migration_name": "the target",
    "fake": "--fake",
    "fake_initial": "--fake-initial",
    "lock_wait": "--lock-wait",
    "lock_timeout": "--lock-timeout",
    "statement_timeout": "--statement-timeout",
    "retries": "--retries",
}

MASTER = "default"
# Tenants per UPDATE: within SQLite's older limit of 999 bound values.
CHUNK = 900
# Outcomes a run settled that may wait this long for the next write.
FLUSH_SECONDS = 1.0
# Outcomes written at once: what --resume must run again.
URGENT = frozenset(UNFINISHED)


def _insert_tenants(run_id: int, tenant_ids: list[str], known: dict[str, tuple[str, str | None]]) -> None:
    """The run's rows, in one statement the driver sends as a batch: ``bulk_create`` built a
    model instance and compiled every value of 10,000 rows for over a second, the better part
    of a run with nothing to do."""
    connection = connections[MASTER]
    meta = MigrationRunTenant._meta
    names = ("run", "tenant_id", "position", "status", "error", "seconds", "finished_at")
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in names)
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(names))})"
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    unknown = (meta.get_field("status").get_default(), None)
    rows = []
    for position, tenant_id in enumerate(tenant_ids):
        status, error = known.get(tenant_id, unknown)
        finished_at = now if tenant_id in known else None
        rows.append((run_id, tenant_id, position, status, error or "", 0.0, finished_at))
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _update_each(run_id: int, rows: list[tuple[dict[str, Any], str]]) -> None:
    connection = connections[MASTER]
    meta = MigrationRunTenant._meta
    quote = connection.ops.quote_name
    names = ("status", "seconds", "error", "finished_at")
    assignments = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in names)
    run, tenant = (quote(meta.get_field(name).column) for name in ("run", "tenant_id"))
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {run} = %s AND {tenant} = %s"
    adapt = connection.ops.adapt_datetimefield_value
    params = [
        (v["status"], v["seconds"], v["error"], adapt(v["finished_at"]), run_id, tenant_id)
        for v, tenant_id in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _values(status: str, error: str | None, seconds: float, finished_at: Any) -> dict[str, Any]:
    return {"status": status, "seconds": round(seconds, 3), "error": error or "", "finished_at": finished_at}


def _missing_table(err: Exception) -> TenantRunError:
    return TenantRunError(
        f"The run journal cannot be written to the master database ({str(err).strip()}). "
        "Run 'python manage.py migrate' first."
    )


class Journal:
    """Written from one thread only (the one running the command)."""

    def __init__(
        self,
        arguments: dict[str, Any],
        tenant_ids: list[str],
        known: dict[str, tuple[str, str | None]] | None = None,
    ) -> None:
        """A run of ``tenant_ids``, in that order; ``known`` gives the outcomes settled before
        anything runs, ``(status, error)`` by tenant id."""
        known = known or {}
        try:
            with transaction.atomic(using=MASTER):
                self.run = MigrationRun.objects.using(MASTER).create(arguments=arguments)
                _insert_tenants(self.run.pk, tenant_ids, known)
        except DatabaseError as err:
            raise _missing_table(err) from None

        # Outcomes not yet written (the master was unreachable), and why the last write failed.
        self.pending: dict[str, dict[str, Any]] = {}
        self.lost: str | None = None
        self.written_at = time.monotonic()

    def record(self, tenant_id: str, status: str, seconds: float, error: str | None) -> None:
        self.pending[tenant_id] = _values(status, error, seconds, timezone.now())
        if status in URGENT:
            self._write(self._write_pending)
        else:
            self.flush_due()

    def flush(self) -> None:
        """Write what is pending now (a wave ended: a pause may follow)."""
        if self.pending:
            self._write(self._write_pending)

    def flush_due(self) -> None:
        """Write what is pending if it has waited ``FLUSH_SECONDS`` (the run's thread calls
        this while it waits for outcomes)."""
        if self.pending and time.monotonic() - self.written_at >= FLUSH_SECONDS:
            self._write(self._write_pending)

    def record_many(self, tenant_ids: list[str], status: str, error: str | None) -> None:
        """The same outcome for many tenants (those a stopped run never reached)."""
        values = _values(status, error, 0.0, timezone.now())
        for tenant_id in tenant_ids:
            self.pending[tenant_id] = values
        self._write(self._write_pending)

    def finish(self) -> None:
        """The run's final status. If the master cannot be written even now, ``lost`` says why
        (the run stays ``running`` in the journal; the caller says so)."""
        self._write(self._write_pending, self._write_status)

    def _write_pending(self) -> None:
        # One UPDATE per distinct outcome (the tenants a stopped run never reached share one),
        # in chunks a SQLite statement can bind; the others (each its own seconds) as one
        # batch the driver sends at once, in one transaction.
        groups: dict[tuple[Any, ...], list[str]] = {}
        for tenant_id, values in self.pending.items():
            groups.setdefault(tuple(values.items()), []).append(tenant_id)
        single = [(dict(items), ids[0]) for items, ids in groups.items() if len(ids) == 1]
        shared = [(dict(items), ids) for items, ids in groups.items() if len(ids) > 1]
        with transaction.atomic(using=MASTER):
            if single:
                _update_each(self.run.pk, single)
            for values, tenant_ids in shared:
                for start in range(0, len(tenant_ids), CHUNK):
                    chunk = tenant_ids[start : start + CHUNK]
                    MigrationRunTenant.objects.using(MASTER).filter(run=self.run, tenant_id__in=chunk).update(
                        **values
                    )
        self.pending.clear()

    def _write_status(self) -> None:
        unfinished = self.run.tenants.using(MASTER).filter(status__in=UNFINISHED).exists()
        self.run.status = MigrationRun.Status.FAILED if unfinished else MigrationRun.Status.SUCCEEDED
        self.run.finished_at = timezone.now()
        self.run.save(using=MASTER, update_fields=["status", "finished_at"])

    def _write(self, *steps: Any) -> None:
        """The master's connection can be lost mid-run (a restart, a terminated backend, a
        proxy): the tenants' work goes on, so a write is retried once on a new connection, and
        what cannot be written now is kept for the next write."""
        # Written or not, the next gathered write waits its second: a master that is down
        # is not asked again at every poll.
        self.written_at = time.monotonic()
        for _ in range(2):
            try:
                for step in steps:
                    step()
            except DatabaseError as err:
                self.lost = (str(err).strip().splitlines() or [type(err).__name__])[0]
                try:
                    connections[MASTER].close()
                except DatabaseError:
                    pass
                continue
            self.lost = None
            return


def arguments(opts: MigrateOptions) -> dict[str, Any]:
    """What the journal keeps of a run's options: everything --resume must repeat."""
    return {name: getattr(opts, name) for name in REPEATED}


def _shown(opts: MigrateOptions | dict[str, Any], option: str) -> str:
    get = opts.get if isinstance(opts, dict) else lambda name: getattr(opts, name)
    if option == "the target":
        words = [str(get(n)) for n in ("app_label", "migration_name") if get(n) is not None]
        return repr(" ".join(words)) if words else "none"
    name = next(n for n, o in REPEATED.items() if o == option)
    value = get(name)
    if isinstance(value, bool):
        return "given" if value else "not given"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def resumed_options(run: MigrationRun, given: MigrateOptions) -> MigrateOptions:
    """The options of the run being resumed, so that --resume does exactly what that run would
    have done (a resumed ``orders zero --fake`` fakes too). An option given again must agree
    with the run's; one left at its default takes the run's value. A journal written before an
    option was kept leaves that option as given."""
    recorded = run.arguments or {}
    defaults = MigrateOptions()
    target_given = given.app_label is not None
    changes: dict[str, Any] = {}
    for name, option in REPEATED.items():
        if name not in recorded:
            continue
        value, was = getattr(given, name), recorded[name]
        differs = value != was
        if name in ("app_label", "migration_name"):
            differs = differs and target_given
        else:
            differs = differs and value != getattr(defaults, name)
        if differs:
            raise TenantRunError(
                f"--resume repeats run #{run.pk} as it was started: {option} cannot be changed "
                f"(the run used {_shown(recorded, option)}, not {_shown(given, option)})."
            )
        changes[name] = was
    return dataclasses.replace(given, **changes)


def resume_selection() -> tuple[MigrationRun, list[str]]:
    """The last run and its tenants that failed or were not reached, in the run's order."""
    try:
        last = MigrationRun.objects.using(MASTER).order_by("-id").first()
    except DatabaseError as err:
        raise _missing_table(err) from None
    if last is None:
        raise TenantRunError("No previous migratealltenants run to resume.")
    ids = list(
        last.tenants.using(MASTER)
        .filter(status__in=UNFINISHED)
        .order_by("position")
        .values_list("tenant_id", flat=True)
    )
    return last, ids
