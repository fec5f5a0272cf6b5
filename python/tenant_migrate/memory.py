"""What a long all-tenants run gives back as it goes: the garbage its tenants leave in cycles.

A tenant's run leaves objects that refer to each other (Django's connection wrapper and its
helpers, the tenant's executor, loader and graph...): about 0.2 MB a tenant on a project of
300 migrations. Python collects such cycles among long-lived objects only once the survivors of
its younger generations outnumber a quarter of what the last full collection kept, and a run
holding hundreds of MB of shared project states seldom gets there: the garbage stayed for the
whole run, memory growing with the number of tenants. A full collection costs about 1.5 s on
such a heap (milliseconds on a small project's), so it is made when the process has grown by
``STEP`` since the last one, never after every tenant.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable

STEP = 64 << 20


def peak_bytes() -> int | None:
    """The process's peak resident size: it rises as uncollected garbage takes new memory."""
    try:
        import resource
    except ImportError:  # Windows: no collection of our own
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class Collector:
    """Called after each tenant by every worker; collects when the peak has grown by ``step``."""

    def __init__(self, step: int = STEP, measure: Callable[[], int | None] = peak_bytes) -> None:
        self.step = step
        self.measure = measure
        self.mark: int | None = None
        self.lock = threading.Lock()
        self.collections = 0

    def after_tenant(self) -> None:
        peak = self.measure()
        if peak is None:
            return
        with self.lock:
            # The first mark comes after the first tenant: what the run computes once (the
            # graph, the first compiles, the shared states) is no garbage.
            if self.mark is None:
                self.mark = peak
                return
            if peak - self.mark < self.step:
                return
            gc.collect()
            self.collections += 1
            self.mark = self.measure() or peak
