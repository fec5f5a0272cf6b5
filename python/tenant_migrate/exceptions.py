"""The package's exceptions share one root, ``TenantMigrateError``: the Rust core's own root
(``_core.TenantMigrateError``), reused so that ``except TenantMigrateError`` catches every error
of the package, raised in Rust or in Python. A Python root could not be that: the extension's
exceptions are created in Rust (``src/errors.rs``) and derive from its root only.

The Python-side classes live where they are raised and derive from it: ``TenantConfigError``
(``connections``; ``ProvisioningConnectionError`` and ``DropRefused`` below it), ``GraphError``
(``graph``), ``NotEnoughConnections`` (``budget``), and the two below. Those that were
``ValueError`` stay ``ValueError`` too.
"""

from __future__ import annotations

from ._core import TenantMigrateError

__all__ = ["TenantMigrateError", "TenantRunError", "UnappliedMigrations"]


class TenantRunError(TenantMigrateError):
    """A failure to report to the user as one clear message."""


class UnappliedMigrations(TenantMigrateError):
    """``--check`` found migrations to run (the command exits with status 1)."""
