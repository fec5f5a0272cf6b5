"""A heartbeat while a migration runs long: which migration, for how long, the statement it
runs and, on PostgreSQL, what it waits for (a lock held by which other process).

The beats come from a thread of their own, one for the whole process (``TICKER``): the Rust
core releases the interpreter while it talks to the database, so the heartbeat keeps beating
while a statement is blocked; and a run of thousands of tenants starts and joins no thread per
tenant. On a terminal it is one
live line, redrawn in place and cleared before the migration's result is printed; under the
progress bar of ``migratealltenants`` it is a live line of that display (``BOARDS``);
otherwise (a log, CI) each beat is a plain line of its own, and the migration's line is printed
whole once it is done (see ``runner._run``), so a beat is never spliced into it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

ACTIVITY = """
SELECT a.state, a.wait_event_type, a.wait_event,
       (SELECT string_agg(b.pid::text || ' (' || coalesce(nullif(b.application_name, ''), '?')
                          || ', ' || coalesce(b.state, '?') || '): ' || left(coalesce(b.query, ''), 120),
                          '; ')
        FROM pg_catalog.pg_stat_activity b WHERE b.pid = ANY (pg_catalog.pg_blocking_pids(a.pid)))
FROM pg_catalog.pg_stat_activity a WHERE a.pid = %s
"""

CLEAR = "\r\033[K"

# The live display beats are shown on while one is up (a run's progress bar): anything with
# ``beat(tenant_id, text or None)``.
BOARDS: list[Any] = []


def duration(seconds: float) -> str:
    """``0.4s``, ``12s``, ``3m 05s``: never "0s" for a step that has been running."""
    if seconds < 10:
        return f"{max(seconds, 0.1):.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def same_terminal(stdout: Any, stderr: TextIO) -> bool:
    """Whether the command's stdout and stderr both go to one terminal (then the live line
    shares the line the migration's name is printed on)."""
    # Django's OutputWrapper: before 5.0 it derives from TextIOBase, whose own fileno() raises.
    stdout = getattr(stdout, "_out", stdout)
    try:
        out, err = stdout.fileno(), stderr.fileno()
        return os.isatty(out) and os.isatty(err) and os.fstat(out).st_rdev == os.fstat(err).st_rdev
    except (AttributeError, OSError, ValueError):
        return False


