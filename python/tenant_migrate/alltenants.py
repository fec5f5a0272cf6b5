"""Every tenant of the registry, concurrently, with progress and a report.

Tenants are taken in tenant-id order. Each worker thread migrates one tenant at a time through
the same path as ``migratetenant``; the Rust core releases the interpreter while it talks to the
database, and SQL compiled once is replayed on every tenant verified to be in the same state.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from . import _core
from .connections import tenant_settings, vendor_of
from .errors import to_command_error
from .interrupt import INTERRUPTER, interrupted_text
from .runner import MigrateOptions, Output, Shared, UnappliedMigrations, list_tenants, migrate_record


@dataclass
class TenantOutcome:
    tenant_id: str
    status: str  # "migrated", "up-to-date", "planned", "pending", "failed", "skipped"
    seconds: float = 0.0
    applied: list[str] = field(default_factory=list)
    replayed: int = 0
    compiled: int = 0
    via_django: int = 0
    drift: int = 0
    error: str | None = None


class Progress:
    """done/total, failures, rate and time left: one updated line on a terminal, plain lines
    (at most every few seconds) otherwise."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled and total > 0
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.last_print = 0.0
        self.lock = threading.Lock()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        return (
            f"Progress: {self.done}/{self.total} tenants, {self.failed} failed, "
            f"{rate:.1f} tenants/s, about {left:.0f}s left"
        )

    def step(self, failed: bool) -> None:
        if not self.enabled:
            return
        with self.lock:
            self.done += 1
            self.failed += int(failed)
            now = time.monotonic()
            final = self.done == self.total
            if self.tty:
                self.stream.write("\r\x1b[K" + self.line() + ("\n" if final else ""))
                self.stream.flush()
            elif final or now - self.last_print >= 5.0:
                self.stream.write(self.line() + "\n")
                self.stream.flush()
                self.last_print = now


def server_key(record: _core.TenantRecord) -> tuple[str, str, str]:
    try:
        settings_dict, _ = tenant_settings(record)
    except Exception:
        return ("?", "?", "?")
    vendor = vendor_of(settings_dict)
    if vendor == "sqlite":
        return ("sqlite", "", "")
    return (vendor, str(settings_dict.get("HOST") or "localhost"), str(settings_dict.get("PORT") or 5432))


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


