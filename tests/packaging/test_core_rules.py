"""Rules and texts the core exposes so the Python side uses them instead of a copy."""

from __future__ import annotations

import json
import socket

import pytest
from tenant_migrate import _core


def test_sqlstates_and_graph_format() -> None:
    assert _core.TIMEOUT_SQLSTATES == ("55P03", "57014")
    assert _core.INSUFFICIENT_PRIVILEGE == "42501"
    assert _core.GRAPH_FORMAT_VERSION == 1


def test_quote_ident_doubles_quotes_and_refuses_nul() -> None:
    assert _core.quote_ident('a"; DROP TABLE x; --') == '"a""; DROP TABLE x; --"'
    with pytest.raises(_core.InvalidArgument, match="NUL"):
        _core.quote_ident("a\0b")


def test_migration_failed_and_tenant_not_found_carry_the_core_texts() -> None:
    err = _core.migration_failed("acme", "shop.0002_x", "boom", "ALTER TABLE t ADD c int;\n")
    assert isinstance(err, _core.MigrationFailed)
    assert (
        err.args[0]
        == "Migration shop/0002_x.py failed for tenant 'acme': boom\nStatement: ALTER TABLE t ADD c int"
    )
    python_step = _core.migration_failed("acme", "shop.0003", "ValueError: no")
    assert python_step.args[0] == "Migration shop/0003.py failed for tenant 'acme': ValueError: no"
    assert _core.statement_text("SELECT 1 ;  \n") == "SELECT 1"
    missing = _core.tenant_not_found("acme")
    assert isinstance(missing, _core.TenantNotFound)
    assert str(missing) == "Tenant 'acme' does not exist.\nPlease create one with the tenant id 'acme' first."


def test_a_squash_counts_as_applied_once_all_it_replaces_is() -> None:
    applied = {("a", "0001"), ("a", "0002")}
    assert _core.all_replaced_applied([("a", "0001"), ("a", "0002")], applied)
    assert not _core.all_replaced_applied([("a", "0001"), ("a", "0003")], applied)
    assert not _core.all_replaced_applied([], applied)


def test_a_connection_failure_names_the_server_it_tried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    params = {"vendor": "postgresql", "host": "127.0.0.1", "port": port, "dbname": "acme"}
    with pytest.raises(_core.ConnectionFailed) as failed:
        _core.TenantDatabase(json.dumps(params))
    text = str(failed.value)
    assert text.startswith(f'server at "127.0.0.1", port {port}: ') and "refused" in text.lower(), text
    assert text.count("server at") == 1, text
