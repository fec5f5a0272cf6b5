//! Django's history table (`django_migrations`, `MigrationRecorder`): every statement that
//! reads or writes it, for both vendors, and the concurrent read of many tenants' histories.
//! The backends run these statements inside their migration transactions; nothing else in the
//! crate names the table.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio_postgres::types::Type;

use super::client::Client;
use super::postgres::connect;
use super::{quote_ident, ConnectionParams};
use crate::error::DbError;

/// Django's history table. The name is fixed by Django's `MigrationRecorder`.
pub const RECORDER_TABLE: &str = "django_migrations";

/// How bound values are written in a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The history table of one tenant (schema-qualified for schema isolation) and the
/// statements on it.
#[derive(Debug, Clone)]
pub struct Recorder {
    table: String,
    dialect: Dialect,
}

impl Recorder {
    pub fn new(dialect: Dialect, schema: Option<&str>) -> Result<Recorder, DbError> {
        let table = quote_ident(RECORDER_TABLE)?;
        let table = match schema {
            Some(schema) => format!("{}.{table}", quote_ident(schema)?),
            None => table,
        };
        Ok(Recorder { table, dialect })
    }

    /// The quoted (and, for schema isolation, qualified) table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn bound(&self, n: usize) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// `MigrationRecorder.applied_migrations`: `(app, name)` in `id` order.
    pub fn select_applied(&self) -> String {
        format!(
            "SELECT \"app\", \"name\" FROM {} ORDER BY \"id\"",
            self.table
        )
    }

    /// The rows with `applied` as `YYYY-MM-DD HH:MM:SS` (UTC), in `id` order.
    pub fn select_history(&self) -> String {
        let applied = match self.dialect {
            Dialect::Sqlite => "substr(CAST(\"applied\" AS text), 1, 19)",
            Dialect::Postgres => "to_char(\"applied\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
        };
        format!(
            "SELECT \"app\", \"name\", {applied} FROM {} ORDER BY \"id\"",
            self.table
        )
    }

    /// Record `(app, name)` (bound first and second) as applied now; SQLite binds the time
    /// third, PostgreSQL takes the statement's own.
    pub fn insert(&self) -> String {
        let applied = match self.dialect {
            Dialect::Sqlite => self.bound(3),
            Dialect::Postgres => "statement_timestamp()".into(),
        };
        format!(
            "INSERT INTO {} (\"app\", \"name\", \"applied\") VALUES ({}, {}, {applied})",
            self.table,
            self.bound(1),
            self.bound(2)
        )
    }

    /// PostgreSQL: one statement that, in a migration's transaction and after its record lock
    /// (taken by an earlier statement, so this one sees what another run committed while it
    /// waited), checks that `alive` (see `lock::still_held`) holds and that no other run wrote
    /// or deleted the rows this recording is about, and only then writes them: `$1`/`$2` are
    /// the apps and names to insert (in order, so their ids ascend as Django's would), `$3`/`$4`
    /// those to delete. It answers (alive, unclaimed); nothing is written unless both hold.
    /// One round trip where a check and a statement per row took one each (on a project of 300
    /// migrations, 300 round trips a tenant).
    pub fn guarded_write(&self, alive: &str) -> String {
        debug_assert!(matches!(self.dialect, Dialect::Postgres));
        let table = &self.table;
        let pairs = |apps: &str, names: &str| {
            format!("(SELECT * FROM unnest({apps}::text[], {names}::text[]))")
        };
        let (to_insert, to_delete) = (pairs("$1", "$2"), pairs("$3", "$4"));
        let count = |set: &str| {
            format!("(SELECT count(*) FROM {table} r WHERE (r.\"app\", r.\"name\") IN {set})")
        };
        // Rows to write must be absent, and of rows to delete at least one present (a
        // squash's own row may be missing): otherwise another run got there first.
        format!(
            "WITH g AS (SELECT {alive} AS alive, \
                 {present} = 0 AND NOT (cardinality($1::text[]) = 0 \
                 AND cardinality($3::text[]) > 0 AND {still} = 0) AS unclaimed), \
             ins AS (INSERT INTO {table} (\"app\", \"name\", \"applied\") \
                 SELECT u.a, u.n, statement_timestamp() \
                 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(a, n, i), g \
                 WHERE g.alive AND g.unclaimed AND (u.a, u.n) NOT IN {to_delete} \
                 ORDER BY u.i RETURNING 1), \
             del AS (DELETE FROM {table} r USING g \
                 WHERE g.alive AND g.unclaimed AND (r.\"app\", r.\"name\") IN {to_delete} \
                 RETURNING 1) \
             SELECT alive, unclaimed FROM g",
            present = count(&to_insert),
            still = count(&to_delete),
        )
    }

