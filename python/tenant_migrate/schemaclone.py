"""Copy a PostgreSQL schema: the template tenant's tables, columns, identities, constraints,
indexes, sequences and rows, into a new schema of the same database, in one transaction.

PostgreSQL has no command for it. The definitions are read from the catalog with the template
schema alone on the search path, so they come out unqualified, and run again with the new schema
alone on the search path. Only what Django migrations make is copied; a schema holding anything
else (views, functions, triggers, types, comments, collations, inheritance...) is refused, and
the caller migrates the tenant from zero. The caller also compares the copy's catalog
fingerprint with the template's before using it.
"""

from __future__ import annotations

from typing import Any

# Objects of the template schema a copy would miss: refused rather than copied partly.
UNSUPPORTED = """
SELECT
  (SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid
     AND c.relkind NOT IN ('r', 'i', 'S'))
  + (SELECT count(*) FROM pg_catalog.pg_proc p WHERE p.pronamespace = n.oid)
  + (SELECT count(*) FROM pg_catalog.pg_type t WHERE t.typnamespace = n.oid AND t.typrelid = 0
       AND t.typelem = 0)
  + (SELECT count(*) FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid
       WHERE c.relnamespace = n.oid AND NOT g.tgisinternal)
  + (SELECT count(*) FROM pg_catalog.pg_description d JOIN pg_catalog.pg_class c ON c.oid = d.objoid
       WHERE d.classoid = 'pg_catalog.pg_class'::regclass AND c.relnamespace = n.oid)
  + (SELECT count(*) FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
       WHERE c.relnamespace = n.oid AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attcollation <> t.typcollation)
  + (SELECT count(*) FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
       WHERE c.relnamespace = n.oid)
  + (SELECT count(*) FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
       WHERE c.relnamespace = n.oid)
  + (SELECT count(*) FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
       WHERE c.relnamespace = n.oid)
FROM pg_catalog.pg_namespace n WHERE n.nspname = %(schema)s
"""

TABLES = """
SELECT c.oid, c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind = 'r' ORDER BY c.oid
"""

COLUMNS = """
SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity,
       (SELECT s.relname FROM pg_catalog.pg_depend dep JOIN pg_catalog.pg_class s ON s.oid = dep.objid
        WHERE dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum AND dep.deptype = 'i'
          AND s.relkind = 'S')
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

# Sequences that are not an identity column's own (those come with their column).
SEQUENCES = """
SELECT c.relname, pg_catalog.format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle
FROM pg_catalog.pg_sequence s
JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend dep WHERE dep.objid = c.oid AND dep.deptype = 'i')
ORDER BY c.oid
"""

ALL_SEQUENCES = """
SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind = 'S' ORDER BY c.oid
"""

# Foreign keys last: they need every table and its keys.
CONSTRAINTS = """
SELECT c.relname, k.conname, pg_catalog.pg_get_constraintdef(k.oid)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND k.contype IN ('p', 'u', 'c', 'x', 'f') AND k.conislocal
ORDER BY k.contype = 'f', k.oid
"""

INDEXES = """
SELECT pg_catalog.pg_get_indexdef(i.indexrelid, 0, true)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid
                  AND k.conrelid = i.indrelid)
ORDER BY i.indexrelid
"""


def clone(conn: Any, template: str, target: str) -> bool:
    """Create ``target`` as a copy of ``template`` inside the connection's current transaction.
    False (and nothing created) when the template holds something a copy would miss."""
    # Imported here: psycopg is an optional dependency (the "postgres" extra), and this module
    # is imported on SQLite-only installs too.
    from psycopg import sql

    def q(name: str) -> str:
        return sql.Identifier(name).as_string(conn)

    def set_path(schema: str) -> None:
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", [q(schema)])

    names = {"schema": template}
    if conn.execute(UNSUPPORTED, names).fetchone()[0]:
        return False
    set_path(template)
    tables = conn.execute(TABLES, names).fetchall()
    columns: dict[int, list[Any]] = {}
    for relid, *column in conn.execute(COLUMNS, names).fetchall():
        columns.setdefault(relid, []).append(column)
    sequences = conn.execute(SEQUENCES, names).fetchall()
    constraints = conn.execute(CONSTRAINTS, names).fetchall()
    indexes = [row[0] for row in conn.execute(INDEXES, names).fetchall()]
    states = {
        name: conn.execute(f"SELECT last_value, is_called FROM {q(name)}").fetchone()
        for (name,) in conn.execute(ALL_SEQUENCES, names).fetchall()
    }

    # Definitions below are the server's own text (format_type, pg_get_*def), names are quoted;
    # sent as one batch: one round trip for the whole schema.
    script = [f"CREATE SCHEMA {q(target)}", f"SET LOCAL search_path TO {q(target)}"]
    for name, kind, start, increment, low, high, cache, cycle in sequences:
        script.append(
            f"CREATE SEQUENCE {q(name)} AS {kind} INCREMENT BY {int(increment)} MINVALUE {int(low)} "
            f"MAXVALUE {int(high)} START WITH {int(start)} CACHE {int(cache)}{' CYCLE' if cycle else ''}"
        )
    for relid, table in tables:
        parts = []
        for name, kind, not_null, default, identity, sequence in columns.get(relid, []):
            column = f"{q(name)} {kind}"
            if identity:
                always = "ALWAYS" if identity == "a" else "BY DEFAULT"
                column += f" GENERATED {always} AS IDENTITY (SEQUENCE NAME {q(sequence)})"
            if default is not None:
                column += f" DEFAULT {default}"
            if not_null:
                column += " NOT NULL"
            parts.append(column)
        script.append(f"CREATE TABLE {q(table)} ({', '.join(parts)})")
    for table, name, definition in constraints:
        script.append(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} {definition}")
    script.extend(indexes)
    for _, table in tables:
        source = f"{q(template)}.{q(table)}"
        script.append(f"INSERT INTO {q(table)} OVERRIDING SYSTEM VALUE SELECT * FROM {source}")
    for name, (last_value, is_called) in states.items():
        script.append(
            f"SELECT pg_catalog.setval({sql.Literal(q(name)).as_string(conn)}, {int(last_value)}, "
            f"{'true' if is_called else 'false'})"
        )
    conn.execute(";\n".join(script))
    return True
