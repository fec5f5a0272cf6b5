"""Ctrl-C during a run: roll back the migration in progress, say what was done, exit 130.

While a run is in Rust the interpreter is released and Python's own SIGINT handler cannot run
until the run returns, which may be minutes later. So the signal is also written to a wake-up
socket (``signal.set_wakeup_fd``), where a watcher thread reads it at once and interrupts every
registered target: the Rust side cancels its running statement and rolls back instead of
committing; Django's connection has its running statement cancelled too.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import _core

EXIT_STATUS = 130  # 128 + SIGINT, as shells report a process ended by Ctrl-C


class Interrupter:
    """What to stop when the user interrupts: the tenant runs in progress."""

    def __init__(self) -> None:
        self.fired = threading.Event()
        self._targets: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()

    def register(self, target: Callable[[], None]) -> int:
        with self._lock:
            token = id(target)
            self._targets[token] = target
        if self.fired.is_set():
            target()
        return token

    def unregister(self, token: int) -> None:
        with self._lock:
            self._targets.pop(token, None)

    def fire(self) -> None:
        self.fired.set()
        # Waits on a server that does not answer (connecting, a lock) give up too.
        _core.interrupt_all(True)
        with self._lock:
            targets = list(self._targets.values())
        for target in targets:
            try:
                target()
            except Exception:
                # Best effort: the interrupt flag stops the run before its next commit anyway.
                pass

    def check(self) -> None:
        """Raise in Python code that runs statements, so a RunPython loop stops too."""
        if self.fired.is_set():
            raise _core.Interrupted("interrupted")

    def reset(self) -> None:
        self.fired.clear()
        _core.interrupt_all(False)
        with self._lock:
            self._targets.clear()


INTERRUPTER = Interrupter()


def cancel_django(connection: Any) -> Callable[[], None]:
    """A target that cancels what Django's connection is running (thread-safe in both drivers)."""

    def cancel() -> None:
        raw = connection.connection
        if raw is None:
            return
        if connection.vendor == "postgresql":
            raw.cancel()
        elif connection.vendor == "sqlite":
            raw.interrupt()

    return cancel


@contextmanager
def watch_sigint() -> Iterator[Interrupter]:
    """Interrupt registered runs on the first Ctrl-C; a second one raises KeyboardInterrupt."""
    INTERRUPTER.reset()
    if threading.current_thread() is not threading.main_thread():
        yield INTERRUPTER
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    presses = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal presses
        presses += 1
        INTERRUPTER.fire()
        if presses > 1:
            raise KeyboardInterrupt

    def watch() -> None:
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGINT in data:
                INTERRUPTER.fire()

    old_handler = signal.signal(signal.SIGINT, handler)
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="tenant-migrate-sigint", daemon=True)
    watcher.start()
    try:
        yield INTERRUPTER
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGINT, old_handler)
        reader.shutdown(socket.SHUT_RDWR)
        watcher.join(timeout=1)
        reader.close()
        writer.close()


def _not_atomic(label: str) -> bool:
    """Whether the migration printed as ``label`` (``app/name.py``, ``Unapplying app/name.py``)
    has ``atomic = False``: Django runs it outside a transaction, so an interrupt cannot roll
    back what it already ran."""
    app, _, name = label.removeprefix("Unapplying ").partition("/")
    try:
        from django.db.migrations.loader import MigrationLoader

        migration = MigrationLoader(None, ignore_no_migrations=True).disk_migrations.get(
            (app, name.removesuffix(".py"))
        )
    except Exception:
        return False
    return migration is not None and not migration.atomic


def interrupted_text(tenant_id: str, out: Any) -> str:
    """What an interrupted run of one tenant did, from its ``Output``'s record of the steps."""
    lines = []
    if out.current is not None and _not_atomic(out.current):
        lines.append(
            f"Interrupted: {out.current} is not atomic, so it was not rolled back for tenant "
            f"'{tenant_id}': every statement it ran before the interrupt is committed, and it is "
            "not recorded as applied."
        )
    elif out.current is not None:
        lines.append(f"Interrupted: {out.current} was rolled back for tenant '{tenant_id}'.")
    else:
        lines.append(f"Interrupted for tenant '{tenant_id}' between migrations.")
    if out.done:
        lines.append(f"Applied before the interrupt ({len(out.done)}): {', '.join(out.done)}.")
    else:
        lines.append("Nothing was applied before the interrupt.")
    return "\n".join(lines)
