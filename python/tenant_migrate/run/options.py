"""What one run is asked to do (the migrate commands' options), and the checks of them."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps as global_apps

from .. import conf
from ..exceptions import TenantRunError
from ..names import check_text


@dataclass
class MigrateOptions:
    app_label: str | None = None
    migration_name: str | None = None
    plan: bool = False
    check: bool = False
    prune: bool = False
    fake: bool = False
    fake_initial: bool = False
    interactive: bool = True
    verbosity: int = 1
    # migratealltenants: an up-to-date tenant is left alone (no signals, no Django work).
    skip_up_to_date: bool = False
    # Seconds a migration may run before a heartbeat line goes to stderr (0: never).
    heartbeat: float = 0.0
    # Seconds to wait for another run of the same tenant (its run lock) to finish.
    lock_wait: float = 10.0
    # Zero-downtime mode (PostgreSQL): lock_timeout / statement_timeout in seconds, and how
    # many times a migration rolled back by either is retried.
    lock_timeout: float | None = None
    statement_timeout: float | None = None
    retries: int = 3
    retry_delay: float = 1.0

    @property
    def writes(self) -> bool:
        """Whether this run changes the tenant (and so must hold its run lock)."""
        return not (self.plan or self.check) or self.prune


def split_target(app_label: str | None, migration_name: str | None) -> tuple[str | None, str | None]:
    """Accept the forms the output prints: ``users/0002_alter_user_email.py`` as one argument
    (``--fake apps/0002_undo_change``), and the ``.py`` suffix on a name."""
    if app_label and migration_name is None and "/" in app_label:
        app_label, _, migration_name = app_label.partition("/")
    if migration_name and migration_name.endswith(".py"):
        migration_name = migration_name[: -len(".py")]
    return app_label, migration_name


def check_arguments(opts: MigrateOptions) -> None:
    """Hostile input is refused before anything is read."""
    check_text("migration name", opts.migration_name, 255)
    check_text("app label", opts.app_label, 255)


def check_app_label(opts: MigrateOptions) -> None:
    check_arguments(opts)
    if not opts.app_label:
        return
    try:
        global_apps.get_app_config(opts.app_label)
    except LookupError as err:
        raise TenantRunError(str(err)) from None
    if not conf.is_tenant_app(opts.app_label):
        raise TenantRunError(f"App '{opts.app_label}' is not a tenant app.")
