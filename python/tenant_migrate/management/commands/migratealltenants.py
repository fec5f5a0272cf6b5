from __future__ import annotations

import os
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenant_migrate.alltenants import AllTenantsRun
from tenant_migrate.errors import Error, to_command_error
from tenant_migrate.runner import MigrateOptions, check_app_label, split_target


def default_jobs() -> int:
    # The database server, not this process, is the bottleneck: a few connections per core
    # keep it busy without piling up lock waits.
    return max(2, min(8, os.cpu_count() or 2))


class Command(BaseCommand):
    help = "Brings every tenant of the registry up to date (or to the given target)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="?", help="App label of an application to synchronize.")
        parser.add_argument("migration_name", nargs="?", help='Target migration ("zero" unapplies all).')
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
        parser.add_argument("--plan", action="store_true", help="Show every tenant's plan; change nothing.")
        parser.add_argument("--fake", action="store_true", help="Record migrations without running them.")
        parser.add_argument(
            "--fake-initial", action="store_true", help="Fake initial migrations whose tables exist."
        )
        parser.add_argument("--json", action="store_true", help="Print a machine-readable report.")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Tells Django to NOT prompt the user for input of any kind.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        options["app_label"], options["migration_name"] = split_target(
            options["app_label"], options["migration_name"]
        )
        if options["migration_name"] and not options["app_label"]:
            raise Error("A migration name needs an app label.")
        if options["jobs"] < 1:
            raise Error("--jobs must be at least 1.")
        opts = MigrateOptions(
            app_label=options["app_label"],
            migration_name=options["migration_name"],
            plan=options["plan"],
            fake=options["fake"],
            fake_initial=options["fake_initial"],
            interactive=options["interactive"],
            verbosity=options["verbosity"],
            skip_up_to_date=True,
        )
        run = AllTenantsRun(
            opts,
            jobs=options["jobs"],
            per_server=options["jobs_per_server"],
            fail_fast=options["fail_fast"],
            tenant_ids=options["tenant_ids"],
            stdout=self.stdout,
            style=self.style,
            progress=sys.stderr,
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