    /// Forget `(app, name)` (bound first and second).
    pub fn delete(&self) -> String {
        format!(
            "DELETE FROM {} WHERE \"app\" = {} AND \"name\" = {}",
            self.table,
            self.bound(1),
            self.bound(2)
        )
    }
}

/// One row of a tenant's history table, `applied` as `YYYY-MM-DD HH:MM:SS` (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub app: String,
    pub name: String,
    pub applied: String,
}

/// What reading one tenant's history gave.
#[derive(Debug)]
pub enum History {
    /// The rows in `id` order; empty when the history table does not exist yet.
    Read(Vec<HistoryRow>),
    /// The tenant's database file, database or schema does not exist.
    Missing(String),
    /// Anything else (unreachable server, refused login, ...).
    Failed(DbError),
}

/// Read every tenant's history with at most `threads` threads; each thread keeps at most one
/// open connection, reused while consecutive tenants live in the same PostgreSQL database
/// (schema isolation). Results are in the order of `params`.
pub fn read_histories(params: &[ConnectionParams], threads: usize) -> Vec<History> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<History>>> =
        Mutex::new((0..params.len()).map(|_| None).collect());
    let workers = threads.clamp(1, params.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut held: Option<(String, Client)> = None;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = params.get(index) else { break };
                    let history = read_one(p, &mut held);
                    if let Ok(mut r) = results.lock() {
                        r[index] = Some(history);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.unwrap_or_else(|| History::Failed(DbError::Config("not read".into()))))
        .collect()
}

fn read_one(params: &ConnectionParams, held: &mut Option<(String, Client)>) -> History {
    match params {
        ConnectionParams::Sqlite { path } => read_sqlite(path),
        ConnectionParams::Postgresql { schema, .. } => {
            let key = pg_key(params);
            if held
                .as_ref()
                .is_none_or(|(k, c)| *k != key || c.is_closed())
            {
                *held = None;
                match connect(params) {
                    Ok(client) => *held = Some((key, client)),
                    Err(e) => return classify_pg_connect_failure(params, e),
                }
            }
            let Some((_, client)) = held.as_mut() else {
                return History::Failed(DbError::Config("no connection".into()));
            };
            let result = read_pg(client, schema.as_deref());
            if matches!(result, History::Failed(_)) {
                // Do not reuse a connection that may be in a bad state.
                *held = None;
            }
            result
        }
    }
}

fn pg_key(params: &ConnectionParams) -> String {
    match params {
        ConnectionParams::Postgresql {
            host,
            port,
            user,
            password,
            dbname,
            ..
        } => format!("{host:?}\0{port:?}\0{user:?}\0{password:?}\0{dbname}"),
        ConnectionParams::Sqlite { path } => path.clone(),
    }
}

fn read_sqlite(path: &str) -> History {
    if !Path::new(path).exists() {
        return History::Missing(format!("database file {path} does not exist"));
    }
    match sqlite_rows(path) {
        Ok(rows) => History::Read(rows),
        Err(e) => History::Failed(e),
    }
}

fn sqlite_rows(path: &str) -> Result<Vec<HistoryRow>, DbError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| crate::backend::sqlite::open_failed(path, &e))?;
    let sq = |e: rusqlite::Error| DbError::query(e.to_string(), None);
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sq)?;
    let exists: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [RECORDER_TABLE],
            |r| r.get(0),
        )
        .map_err(sq)?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let recorder = Recorder::new(Dialect::Sqlite, None)?;
    let mut stmt = conn.prepare(&recorder.select_history()).map_err(sq)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(HistoryRow {
                app: r.get(0)?,
                name: r.get(1)?,
                applied: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        })
        .map_err(sq)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sq)
}