class AllTenantsRun:
    def __init__(
        self,
        opts: MigrateOptions,
        *,
        jobs: int,
        per_server: int | None,
        fail_fast: bool,
        tenant_ids: list[str] | None,
        stdout: Any,
        style: Any,
        progress: TextIO = sys.stderr,
        json_report: bool = False,
    ) -> None:
        self.opts = opts
        self.jobs = max(1, jobs)
        self.per_server = max(1, per_server or self.jobs)
        self.fail_fast = fail_fast
        self.tenant_ids = tenant_ids
        self.stdout = stdout
        self.style = style
        self.progress_stream = progress
        self.json_report = json_report
        self.stop = threading.Event()
        self.semaphores: dict[tuple[str, str, str], threading.Semaphore] = {}
        self.sem_lock = threading.Lock()

    def select(self) -> list[_core.TenantRecord]:
        records = list_tenants()
        if not self.tenant_ids:
            return records
        by_id = {r.tenant_id: r for r in records}
        missing = [t for t in self.tenant_ids if t not in by_id]
        if missing:
            raise _core.TenantNotFound(
                f"Tenant '{missing[0]}' does not exist.\n"
                f"Please create one with the tenant id '{missing[0]}' first."
            )
        wanted = set(self.tenant_ids)
        return [r for r in records if r.tenant_id in wanted]

    def semaphore(self, record: _core.TenantRecord) -> threading.Semaphore:
        key = server_key(record)
        with self.sem_lock:
            if key not in self.semaphores:
                self.semaphores[key] = threading.Semaphore(self.per_server)
            return self.semaphores[key]

    def run(self) -> list[TenantOutcome]:
        records = self.select()
        # --plan output is per tenant and ordered: one worker keeps it readable.
        jobs = 1 if self.opts.plan else self.jobs
        shared = Shared(replay=not self.opts.plan)
        self.shared = shared
        progress = Progress(len(records), self.progress_stream, enabled=not self.opts.plan)
        todo: queue.Queue[tuple[int, _core.TenantRecord]] = queue.Queue()
        for item in enumerate(records):
            todo.put(item)
        results: list[TenantOutcome | None] = [None] * len(records)

        def worker() -> None:
            from django.db import connections

            while not self.stop.is_set() and not INTERRUPTER.fired.is_set():
                try:
                    index, record = todo.get_nowait()
                except queue.Empty:
                    break
                with self.semaphore(record):
                    outcome = self.one(record, shared)
                results[index] = outcome
                progress.step(outcome.status == "failed")
                if outcome.status == "failed" and self.fail_fast:
                    self.stop.set()
            connections.close_all()

        threads = [threading.Thread(target=worker, name=f"tenant-migrate-{i}") for i in range(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [
            r
            if r is not None
            else TenantOutcome(
                records[i].tenant_id,
                "skipped",
                error="not reached (interrupted)"
                if INTERRUPTER.fired.is_set()
                else "not reached (--fail-fast)",
            )
            for i, r in enumerate(results)
        ]

    def one(self, record: _core.TenantRecord, shared: Shared) -> TenantOutcome:
        verbosity = 0 if self.json_report else self.opts.verbosity
        out = Output(self.stdout, self.style, verbosity, prefix=f"[{record.tenant_id}] ", whole_lines=True)
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
        return outcome_of(record.tenant_id, report, time.monotonic() - began, self.opts)

    def summary(self, outcomes: list[TenantOutcome]) -> dict[str, Any]:
        count = {
            s: sum(o.status == s for o in outcomes)
            for s in ("migrated", "up-to-date", "failed", "interrupted", "skipped", "pending", "planned")
        }
        cache = getattr(self.shared, "cache", None)
        return {
            "tenants": len(outcomes),
            **count,
            "replayed": sum(o.replayed for o in outcomes),
            "compiled": sum(o.compiled for o in outcomes),
            "via_django": sum(o.via_django for o in outcomes),
            # Counted by the cache: a tenant that failed later still drifted.
            "drift": cache.drifts if cache is not None else 0,
            "cached_sql": len(cache) if cache is not None else 0,
        }

    def print_report(self, outcomes: list[TenantOutcome], seconds: float) -> None:
        summary = self.summary(outcomes)
        summary["seconds"] = round(seconds, 3)
        if self.json_report:
            self.stdout.write(
                json.dumps({"summary": summary, "tenants": [asdict(o) for o in outcomes]}, indent=2)
            )
            return
        if self.opts.verbosity < 1:
            return
        parts = [
            f"{summary[k]} {k}"
            for k in ("migrated", "up-to-date", "failed", "interrupted", "skipped", "pending")
            if summary[k]
        ]
        self.stdout.write(
            self.style.MIGRATE_HEADING(f"Summary: {summary['tenants']} tenants in {seconds:.1f}s")
            + (": " + ", ".join(parts) if parts else "")
            + "."
        )
        if summary["replayed"] or summary["compiled"] or summary["drift"]:
            self.stdout.write(
                f"  Migrations: {summary['replayed']} replayed, {summary['compiled']} compiled, "
                f"{summary['via_django']} run by Django; {summary['drift']} compiled again because "
                "the tenant's state differed."
            )
        failed = [o for o in outcomes if o.status in ("failed", "interrupted", "skipped")]
        if failed:
            self.stdout.write(self.style.ERROR("Failed tenants:"))
            for o in failed:
                first, *rest = (o.error or "").splitlines() or [""]
                self.stdout.write(f"  {o.tenant_id}: {first}")
                for line in rest:
                    self.stdout.write(f"    {line}")
        pending = [o for o in outcomes if o.status == "pending"]
        if pending:
            self.stdout.write("Tenants with unapplied migrations:")
            for o in pending:
                self.stdout.write(f"  {o.tenant_id}")
