"""Keeps non-tenant apps out of tenant databases.

Django's post_migrate handlers (content types, permissions) ask the router before touching a
database; for a tenant alias only the tenant apps are allowed, as django-tenants does it.
"""

from __future__ import annotations

from typing import Any

from . import conf
from .connections import is_tenant_alias


class TenantRouter:
    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if not is_tenant_alias(db):
            return None
        return conf.is_tenant_app(app_label)
