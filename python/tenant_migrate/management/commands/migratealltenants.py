from __future__ import annotations

import os
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenant_migrate import report
from tenant_migrate.alltenants import AllTenantsRun
from tenant_migrate.budget import connection_budget
from tenant_migrate.interrupt import EXIT_STATUS, watch_sigint
from tenant_migrate.journal import arguments as journal_arguments
from tenant_migrate.journal import resume_selection, resumed_options
from tenant_migrate.lookup import list_tenants
from tenant_migrate.management.errors import Error, to_command_error
from tenant_migrate.management.options import (
    MAX_SECONDS,
    add_migrate_arguments,
    bounded_seconds,
    migrate_options,
)
from tenant_migrate.management.selection import (
    add_selection_arguments,
    add_tenant_id_argument,
    named_tenant_ids,
)
from tenant_migrate.run.options import MigrateOptions, check_app_label
from tenant_migrate.run.shared import Shared


def default_jobs() -> int:
    # The database server, not this process, is the bottleneck: a few connections per core
    # keep it busy without piling up lock waits.
    return max(2, min(8, os.cpu_count() or 2))


class Command(BaseCommand):
    help = "Brings every tenant of the registry up to date (or to the given target)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_migrate_arguments(parser)
        add_tenant_id_argument(parser)
        parser.add_argument(
            "--jobs",
            type=int,
            default=default_jobs(),
            metavar="N",
            help="Tenants migrated concurrently (default: %(default)s, from this machine's CPU count).",
        )
        parser.add_argument(
            "--jobs-per-server",
            type=int,
            default=None,
            metavar="N",
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
        # None: not given (waves then stop after a failed wave; see --batch-size).
        parser.set_defaults(fail_fast=None)
        parser.add_argument("--json", action="store_true", help="Print a machine-readable report.")
        parser.add_argument(
            "--heartbeat",
            type=bounded_seconds,
            default=5.0,
            metavar="SECONDS",
            help="While a migration runs longer than this, say what it is doing (and, on PostgreSQL, "
            "what it waits for) every SECONDS: a live line under the progress bar on a terminal, "
            "a line on stderr otherwise; 0 turns it off (default %(default)g).",
        )
        add_rollout_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["jobs"] < 1:
            raise Error("--jobs must be at least 1.")
        check_rollout_arguments(options)
        began = time.monotonic()
        with watch_sigint() as interrupter, connection_budget():
            try:
                opts = migrate_options(options, skip_up_to_date=True, heartbeat=options["heartbeat"])
                resumed = None
                if options["resume"]:
                    opts, resumed = self.resume(options, opts)
                check_app_label(opts)
                tenant_ids = selected_ids(options, resumed)
                if resumed is not None and not tenant_ids:
                    self.stdout.write("Nothing to resume: every tenant of the last run finished.")
                    return
                journal = not (opts.plan or options["check_unapplied"])
                run = AllTenantsRun(
                    opts,
                    jobs=options["jobs"],
                    per_server=options["jobs_per_server"],
                    fail_fast=options["fail_fast"],
                    tenant_ids=tenant_ids,
                    stdout=self.stdout,
                    style=self.style,
                    progress=self.stderr._out,  # the command's stderr, so call_command can capture it
                    json_report=options["json"],
                    exclude=options["exclude"],
                    strict=options["strict"],
                    limit=options["limit"],
                    batch_size=options["batch_size"],
                    batch_pause=options["batch_pause"],
                    journal_arguments=journal_arguments(opts) if journal else None,
                    color=not options["no_color"],
                )
                if options["check_unapplied"]:
                    if run.check():
                        sys.exit(1)
                    return
                outcomes = run.run()
            except Exception as exc:
                if options.get("traceback") and not isinstance(exc, Error):
                    raise
                raise to_command_error(exc) from exc
        run.print_report(outcomes, time.monotonic() - began)
        if interrupter.fired.is_set():
            done = sum(o.status == "migrated" for o in outcomes)
            self.stderr.write(
                f"Interrupted: {done:,} tenants migrated; the migration in progress on each other "
                "tenant was rolled back; tenants not reached were left as they were.",
                self.style.ERROR,
            )
            sys.exit(EXIT_STATUS)
        try:
            refresh_template(self, run.shared, opts, options, outcomes)
        except Exception as exc:
            # The tenants' outcome stands; the template is only not used until a later run.
            problem = to_command_error(exc)
            self.stderr.write(f"Warning: the tenant template was not brought up to date: {problem}")
        failure = report.run_failed(outcomes)
        if failure is not None:
            raise Error(failure)

    def resume(self, options: dict[str, Any], given: MigrateOptions) -> tuple[MigrateOptions, list[str]]:
        """The tenants --resume runs, and the options it runs them with: the last run's target
        and every option that decided what it did (see ``journal.resumed_options``)."""
        last, ids = resume_selection()
        opts = resumed_options(last, given)
        if ids and options["verbosity"] >= 1 and not options["json"]:
            self.stdout.write(f"Resuming run #{last.pk}: {len(ids)} tenants failed or were not reached.")
        return opts, ids


def add_rollout_arguments(parser: CommandParser) -> None:
    add_selection_arguments(parser, tenant_id=False)
    parser.add_argument(
        "--check",
        action="store_true",
        dest="check_unapplied",
        help="Exit with status 1 if any tenant has unapplied migrations, listing each with what it "
        "lacks; changes nothing.",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="Tenants whose database or schema does not exist are errors (default: reported as "
        "missing and skipped).",
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="Migrate only the first N tenants (tenant-id order) that have something pending: a canary.",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="Roll out in waves of N tenants (tenant-id order); a wave with a failure stops the "
        "rollout unless --continue-on-error is given.",
    )
    parser.add_argument(
        "--batch-pause",
        type=bounded_seconds,
        default=0.0,
        metavar="SECONDS",
        help="Wait this long between waves (default 0: no pause).",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Run again only the tenants that failed or were not reached in the last run (its "
        "target too, unless one is given).",
    )


def check_rollout_arguments(options: dict[str, Any]) -> None:
    if options["limit"] is not None and options["limit"] < 1:
        raise Error("--limit must be at least 1.")
    if options["batch_size"] is not None and options["batch_size"] < 1:
        raise Error("--batch-size must be at least 1.")
    if options["batch_pause"] < 0:
        raise Error("--batch-pause must not be negative.")
    if options["batch_pause"] > MAX_SECONDS:
        raise Error(f"--batch-pause must be at most {MAX_SECONDS} seconds (a week).")
    if options["batch_pause"] and not options["batch_size"]:
        raise Error("--batch-pause needs --batch-size.")
    if options["resume"] and (options["tenant_ids"] or options["tenants_from"]):
        raise Error(
            "--resume chooses the tenants itself; it cannot be combined with --tenant-id or --tenants-from."
        )


def selected_ids(options: dict[str, Any], resumed: list[str] | None) -> list[str] | None:
    """The tenant ids named on the command line, in a file, or by --resume (None: every tenant)."""
    if resumed is not None:
        existing = {r.tenant_id for r in list_tenants()}
        return [t for t in resumed if t in existing]
    return named_tenant_ids(options)


def refresh_template(
    command: BaseCommand, shared: Shared, opts: MigrateOptions, options: dict[str, Any], outcomes: list[Any]
) -> None:
    """A full run (every tenant, to the latest migrations) also brings the tenant template up
    to date (TENANT_MIGRATE["TEMPLATE"])."""
    from tenant_migrate import templates

    partial = opts.app_label or opts.plan or opts.fake or opts.fake_initial or options["resume"]
    selected = options["tenant_ids"] or options["tenants_from"] or options["exclude"] or options["limit"]
    if not templates.enabled() or partial or selected:
        return
    if any(o.status in ("failed", "not-reached") for o in outcomes):
        return
    for line in templates.refresh_existing(shared):
        if options["verbosity"] >= 1 and not options["json"]:
            command.stdout.write(line)
