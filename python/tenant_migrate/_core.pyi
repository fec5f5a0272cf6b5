"""Typed surface of the Rust extension ``tenant_migrate._core``."""

from collections.abc import Callable
from typing import Literal, Protocol, final

__all__ = [
    "GRAPH_FORMAT_VERSION",
    "INSUFFICIENT_PRIVILEGE",
    "TIMEOUT_SQLSTATES",
    "AmbiguousMigration",
    "AppWithoutMigrations",
    "CircularDependency",
    "ConcurrentRun",
    "ConflictingMigrations",
    "ConnectionFailed",
    "DatabaseError",
    "InconsistentHistory",
    "Interrupted",
    "InvalidArgument",
    "InvalidPlan",
    "LockBusy",
    "LockTimeout",
    "MigrationFailed",
    "MigrationNotFound",
    "NodeNotFound",
    "NotRolledBack",
    "PermissionDenied",
    "Plan",
    "PlanError",
    "ReplayCache",
    "Report",
    "RunLock",
    "StepReport",
    "TenantDatabase",
    "TenantMigrateError",
    "TenantNotFound",
    "TenantRecord",
    "TenantStatus",
    "__version__",
    "all_replaced_applied",
    "close_idle_connections",
    "compute_plan",
    "concurrent_run",
    "history_guard",
    "interrupt_all",
    "list_tenants",
    "lookup_tenant",
    "migration_failed",
    "quote_ident",
    "release_idle_connections",
    "run_tenant",
    "set_idle_connection_limit",
    "statement_text",
    "tenant_not_found",
    "tenant_status",
]

__version__: str
GRAPH_FORMAT_VERSION: int
# SQLSTATEs lock_not_available (lock_timeout) and query_canceled (statement_timeout, cancel):
# a migration that failed with one is retried.
TIMEOUT_SQLSTATES: tuple[str, str]
# SQLSTATE insufficient_privilege: raised as PermissionDenied.
INSUFFICIENT_PRIVILEGE: str

_Key = tuple[str, str]

class TenantMigrateError(Exception): ...
class TenantNotFound(TenantMigrateError): ...
class ConnectionFailed(TenantMigrateError): ...
class PermissionDenied(TenantMigrateError): ...
class DatabaseError(TenantMigrateError): ...
class InvalidArgument(TenantMigrateError): ...

class MigrationFailed(TenantMigrateError):
    """``args``: ``(message, tenant, migration, statement, reason)``."""

class NotRolledBack(MigrationFailed):
    """A non-atomic migration failed part way: what it ran before the failure is committed; it
    was neither rolled back nor retried (``args`` as ``MigrationFailed``)."""

class LockBusy(TenantMigrateError):
    """Another process holds the tenant's run lock."""

class ConcurrentRun(TenantMigrateError):
    """Another run changed the tenant while this one ran (this run's lock was lost, or the
    migration was recorded meanwhile); the migration in progress was rolled back."""

class Interrupted(TenantMigrateError):
    """The run was interrupted; the migration in progress was rolled back."""

class LockTimeout(TenantMigrateError):
    """Raised by a Python step that hit lock_timeout/statement_timeout: the executor retries it."""

class PlanError(TenantMigrateError): ...
class NodeNotFound(PlanError): ...
class CircularDependency(PlanError): ...
class InconsistentHistory(PlanError): ...
class ConflictingMigrations(PlanError): ...
class AppWithoutMigrations(PlanError): ...
class MigrationNotFound(PlanError): ...
class AmbiguousMigration(PlanError): ...
class InvalidPlan(PlanError): ...

@final
class TenantRecord:
    @property
    def tenant_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def isolation(self) -> str: ...
    @property
    def database_name(self) -> str: ...
    @property
    def schema_name(self) -> str: ...
    @property
    def connection(self) -> str: ...
    @property
    def namesakes(self) -> list[TenantRecord]:
        """Other tenants of the same isolation whose stored database or schema name is this
        one's (``lookup_tenant`` and ``list_tenants`` fill it in)."""

