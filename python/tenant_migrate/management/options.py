"""Options both migrate commands share, with Django's own names and help texts."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tenant_migrate.errors import Error
from tenant_migrate.runner import MigrateOptions, split_target


def add_migrate_arguments(parser: CommandParser) -> None:
    parser.add_argument("app_label", nargs="?", help="App label of an application to synchronize the state.")
    parser.add_argument(
        "migration_name",
        nargs="?",
        help="Database state will be brought to the state after that migration. "
        'Use the name "zero" to unapply all migrations. The form "app/name.py", as printed, '
        "is accepted too.",
    )
    parser.add_argument(
        "--noinput",
        "--no-input",
        action="store_false",
        dest="interactive",
        help="Tells Django to NOT prompt the user for input of any kind.",
    )
    parser.add_argument(
        "--fake", action="store_true", help="Mark migrations as run without actually running them."
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


def migrate_options(options: dict[str, Any], **extra: Any) -> MigrateOptions:
    app_label, migration_name = split_target(options["app_label"], options["migration_name"])
    if migration_name and not app_label:
        raise Error("A migration name needs an app label.")
    return MigrateOptions(
        app_label=app_label,
        migration_name=migration_name,
        plan=options["plan"],
        fake=options["fake"],
        fake_initial=options["fake_initial"],
        interactive=options["interactive"],
        verbosity=options["verbosity"],
        **extra,
    )
