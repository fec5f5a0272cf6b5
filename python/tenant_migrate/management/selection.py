"""Which tenants a command works on: the options showtenantmigrations and migratealltenants
share, read the same way."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tenant_migrate.status import read_tenant_ids


def add_tenant_id_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--tenant-id",
        action="append",
        dest="tenant_ids",
        metavar="ID",
        help="Only this tenant (repeat the option for several).",
    )


def add_selection_arguments(parser: CommandParser, tenant_id: bool = True) -> None:
    if tenant_id:
        add_tenant_id_argument(parser)
    parser.add_argument(
        "--tenants-from",
        metavar="FILE",
        help="Only the tenants listed in FILE, one id per line, # comments allowed ('-': standard input).",
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="ID", help="Leave this tenant out (repeatable)."
    )


def named_tenant_ids(options: dict[str, Any]) -> list[str] | None:
    """The ids given by --tenant-id and --tenants-from together; None when neither was given."""
    ids = options["tenant_ids"]
    if options["tenants_from"]:
        ids = [*(ids or []), *read_tenant_ids(options["tenants_from"], options.get("stdin"))]
    return ids
