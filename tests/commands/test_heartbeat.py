"""The heartbeat of a long migration on SQLite: the statement running, on the Rust route and on
Django's; plain lines in a log, one live line on a terminal. (On PostgreSQL the blocking
process is named too:
tests/integration/test_postgres.py::test_heartbeat_names_the_blocking_process.)"""

from __future__ import annotations

import re
import subprocess
import sys

from helpers.processes import SLOW_SQL, slow_migration
from helpers.project import Project


def beats(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("[heartbeat] tenant 'acme': ")]


def test_heartbeat_names_the_statement_on_the_rust_route(project: Project) -> None:
    project.create_tenant("acme", "ACME Corporation")
    project.manage("migratetenant", "--tenant-id=acme", "products")
    slow_migration(project, through_django=False)
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", "--heartbeat=0.2")
    assert "  products/0002_big.py ... OK" in proc.stdout.splitlines()
    found = beats(proc.stderr)
    assert found, proc.stderr
    assert all(b.startswith("[heartbeat] tenant 'acme': products/0002_big.py running for ") for b in found)
    assert any(f"; statement: {SLOW_SQL[:150]}" in b for b in found), found
    # No heartbeat when it is turned off.
    project.manage("migratetenant", "--tenant-id=acme", "products", "zero")
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", "--heartbeat=0")
    assert not beats(proc.stderr)


def test_heartbeat_names_the_statement_on_djangos_route_and_python_code(project: Project) -> None:
    project.create_tenant("acme", "ACME Corporation")
    project.manage("migratetenant", "--tenant-id=acme", "products")
    slow_migration(project, through_django=True)
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", "--heartbeat=0.2")
    assert "  products/0002_big.py ... OK" in proc.stdout.splitlines()
    assert any(f"; statement: {SLOW_SQL[:150]}" in b for b in beats(proc.stderr)), proc.stderr

    project.add_migration(
        "products",
        "0003_think",
        "import time\n\nfrom django.db import migrations\n\n"
        "def think(apps, schema_editor):\n"
        "    time.sleep(1.5)\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('products', '0002_big')]\n"
        "    operations = [migrations.RunPython(think)]\n",
    )
    proc = project.manage("migratetenant", "--tenant-id=acme", "products", "--heartbeat=0.2")
    found = [b for b in beats(proc.stderr) if "products/0003_think.py" in b]
    assert found and all(b.endswith("; in Python code") for b in found), proc.stderr


def screen(raw: str) -> list[str]:
    """What a terminal shows for output with carriage returns and erase-to-end-of-line."""
    lines = []
    for physical in raw.replace("\r\n", "\n").split("\n"):
        buffer: list[str] = []
        cursor = 0
        index = 0
        while index < len(physical):
            if physical.startswith("\x1b[K", index):
                del buffer[cursor:]
                index += 3
                continue
            char = physical[index]
            if char == "\r":
                cursor = 0
            else:
                if cursor < len(buffer):
                    buffer[cursor] = char
                else:
                    buffer.append(char)
                cursor += 1
            index += 1
        lines.append("".join(buffer))
    return lines


def test_heartbeat_on_a_terminal_is_one_live_line_cleared_before_the_result(project: Project) -> None:
    project.create_tenant("acme", "ACME Corporation")
    project.manage("migratetenant", "--tenant-id=acme", "products")
    slow_migration(project, through_django=False)
    status, raw = project.in_terminal(
        "migratetenant", "--tenant-id=acme", "products", "--heartbeat=0.2", "--no-color", width=400
    )
    assert status == 0, raw
    # It was drawn in place, on the migration's own line...
    drawn = "\r\x1b[K  products/0002_big.py ... [heartbeat] tenant 'acme': products/0002_big.py running for"
    assert drawn in raw
    assert "[heartbeat]" not in raw.split("\n")[-1]
    # ...and what stays on the screen is the migration's line as without a heartbeat.
    shown = [line for line in screen(raw) if line]
    assert shown[-2:] == [
        "  products/0002_big.py ... OK",
        "Migrations completed successfully for tenant 'acme'.",
    ]
    assert not any("[heartbeat]" in line for line in shown), shown


