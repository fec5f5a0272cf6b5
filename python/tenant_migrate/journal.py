"""The journal of ``migratealltenants`` runs, in the master database: each run and each
tenant's outcome, written as outcomes arrive, so that ``--resume`` knows which tenants failed
or were never reached, even after the process was killed."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from .models import MigrationRun, MigrationRunTenant
from .runner import TenantRunError

# Outcomes that --resume runs again.
UNFINISHED = ("not-reached", "failed", "skipped")

MASTER = "default"


def _missing_table(err: Exception) -> TenantRunError:
    return TenantRunError(
        f"The run journal cannot be written to the master database ({str(err).strip()}). "
        "Run 'python manage.py migrate' first."
    )


class Journal:
    """Written from one thread only (the one running the command)."""

    def __init__(self, arguments: dict[str, Any], tenant_ids: list[str]) -> None:
        try:
            with transaction.atomic(using=MASTER):
                self.run = MigrationRun.objects.using(MASTER).create(arguments=arguments)
                MigrationRunTenant.objects.using(MASTER).bulk_create(
                    MigrationRunTenant(run=self.run, tenant_id=tenant_id, position=position)
                    for position, tenant_id in enumerate(tenant_ids)
                )
        except DatabaseError as err:
            raise _missing_table(err) from None

    def record(self, tenant_id: str, status: str, seconds: float, error: str | None) -> None:
        MigrationRunTenant.objects.using(MASTER).filter(run=self.run, tenant_id=tenant_id).update(
            status=status, seconds=round(seconds, 3), error=error or "", finished_at=timezone.now()
        )

    def finish(self) -> None:
        unfinished = self.run.tenants.using(MASTER).filter(status__in=UNFINISHED).exists()
        self.run.status = MigrationRun.Status.FAILED if unfinished else MigrationRun.Status.SUCCEEDED
        self.run.finished_at = timezone.now()
        self.run.save(using=MASTER, update_fields=["status", "finished_at"])


def resume_selection() -> tuple[MigrationRun, list[str]]:
    """The last run and its tenants that failed or were not reached, in the run's order."""
    try:
        last = MigrationRun.objects.using(MASTER).order_by("-id").first()
    except DatabaseError as err:
        raise _missing_table(err) from None
    if last is None:
        raise TenantRunError("No previous migratealltenants run to resume.")
    ids = list(
        last.tenants.using(MASTER)
        .filter(status__in=UNFINISHED)
        .order_by("position")
        .values_list("tenant_id", flat=True)
    )
    return last, ids
