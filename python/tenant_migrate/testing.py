"""pytest fixtures for a project's own tests: temporary tenants, migrated, torn down.

Opt in from a ``conftest.py``::

    pytest_plugins = ["tenant_migrate.testing"]

    @pytest.mark.django_db
    def test_orders_are_per_tenant(tenant):
        Order.objects.using(tenant.alias).create(...)

``tenant`` is one fresh tenant migrated to the latest migrations; ``tenant_factory`` makes as
many as a test needs (``tenant_factory(isolation="database", migrate=False)``). A tenant is a
SQLite file in a temporary folder when the tenants' base database is SQLite, and a schema of
that database when it is PostgreSQL (``isolation="database"`` gives it a database instead).
Everything is removed at the end of the test: schema or database, file, registry row.

With pytest-django the fixtures use its test database and unblock database access for their
own work only; the test itself still needs ``django_db`` for its queries. Without it, Django
must be set up (``django.setup()``) before the fixtures run.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import OutputWrapper
from django.core.management.color import no_style
from django.db import connections
from django.test.utils import override_settings

from . import _core, conf
from .connections import register_alias, tenant_settings
from .lookup import RegistryRow
from .names import quote_ident
from .output import Output
from .params import vendor_of
from .provisioning import TenantSpec, create_tenant
from .registry import defaults_for, get_tenant_model, id_filter
from .run.flow import migrate_record
from .run.options import MigrateOptions

__all__ = ["TemporaryTenant", "tenant", "tenant_factory"]


@dataclass
class TemporaryTenant:
    """A tenant made for one test. ``alias`` is its name in ``django.db.connections``."""

    tenant_id: str
    isolation: str
    settings_dict: dict[str, Any] = field(repr=False)
    schema: str | None
    #: What the migration printed (verbosity 1), for tests that look at it.
    output: str = ""

    @property
    def alias(self) -> str:
        return self.tenant_id

    @property
    def connection(self) -> Any:
        return connections[self.alias]


def _default_isolation() -> str:
    base = connections.settings[conf.base_alias()]
    return "schema" if vendor_of(base) == "postgresql" else "database"


def _drop(made: TemporaryTenant) -> None:
    if made.alias in connections.settings:
        connections[made.alias].close()
    # The Rust core keeps idle connections for the next tenant; none may outlive the test
    # database (pytest-django drops it at the end of the session).
    _core.close_idle_connections()
    if vendor_of(made.settings_dict) == "sqlite":
        Path(made.settings_dict["NAME"]).unlink(missing_ok=True)
        return
    import psycopg

    params: dict[str, Any] = {
        "host": made.settings_dict.get("HOST") or None,
        "port": made.settings_dict.get("PORT") or None,
        "user": made.settings_dict.get("USER") or None,
        "password": made.settings_dict.get("PASSWORD") or None,
        "autocommit": True,
    }
    if made.schema is not None:
        with psycopg.connect(dbname=made.settings_dict["NAME"], **params) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(made.schema)} CASCADE")
    else:
        with psycopg.connect(dbname="postgres", **params) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(made.settings_dict['NAME'])} WITH (FORCE)")


class _Factory:
    def __init__(self, sqlite_dir: Path) -> None:
        self.sqlite_dir = sqlite_dir
        self.made: list[TemporaryTenant] = []

    def __call__(
        self,
        tenant_id: str | None = None,
        *,
        name: str | None = None,
        isolation: str | None = None,
        migrate: bool = True,
        app_label: str | None = None,
        migration_name: str | None = None,
    ) -> TemporaryTenant:
        tenant_id = tenant_id or f"test_{uuid.uuid4().hex[:12]}"
        isolation = isolation or _default_isolation()
        database_name, schema_name = defaults_for(tenant_id)
        spec = TenantSpec(
            tenant_id,
            name or tenant_id,
            isolation,
            database_name=database_name,
            schema_name=schema_name,
        )
        create_tenant(spec)
        settings_dict, schema = tenant_settings(spec)
        made = TemporaryTenant(tenant_id, isolation, settings_dict, schema)
        self.made.append(made)
        register_alias(tenant_id, settings_dict, schema)
        if migrate:
            # From the values just registered: under pytest-django the registry row may sit
            # in the test's open transaction, out of sight of the Rust lookup's connection.
            record = RegistryRow(tenant_id, spec.name, isolation, spec.database_name, spec.schema_name, "{}")
            out = io.StringIO()
            opts = MigrateOptions(app_label=app_label, migration_name=migration_name, interactive=False)
            migrate_record(record, opts, Output(OutputWrapper(out), no_style(), 1))  # type: ignore[arg-type]
            made.output = out.getvalue()
        return made

    def teardown(self) -> None:
        errors: list[BaseException] = []
        for made in reversed(self.made):
            try:
                _drop(made)
                get_tenant_model()._default_manager.using("default").filter(
                    **id_filter(made.tenant_id)
                ).delete()
            except Exception as err:  # tear every tenant down, then report the first failure
                errors.append(err)
        if errors:
            raise errors[0]


def _unblocked(request: pytest.FixtureRequest) -> Any:
    """With pytest-django: its test database set up, and the key for the fixtures' own work."""
    if not request.config.pluginmanager.hasplugin("django"):
        return None
    request.getfixturevalue("django_db_setup")
    return request.getfixturevalue("django_db_blocker")


@pytest.fixture
def tenant_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., TemporaryTenant]]:
    """Make temporary tenants: ``tenant_factory(tenant_id=None, *, name=None, isolation=None,
    migrate=True, app_label=None, migration_name=None)``."""
    sqlite_dir = tmp_path_factory.mktemp("tenants")
    blocker = _unblocked(request)
    factory = _Factory(sqlite_dir)
    settings = override_settings(TENANT_MIGRATE={**conf.configured(), "SQLITE_DIR": str(sqlite_dir)})
    settings.enable()
    try:
        if blocker is None:
            yield factory
        else:

            def unblocked(*args: Any, **kwargs: Any) -> TemporaryTenant:
                with blocker.unblock():
                    return factory(*args, **kwargs)

            yield unblocked
    finally:
        try:
            if blocker is None:
                factory.teardown()
            else:
                with blocker.unblock():
                    factory.teardown()
        finally:
            settings.disable()


@pytest.fixture
def tenant(tenant_factory: Callable[..., TemporaryTenant]) -> TemporaryTenant:
    """One temporary tenant, migrated to the latest migrations."""
    return tenant_factory()
