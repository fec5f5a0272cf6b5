"""What may name a tenant, its database or its schema, and how names are quoted and shown:
the rules every path applies, however a name was written (createtenant, the registry behind
its back, a command line)."""

from __future__ import annotations

import re

from . import _core
from .exceptions import TenantConfigError


def quote_ident(name: str) -> str:
    """Double-quote an identifier as the core does (Django's quote_name does not double
    embedded quotes)."""
    try:
        return _core.quote_ident(name)
    except _core.InvalidArgument as err:  # a NUL character
        # The core's text ("identifier contains a NUL character"), as a sentence.
        reason = str(err)
        raise TenantConfigError(reason[:1].upper() + reason[1:]) from err


def check_text(kind: str, value: str | None, max_length: int | None = None) -> None:
    """Refuse input no tenant, app or migration can be named by: control characters (NUL,
    newlines, terminal escapes, which could also forge lines of output) and overlong values.
    Errors show the value with repr(), so what the user sees is exactly what was given."""
    if value is None:
        return
    if not value.isprintable():
        raise TenantConfigError(f"Invalid {kind} {value!r}: it contains control characters.")
    if max_length is not None and len(value) > max_length:
        raise TenantConfigError(f"Invalid {kind} {value[:40]!r}...: longer than {max_length} characters.")


def printable(text: str) -> str:
    """Text for output: control characters escaped, so a value cannot forge lines."""
    return text if text.isprintable() else repr(text)[1:-1]


# PostgreSQL silently truncates longer identifiers (in bytes): two names that differ only
# beyond this would reach the same database or schema.
MAX_IDENTIFIER_BYTES = 63
# Names that belong to the server or the database itself, never to a tenant.
RESERVED_DATABASES = ("postgres", "template0", "template1")
RESERVED_SCHEMAS = ("public", "information_schema")  # and every name starting with pg_
# The tenant template's id (see templates.py): never a tenant's, and its names are nobody's.
TEMPLATE_ID = "_template"


def check_tenant_id(tenant_id: str) -> None:
    """The check every path applies to a tenant id, however it was written (createtenant, the
    registry behind its back): not empty, printable, at most 63 bytes. Ids of rows written
    before (or by a project's own tenant model) need not be slugs, so lookups stop here;
    ``check_new_tenant_id`` adds the slug form createtenant requires."""
    fault = identifier_fault(tenant_id)
    if fault == "empty":
        raise invalid_tenant_id(tenant_id, "it is empty.")
    if fault == "control":
        raise invalid_tenant_id(tenant_id, "it contains control characters.")
    if fault == "long":
        size = len(tenant_id.encode())
        raise invalid_tenant_id(tenant_id, f"it is {size} bytes long; at most {MAX_IDENTIFIER_BYTES}.")


def identifier_fault(name: str) -> str | None:
    """The one rule a tenant id and a PostgreSQL database or schema name share (a tenant id
    names them by default): not empty, no control characters, at most MAX_IDENTIFIER_BYTES
    bytes. Which part fails ("empty", "control", "long"), or None; each caller says it in its
    own words."""
    if not name:
        return "empty"
    if not name.isprintable():
        return "control"
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        return "long"
    return None


def check_new_tenant_id(tenant_id: str) -> None:
    """The rule for an id createtenant registers: ``check_tenant_id``, and a lower-case slug."""
    from .models import TENANT_ID_HELP, TENANT_ID_PATTERN

    check_tenant_id(tenant_id)
    if not re.match(TENANT_ID_PATTERN, tenant_id):
        raise invalid_tenant_id(tenant_id, TENANT_ID_HELP)


def invalid_tenant_id(tenant_id: str, why: str) -> TenantConfigError:
    """The one message for a tenant id, on every command: ``Invalid tenant id 'x': why``."""
    return TenantConfigError(f"Invalid tenant id {shown(tenant_id)}: {why}")


def unknown_tenant(tenant_id: str) -> Exception:
    """What to say of an id no registry row has: an id createtenant would refuse can never
    exist, and is called invalid as createtenant calls it; a well-formed one does not exist
    (two lines: it does not exist, create it first)."""
    try:
        check_new_tenant_id(tenant_id)
    except TenantConfigError as err:
        return err
    return _core.tenant_not_found(tenant_id)


def check_pg_name(kind: str, name: str) -> None:
    """A PostgreSQL database or schema name, counted in bytes as PostgreSQL counts it."""
    fault = identifier_fault(name)
    if fault == "empty":
        raise TenantConfigError(f"The {kind} must not be empty.")
    if fault == "control":
        check_text(kind, name)  # its message for control characters
    if fault == "long":
        size = len(name.encode())
        raise TenantConfigError(
            f"Invalid {kind} {shown(name)}: it is {size} bytes long; PostgreSQL allows at most "
            f"{MAX_IDENTIFIER_BYTES} and would silently truncate it (onto another name)."
        )


def shown(value: str) -> str:
    """A value in a message: repr(), cut after 40 characters."""
    return repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
