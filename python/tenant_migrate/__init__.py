"""django-tenant-migrate: run Django migrations for one tenant or thousands.

Add ``"tenant_migrate"`` to ``INSTALLED_APPS`` and
``"tenant_migrate.routers.TenantRouter"`` to ``DATABASE_ROUTERS``.
"""

__version__ = "0.1.0"