fn read_pg(client: &mut Client, schema: Option<&str>) -> History {
    // The schema (or, for a database of its own, the first schema of its search path, as
    // Django's introspection sees it) and whether the history table is in it.
    let probe = client.query_typed_one(
        "SELECT n.oid IS NOT NULL, EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
           WHERE c.relnamespace = n.oid AND c.relname = $2 AND c.relkind IN ('r', 'p')) \
         FROM (SELECT coalesce($1::text, current_schema()) AS nsp) s \
         LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.nsp",
        &[(&schema, Type::TEXT), (&RECORDER_TABLE, Type::NAME)],
    );
    let (schema_exists, table_exists) = match probe {
        Ok(row) => (row.get::<_, bool>(0), row.get::<_, bool>(1)),
        Err(e) => return History::Failed(e),
    };
    if let Some(schema) = schema {
        if !schema_exists {
            return History::Missing(format!("schema \"{schema}\" does not exist"));
        }
    }
    if !table_exists {
        return History::Read(Vec::new());
    }
    let sql = match Recorder::new(Dialect::Postgres, schema) {
        Ok(recorder) => recorder.select_history(),
        Err(e) => return History::Failed(e),
    };
    match client.query_typed(&sql, &[]) {
        Ok(rows) => History::Read(
            rows.iter()
                .map(|r| HistoryRow {
                    app: r.get(0),
                    name: r.get(1),
                    applied: r.get::<_, Option<String>>(2).unwrap_or_default(),
                })
                .collect(),
        ),
        Err(e) => History::Failed(e),
    }
}

/// A refused connection is "missing" only when the server answers and has no such database
/// (asked through its `postgres` maintenance database); anything else is a failure.
fn classify_pg_connect_failure(params: &ConnectionParams, error: DbError) -> History {
    let ConnectionParams::Postgresql { dbname, .. } = params else {
        return History::Failed(error);
    };
    let mut maintenance = params.clone();
    if let ConnectionParams::Postgresql { dbname, schema, .. } = &mut maintenance {
        *dbname = "postgres".into();
        *schema = None;
    }
    let Ok(mut client) = connect(&maintenance) else {
        return History::Failed(error);
    };
    match client.query_typed_opt(
        "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
        &[(dbname, Type::NAME)],
    ) {
        Ok(None) => History::Missing(format!("database \"{dbname}\" does not exist")),
        _ => History::Failed(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_written_for_each_dialect() {
        let pg = Recorder::new(Dialect::Postgres, Some("public_acme")).unwrap();
        assert_eq!(pg.table(), "\"public_acme\".\"django_migrations\"");
        assert_eq!(
            pg.insert(),
            "INSERT INTO \"public_acme\".\"django_migrations\" (\"app\", \"name\", \"applied\") \
             VALUES ($1, $2, statement_timestamp())"
        );
        let sqlite = Recorder::new(Dialect::Sqlite, None).unwrap();
        assert_eq!(
            sqlite.delete(),
            "DELETE FROM \"django_migrations\" WHERE \"app\" = ?1 AND \"name\" = ?2"
        );
        assert!(Recorder::new(Dialect::Postgres, Some("a\0b")).is_err());
    }

    #[test]
    fn missing_sqlite_file_is_missing_not_failed() {
        let path = std::env::temp_dir().join(format!("tm-status-{}.sqlite3", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let p = ConnectionParams::Sqlite {
            path: path.to_string_lossy().into_owned(),
        };
        let read = read_histories(std::slice::from_ref(&p), 4);
        assert!(matches!(read[0], History::Missing(_)));
        rusqlite::Connection::open(&path).unwrap();
        let read = read_histories(&[p.clone(), p], 4);
        assert!(matches!(&read[0], History::Read(rows) if rows.is_empty()));
        assert!(matches!(&read[1], History::Read(rows) if rows.is_empty()));
        let _ = std::fs::remove_file(&path);
    }
}
