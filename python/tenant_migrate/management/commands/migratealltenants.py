from __future__ import annotations

import os
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenant_migrate.alltenants import AllTenantsRun
from tenant_migrate.errors import Error, to_command_error
from tenant_migrate.management.options import add_migrate_arguments, migrate_options
from tenant_migrate.runner import check_app_label


def default_jobs() -> int:
    # The database server, not this process, is the bottleneck: a few connections per core
    # keep it busy without piling up lock waits.
    return max(2, min(8, os.cpu_count() or 2))


class Command(BaseCommand):
    help = "Brings every tenant of the registry up to date (or to the given target)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_migrate_arguments(parser)
        parser.add_argument(
            "--tenant-id",
            action="append",
            dest="tenant_ids",
            help="Only this tenant (repeat the option for several).",
        )
        parser.add_argument("--jobs", type=int, default=default_jobs(), help="Tenants migrated concurrently.")
        parser.add_argument(
            "--jobs-per-server",
            type=int,
            default=None,
            help="At most this many concurrent tenants per database server (default: --jobs).",
        )
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--continue-on-error",
            action="store_false",
            dest="fail_fast",
            help="Keep going after a tenant fails (the default).",
        )
        group.add_argument(
            "--fail-fast",
            action="store_true",
            dest="fail_fast",
            help="Start no new tenant after the first failure (running ones finish).",
        )
        parser.set_defaults(fail_fast=False)
        parser.add_argument("--json", action="store_true", help="Print a machine-readable report.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["jobs"] < 1:
            raise Error("--jobs must be at least 1.")
        opts = migrate_options(options, skip_up_to_date=True)
        run = AllTenantsRun(
            opts,
            jobs=options["jobs"],
            per_server=options["jobs_per_server"],
            fail_fast=options["fail_fast"],
            tenant_ids=options["tenant_ids"],
            stdout=self.stdout,
            style=self.style,
            progress=self.stderr._out,  # the command's stderr, so call_command can capture it
            json_report=options["json"],
        )
        began = time.monotonic()
        try:
            check_app_label(opts)
            outcomes = run.run()
        except Exception as exc:
            if options.get("traceback"):
                raise
            raise to_command_error(exc) from exc
        run.print_report(outcomes, time.monotonic() - began)
        failed = [o for o in outcomes if o.status in ("failed", "skipped")]
        if failed:
            raise Error(
                f"{len(failed)} of {len(outcomes)} tenants failed: {', '.join(o.tenant_id for o in failed)}"
            )
