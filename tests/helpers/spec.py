"""The documented outputs (docs/commands.md) for the example project's tenant 'acme',
compared line by line."""

from __future__ import annotations

from helpers.project import Project

SPEC_RUN = """\
Running migrations for tenant: ACME Corporation
Operations to perform:
  Apply all migrations: users, products, orders
Running migrations:
  users/0001_initial.py ... OK
  users/0002_alter_user_email.py ... OK
  products/0001_initial.py ... OK
  orders/0001_initial.py ... OK
Migrations completed successfully for tenant 'acme'.
"""

SPEC_PLAN = """\
Planned operations for tenant 'acme':
  users/0001_initial.py
  users/0002_alter_user_email.py
  products/0001_initial.py
  orders/0001_initial.py
"""

# The tenant's django_migrations once every example migration is applied.
ALL_ROWS = [
    ("orders", "0001_initial"),
    ("products", "0001_initial"),
    ("users", "0001_initial"),
    ("users", "0002_alter_user_email"),
]


def acme(project: Project) -> None:
    project.create_tenant("acme", "ACME Corporation")
