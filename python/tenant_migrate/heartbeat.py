"""A heartbeat while a migration runs long: which migration, for how long, and on PostgreSQL
which statement and what it waits for (a lock held by which other process).

It runs in a thread of its own: the Rust core releases the interpreter while it talks to the
database, so the heartbeat keeps beating while a statement is blocked.
"""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

ACTIVITY = """
SELECT a.state, a.wait_event_type, a.wait_event, left(a.query, 200),
       (SELECT string_agg(b.pid::text || ' (' || coalesce(nullif(b.application_name, ''), '?')
                          || ', ' || coalesce(b.state, '?') || '): ' || left(coalesce(b.query, ''), 120),
                          '; ')
        FROM pg_catalog.pg_stat_activity b WHERE b.pid = ANY (pg_catalog.pg_blocking_pids(a.pid)))
FROM pg_catalog.pg_stat_activity a WHERE a.pid = %s
"""


class Heartbeat:
    def __init__(
        self, stream: TextIO, interval: float, tenant_id: str, pid: int | None, settings: dict[str, Any]
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.tenant_id = tenant_id
        self.pid = pid
        self.settings = settings
        self.current: tuple[str, float] | None = None
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="tenant-migrate-heartbeat", daemon=True)
        self.monitor: Any = None

    def __enter__(self) -> Heartbeat:
        if self.interval > 0:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()
        if self.monitor is not None:
            self.monitor.close()

    def step(self, label: str | None) -> None:
        with self.lock:
            self.current = (label, time.monotonic()) if label else None

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.lock:
                current = self.current
            if current is None:
                continue
            label, began = current
            line = (
                f"[heartbeat] tenant '{self.tenant_id}': {label} running for {time.monotonic() - began:.0f}s"
            )
            detail = self.activity()
            self.stream.write(line + (f"; {detail}" if detail else "") + "\n")
            self.stream.flush()

    def activity(self) -> str:
        if self.pid is None:
            return ""
        try:
            if self.monitor is None:
                import psycopg

                s = self.settings
                self.monitor = psycopg.connect(
                    host=s.get("HOST") or None,
                    port=s.get("PORT") or None,
                    user=s.get("USER") or None,
                    password=s.get("PASSWORD") or None,
                    dbname=s["NAME"],
                    autocommit=True,
                    application_name="django-tenant-migrate heartbeat",
                )
            row = self.monitor.execute(ACTIVITY, [self.pid]).fetchone()
        except Exception as exc:  # monitoring must never break the migration
            return f"(activity unavailable: {str(exc).strip().splitlines()[0]})"
        if row is None:
            return ""
        state, wait_type, wait_event, query, blockers = row
        text = f"{state}, statement: {' '.join((query or '').split())}"
        if wait_type:
            text += f"; waiting for {wait_type}/{wait_event}"
        if blockers:
            text += f" held by pid {blockers}"
        return text
