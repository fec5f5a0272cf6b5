"""The exceptions of a tenant run that the package defines in Python."""

from __future__ import annotations


class TenantRunError(Exception):
    """A failure to report to the user as one clear message."""


class UnappliedMigrations(Exception):
    """``--check`` found migrations to run (the command exits with status 1)."""
