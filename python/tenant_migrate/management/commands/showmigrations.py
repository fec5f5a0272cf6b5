"""Django's ``showmigrations``; on a tenant (``--database=acme``) whose server cannot be reached,
one line naming the server tried, instead of a traceback."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.commands.showmigrations import Command as DjangoShowmigrations
from django.db import OperationalError, connections

from tenant_migrate.connections import server_of
from tenant_migrate.management.errors import Error


class Command(DjangoShowmigrations):
    def handle(self, *args: Any, **options: Any) -> Any:
        database = options["database"]
        try:
            return super().handle(*args, **options)
        except OperationalError as exc:
            if database in settings.DATABASES:
                raise
            reason = (str(exc).strip().splitlines() or [""])[0].removeprefix("connection failed: ")
            # psycopg names the server in most failures, not in all (a timeout): then say it.
            server = server_of(dict.get(connections.settings, database) or {})
            if server is not None and "connection to server" not in reason:
                reason = f"{server}: {reason}"
            raise Error(f"Cannot connect to tenant database '{database}': {reason}") from exc