@final
class Plan:
    @property
    def steps(self) -> list[tuple[str, str, bool]]: ...
    @property
    def execution_order(self) -> list[tuple[str, str, bool]]: ...
    @property
    def full_plan(self) -> list[_Key]: ...
    @property
    def header(self) -> tuple[str, list[str]]: ...
    @property
    def applied(self) -> list[_Key]: ...
    @property
    def replace_migrations(self) -> bool: ...
    def __len__(self) -> int: ...

@final
class StepReport:
    @property
    def app(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def backwards(self) -> bool: ...
    @property
    def outcome(self) -> str: ...
    @property
    def route(self) -> str: ...
    @property
    def statements(self) -> int: ...
    @property
    def drift(self) -> bool: ...
    @property
    def seconds(self) -> float: ...

@final
class Report:
    @property
    def steps(self) -> list[StepReport]: ...
    @property
    def squashes_recorded(self) -> list[_Key]: ...

class _MigrationHooks(Protocol):
    """What the executor calls back during ``run_tenant``, in execution order."""

    def started(self, app: str, name: str, backwards: bool, fake: bool) -> None: ...
    def soft_applied(self, app: str, name: str) -> bool: ...
    def compile(
        self, app: str, name: str, backwards: bool
    ) -> tuple[list[str], Literal["catalog", "state", "tenant"]] | None: ...
    def apply_with_django(
        self, app: str, name: str, backwards: bool
    ) -> tuple[list[str], Literal["catalog", "state", "tenant"]] | None: ...
    def replayed(self, app: str, name: str, backwards: bool) -> None: ...
    def finished(self, report: StepReport) -> None: ...
    def retrying(
        self, app: str, name: str, attempt: int, retries: int, delay: float, reason: str
    ) -> None: ...

@final
class ReplayCache:
    def __new__(cls) -> ReplayCache: ...
    @property
    def hits(self) -> int: ...
    @property
    def misses(self) -> int: ...
    @property
    def drifts(self) -> int: ...
    @property
    def fingerprints(self) -> int: ...
    def __len__(self) -> int: ...

@final
class TenantDatabase:
    def __new__(cls, params_json: str) -> TenantDatabase: ...
    def recorder_exists(self) -> bool: ...
    def applied(self) -> list[_Key]: ...
    def fingerprint(self) -> str: ...
    def backend_pid(self) -> int | None: ...
    def running_statement(self) -> str | None: ...
    def plan(
        self, graph_json: str, app_label: str | None = None, migration_name: str | None = None
    ) -> Plan: ...
    def prune(self, graph_json: str, app_label: str) -> tuple[list[_Key], list[_Key]]: ...
    def interrupt(self) -> None:
        """From another thread: cancel the running statement, roll back, start nothing more."""
    @property
    def interrupted(self) -> bool: ...
    def close(self) -> None: ...

@final
class RunLock:
    """The tenant's run lock, held until ``release()``; raises ``LockBusy`` after ``wait`` s.

    When another run holds it and this one is about to wait, ``on_wait`` is called once with
    ``Waiting up to <wait> s for the run holding tenant '<tenant>'.``"""

    def __new__(
        cls, params_json: str, tenant: str, wait: float, on_wait: Callable[[str], object] | None = None
    ) -> RunLock: ...
    def release(self) -> None: ...

class _TenantSession(Protocol):
    """What ``run_tenant`` calls back: Django's part of one tenant's run, in this order."""

    def waiting(self, notice: str) -> None:
        """The run lock is held by another run and this one waits for it (said once)."""
    def opened(self, database: TenantDatabase) -> None:
        """The tenant's connection (to interrupt it; for the heartbeat)."""
    def target_checked(self) -> None:
        """With an app label only: the history passed Django's checks; the target is next."""
    def planned(self, plan: Plan) -> tuple[_MigrationHooks, list[str], str | None] | None:
        """``None`` ends the run here; else the hooks, the history table's DDL and the state
        key the replay cache files this plan's compiled SQL under (``None``: no cache)."""
    def finished(self, report: Report) -> None:
        """The plan is executed; still under the run lock (``post_migrate``)."""
    def closing(self) -> None:
        """However the run ends, once connected: before the connection and the lock go."""

def run_tenant(
    params_json: str,
    tenant: str,
    graph_json: str,
    session: _TenantSession,
    *,
    app_label: str | None = None,
    migration_name: str | None = None,
    lock_wait: float | None = None,
    fake: bool = False,
    fake_initial: bool = False,
    cache: ReplayCache | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
) -> Report | None:
    """One tenant's run: the run lock (with ``lock_wait``), the history, Django's plan and
    its execution, ``session`` called back for Django's part. ``None`` when ``planned``
    ended it."""

def compute_plan(
    graph_json: str,
    applied: list[_Key],
    app_label: str | None = None,
    migration_name: str | None = None,
) -> Plan: ...

@final
class TenantStatus:
    """One tenant's standing, as ``tenant_status`` found it."""

    @property
    def state(self) -> str:
        """``ok``, ``missing`` (no such database file, database or schema) or ``error``. A plan
        error (a history ``migrate`` would refuse) keeps ``history`` and ``apps``."""
    @property
    def error_kind(self) -> str | None:
        """``connect``, ``permission``, ``database``, ``plan``, or ``missing``."""
    @property
    def error(self) -> str | None: ...
    @property
    def history(self) -> list[tuple[str, str, str]]:
        """``(app, name, applied)`` rows in id order, ``applied`` as UTC ``YYYY-MM-DD HH:MM:SS``."""
    @property
    def plan(self) -> list[tuple[str, str, bool]]:
        """What ``migrate`` with the requested target would run: ``(app, name, backwards)``."""
    @property
    def apps(self) -> list[tuple[str, list[tuple[str, int, str]]]]:
        """``showmigrations`` per requested app: ``(app, [(name, replaces, mark)])``, the mark
        being ``applied``, ``unapplied`` or ``unrecorded``."""

def tenant_status(
    graph_json: str,
    params_json: list[str],
    app_labels: list[str],
    app_label: str | None = None,
    migration_name: str | None = None,
    threads: int = 8,
) -> list[TenantStatus]:
    """Many tenants' standing: histories read concurrently with at most ``threads``
    connections, plans and lists computed once per distinct history, the GIL released."""

def release_idle_connections(params_json: str) -> int:
    """Close this process's idle pooled connections to a PostgreSQL database; returns how many."""

def lookup_tenant(master_json: str, registry_json: str, tenant_id: str) -> TenantRecord: ...
def list_tenants(master_json: str, registry_json: str) -> list[TenantRecord]: ...
def close_idle_connections() -> int: ...
def set_idle_connection_limit(limit: int) -> int:
    """Keep at most ``limit`` idle PostgreSQL connections for reuse (default 16, all databases
    together); returns the previous limit."""

def history_guard(params_json: str) -> tuple[str, str | None]:
    """What guards a history row Django writes, in its transaction: the statement taking the
    tenant's record lock, and (when this process holds the tenant's run lock) a boolean SQL
    expression saying whether it still does."""

def interrupt_all(on: bool) -> None:
    """Interrupt (True) or stop interrupting (False) every wait of this process on a PostgreSQL
    server: connecting, a lock wait, a query."""

def concurrent_run(tenant: str, migration: str, lost: bool) -> ConcurrentRun:
    """The error for a history row refused by the guard (``lost``: the run lock is gone)."""

def quote_ident(name: str) -> str:
    """Double-quote an identifier, doubling embedded quotes; ``InvalidArgument`` for a NUL."""

def statement_text(statement: str) -> str:
    """A statement as the user wrote it (no closing ``;``), as a failed migration shows it."""

def migration_failed(
    tenant: str, migration: str, reason: str, statement: str | None = None
) -> MigrationFailed:
    """The core's MigrationFailed for a migration that failed in Python (not raised): its
    message is ``Migration <migration> failed for tenant '<tenant>': <reason>``, then
    ``Statement: <statement>`` when a statement was running."""

def tenant_not_found(tenant: str) -> TenantNotFound:
    """The core's TenantNotFound for an id no registry row has (not raised): it does not
    exist, create it first."""

def all_replaced_applied(replaces: list[_Key], applied: set[_Key]) -> bool:
    """Django's squash rule: a squash counts as applied once every migration it replaces is."""
