"""How many concurrent tenants the master server's connection limits leave room for.

A run over many tenants holds, per job, the tenant's run lock (a connection of its own, see
the Rust ``lock`` module) and the connection its migrations run on, and the process holds the
master's Django connection. A role created with ``CONNECTION LIMIT 3`` (or a database with
one, or a server with few free ``max_connections``) cannot give ``--jobs 8`` that many: every
tenant would fail with "too many connections". So before the run, the limits that apply to
the master's role and database are read (PostgreSQL only; superusers are exempt from them, as
PostgreSQL exempts them), and the run either goes on with fewer jobs and no idle pooled
connections, saying so once, or stops before touching any tenant, saying how many
connections it needs.

Only the master's server is looked at: tenants on other servers, or behind another role, are
bounded by ``--jobs-per-server`` as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import _core
from .context import master_alias
from .exceptions import TenantMigrateError

# Connections one job holds at once, at its peak: its run lock, the connection the Rust core
# migrates on, and Django's connection for the tenant (RunPython, post_migrate); the run's
# own master connection is already in use when the limits are read. Measured on PostgreSQL 15
# by sampling pg_stat_activity (tests/production/test_connection_limits.py keeps it true).
PER_JOB = 3
PER_RUN = 0

LIMITS_SQL = """
SELECT r.rolsuper, r.rolconnlimit, d.datconnlimit,
       (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE usename = current_user),
       (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = current_database()),
       current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int,
       (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend')
FROM pg_catalog.pg_roles r, pg_catalog.pg_database d
WHERE r.rolname = current_user AND d.datname = current_database()
"""


class NotEnoughConnections(TenantMigrateError):
    """The master's connection limits leave no room for one job: nothing was run."""


@dataclass(frozen=True)
class Limit:
    """The tightest limit found: what it is, how many it allows, how many are in use."""

    what: str
    allowed: int
    in_use: int

    @property
    def free(self) -> int:
        return self.allowed - self.in_use


def master_limit() -> Limit | None:
    """The tightest connection limit on the master's role, database and server, or None
    (not PostgreSQL, a superuser, no limit, or the limits cannot be read)."""
    from django.db import connections

    connection = connections[master_alias()]
    if connection.vendor != "postgresql":
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute(LIMITS_SQL)
            row = cursor.fetchone()
    except Exception:  # a pooler or a catalog we cannot read: no up-front check, as before
        return None
    if row is None or row[0]:
        return None
    _, role_limit, db_limit, role_used, db_used, server_allowed, server_used = row
    user = connection.settings_dict.get("USER") or "current_user"
    database = connection.settings_dict.get("NAME")
    server = f"the server allows {server_allowed} connections to roles that are not superusers"
    found = [Limit(server, server_allowed, server_used)]
    if role_limit >= 0:
        found.append(Limit(f"role '{user}' has CONNECTION LIMIT {role_limit}", role_limit, role_used))
    if db_limit >= 0:
        found.append(Limit(f"database '{database}' has CONNECTION LIMIT {db_limit}", db_limit, db_used))
    return min(found, key=lambda limit: limit.free)


def fit_jobs(requested: int) -> tuple[int, str | None]:
    """The jobs the master's connection limits leave room for, with a notice when fewer than
    ``requested``; raises ``NotEnoughConnections`` when there is no room for one."""
    limit = master_limit()
    if limit is None:
        return requested, None
    room = limit.free - PER_RUN
    if room >= PER_JOB * requested:
        return requested, None
    fitting = room // PER_JOB
    if fitting < 1:
        raise NotEnoughConnections(
            f"Not enough database connections for one job: {limit.what}, {limit.in_use} in use, "
            f"and a job needs {PER_JOB}. Raise the limit, or close other sessions."
        )
    # No idle connection kept for reuse: every connection counts against the limit. For this
    # run only: ``connection_budget()`` puts the process-wide limit back when it ends.
    _core.set_idle_connection_limit(0)
    notice = (
        f"Running {fitting} job{'s' if fitting != 1 else ''} instead of {requested}: {limit.what}, "
        f"{limit.in_use} in use, and a job needs {PER_JOB} connections."
    )
    return fitting, notice


@contextmanager
def connection_budget() -> Iterator[None]:
    """The scope of one run's connection budget: the process-wide idle-connection limit that
    ``fit_jobs`` lowers within it is put back as it was when the scope ends, so that a later
    run of the same process (``call_command``, a test) pools connections again."""
    # The Rust side has a setter returning the previous value, no getter.
    previous = _core.set_idle_connection_limit(0)
    _core.set_idle_connection_limit(previous)
    try:
        yield
    finally:
        _core.set_idle_connection_limit(previous)
