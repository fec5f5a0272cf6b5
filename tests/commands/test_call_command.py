"""Every command through ``call_command(...)``, with the command line's options, and Django's
common options (--verbosity, --no-color, --force-color, --traceback, --skip-checks) honoured
the same way from Python and from the command line."""

from __future__ import annotations

import io
import itertools
import re

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from helpers.project import Project
from helpers.spec import SPEC_PLAN, SPEC_RUN
from tenant_migrate import _core
from tenant_migrate.exceptions import TenantConfigError

ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ids = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def master() -> None:
    call_command("migrate", interactive=False, verbosity=0)


@pytest.fixture
def tenant_id() -> str:
    """A fresh tenant id: the in-process master is shared by every test of the session."""
    return f"cc{next(_ids)}-{id(object()) % 100000}"


def run(*args: object, **options: object) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)  # type: ignore[arg-type]
    return out.getvalue()


def spec_text(text: str, tenant_id: str) -> str:
    return text.replace("'acme'", f"'{tenant_id}'").replace("ACME Corporation", tenant_id)


def test_create_and_migrate_take_keyword_options(tenant_id: str) -> None:
    created = run("createtenant", tenant_id=tenant_id, name=tenant_id, interactive=False)
    assert created.startswith(f"Tenant '{tenant_id}' created ({tenant_id}, database isolation:")
    assert run("migratetenant", tenant_id=tenant_id, plan=True) == spec_text(SPEC_PLAN, tenant_id)
    assert run("migratetenant", tenant_id=tenant_id) == spec_text(SPEC_RUN, tenant_id)


def test_commands_take_command_line_arguments_too(tenant_id: str) -> None:
    run("createtenant", f"--tenant-id={tenant_id}", f"--name={tenant_id}", "--no-input")
    out = run("migratetenant", f"--tenant-id={tenant_id}", "users", "0001_initial")
    assert "  users/0001_initial.py ... OK" in out.splitlines()
    out = run("migratealltenants", f"--tenant-id={tenant_id}", "--jobs=1", "--no-input")
    assert f"[{tenant_id}]   products/0001_initial.py ... OK" in out.splitlines(), out


def test_create_with_migrate_and_all_tenants_json(tenant_id: str) -> None:
    out = run("createtenant", tenant_id=tenant_id, name=tenant_id, interactive=False, migrate=True)
    assert out.splitlines()[-1] == f"Migrations completed successfully for tenant '{tenant_id}'."
    report = run("migratealltenants", tenant_ids=[tenant_id], jobs=1, json=True)
    assert (f'"{tenant_id}"' in report and '"up-to-date"' in report) or '"ok"' in report, report


@pytest.mark.parametrize("command", ["createtenant", "migratetenant", "migratealltenants"])
def test_verbosity_zero_prints_nothing(command: str, tenant_id: str) -> None:
    if command != "createtenant":
        run("createtenant", tenant_id=tenant_id, interactive=False)
    options: dict[str, object] = {
        "createtenant": {"tenant_id": tenant_id, "interactive": False},
        "migratetenant": {"tenant_id": tenant_id},
        "migratealltenants": {"tenant_ids": [tenant_id], "jobs": 1},
    }[command]
    assert run(command, verbosity=0, **options) == ""


def test_verbosity_two_adds_timings(tenant_id: str) -> None:
    run("createtenant", tenant_id=tenant_id, interactive=False)
    out = run("migratetenant", tenant_id=tenant_id, verbosity=2)
    assert re.search(r"  users/0001_initial\.py \.\.\. OK \(\d+\.\d{3}s\)", out), out


def test_force_color_and_no_color(tenant_id: str) -> None:
    colored = run("createtenant", tenant_id=tenant_id, interactive=False, force_color=True)
    assert ANSI.search(colored)
    colored = run("migratetenant", tenant_id=tenant_id, plan=True, force_color=True)
    assert ANSI.search(colored) and ANSI.sub("", colored) == spec_text(SPEC_PLAN, tenant_id)
    assert not ANSI.search(run("migratetenant", tenant_id=tenant_id, no_color=True))
    all_colored = run("migratealltenants", tenant_ids=[tenant_id], jobs=1, force_color=True)
    assert ANSI.search(all_colored)
    # createtenant --migrate passes the colour choice on to migratetenant.
    nested = run(
        "createtenant", tenant_id=f"{tenant_id}-m", interactive=False, migrate=True, force_color=True
    )
    assert ANSI.search(nested.splitlines()[-1]), nested
    with pytest.raises(CommandError, match=r"--no-color and --force-color options can.t be used together"):
        run("migratetenant", tenant_id=tenant_id, no_color=True, force_color=True)


@pytest.mark.parametrize(
    ("command", "options", "without", "original"),
    [
        ("migratetenant", {"tenant_id": "nope-tb"}, "Tenant 'nope-tb' does not exist.", _core.TenantNotFound),
        (
            "migratealltenants",
            {"tenant_ids": ["nope-tb"]},
            "Tenant 'nope-tb' does not exist.",
            _core.TenantNotFound,
        ),
        (
            "createtenant",
            {"tenant_id": "bad id", "interactive": False},
            "Invalid tenant id 'bad id': 1 to 63 characters",
            TenantConfigError,
        ),
    ],
)
def test_traceback_raises_the_original_exception(
    command: str, options: dict[str, object], without: str, original: type[Exception]
) -> None:
    with pytest.raises(CommandError, match=re.escape(without)):
        run(command, **options)
    with pytest.raises(original):
        run(command, traceback=True, **options)


@pytest.mark.parametrize("command", ["createtenant", "migratetenant", "migratealltenants"])
def test_skip_checks(command: str, tenant_id: str) -> None:
    options: dict[str, object] = {
        "createtenant": {"tenant_id": tenant_id, "interactive": False},
        "migratetenant": {"tenant_id": tenant_id, "plan": True},
        "migratealltenants": {"tenant_ids": [tenant_id], "plan": True},
    }[command]
    if command != "createtenant":
        run("createtenant", tenant_id=tenant_id, interactive=False)
    from django.conf import settings

    broken = {**settings.TENANT_MIGRATE, "NOT_A_SETTING": 1}
    with override_settings(TENANT_MIGRATE=broken):
        with pytest.raises(SystemCheckError, match=r"tenant_migrate\.E002"):
            run(command, skip_checks=False, **options)
        assert run(command, skip_checks=True, **options)


@pytest.mark.parametrize("command", ["createtenant", "migratealltenants"])
def test_common_options_on_the_command_line(project: Project, command: str) -> None:
    project.create_tenant("acme")
    args = ["--tenant-id=globex", "--no-input"] if command == "createtenant" else ["--tenant-id=acme"]
    assert ANSI.search(project.manage(command, *args, "--force-color").stdout)
    args = ["--tenant-id=initech", "--no-input"] if command == "createtenant" else ["--tenant-id=acme"]
    plain = project.manage(command, *args, "--no-color", "--skip-checks", "--verbosity=1").stdout
    assert plain and not ANSI.search(plain)
    quiet = ["--tenant-id=hooli", "--no-input"] if command == "createtenant" else ["--tenant-id=acme"]
    assert project.manage(command, *quiet, "--verbosity=0").stdout == ""
    bad = ["--tenant-id=Bad Id", "--no-input"] if command == "createtenant" else ["--tenant-id=nope"]
    short = project.manage(command, *bad, check=False)
    assert short.returncode == 1 and "Traceback" not in short.stderr and short.stderr.startswith("Error: ")
    long = project.manage(command, *bad, "--traceback", check=False)
    assert long.returncode == 1 and "Traceback (most recent call last)" in long.stderr