class Heartbeat:
    def __init__(
        self,
        stream: TextIO,
        interval: float,
        tenant_id: str,
        pid: int | None,
        settings: dict[str, Any],
        running: Callable[[], str | None] = lambda: None,
        open_line: Callable[[], str] = lambda: "",
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.tenant_id = tenant_id
        self.pid = pid
        self.settings = settings
        # The statement the Rust core runs now; Django's statements are reported to statement().
        self.running = running
        # The step line left open on stdout, when stdout shares the terminal.
        self.open_line = open_line
        try:
            self.live = stream.isatty()
        except (AttributeError, ValueError):
            self.live = False
        self.board = BOARDS[-1] if BOARDS else None
        self.drawn = False
        self.current: tuple[str, float] | None = None
        # While the step runs through Django: its connection's server process and statement.
        self.via_django = False
        self.django_pid: int | None = None
        self.django_statement: str | None = None
        self.lock = threading.Lock()
        # Held while a beat is under way: leaving waits for it, and no beat comes after.
        self.beating = threading.Lock()
        self.stopped = False
        self.monitor: Any = None

    def __enter__(self) -> Heartbeat:
        if self.interval > 0:
            TICKER.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        TICKER.remove(self)
        with self.beating:
            self.stopped = True
        self.clear()
        if self.monitor is not None:
            self.monitor.close()

    def step(self, label: str | None) -> None:
        # Cleared and changed at once: a beat drawn in between would outlive its step.
        with self.lock:
            self._clear()
            self.current = (label, time.monotonic()) if label else None
            self.via_django = False
            self.django_statement = None

    def django_step(self, pid: int | None) -> None:
        """The step runs through Django, on its own connection (server process ``pid``)."""
        self.via_django, self.django_pid, self.django_statement = True, pid, None

    def statement(self, sql: str | None) -> None:
        """The statement Django runs now for the step (the Rust core reports its own)."""
        self.django_statement = sql

    def clear(self) -> None:
        """Take the live line back, so that what is printed next lands where it belongs."""
        with self.lock:
            self._clear()

    def _clear(self) -> None:
        if not self.drawn:
            return
        if self.board is not None:
            self.board.beat(self.tenant_id, None)
        else:
            self.stream.write(CLEAR + self.open_line())
            self.stream.flush()
        self.drawn = False

    def beat(self) -> None:
        """One beat (called by ``TICKER`` every ``interval`` seconds): said if a step runs."""
        with self.beating:
            if not self.stopped:
                self._beat()

    def _beat(self) -> None:
        with self.lock:
            current = self.current
        if current is None:
            return
        label, began = current
        elapsed = time.monotonic() - began
        text = f"[heartbeat] tenant '{self.tenant_id}': {label} running for {duration(elapsed)}"
        detail = self.detail()
        if detail:
            text += f"; {detail}"
        with self.lock:
            if self.current != current:
                return  # the step ended while the database was asked
            if self.board is not None:
                self.board.beat(self.tenant_id, text)
                self.drawn = True
                return
            if self.live:
                prefix = self.open_line()
                line = (prefix + " " if prefix else "") + text
                width = shutil.get_terminal_size().columns - 1
                # Longer than the terminal, the line would wrap and could not be redrawn.
                self.stream.write(CLEAR + line[: max(width, 20)])
                self.drawn = True
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def detail(self) -> str:
        django = self.via_django
        statement = self.django_statement if django else self.running()
        pid = self.django_pid if django else self.pid
        if statement:
            parts = [f"statement: {' '.join(statement.split())[:200]}"]
        else:
            parts = ["in Python code" if django else ""]
        activity = self.activity(pid) if statement else ""
        if activity:
            parts.append(activity)
        return "; ".join(p for p in parts if p)

    def activity(self, pid: int | None) -> str:
        if pid is None:
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
            row = self.monitor.execute(ACTIVITY, [pid]).fetchone()
        except Exception as exc:  # monitoring must never break the migration
            return f"(activity unavailable: {str(exc).strip().splitlines()[0]})"
        if row is None:
            return ""
        state, wait_type, wait_event, blockers = row
        text = str(state)
        if wait_type:
            text += f"; waiting for {wait_type}/{wait_event}"
        if blockers:
            text += f" held by pid {blockers}"
        return text


class Ticker:
    """The thread that beats for every heartbeat of the process, each ``interval`` seconds
    after it began. Beats of tenants running alongside take turns: one that waits for the
    server's answer (its activity) delays the others' by as much."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        # Each heartbeat, with when it beats next.
        self.due: dict[Heartbeat, float] = {}
        self.thread: threading.Thread | None = None

    def add(self, heartbeat: Heartbeat) -> None:
        with self.changed:
            self.due[heartbeat] = time.monotonic() + heartbeat.interval
            # None yet, or not in this process (a fork copies the object, not the thread).
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="tenant-migrate-heartbeat", daemon=True)
                self.thread.start()
            self.changed.notify()

    def remove(self, heartbeat: Heartbeat) -> None:
        with self.changed:
            self.due.pop(heartbeat, None)

    def run(self) -> None:
        while True:
            with self.changed:
                now = time.monotonic()
                beats = [heartbeat for heartbeat, at in self.due.items() if at <= now]
                for heartbeat in beats:
                    # The next multiple of its interval: a late beat does not bring on others.
                    late = now - self.due[heartbeat]
                    self.due[heartbeat] += heartbeat.interval * (1 + int(late // heartbeat.interval))
                if not beats:
                    self.changed.wait(min(self.due.values()) - now if self.due else None)
                    continue
            for heartbeat in beats:
                try:
                    heartbeat.beat()
                except Exception:  # its stream gone (a closed pipe): it stops, the others go on
                    self.remove(heartbeat)


TICKER = Ticker()
