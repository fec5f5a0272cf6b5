"""Django's dbshell, with a schema tenant's search path: ``dbshell --database=acme`` opens psql
in acme's schema only.

The Django connection of a schema tenant sets its search path inside every transaction (see
``search_path._schema_wrapper``); psql never goes through it, so the path reaches psql as a
session setting of the shell's own connection, through libpq's ``PGOPTIONS``.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.commands.dbshell import Command as DjangoDbshell

from tenant_migrate.connections import tenant_schema
from tenant_migrate.names import quote_ident


class Command(DjangoDbshell):
    def handle(self, **options: Any) -> None:
        schema = tenant_schema(options["database"])
        if schema is not None:
            # libpq splits PGOPTIONS at spaces; a backslash keeps one (or itself) literal.
            value = quote_ident(schema).replace("\\", "\\\\").replace(" ", "\\ ")
            os.environ["PGOPTIONS"] = f"{os.environ.get('PGOPTIONS', '')} -c search_path={value}".strip()
        super().handle(**options)
