"""Which apps' tables go where: tenant apps into tenants, shared apps into the master.

Django asks the router before each operation of a migration and before its post_migrate
handlers (content types, permissions) touch a database. As in django-tenants, a tenant gets
only ``TENANT_APPS`` and the master (``default``, the registry's home) only ``SHARED_APPS``;
``manage.py migrate`` still records every migration in the master, as Django does for any
router that says no. While a tenant migrates, ``default`` is that tenant in its thread (see
context.py), so ``default`` follows the tenant's rule there.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS

from . import conf
from .connections import is_tenant_alias
from .context import MASTER_ALIAS, current_tenant_alias


class TenantRouter:
    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if is_tenant_alias(db) or (db == DEFAULT_DB_ALIAS and current_tenant_alias() is not None):
            return conf.is_tenant_app(app_label)
        if db in (DEFAULT_DB_ALIAS, MASTER_ALIAS):
            return conf.is_shared_app(app_label)
        return None
