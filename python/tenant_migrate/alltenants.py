"""Every tenant of the registry, concurrently, with progress and a report.

Tenants are taken in tenant-id order. Each worker thread migrates one tenant at a time through
the same path as ``migratetenant``; the Rust core releases the interpreter while it talks to the
database, and SQL compiled once is replayed on every tenant verified to be in the same state.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any, TextIO

from . import _core, pending, report
from .budget import fit_jobs
from .connections import forget_thread_connection, tenant_settings
from .exceptions import UnappliedMigrations
from .interrupt import INTERRUPTER, interrupted_text
from .journal import Journal
from .management.errors import to_command_error
from .memory import Collector
from .outcomes import TenantOutcome, outcome_of, summary
from .output import Output
from .params import vendor_of
from .progress import progress_for
from .reuse import sessions
from .run.flow import migrate_record
from .run.options import MigrateOptions
from .run.shared import Shared
from .status import read_standings, select_tenants


def server_key(record: _core.TenantRecord) -> tuple[str, str, str]:
    try:
        settings_dict, _ = tenant_settings(record)
    except Exception:
        return ("?", "?", "?")
    vendor = vendor_of(settings_dict)
    if vendor == "sqlite":
        return ("sqlite", "", "")
    return (vendor, str(settings_dict.get("HOST") or "localhost"), str(settings_dict.get("PORT") or 5432))


class AllTenantsRun:
    """One run over the selected tenants, in tenant-id order.

    Before anything runs, every selected tenant's history is read at once (Rust, concurrently):
    tenants whose database or schema does not exist are reported as "missing" and skipped (an
    error with ``strict``), and ``limit`` keeps the first N tenants with something pending (a
    canary). The rest run in waves of ``batch_size`` (all at once by default), ``batch_pause``
    seconds apart; a wave with a failed tenant stops the rollout unless ``fail_fast`` is False
    (an explicit ``--continue-on-error``). With ``journal``, the run and each tenant's outcome
    are written to the master database as they happen (see ``journal.py``).
    """

    def __init__(
        self,
        opts: MigrateOptions,
        *,
        jobs: int,
        per_server: int | None,
        fail_fast: bool | None,
        tenant_ids: list[str] | None,
        stdout: Any,
        style: Any,
        progress: TextIO = sys.stderr,
        json_report: bool = False,
        exclude: list[str] | None = None,
        strict: bool = False,
        limit: int | None = None,
        batch_size: int | None = None,
        batch_pause: float = 0.0,
        journal_arguments: dict[str, Any] | None = None,
        color: bool = True,
    ) -> None:
        self.opts = opts
        self.jobs = max(1, jobs)
        self.per_server = max(1, per_server or self.jobs)
        self.fail_fast = bool(fail_fast)
        # Waves stop at a failed wave unless --continue-on-error was given explicitly.
        self.waves_continue = fail_fast is False
        self.tenant_ids = tenant_ids
        self.exclude = exclude or []
        self.strict = strict
        self.limit = limit
        self.batch_size = batch_size
        self.batch_pause = batch_pause
        self.journal_arguments = journal_arguments
        self.journal: Journal | None = None
        # Why tenants were not reached, when some were not.
        self.stopped_by = "--fail-fast"
        self.stdout = stdout
        # Where tenant lines go: stdout, or above the progress bar while one is shown there.
        self.lines = stdout
        self.color = color
        self.style = style
        self.progress_stream = progress
        self.json_report = json_report
        self.stop = threading.Event()
        self.semaphores: dict[tuple[str, str, str], threading.Semaphore] = {}
        self.sem_lock = threading.Lock()

    def select(self) -> list[_core.TenantRecord]:
        records = select_tenants(self.tenant_ids, self.exclude)
        self.fit_connection_limits()
        return records

    def fit_connection_limits(self) -> None:
        """Fewer jobs when the master's connection limits leave no room for ``--jobs`` (see
        ``budget.py``), said once; an error before any tenant when there is no room for one."""
        jobs, notice = fit_jobs(self.jobs)
        if notice is None:
            return
        self.jobs = jobs
        self.per_server = min(self.per_server, jobs)
        if self.json_report:
            self.progress_stream.write(f"Note: {notice}\n")
        else:
            self.say(self.style.WARNING(f"Note: {notice}"))

    def semaphore(self, record: _core.TenantRecord) -> threading.Semaphore:
        key = server_key(record)
        with self.sem_lock:
            if key not in self.semaphores:
                self.semaphores[key] = threading.Semaphore(self.per_server)
            return self.semaphores[key]

    def say(self, text: str) -> None:
        if not self.json_report and self.opts.verbosity >= 1:
            self.lines.write(text)

    def probe(
        self, records: list[_core.TenantRecord], shared: Shared
    ) -> tuple[list[_core.TenantRecord], dict[str, TenantOutcome]]:
        """The tenants to run, and the outcomes of missing ones (never run)."""
        standings = read_standings(
            records,
            shared.graph,
            app_label=self.opts.app_label,
            migration_name=self.opts.migration_name,
            jobs=self.jobs,
        )
        settled: dict[str, TenantOutcome] = {}
        to_run = []
        pending_seen = 0
        for record, standing in zip(records, standings, strict=True):
            if standing.missing:
                message = f"Tenant database missing: {standing.error}"
                status = "failed" if self.strict else "missing"
                settled[record.tenant_id] = TenantOutcome(record.tenant_id, status, error=message)
                style = self.style.ERROR if self.strict else self.style.WARNING
                self.say(style(f"[{record.tenant_id}] {'Error' if self.strict else 'Skipped'}: {message}"))
                continue
            if self.limit is not None:
                if standing.state != "pending" or pending_seen >= self.limit:
                    continue
                pending_seen += 1
            elif standing.state == "up-to-date" and not self.opts.plan:
                # Nothing to run: not worth a connection, a wave slot or a pause.
                settled[record.tenant_id] = TenantOutcome(record.tenant_id, "up-to-date")
                continue
            to_run.append(record)
        if self.limit is not None:
            self.say(
                f"Canary: {len(to_run)} pending tenant{'s' if len(to_run) != 1 else ''} selected "
                f"(--limit {self.limit})."
            )
        return to_run, settled

    def run(self) -> list[TenantOutcome]:
        records = self.select()
        # --plan output is per tenant and ordered: one worker keeps it readable.
        jobs = 1 if self.opts.plan else self.jobs
        shared = Shared(replay=not self.opts.plan, alongside=jobs)
        self.shared = shared
        to_run, settled = self.probe(records, shared)
        to_run_ids = {r.tenant_id for r in to_run}
        if self.journal_arguments is not None:
            journaled = [r.tenant_id for r in records if r.tenant_id in settled or r.tenant_id in to_run_ids]
            # Outcomes known before anything runs (up to date, missing) are written with the
            # rows: one statement, where one each was most of a no-op run's time.
            known = {o.tenant_id: (o.status, o.error) for o in settled.values()}
            self.journal = Journal(self.journal_arguments, journaled, known)
        progress = progress_for(
            len(to_run),
            None if self.json_report else self.stdout,
            self.progress_stream,
            enabled=not self.opts.plan,
            color=self.color,
        )
        with progress:
            self.lines = progress.lines(self.stdout)
            try:
                settled = self.run_waves(to_run, settled, shared, progress, jobs)
            finally:
                self.lines = self.stdout
        if INTERRUPTER.fired.is_set():
            self.stopped_by = "interrupted"
        outcomes = []
        not_reached = f"not reached ({self.stopped_by})"
        for record in records:
            if record.tenant_id in settled:
                outcomes.append(settled[record.tenant_id])
            elif record.tenant_id in to_run_ids:
                outcomes.append(TenantOutcome(record.tenant_id, "not-reached", error=not_reached))
        if self.journal is not None:
            unreached = [o.tenant_id for o in outcomes if o.status == "not-reached"]
            self.journal.record_many(unreached, "not-reached", not_reached)
            self.journal.finish()
        return outcomes

    def run_waves(
        self,
        to_run: list[_core.TenantRecord],
        settled: dict[str, TenantOutcome],
        shared: Shared,
        progress: Any,
        jobs: int,
    ) -> dict[str, TenantOutcome]:
        # Ctrl-C: no new tenant, no new wave, and the pause between waves ends at once.
        INTERRUPTER.register(self.stop.set)
        size = self.batch_size or max(1, len(to_run))
        waves = [to_run[i : i + size] for i in range(0, len(to_run), size)]
        self.stopped_by = "--fail-fast"
        for number, wave in enumerate(waves, start=1):
            if number > 1:
                failed_before = any(o.status == "failed" for o in settled.values())
                if failed_before and not self.waves_continue:
                    self.stop.set()
                    self.stopped_by = "an earlier wave failed"
                if self.stop.is_set():
                    break
                if self.batch_pause > 0:
                    self.say(f"Pausing {self.batch_pause:g}s before the next wave.")
                    if self.stop.wait(self.batch_pause):
                        break
            if len(waves) > 1:
                self.say(
                    self.style.MIGRATE_HEADING(f"Wave {number} of {len(waves)}: ")
                    + ", ".join(r.tenant_id for r in wave)
                )
            for outcome in self.run_wave(wave, shared, progress, jobs):
                settled[outcome.tenant_id] = outcome
        return settled

    def run_wave(
        self, records: list[_core.TenantRecord], shared: Shared, progress: Any, jobs: int
    ) -> list[TenantOutcome]:
        """Migrate ``records`` with ``jobs`` threads; outcomes are journaled by this thread as
        they arrive (successes gathered for up to a second, see ``journal.py``)."""
        todo: queue.Queue[_core.TenantRecord] = queue.Queue()
        for record in records:
            todo.put(record)
        done: queue.Queue[TenantOutcome] = queue.Queue()
        collector = Collector()

        def worker() -> None:
            from django.db import connections

            try:
                with sessions():
                    while not self.stop.is_set():
                        try:
                            record = todo.get_nowait()
                        except queue.Empty:
                            break
                        with self.semaphore(record):
                            outcome = self.one(record, shared)
                        collector.after_tenant()
                        done.put(outcome)
                        progress.step(outcome.status == "failed")
                        if outcome.status == "failed" and self.fail_fast:
                            self.stop.set()
            finally:
                connections.close_all()

        count = min(jobs, len(records))
        threads = [threading.Thread(target=worker, name=f"tenant-migrate-{i}") for i in range(count)]
        for t in threads:
            t.start()
        outcomes = []
        while any(t.is_alive() for t in threads) or not done.empty():
            try:
                outcome = done.get(timeout=0.1)
            except queue.Empty:
                if self.journal is not None:
                    self.journal.flush_due()
                continue
            outcomes.append(outcome)
            if self.journal is not None:
                self.journal.record(outcome.tenant_id, outcome.status, outcome.seconds, outcome.error)
        for t in threads:
            t.join()
        if self.journal is not None:
            self.journal.flush()
        return outcomes

    def one(self, record: _core.TenantRecord, shared: Shared) -> TenantOutcome:
        verbosity = 0 if self.json_report else self.opts.verbosity
        out = Output(self.lines, self.style, verbosity, prefix=f"[{record.tenant_id}] ", whole_lines=True)
        began = time.monotonic()
        try:
            report = migrate_record(record, self.opts, out, shared)
        except UnappliedMigrations:
            return TenantOutcome(record.tenant_id, "pending", time.monotonic() - began)
        except Exception as exc:
            if INTERRUPTER.fired.is_set():
                message = interrupted_text(record.tenant_id, out)
                return TenantOutcome(record.tenant_id, "interrupted", time.monotonic() - began, error=message)
            message = str(to_command_error(exc, record.tenant_id))
            out.write(f"Error: {message}", self.style.ERROR)
            return TenantOutcome(record.tenant_id, "failed", time.monotonic() - began, error=message)
        finally:
            forget_thread_connection(record.tenant_id)
        return outcome_of(record.tenant_id, report, time.monotonic() - began, self.opts)

    def print_report(self, outcomes: list[TenantOutcome], seconds: float) -> None:
        journal = self.journal
        report.print_run(
            self.stdout.write,
            self.style,
            outcomes,
            summary(outcomes, getattr(self.shared, "cache", None)),
            seconds,
            json_report=self.json_report,
            verbosity=self.opts.verbosity,
            stopped_by=self.stopped_by,
            journal=(journal.run.pk, journal.lost) if journal is not None else None,
        )

    def check(self) -> bool:
        """``--check``: see ``pending.check``."""
        return pending.check(
            self.select(),
            self.opts,
            jobs=self.jobs,
            strict=self.strict,
            json_report=self.json_report,
            stdout=self.stdout,
            style=self.style,
        )
