"""Django's ``showmigrations``; on a tenant (``--database=acme``) whose server cannot be reached,
one line naming the server tried, instead of a traceback."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.commands.showmigrations import Command as DjangoShowmigrations
from django.db import OperationalError

from tenant_migrate.connections import naming_server, tenant_server
from tenant_migrate.errors import Error


class Command(DjangoShowmigrations):
    def handle(self, *args: Any, **options: Any) -> Any:
        database = options["database"]
        try:
            return super().handle(*args, **options)
        except OperationalError as exc:
            if database in settings.DATABASES:
                raise
            reason = (str(exc).strip().splitlines() or [""])[0].removeprefix("connection failed: ")
            server = tenant_server(database)
            raise Error(
                f"Cannot connect to tenant database '{database}': {naming_server(reason, server)}"
            ) from exc
