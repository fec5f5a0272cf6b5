"""Whom SQL that Django compiled for a migration on one tenant is good for.

Django's schema editor builds a migration's SQL from the project state, but some of its calls
also read the live catalog (constraint, sequence and collation names: ``_constraint_names``,
``_get_sequence_name``, ``_is_collation_deterministic``), and ``effective_default`` computes a
value while building it: a callable default (``uuid4``, ``timezone.now``, a project's token
function, what ``makemigrations`` writes for ``preserve_default=False``) or the current time for
``auto_now``, written into the table's existing rows by ``AddField`` or by ``AlterField`` from
null to not null. Plain Django's ``migrate``, run for each tenant, computes that value for each
tenant. So what one compile gives is, as the core's ``Sharing`` says:

- ``"state"``: nothing was read: every tenant with the same project state (same history, same
  plan) on the same server gets this very SQL from Django, whatever its catalog holds;
- ``"catalog"``: the catalog was read: the same SQL only where the catalog is the same (the
  fingerprint); also a migration a ``pre_migrate`` handler changed for this tenant;
- ``"tenant"``: it holds a value computed for this tenant; never replayed on another.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import NOT_PROVIDED

# What one compile is good for, as the core's ``Sharing`` names it.
Sharing = Literal["catalog", "state", "tenant"]

# Statements that read, not change (PRAGMA too: SQLite's introspection).
_READS = frozenset({"SELECT", "WITH", "SHOW", "PRAGMA", "EXPLAIN", "VALUES", "TABLE"})
# How run/statements.py sets the zero-downtime timeouts.
_OUR_SETTINGS = "SELECT pg_catalog.set_config("


def computed_per_call(field: Any) -> bool:
    """Whether ``effective_default`` computes this field's value anew on each call, as
    ``BaseDatabaseSchemaEditor._effective_default`` does."""
    if field.default is not NOT_PROVIDED:
        default = field.default
        # dict, list, str...: called without arguments they give the same value every time.
        return callable(default) and not (isinstance(default, type) and default.__module__ == "builtins")
    return bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))


class Watch:
    """What one compile (or one migration Django applies) did beyond building SQL."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.read = False
        self.per_tenant = False

    @contextmanager
    def reads(self) -> Iterator[None]:
        """Any statement sent while compiling reads the catalog: in ``collect_sql`` mode the
        schema editor sends nothing else. Entered inside the editor, whose own entry and exit
        send statements of their own on SQLite (foreign key pragmas and checks)."""

        def note(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            self.read = True
            return execute(sql, params, many, context)

        with self.connection.execute_wrapper(note):
            yield

    @contextmanager
    def reads_among_effects(self) -> Iterator[None]:
        """While Django applies a migration: its reads (introspection, and on Django 4.2 the
        recorder's table check) among the statements that are its effect, leaving out our own
        (the search path, the zero-downtime timeouts, the history guard's checks)."""

        def note(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            connection = context["connection"]
            ours = (
                getattr(connection, "_tenant_migrate_setting_path", False)
                or getattr(connection, "_tenant_migrate_guarding", False)
                or sql.startswith(_OUR_SETTINGS)
            )
            words = sql.split(None, 1)
            if not ours and words and words[0].upper() in _READS:
                self.read = True
            return execute(sql, params, many, context)

        with self.connection.execute_wrapper(note):
            yield

    def sharing(self, state_shareable: bool) -> Sharing:
        if self.per_tenant:
            return "tenant"
        return "catalog" if self.read or not state_shareable else "state"


@contextmanager
def watching(connection: Any) -> Iterator[Watch]:
    """Schema editors made on ``connection`` meanwhile report callable defaults to the watch."""
    watch = Watch(connection)
    # A backend whose schema_editor() does not build SchemaEditorClass would not report:
    # everything compiled on it counts as computed for its tenant.
    if type(connection).schema_editor is not BaseDatabaseWrapper.schema_editor:
        watch.per_tenant = True
    own = connection.__dict__.get("SchemaEditorClass")
    outer = getattr(connection, "_tenant_migrate_watch", None)
    connection.SchemaEditorClass = _watched(connection.SchemaEditorClass)
    connection._tenant_migrate_watch = watch
    try:
        yield watch
    finally:
        connection._tenant_migrate_watch = outer
        if own is None:
            del connection.SchemaEditorClass
        else:
            connection.SchemaEditorClass = own


@functools.cache
def _watched(editor_class: type) -> type:
    if getattr(editor_class, "_tenant_migrate_watched", False):
        return editor_class

    class Watched(editor_class):  # type: ignore[misc, valid-type]
        _tenant_migrate_watched = True

        def effective_default(self, field: Any) -> Any:
            watch = getattr(self.connection, "_tenant_migrate_watch", None)
            if watch is not None and computed_per_call(field):
                watch.per_tenant = True
            return super().effective_default(field)

    Watched.__name__ = editor_class.__name__
    Watched.__qualname__ = editor_class.__qualname__
    Watched.__module__ = editor_class.__module__
    return Watched


def state_key(group: tuple[Any, ...], connection: Any) -> str:
    """The project state a tenant's plan runs through, with what else Django's SQL depends on:
    the backend, the server's version, the connection's time zone (datetime literals)."""
    applied, steps, fake = group
    digest = hashlib.sha256(repr((sorted(applied), steps, fake)).encode()).hexdigest()
    server = getattr(connection, "pg_version", None) or getattr(connection.Database, "sqlite_version", "")
    return f"{digest}:{connection.vendor}:{server}:{connection.timezone_name}"
