"""A swapped tenant model (TENANT_MIGRATE_TENANT_MODEL): the example project with the
``customers`` app of ``tests/projects/customers``, whose tenant tables are shaped like
django-tenants' and django-omnitenant's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers.project import ROOT, Project, make_project

CUSTOMERS = ROOT / "tests" / "projects" / "customers"

# django-tenants: the schema name is the tenant id; no isolation, database or connection field.
DJANGO_TENANTS = {
    "TM_TENANT_MODEL": "customers.Client",
    "TM_TENANT_FIELDS": json.dumps(
        {
            "tenant_id": "schema_name",
            "schema_name": "schema_name",
            "isolation": None,
            "database_name": None,
            "connection": None,
        }
    ),
}
# django-omnitenant: its own isolation codes, and no database or schema name columns.
OMNITENANT = {
    "TM_TENANT_MODEL": "customers.Hospital",
    "TM_TENANT_FIELDS": json.dumps(
        {"isolation": "isolation_type", "database_name": None, "schema_name": None, "connection": None}
    ),
    "TM_ISOLATION_VALUES": json.dumps({"DB": "database", "SCH": "schema"}),
}


def swapped_project(tmp_path: Path, env: dict[str, str]) -> Project:
    project = make_project(tmp_path, master=False)
    shutil.copytree(CUSTOMERS, project.root / "customers", ignore=shutil.ignore_patterns("__pycache__"))
    project.env.update(env)
    project.manage("migrate", "--no-input")
    return project
