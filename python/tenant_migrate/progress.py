"""Progress of a run over many tenants: a live bar on a terminal, plain lines in a log.

On a terminal, ``rich`` draws the bar (tenants done/total, failures, rate, time left) with the
heartbeats of long migrations as live lines under it; each tenant's output is printed above
the bar, so a line of output and the bar never share a line. Not on a terminal (a log, CI),
a plain ``Progress: ...`` line goes to stderr at most every few seconds, as it always has.
"""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

from . import heartbeat


def is_terminal(stream: Any) -> bool:
    stream = getattr(stream, "_out", stream)  # Django's OutputWrapper
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class PlainProgress:
    """done/total, failures, rate and time left as a line of its own, at most every 5 s."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
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
        with self.lock:
            self.done += 1
            self.failed += int(failed)
            now = time.monotonic()
            if self.done == self.total or now - self.last_print >= 5.0:
                self.stream.write(self.line() + "\n")
                self.stream.flush()
                self.last_print = now

    def lines(self, stdout: Any) -> Any:
        """Where the run's per-tenant lines go while this progress is shown."""
        return stdout

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class NoProgress(PlainProgress):
    def step(self, failed: bool) -> None:
        pass


class LiveProgress:
    """The bar, redrawn in place by ``rich`` on ``console``; lines written through
    ``lines()`` are printed above it, heartbeats (``heartbeat.BOARDS``) under it."""

    def __init__(self, total: int, console_file: TextIO, color: bool, capture_stdout: bool) -> None:
        from rich.console import Console, Group
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.text import Text

        self.Text = Text
        self.on_stdout = capture_stdout
        self.console = Console(file=console_file, no_color=not color, highlight=False, soft_wrap=False)
        beats: dict[str, str] = {}
        self.beats = beats
        self.beats_lock = threading.Lock()
        lock = self.beats_lock

        class BarWithBeats(Progress):
            def get_renderables(self) -> Any:
                with lock:
                    shown = [Text(text, no_wrap=True, overflow="ellipsis") for text in beats.values()]
                yield Group(self.make_tasks_table(self.tasks), *shown)

        self.bar = BarWithBeats(
            TextColumn("Tenants"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("about"),
            TimeRemainingColumn(),
            TextColumn("left"),
            console=self.console,
            redirect_stdout=capture_stdout,
            redirect_stderr=True,
            transient=False,
        )
        self.task = self.bar.add_task("tenants", total=total, failed=0, rate="0.0 tenants/s")
        self.total = total
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def step(self, failed: bool) -> None:
        with self.lock:
            self.done += 1
            self.failed += int(failed)
            rate = self.done / max(time.monotonic() - self.started, 1e-9)
            self.bar.update(self.task, advance=1, failed=self.failed, rate=f"{rate:.1f} tenants/s")

    def print(self, text: str) -> None:
        self.console.print(self.Text.from_ansi(text), soft_wrap=True)

    def beat(self, tenant_id: str, text: str | None) -> None:
        with self.beats_lock:
            if text is None:
                self.beats.pop(tenant_id, None)
            else:
                self.beats[tenant_id] = text

    def lines(self, stdout: Any) -> Any:
        return LiveLines(self) if self.on_stdout else stdout

    def __enter__(self) -> LiveProgress:
        self.bar.start()
        heartbeat.BOARDS.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        heartbeat.BOARDS.remove(self)
        with self.beats_lock:
            self.beats.clear()
        self.bar.stop()


class LiveLines:
    """What per-tenant output writes to while the bar is shown: Django's ``OutputWrapper``
    interface (``write(text, style_func, ending)``), printed above the bar."""

    def __init__(self, live: LiveProgress) -> None:
        self.live = live

    def write(self, msg: str = "", style_func: Any = None, ending: str | None = None) -> None:
        if style_func is not None:
            msg = style_func(msg)
        self.live.print(msg)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def progress_for(total: int, stdout: Any, stderr: TextIO, enabled: bool, color: bool) -> Any:
    """The progress display of a run: live on whichever of stdout and stderr is a terminal
    (stdout first: tenant lines then go above the bar), plain lines on stderr otherwise."""
    if not enabled or total == 0:
        return NoProgress(total, stderr)
    if is_terminal(stdout):
        return LiveProgress(total, getattr(stdout, "_out", stdout), color, capture_stdout=True)
    if is_terminal(stderr):
        return LiveProgress(total, stderr, color, capture_stdout=False)
    return PlainProgress(total, stderr)
