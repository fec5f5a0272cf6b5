from __future__ import annotations

import json
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from tenant_migrate.management.errors import Error, to_command_error
from tenant_migrate.provisioning import TenantSpec, create_tenant
from tenant_migrate.registry import check_registry_table, defaults_for


class Command(BaseCommand):
    help = "Registers a tenant and creates its empty database or schema."

    def add_arguments(self, parser: CommandParser) -> None:
        from tenant_migrate import conf

        parser.add_argument(
            "--tenant-id",
            metavar="ID",
            help="Unique id: 1 to 63 lower-case letters, digits, '_' and '-', starting with a letter "
            "or digit (asked for when not given).",
        )
        parser.add_argument(
            "--name", metavar="NAME", help='Display name, e.g. "ACME Corporation" (default: the tenant id).'
        )
        parser.add_argument(
            "--isolation",
            choices=["database", "schema"],
            help="'database': a database (or SQLite file) of its own; 'schema': a schema of its own in "
            "the shared PostgreSQL database (default: "
            f"{_escaped(conf.get('DEFAULT_ISOLATION'))}, TENANT_MIGRATE['DEFAULT_ISOLATION']).",
        )
        parser.add_argument(
            "--database-name",
            metavar="NAME",
            help="Database isolation: database name / file stem (default: "
            f"{_escaped(conf.get('DATABASE_NAME'))}, TENANT_MIGRATE['DATABASE_NAME']).",
        )
        parser.add_argument(
            "--schema-name",
            metavar="NAME",
            help="Schema isolation: schema name (default: "
            f"{_escaped(conf.get('SCHEMA_NAME'))}, TENANT_MIGRATE['SCHEMA_NAME']).",
        )
        parser.add_argument(
            "--connection",
            metavar="JSON",
            help="Overrides of the base database settings (HOST, PORT, USER, PASSWORD), e.g. "
            '{"HOST": "db2", "PORT": 5433} (default: none).',
        )
        parser.add_argument("--migrate", action="store_true", help="Run migratetenant for the new tenant.")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not prompt; missing values take their defaults.",
        )

    def ask(self, options: dict[str, Any], key: str, question: str, default: str) -> str:
        value = options.get(key)
        if value is not None:
            return str(value)
        if not options["interactive"]:
            return default
        try:
            answer = input(f"{question} [{default}]: " if default else f"{question}: ").strip()
        except EOFError:
            raise Error(
                f"No value for --{key.replace('_', '-')} and no input to ask for it "
                "(pass it on the command line, or --no-input for the default)."
            ) from None
        return answer or default

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # Before any question: without the registry, nothing can be created.
            check_registry_table()
            tenant_id = options.get("tenant_id")
            if tenant_id is None:
                if not options["interactive"]:
                    raise Error("--tenant-id is required with --no-input.")
                tenant_id = self.ask(options, "tenant_id", "Tenant id", "")
                if not tenant_id:
                    raise Error("A tenant id is required.")
            from tenant_migrate import conf

            name = self.ask(options, "name", "Display name", tenant_id)
            isolation = self.ask(
                options, "isolation", "Isolation (database/schema)", conf.get("DEFAULT_ISOLATION")
            )
            database_default, schema_default = defaults_for(tenant_id)
            database_name = schema_name = ""
            if isolation == "database":
                database_name = self.ask(options, "database_name", "Database name", database_default)
            else:
                schema_name = self.ask(options, "schema_name", "Schema name", schema_default)
            try:
                overrides = json.loads(options["connection"]) if options.get("connection") else {}
            except json.JSONDecodeError as err:
                raise Error(f"--connection is not valid JSON: {err}") from None
            if not isinstance(overrides, dict):
                raise Error("--connection must be a JSON object.")
            spec = TenantSpec(tenant_id, name, isolation, database_name, schema_name, overrides)
            copied: list[str] = []
            provisioner = None
            if options["migrate"]:
                from tenant_migrate.templates import template_provisioner

                say = self.stdout.write if options["verbosity"] >= 1 else None
                provisioner = template_provisioner(spec, copied, say)
            where = create_tenant(spec, provisioner)
        except Exception as exc:
            if options.get("traceback") and not isinstance(exc, Error):
                raise
            raise to_command_error(exc) from exc
        if options["verbosity"] >= 1:
            self.stdout.write(
                self.style.SUCCESS(f"Tenant '{tenant_id}' created ({name}, {isolation} isolation: {where}).")
            )
            if copied:
                self.stdout.write(f"Copied from the tenant template ({copied[0]}).")
        if options["migrate"]:
            call_command(
                "migratetenant",
                tenant_id=tenant_id,
                interactive=options["interactive"],
                verbosity=options["verbosity"],
                stdout=self.stdout._out,
                stderr=self.stderr._out,
                no_color=options.get("no_color", False),
                force_color=options.get("force_color", False),
                traceback=options.get("traceback", False),
            )


def _escaped(value: object) -> str:
    """A setting's value inside an argparse help text (which %-formats it)."""
    return str(value).replace("%", "%%")
