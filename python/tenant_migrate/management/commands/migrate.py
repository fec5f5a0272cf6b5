"""Django's ``migrate``, except on a tenant: ``migrate --database=acme`` runs ``migratetenant``.

Django's own command would apply the tenant apps and record every other app's migrations as
applied (the router says no to their tables), leaving history rows without tables in the
tenant. A tenant is migrated the tenant's way instead, with the same arguments.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

# migrate's options that mean the same for migratetenant, by their dest names.
_PASSED_ON = ("app_label", "migration_name", "interactive", "fake", "fake_initial", "plan", "prune")


class Command(DjangoMigrate):
    def handle(self, *args: Any, **options: Any) -> None:
        database = options["database"]
        if database in settings.DATABASES or database not in connections:
            return super().handle(*args, **options)
        if options.get("run_syncdb"):
            raise CommandError(
                f"'{database}' is a tenant: --run-syncdb is not supported there; run "
                f"'python manage.py migratetenant --tenant-id={database}'."
            )
        passed = {name: options[name] for name in _PASSED_ON if name in options}
        if options.get("check_unapplied"):
            passed["check_unapplied"] = True
        call_command(
            "migratetenant",
            tenant_id=database,
            verbosity=options["verbosity"],
            stdout=self.stdout._out,
            stderr=self.stderr._out,
            no_color=options.get("no_color", False),
            force_color=options.get("force_color", False),
            **passed,
        )