def test_in_a_log_a_beat_is_a_line_of_its_own_that_never_outlives_its_migration(project: Project) -> None:
    """stdout and stderr in one log file (``2>&1``): each migration's line whole, each beat on
    a line of its own before that migration's result, and none says "running for 0s"."""
    project.create_tenant("acme", "ACME Corporation")
    project.manage("migratetenant", "--tenant-id=acme", "products")
    slow_migration(project, through_django=False)
    log = project.root / "migrate.log"
    with log.open("w") as sink:
        status = subprocess.run(
            [sys.executable, "manage.py", "migratetenant", "--tenant-id=acme", "products", "--heartbeat=0.2"],
            cwd=project.root,
            env=project.env,
            check=False,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=300,
        ).returncode
    assert status == 0
    lines = log.read_text().splitlines()
    result = lines.index("  products/0002_big.py ... OK")
    found = [i for i, line in enumerate(lines) if "[heartbeat]" in line]
    assert found, lines
    assert all(lines[i].startswith("[heartbeat] tenant 'acme': ") for i in found), lines
    assert all(i < result for i in found if "products/0002_big.py" in lines[i]), lines
    assert not any(re.search(r"running for 0(\.0)?s\b", lines[i]) for i in found), lines
    assert any(re.search(r"running for 0\.[1-9]s\b", lines[i]) for i in found), lines


def test_one_thread_beats_for_every_tenant_and_none_after_a_tenant_is_done() -> None:
    """``migratealltenants`` runs thousands of tenants, each with its heartbeat: they share one
    thread, which says each step that runs long, alongside others, and nothing once the
    tenant's heartbeat is over."""
    import io
    import threading
    import time

    from tenant_migrate.heartbeat import TICKER, Heartbeat

    def started() -> int:
        return sum(t.name == "tenant-migrate-heartbeat" for t in threading.enumerate())

    streams = []
    for round_ in range(20):
        # Two tenants alongside, as with --jobs 2: each one's step runs 6 intervals long.
        pair = [(io.StringIO(), f"t{round_}-{side}") for side in range(2)]
        hearts = [Heartbeat(stream, 0.02, tenant, None, {}) for stream, tenant in pair]
        for heart in hearts:
            heart.__enter__()
            heart.step(f"{heart.tenant_id}/0002_slow.py")
        time.sleep(0.12)
        for heart in hearts:
            heart.step(None)
            heart.__exit__(None, None, None)
        streams.extend(pair)
        assert started() == 1
    said = {tenant: stream.getvalue() for stream, tenant in streams}
    time.sleep(0.1)
    assert {tenant: stream.getvalue() for stream, tenant in streams} == said, "a beat after the end"
    for tenant, text in said.items():
        lines = text.splitlines()
        assert lines, f"no beat for {tenant}"
        assert all(
            line.startswith(f"[heartbeat] tenant '{tenant}': {tenant}/0002_slow.py running for ")
            for line in lines
        )
    assert TICKER.due == {}


def test_a_heartbeat_whose_stream_is_gone_stops_and_the_others_go_on() -> None:
    import io
    import time

    from tenant_migrate.heartbeat import TICKER, Heartbeat

    class Gone(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("the reader went away")

    alive = io.StringIO()
    gone, fine = Heartbeat(Gone(), 0.02, "gone", None, {}), Heartbeat(alive, 0.02, "fine", None, {})
    for heart in (gone, fine):
        heart.__enter__()
        heart.step("products/0002_slow.py")
    time.sleep(0.3)
    assert gone not in TICKER.due
    assert fine in TICKER.due
    for heart in (gone, fine):
        heart.step(None)
        heart.__exit__(None, None, None)
    assert len(alive.getvalue().splitlines()) >= 3, alive.getvalue()
