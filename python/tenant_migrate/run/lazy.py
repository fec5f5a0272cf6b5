"""Hooks that build Django's side of a tenant only when a callback needs it."""

from __future__ import annotations

from typing import Any

from django.db.migrations.state import ProjectState

from .. import _core
from ..output import Output
from .hooks import DjangoHooks
from .shared import django_side
from .sharing import Sharing


class LazyHooks:
    """Hooks that build Django's side only when a callback needs it.

    In an all-tenants run most migrations are replayed: such a tenant never loads a graph or
    renders a state. When a compile or a Python migration is needed, the executor is built
    then: its loader has the tenant's history as it is at that moment (the plan's applied set
    and the steps finished since), so its project state is exactly the state before the
    current step.
    """

    def __init__(self, make: Any, out: Output, applied: list[tuple[str, str]]) -> None:
        self._make = make
        self._hooks: DjangoHooks | None = None
        self.out = out
        self._history = set(applied)

    @django_side
    def real(self) -> DjangoHooks:
        if self._hooks is None:
            # The history as it is now, known without reading it: lazy hooks serve only plans
            # forward, without squashes, where each finished step recorded its own row.
            self._hooks = self._make(frozenset(self._history))
        return self._hooks

    def started(self, app: str, name: str, backwards: bool, fake: bool) -> None:
        self.out.step_started(app, name, backwards)

    def soft_applied(self, app: str, name: str) -> bool:
        return self.real().soft_applied(app, name)

    def compile(self, app: str, name: str, backwards: bool) -> tuple[list[str], Sharing] | None:
        return self.real().compile(app, name, backwards)

    def apply_with_django(self, app: str, name: str, backwards: bool) -> tuple[list[str], Sharing] | None:
        return self.real().apply_with_django(app, name, backwards)

    def replayed(self, app: str, name: str, backwards: bool) -> None:
        if self._hooks is not None:
            self._hooks.replayed(app, name, backwards)

    def finished(self, report: _core.StepReport) -> None:
        self._history.add((report.app, report.name))
        self.out.step_finished(report)

    def retrying(self, app: str, name: str, attempt: int, retries: int, delay: float, reason: str) -> None:
        self.out.step_retrying(attempt, retries, delay, reason)
        if self._hooks is not None:
            self._hooks.reset_state()

    def final_state(self) -> ProjectState:
        return self.real().final_state()
