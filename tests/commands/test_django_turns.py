"""Concurrent tenants take turns for the code Django runs that is not Django's own.

``migratealltenants --jobs N`` runs tenants in threads of one process; a data migration's body
is not written to run in two threads at once (Django never does that), so each tenant's runs
under the process-wide Django lock. Around it, the statements of ours and Django's (the
transaction's first statements, the history row and its guard, the commit) run outside the
lock, so that another tenant's Django work goes on meanwhile: unless they come with user code
of their own, which then takes its turn too; so do the rows ``post_migrate``'s built-in
receivers write. Here a data migration written the way projects write them notes when it
runs, and when what it queued with ``transaction.on_commit`` runs, or a ``post_save`` receiver
for every model (the history row's save included), or a ``post_init`` receiver (the content
types and permissions made for a new model): no two of those moments may overlap between
threads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.project import Project, make_project, pg_project

TENANTS = [f"t{i}" for i in range(6)]
# Content types and permissions in tenants: post_migrate's built-in receivers have rows to write.
APPS = "contenttypes,auth,users,products,orders"

# Each user-code moment takes 50 ms and notes (kind, thread, start, end) in the log.
TURNS = """
import os
import threading
import time

from django.db import migrations, models, transaction
from django.db.models.signals import post_init, post_save


def note(kind):
    start = time.monotonic()
    time.sleep(0.05)
    with open(os.environ["TM_TURNS_LOG"], "a") as log:
        log.write(f"{{kind}} {{threading.get_ident()}} {{start}} {{time.monotonic()}}\\n")


def saved(sender, **kwargs):
    if sender._meta.db_table == "django_migrations":
        note("saved")


def made(sender, **kwargs):
    if sender._meta.db_table in ("django_content_type", "auth_permission"):
        note("made")


if {receiver}:
    post_save.connect(saved, dispatch_uid="tm_turns_saved")
if {made}:
    post_init.connect(made, dispatch_uid="tm_turns_made")


def forwards(apps, schema_editor):
    Product = apps.get_model("products", "Product")
    Product.objects.create(name="from the migration", price=1)
    note("body")
    if {on_commit}:
        transaction.on_commit(lambda: note("on_commit"))


class Migration(migrations.Migration):
    dependencies = [("products", "0001_initial")]
    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop),
        # A new model: post_migrate makes its content type and permissions.
        migrations.CreateModel("Turn", [("id", models.AutoField(primary_key=True))]),
    ]
"""


def moments(log: Path) -> list[tuple[str, str, float, float]]:
    rows = []
    for line in log.read_text().splitlines():
        kind, thread, start, end = line.split()
        rows.append((kind, thread, float(start), float(end)))
    return rows


def overlapping(rows: list[tuple[str, str, float, float]]) -> list[tuple[str, str]]:
    return [
        (a[0], b[0])
        for i, a in enumerate(rows)
        for b in rows[i + 1 :]
        if a[1] != b[1] and a[2] < b[3] and b[2] < a[3]
    ]


# What follows each body: a callback it queued for the commit, a receiver of the history row's
# save, a receiver of the content type and permission rows post_migrate makes.
@pytest.mark.parametrize("follows", ["on_commit", "receiver", "made"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres-schema"])
def test_user_code_of_concurrent_tenants_never_runs_at_once(
    tmp_path: Path, follows: str, backend: str, request: pytest.FixtureRequest
) -> None:
    project: Project
    if backend == "sqlite":
        project = make_project(tmp_path, tenant_apps=APPS)
        extra: tuple[str, ...] = ()
    else:
        project = pg_project(tmp_path, request.getfixturevalue("pg_prefix"), tenant_apps=APPS)
        extra = ("--isolation=schema",)
    for tenant in TENANTS:
        project.create_tenant(tenant, None, *extra)
    project.add_migration(
        "products",
        "0002_turns",
        TURNS.format(
            on_commit=follows == "on_commit", receiver=follows == "receiver", made=follows == "made"
        ),
    )
    log = tmp_path / "turns.log"
    project.env["TM_TURNS_LOG"] = str(log)
    project.manage("migratealltenants", "--jobs=2")
    rows = moments(log)
    kinds = {"on_commit": "on_commit", "receiver": "saved", "made": "made"}
    # Every tenant's body ran, and what followed it: the run did what is checked.
    assert sorted(kind for kind, *_ in rows).count("body") == len(TENANTS)
    assert sum(kind == kinds[follows] for kind, *_ in rows) >= len(TENANTS)
    assert len({thread for _, thread, *_ in rows}) == 2, "both jobs ran tenants"
    assert overlapping(rows) == []
