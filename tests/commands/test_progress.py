"""migratealltenants on a terminal: a live progress bar redrawn in place, tenant lines printed
above it and never on its line, heartbeats as live lines under it; in a log, plain lines as
before. Run in a real pseudo-terminal and read back as a terminal would show it."""

from __future__ import annotations

import re

import pytest
from helpers.processes import slow_migration
from helpers.project import Project, make_project

WIDTH = 100
TENANTS = ["acme", "globex", "initech", "umbrella", "wonka"]
BAR = re.compile(r"^Tenants .*\d+/\d+ \d+ failed")


CONTROL = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|\r|\n|[^\x1b\r\n]")


def screen(raw: str, width: int = WIDTH) -> list[str]:
    """What a terminal `width` columns wide shows for `raw`: carriage return, newline, cursor
    up, erase line and erase to its end; colours ignored; text longer than a line wraps."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for match in CONTROL.finditer(raw):
        text = match.group(0)
        if text == "\r":
            col = 0
        elif text == "\n":
            row += 1
            if row == len(lines):
                lines.append([])
        elif match.group(2) is not None:
            arg, command = match.group(1), match.group(2)
            if command == "A":
                row = max(0, row - int(arg or 1))
            elif command == "K" and arg == "2":
                lines[row] = []
            elif command == "K":
                del lines[row][col:]
        else:
            if col == width:  # the terminal wraps onto the next line
                row, col = row + 1, 0
                if row == len(lines):
                    lines.append([])
            line = lines[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = text
            else:
                line.append(text)
            col += 1
    return ["".join(line).rstrip() for line in lines]


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = make_project(tmp_path_factory.mktemp("progress"))
    for tenant_id in TENANTS:
        project.create_tenant(tenant_id)
    return project


def unapply(project: Project) -> None:
    project.manage("migratealltenants", "products", "zero", "-v", "0")


@pytest.mark.parametrize("verbosity", ["0", "1", "2", "3"])
def test_the_bar_is_redrawn_in_place_with_tenant_lines_above_it(tenants: Project, verbosity: str) -> None:
    unapply(tenants)
    logged = tenants.manage("migratealltenants", "-v", verbosity, "--jobs=2")
    unapply(tenants)
    status, raw = tenants.in_terminal("migratealltenants", "-v", verbosity, "--jobs=2")
    assert status == 0, raw
    shown = [line for line in screen(raw) if line]
    bars = [i for i, line in enumerate(shown) if BAR.match(line)]
    # Redrawn in place: drawn many times, one left on the screen, on a line of its own.
    assert len(bars) == 1, shown
    assert raw.count("Tenants ") > 1
    bar = shown[bars[0]]
    assert f" {len(TENANTS)}/{len(TENANTS)} 0 failed " in bar and "tenants/s" in bar, bar
    assert not any("Tenants " in line for i, line in enumerate(shown) if i != bars[0]), shown

    # The tenant lines are those of a log, whole (none glued to the bar, none wrapped).
    def timeless(lines: list[str]) -> list[str]:
        return sorted(re.sub(r"\d+\.\d+s\b", "_s", line) for line in lines if line.startswith("["))

    assert timeless(shown) == timeless(logged.stdout.splitlines())
    if verbosity == "0":
        assert shown == [bar]
    else:
        assert shown[bars[0] + 1].startswith("Summary: 5 tenants in "), shown


def test_in_a_log_the_progress_is_plain_lines(tenants: Project) -> None:
    unapply(tenants)
    proc = tenants.manage("migratealltenants", "--jobs=2")
    assert "\x1b" not in proc.stdout + proc.stderr
    progress = proc.stderr.splitlines()
    assert progress and all(line.startswith("Progress: ") for line in progress), proc.stderr
    assert progress[-1].startswith("Progress: 5/5 tenants, 0 failed, ")


def test_a_heartbeat_is_a_live_line_under_the_bar(tmp_path) -> None:
    project = make_project(tmp_path)
    project.create_tenant("acme")
    project.manage("migratetenant", "--tenant-id=acme", "products")
    slow_migration(project, through_django=False)
    status, raw = project.in_terminal("migratealltenants", "--heartbeat=0.2")
    assert status == 0, raw
    assert "[heartbeat] tenant 'acme': products/0002_big.py running for " in raw
    shown = [line for line in screen(raw) if line]
    assert not any("[heartbeat]" in line for line in shown), shown
    assert "[acme]   products/0002_big.py ... OK" in shown, (shown, raw)
    bar = next(i for i, line in enumerate(shown) if BAR.match(line))
    assert shown[bar + 1].startswith("Summary: 1 tenants in "), shown
