"""The package's exceptions share one root, ``TenantMigrateError``: the Rust core's own root
(``_core.TenantMigrateError``), reused so that ``except TenantMigrateError`` catches every error
of the package, raised in Rust or in Python. A Python root could not be that: the extension's
exceptions are created in Rust (``src/error.rs``) and derive from its root only.

The Python-side classes derive from it: the three below, used across the package, and those
that live where they are raised: ``ProvisioningConnectionError`` (``provisioning``) and
``DropRefused`` (``lifecycle``), both ``TenantConfigError``; ``GraphError`` (``graph``);
``NotEnoughConnections`` (``budget``). Those that were ``ValueError`` stay ``ValueError`` too.
"""

from __future__ import annotations

from ._core import TenantMigrateError

__all__ = [
    "MasterUnreachable",
    "TenantConfigError",
    "TenantMigrateError",
    "TenantRunError",
    "UnappliedMigrations",
]


class TenantConfigError(TenantMigrateError, ValueError):
    """The registry row or the settings cannot describe a reachable tenant."""


class TenantRunError(TenantMigrateError):
    """A failure to report to the user as one clear message."""


class UnappliedMigrations(TenantMigrateError):
    """``--check`` found migrations to run (the command exits with status 1)."""


class MasterUnreachable(TenantMigrateError):
    """The master database (the tenant registry) cannot be reached: said as the master's
    problem, never as a tenant's."""
