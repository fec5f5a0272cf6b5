from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenant_migrate.exceptions import UnappliedMigrations
from tenant_migrate.interrupt import EXIT_STATUS, interrupted_text, watch_sigint
from tenant_migrate.management.errors import to_command_error
from tenant_migrate.management.options import add_migrate_arguments, bounded_seconds, migrate_options
from tenant_migrate.output import Output
from tenant_migrate.run.flow import migrate_tenant


class Command(BaseCommand):
    help = "Updates one tenant's database (or schema) to the current set of models and migrations."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant-id", required=True, metavar="ID", help="The tenant to migrate.")
        add_migrate_arguments(parser)
        parser.add_argument(
            "--check",
            action="store_true",
            dest="check_unapplied",
            help="Exits with a non-zero status if unapplied migrations exist and does not "
            "actually apply migrations.",
        )
        parser.add_argument(
            "--heartbeat",
            type=bounded_seconds,
            default=5.0,
            metavar="SECONDS",
            help="While a migration runs longer than this, print what it is doing (and, on "
            "PostgreSQL, what it waits for) to stderr every SECONDS; 0 turns it off (default %(default)g).",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            dest="prune",
            help="Delete nonexistent migrations from the django_migrations table.",
        )
        parser.add_argument(
            "--sql",
            action="store_true",
            help="Print the SQL each pending migration would run on this tenant, changing nothing; "
            "migrations that run Python are marked.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant_id = options["tenant_id"]
        opts = migrate_options(
            options,
            check=options["check_unapplied"],
            prune=options["prune"],
            heartbeat=options["heartbeat"],
        )
        out = Output(self.stdout, self.style, opts.verbosity)
        with watch_sigint() as interrupter:
            try:
                if options["sql"]:
                    return sql_preview(tenant_id, opts, options, Output(self.stdout, self.style, 1))
                migrate_tenant(tenant_id, opts, out)
            except UnappliedMigrations:
                sys.exit(1)
            except (Exception, KeyboardInterrupt) as exc:
                if interrupter.fired.is_set() or isinstance(exc, KeyboardInterrupt):
                    self.stderr.write(interrupted_text(tenant_id, out), self.style.ERROR)
                    sys.exit(EXIT_STATUS)
                if options.get("traceback"):
                    raise
                raise to_command_error(exc, tenant_id) from exc


def sql_preview(tenant_id: str, opts: Any, options: dict[str, Any], out: Output) -> None:
    from tenant_migrate.management.errors import Error
    from tenant_migrate.preview import print_sql

    clashing = [f"--{o.replace('_', '-')}" for o in ("plan", "fake", "fake_initial", "prune") if options[o]]
    if options["check_unapplied"]:
        clashing.append("--check")
    if clashing:
        raise Error(f"--sql cannot be combined with {', '.join(clashing)}.")
    print_sql(tenant_id, opts, out)
