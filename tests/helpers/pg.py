"""A real PostgreSQL server for tests: found through TM_TEST_PG, never mocked; its catalogs read back.

Each test gets a unique name prefix; every database it creates carries it and is dropped after
the test (behind the next one, waited for at the end of the session). Without a server the
tests skip with the reason, unless TM_REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlparse

import psycopg
import pytest
from psycopg import sql

PG_URL = os.environ.get("TM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_url = urlparse(PG_URL)
HOST = _url.hostname or "127.0.0.1"
PORT = _url.port or 5432
USER = _url.username or "postgres"
PASSWORD = _url.password or ""


def admin() -> psycopg.Connection:
    return psycopg.connect(
        host=HOST, port=PORT, user=USER, password=PASSWORD, dbname="postgres", autocommit=True
    )


def server_problem() -> str | None:
    try:
        with admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as err:
        return f"no PostgreSQL server at {PG_URL} ({str(err).strip().splitlines()[0]})"
    return None


def require_server() -> None:
    problem = server_problem()
    if problem is None:
        return
    if os.environ.get("TM_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is mandatory here (TM_REQUIRE_POSTGRES=1): {problem}")
    pytest.skip(problem)


def drop_databases(prefix: str) -> None:
    with admin() as conn:
        names = [
            r[0]
            for r in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix])
        ]
    for name in names:
        drop_database(name)


# Migrated masters kept as templates for a test process's later projects (helpers.project);
# not a test's prefix, so no test's own count of databases sees them.
TEMPLATE_PREFIX = "tmm_"


def create_database(name: str, template: str | None = None) -> None:
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with admin() as conn:
        conn.execute(query)


def drop_database(name: str) -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def connect(dbname: str) -> psycopg.Connection:
    return psycopg.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, dbname=dbname, autocommit=True)


def pg_env(prefix: str) -> dict[str, str]:
    return {
        "TM_PG_HOST": HOST,
        "TM_PG_PORT": str(PORT),
        "TM_PG_USER": USER,
        "TM_PG_PASSWORD": PASSWORD,
    }


# PostgreSQL (15 and older) checkpoints at once on every DROP DATABASE: up to seconds while the
# other test process writes. A test's databases are dropped behind the next test, one drop at a
# time, and every drop is waited for, its error raised, at the end of the session.
_dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tm-drop")
_drops: list[Future[None]] = []


@pytest.fixture
def pg_prefix() -> Iterator[str]:
    require_server()
    prefix = f"tmt_{uuid.uuid4().hex[:10]}_"
    try:
        yield prefix
    finally:
        _drops.append(_dropper.submit(drop_databases, prefix))


def finish_drops() -> None:
    """Wait for the tests' databases to be dropped; the first failure is raised."""
    done, _drops[:] = list(_drops), []
    for drop in done:
        drop.result()


CATALOG_QUERIES = {
    "columns": """
        SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND a.attnum > 0
          AND NOT a.attisdropped
        ORDER BY 1, 2""",
    "constraints": """
        SELECT c.relname, k.conname, k.contype, pg_catalog.pg_get_constraintdef(k.oid, true),
               k.condeferrable, k.condeferred
        FROM pg_catalog.pg_constraint k
        JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s ORDER BY 1, 2""",
    "indexes": """
        SELECT i.tablename, i.indexname, i.indexdef FROM pg_catalog.pg_indexes i
        WHERE i.schemaname = %(schema)s ORDER BY 1, 2""",
    "sequences": """
        SELECT s.sequencename, s.data_type::text, s.start_value, s.increment_by
        FROM pg_catalog.pg_sequences s WHERE s.schemaname = %(schema)s ORDER BY 1""",
    "tables": """
        SELECT c.relname, c.relkind FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1""",
}


def catalog(dbname: str, schema: str = "public", exclude_prefix: str = "\x00") -> dict[str, list]:
    """The schema's catalog, with the schema's own name taken out of definitions."""
    result: dict[str, list] = {}
    with connect(dbname) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        for kind, query in CATALOG_QUERIES.items():
            rows = conn.execute(query, {"schema": schema}).fetchall()
            cleaned = []
            for row in rows:
                if str(row[0]).startswith(exclude_prefix):
                    continue
                cleaned.append(
                    tuple(
                        v.replace(f"{schema}.", "").replace(f'"{schema}".', "") if isinstance(v, str) else v
                        for v in row
                    )
                )
            result[kind] = cleaned
    return result


def app_catalog(dbname: str, schema: str, prefix: str) -> dict[str, list]:
    """The catalog entries whose names start with ``prefix`` (one app's tables)."""
    return {
        kind: [row for row in rows if str(row[0]).startswith(prefix)]
        for kind, rows in catalog(dbname, schema).items()
    }


def history(dbname: str, schema: str = "public", exclude_apps: tuple[str, ...] = ()) -> list[tuple]:
    with connect(dbname) as conn:
        rows = conn.execute(
            sql.SQL("SELECT app, name FROM {}.django_migrations ORDER BY app, name").format(
                sql.Identifier(schema)
            )
        ).fetchall()
    return [tuple(r) for r in rows if r[0] not in exclude_apps]


def data(dbname: str, schema: str = "public") -> dict[str, list[str]]:
    """Every row of every table of the schema, as text, sorted: a data snapshot."""
    result: dict[str, list[str]] = {}
    with connect(dbname) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
                [schema],
            )
        ]
        for table in tables:
            query = sql.SQL("SELECT t::text FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            result[table] = sorted(r[0] for r in conn.execute(query))
    return result


def schemas(dbname: str) -> list[str]:
    with connect(dbname) as conn:
        return [r[0] for r in conn.execute("SELECT nspname FROM pg_catalog.pg_namespace ORDER BY 1")]


def databases(prefix: str) -> list[str]:
    with admin() as conn:
        query = "SELECT datname FROM pg_catalog.pg_database WHERE starts_with(datname, %s) ORDER BY 1"
        return [r[0] for r in conn.execute(query, [prefix])]
