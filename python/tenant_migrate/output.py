"""Django-style output of a tenant run: the plan, the header, each step as it runs."""

from __future__ import annotations

import threading
from typing import Any

from django.apps import apps as global_apps
from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db.migrations.loader import MigrationLoader

from . import _core
from .interrupt import INTERRUPTER


def migration_label(app: str, name: str) -> str:
    """How human output names a migration: by its file, ``users/0001_initial.py``."""
    return f"{app}/{name}.py"


class Output:
    """Django-style output for one tenant, written to the command's stdout."""

    # One lock for every Output of the process: lines of concurrent tenants never mix.
    lock = threading.Lock()

    def __init__(
        self,
        stdout: OutputWrapper,
        style: Style,
        verbosity: int,
        prefix: str = "",
        whole_lines: bool = False,
    ):
        self.stdout = stdout
        self.style = style
        self.verbosity = verbosity
        self.prefix = prefix
        # Concurrent runs print each step once, finished, instead of "name ..." then " OK".
        self.whole_lines = whole_lines
        self.open_step: str | None = None
        self.heartbeat: Any = None
        # What an interrupted run reports: the step in progress and the steps done.
        self.current: str | None = None
        self.done: list[str] = []

    def write(self, text: str, style_func: Any = None, min_verbosity: int = 1) -> None:
        if self.verbosity >= min_verbosity:
            with self.lock:
                # Each line of a multi-line text (an error's "Statement: ...") says whose it is.
                self.stdout.write(self.prefix + text.replace("\n", "\n" + self.prefix), style_func)

    def step_started(self, app: str, name: str, backwards: bool) -> None:
        self.current = ("Unapplying " if backwards else "") + migration_label(app, name)
        if self.heartbeat is not None:
            self.heartbeat.step(self.current)
        if self.verbosity < 1:
            return
        self.open_step = f"{self.prefix}  {self.current} ..."
        if not self.whole_lines:
            with self.lock:
                self.stdout.write(self.open_step, ending="")
                self.stdout.flush()

    def step_finished(self, report: _core.StepReport) -> None:
        if self.current is not None:
            self.done.append(self.current)
        self.current = None
        if self.heartbeat is not None:
            self.heartbeat.step(None)
        if self.verbosity < 1:
            return
        text = f" {report.outcome}"
        if self.verbosity >= 2:
            text += f" ({report.seconds:.3f}s)"
        with self.lock:
            if self.whole_lines:
                self.stdout.write((self.open_step or "") + self.style.SUCCESS(text))
            else:
                self.stdout.write(self.style.SUCCESS(text))
        self.open_step = None

    def step_retrying(self, attempt: int, retries: int, delay: float, reason: str) -> None:
        """A step rolled back by a lock or statement timeout, about to be retried."""
        if self.heartbeat is not None:
            self.heartbeat.clear()
        detail = (
            f"{self.prefix}    Waited on: {reason}\n"
            f"{self.prefix}    Rolled back; retry {attempt} of {retries} in {delay:.1f}s."
        )
        with self.lock:
            if self.open_step is not None and not self.whole_lines:
                self.stdout.write(self.style.WARNING(" TIMEOUT"))
            elif self.open_step is not None:
                self.stdout.write(self.open_step + self.style.WARNING(" TIMEOUT"))
            self.stdout.write(self.style.WARNING(detail))
            if self.open_step is not None and not self.whole_lines:
                self.stdout.write(self.open_step, ending="")
                self.stdout.flush()

    def close_line(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.clear()
        if self.open_step is None:
            return
        word = " INTERRUPTED" if INTERRUPTER.fired.is_set() else " FAILED"
        with self.lock:
            if self.whole_lines:
                self.stdout.write(self.open_step + self.style.ERROR(word))
            else:
                self.stdout.write(self.style.ERROR(word))
        self.open_step = None


def ordered_apps(labels: list[str]) -> list[str]:
    """Apps in INSTALLED_APPS order, as the run's header lists them."""
    order = {c.label: i for i, c in enumerate(global_apps.get_app_configs())}
    return sorted(labels, key=lambda a: (order.get(a, len(order)), a))


def print_plan(out: Output, tenant_id: str, plan: _core.Plan, loader: MigrationLoader) -> None:
    out.write(f"Planned operations for tenant '{tenant_id}':", out.style.MIGRATE_HEADING)
    if not plan.steps:
        out.write("  No planned migration operations.")
        return
    for app, name, backwards in plan.steps:
        verb = "Unapply " if backwards else ""
        migration = loader.disk_migrations[(app, name)]
        # A non-atomic migration is the one step a crash or Ctrl-C can leave half done.
        suffix = "" if migration.atomic else out.style.WARNING(" (non-atomic)")
        out.write(f"  {verb}{migration_label(app, name)}{suffix}")
        if out.verbosity < 2:
            continue
        if not migration.atomic:
            out.write("    (non-atomic: runs outside a transaction)", out.style.WARNING)
        for operation in migration.operations:
            text, is_error = DjangoMigrate.describe_operation(operation, backwards)
            out.write("    " + text, out.style.WARNING if is_error else None)


def print_header(out: Output, plan: _core.Plan) -> None:
    kind, values = plan.header
    out.write("Operations to perform:", out.style.MIGRATE_HEADING)
    if kind == "apply_all":
        apps = ", ".join(ordered_apps(values)) or "(none)"
        out.write(out.style.MIGRATE_LABEL("  Apply all migrations: ") + apps)
    elif kind == "specific":
        out.write(out.style.MIGRATE_LABEL("  Target specific migration: ") + f"{values[1]}, from {values[0]}")
    else:
        out.write(out.style.MIGRATE_LABEL("  Unapply all migrations: ") + values[0])
