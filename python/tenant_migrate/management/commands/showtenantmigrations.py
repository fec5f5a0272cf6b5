from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenant_migrate.graph import graph_json
from tenant_migrate.management.errors import Error, to_command_error
from tenant_migrate.management.selection import add_selection_arguments, named_tenant_ids
from tenant_migrate.status import (
    as_json,
    check_list_apps,
    dump_json,
    list_lines,
    read_standings,
    select_tenants,
    summary_lines,
    unreadable,
)


class Command(BaseCommand):
    help = (
        "Shows, for every tenant (or those named), its migrations and which are applied, as "
        "showmigrations does, or one summary line per tenant."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="*", help="App labels of applications to limit the output to.")
        add_selection_arguments(parser)
        parser.add_argument(
            "--summary",
            action="store_true",
            help="One line per tenant: applied, pending, last migration and state.",
        )
        parser.add_argument("--json", action="store_true", help="Print a machine-readable report.")
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Treat tenants whose database or schema does not exist as errors (exit status 1).",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=8,
            metavar="N",
            help="Histories read concurrently, connections at most (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.show(options)
        except Exception as exc:
            if options.get("traceback") and not isinstance(exc, Error):
                raise
            raise to_command_error(exc) from exc

    def show(self, options: dict[str, Any]) -> None:
        if options["jobs"] < 1:
            raise Error("--jobs must be at least 1.")
        records = select_tenants(named_tenant_ids(options), options["exclude"])
        graph = graph_json()
        migrated_apps = json.loads(graph)["migrated_apps"]
        apps = check_list_apps(options["app_label"], migrated_apps)
        summary = options["summary"]
        standings = read_standings(
            records,
            graph,
            list_apps=() if summary else apps,
            plan_apps=apps if options["app_label"] else None,
            jobs=options["jobs"],
        )
        verbosity = options["verbosity"]
        if options["json"]:
            self.stdout.write(dump_json({"tenants": [as_json(s, not summary) for s in standings]}))
        elif summary:
            for line in summary_lines(standings):
                self.stdout.write(line)
        else:
            for s in standings:
                if s.missing or (s.state == "error" and not s.apps):
                    label = "missing" if s.missing else "error"
                    self.stdout.write(
                        self.style.MIGRATE_HEADING(f"Tenant '{s.tenant_id}': ")
                        + self.style.ERROR(f"{label}: {s.error}")
                    )
                    continue
                self.stdout.write(self.style.MIGRATE_HEADING(f"Tenant '{s.tenant_id}':"))
                for line in list_lines(s, verbosity, self.style):
                    self.stdout.write(line)
        problems = unreadable(standings, listed=not (summary or options["json"]), strict=options["strict"])
        if problems is not None:
            raise Error(problems)
