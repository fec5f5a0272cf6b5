from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenant_migrate.errors import Error, to_command_error
from tenant_migrate.runner import (
    MigrateOptions,
    Output,
    UnappliedMigrations,
    migrate_tenant,
    split_target,
)


class Command(BaseCommand):
    help = "Updates one tenant's database (or schema) to the current set of models and migrations."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant-id", required=True, help="The tenant to migrate.")
        parser.add_argument(
            "app_label", nargs="?", help="App label of an application to synchronize the state."
        )
        parser.add_argument(
            "migration_name",
            nargs="?",
            help="Database state will be brought to the state after that migration. "
            'Use the name "zero" to unapply all migrations.',
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Tells Django to NOT prompt the user for input of any kind.",
        )
        parser.add_argument(
            "--fake",
            action="store_true",
            help="Mark migrations as run without actually running them.",
        )
        parser.add_argument(
            "--fake-initial",
            action="store_true",
            help="Detect if tables already exist and fake-apply initial migrations if so. Make "
            "sure that the current database schema matches your initial migration before using "
            "this flag. Django will only check for an existing table name.",
        )
        parser.add_argument(
            "--plan",
            action="store_true",
            help="Shows a list of the migration actions that will be performed.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            dest="check_unapplied",
            help="Exits with a non-zero status if unapplied migrations exist and does not "
            "actually apply migrations.",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            dest="prune",
            help="Delete nonexistent migrations from the django_migrations table.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant_id = options["tenant_id"]
        app_label, migration_name = split_target(options["app_label"], options["migration_name"])
        if migration_name and not app_label:
            raise Error("A migration name needs an app label.")
        opts = MigrateOptions(
            app_label=app_label,
            migration_name=migration_name,
            plan=options["plan"],
            check=options["check_unapplied"],
            prune=options["prune"],
            fake=options["fake"],
            fake_initial=options["fake_initial"],
            interactive=options["interactive"],
            verbosity=options["verbosity"],
        )
        try:
            migrate_tenant(tenant_id, opts, Output(self.stdout, self.style, opts.verbosity))
        except UnappliedMigrations:
            sys.exit(1)
        except Exception as exc:
            if options.get("traceback"):
                raise
            raise to_command_error(exc, tenant_id) from exc
