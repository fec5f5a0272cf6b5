//! The catalog queries of a PostgreSQL tenant: the digest of its structure (the fingerprint
//! the replay cache is keyed by) and the locks other sessions hold on its tables.

use std::sync::OnceLock;

/// Locks other sessions hold on the tenant's tables (`$1`: its schema, NULL for the connection's
/// current schema), each with what the holder is doing.
pub(super) const LOCK_HOLDERS_SQL: &str = r#"
SELECT DISTINCT c.relname::text, l.mode, l.pid,
       coalesce(a.state, 'unknown'), left(regexp_replace(coalesce(a.query, ''), '\s+', ' ', 'g'), 120)
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_class c ON c.oid = l.relation
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.pid <> pg_catalog.pg_backend_pid()
  AND n.nspname = coalesce($1::text, current_schema())
ORDER BY 3, 1
LIMIT 10
"#;

/// The tenant's catalog as one digest, schema names left out so that tenants in different
/// schemas compare equal when their structure is equal (definitions name other objects
/// schema-qualified when no search path is set; the tenant's own schema prefix is removed). `$1` is the schema (NULL: the
/// connection's current schema). Catalog tables are read directly (not the `pg_indexes` or
/// `pg_sequences` views, which visit every schema of the database).
///
pub(super) const FINGERPRINT_SQL: &str = r#"
WITH ns AS (SELECT oid, nspname FROM pg_catalog.pg_namespace WHERE nspname = coalesce($1::text, current_schema())),
rel AS (SELECT c.oid, c.relname, c.relkind FROM pg_catalog.pg_class c JOIN ns ON c.relnamespace = ns.oid)
SELECT md5(coalesce(string_agg(replace(x, (SELECT quote_ident(nspname) FROM ns) || '.', ''), E'\n' ORDER BY x), '')) FROM (
    SELECT 'r ' || rel.relname || ' ' || rel.relkind::text FROM rel
  UNION ALL
    SELECT 'a ' || rel.relname || '.' || a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
        || ' ' || a.attnotnull::text || ' ' || a.attidentity::text || ' '
        || coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '')
    FROM rel
    JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT 'k ' || rel.relname || ' ' || k.conname || ' ' || pg_catalog.pg_get_constraintdef(k.oid)
    FROM rel JOIN pg_catalog.pg_constraint k ON k.conrelid = rel.oid
  UNION ALL
    SELECT 'i ' || rel.relname || ' ' || pg_catalog.pg_get_indexdef(i.indexrelid)
    FROM rel JOIN pg_catalog.pg_index i ON i.indrelid = rel.oid
  UNION ALL
    SELECT 's ' || rel.relname || ' ' || pg_catalog.format_type(s.seqtypid, NULL) || ' ' || s.seqstart || ' ' || s.seqincrement
    FROM rel JOIN pg_catalog.pg_sequence s ON s.seqrelid = rel.oid
) AS catalog(x)
"#;

/// With schema isolation `pg_class` holds every tenant's relations and has no index on the
/// namespace alone: filtering it by namespace (as `FINGERPRINT_SQL` does) reads all of it, once
/// per call, so a deploy over N tenants would cost N times a catalog that grows with N. For a
/// schema the relations are found first by this query instead: every table, view, sequence and
/// composite type records a dependency on its schema in `pg_depend` (which
/// `pg_depend_reference_index` serves), indexes hang off their tables in `pg_index`. Their oids
/// then replace the namespace filter (`SCHEMA_FINGERPRINT_SQL`), looked up by `pg_class`'s oid
/// index. Two simple statements rather than one: the planner's time for one query doing both
/// cost more than the scan it saved on small catalogs. A database of its own keeps the
/// namespace filter: its `public` schema is pinned (no dependencies recorded) and its catalog
/// holds that tenant only. Both give the same digest (tests/planner/test_fingerprint.py): 149 ms against
/// 16 ms per call with 300 schemas of 30 tables, flat in the number of schemas.
pub(super) const SCHEMA_RELATIONS_SQL: &str = r#"
WITH dep AS (
    SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
    WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.objsubid = 0
      AND d.refobjid = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1::name)
)
SELECT ARRAY(
    SELECT objid FROM dep WHERE classid = 'pg_catalog.pg_class'::regclass
  UNION ALL
    SELECT i.indexrelid FROM dep JOIN pg_catalog.pg_index i ON i.indrelid = dep.objid
    WHERE dep.classid = 'pg_catalog.pg_class'::regclass
  UNION ALL
    SELECT t.typrelid FROM dep JOIN pg_catalog.pg_type t ON t.oid = dep.objid
    WHERE dep.classid = 'pg_catalog.pg_type'::regclass AND t.typrelid <> 0
)
"#;

pub(super) fn schema_fingerprint_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        SCHEMA_REWRITES
            .iter()
            .fold(FINGERPRINT_SQL.to_string(), |sql, (from, to)| {
                debug_assert!(sql.contains(from), "{from}");
                sql.replace(from, to)
            })
    })
}

/// `FINGERPRINT_SQL` for a schema: its relations by oid (`$2`), and every join to them
/// restricted to those oids too, so that each catalog is read through its own index rather
/// than hashed whole.
const SCHEMA_REWRITES: [(&str, &str); 6] = [
    (
        "JOIN ns ON c.relnamespace = ns.oid)",
        "JOIN ns ON c.relnamespace = ns.oid WHERE c.oid = ANY($2::oid[]))",
    ),
    (
        "ON a.attrelid = rel.oid",
        "ON a.attrelid = rel.oid AND a.attrelid = ANY($2::oid[])",
    ),
    (
        "d.adnum = a.attnum",
        "d.adnum = a.attnum AND d.adrelid = ANY($2::oid[])",
    ),
    (
        "ON k.conrelid = rel.oid",
        "ON k.conrelid = rel.oid AND k.conrelid = ANY($2::oid[])",
    ),
    (
        "ON i.indrelid = rel.oid",
        "ON i.indrelid = rel.oid AND i.indrelid = ANY($2::oid[])",
    ),
    (
        "ON s.seqrelid = rel.oid",
        "ON s.seqrelid = rel.oid AND s.seqrelid = ANY($2::oid[])",
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_fingerprint_rewrites_every_join() {
        let sql = super::schema_fingerprint_sql();
        assert_eq!(sql.matches("ANY($2::oid[])").count(), 6, "{sql}");
    }
}
