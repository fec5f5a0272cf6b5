//! PostgreSQL tenants: a database of their own, or a schema of their own in a shared database.
//!
//! In schema isolation every transaction starts with `SET LOCAL search_path` naming the tenant's
//! schema only: it survives a transaction-pooling proxy (a plain `SET` would leak to whoever gets
//! the server connection next) and an unqualified table that is not in the tenant's schema fails
//! instead of resolving to `public` or to another tenant. Reads outside transactions name the
//! schema explicitly (quoted, or as a bound value), so they need no search path at all.
//!
//! Parameterised queries use `query_typed`: the unnamed statement, parsed, bound and executed
//! in one round trip. A named prepared statement (what `query` makes) would be parsed on one
//! server connection and could be executed on another behind a transaction-pooling proxy.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio_postgres::types::Type;

use super::client::Client;
use super::recorder::{Dialect, Recorder};

use super::{
    interrupted, quote_ident, Backend, Canceller, ConnectionParams, Interrupt, Recording, Running,
    StatementError, RECORDER_TABLE,
};
use crate::error::DbError;
use crate::graph::Key;

/// PostgreSQL silently truncates longer identifiers, which could make two tenants share one.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Idle connections kept for reuse, all databases together, the most recently used last.
///
/// The next tenant of the same database (schema isolation, the master) reuses one instead of
/// paying a connection start-up. The bound is on the total, not per database: with database
/// isolation every tenant is a database of its own, visited once per run, and a per-database
/// pool would keep one idle session per tenant until the server's `max_connections` (or the
/// role's `CONNECTION LIMIT`) refuses the next one. The oldest idle connection is closed first.
const DEFAULT_IDLE_LIMIT: usize = 16;

struct Pool {
    idle: Vec<(String, Client)>,
    limit: usize,
}

impl Pool {
    fn take(&mut self, key: &str) -> Option<Client> {
        let at = self.idle.iter().rposition(|(k, _)| k == key)?;
        Some(self.idle.remove(at).1)
    }

    fn put(&mut self, key: String, client: Client) {
        self.idle.push((key, client));
        self.trim();
    }

    fn trim(&mut self) {
        let excess = self.idle.len().saturating_sub(self.limit);
        self.idle.drain(..excess);
    }
}

fn pool() -> &'static Mutex<Pool> {
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Mutex::new(Pool {
            idle: Vec::new(),
            limit: DEFAULT_IDLE_LIMIT,
        })
    })
}

/// Close every idle pooled connection (a test tearing down its database, say); returns how many.
pub fn close_idle() -> usize {
    match pool().lock() {
        Ok(mut p) => p.idle.drain(..).count(),
        Err(_) => 0,
    }
}

/// Keep at most `limit` idle connections from now on (0: close each when its tenant is done),
/// for a role whose `CONNECTION LIMIT` leaves no room for idle ones; returns the previous limit.
pub fn set_idle_limit(limit: usize) -> usize {
    match pool().lock() {
        Ok(mut p) => {
            let previous = std::mem::replace(&mut p.limit, limit);
            p.trim();
            previous
        }
        Err(_) => DEFAULT_IDLE_LIMIT,
    }
}

pub struct PostgresBackend {
    client: Option<Client>,
    pool_key: String,
    /// The tenant's schema (schema isolation), raw; `None` for a database of its own.
    schema: Option<String>,
    /// What every migration transaction starts with: `SET LOCAL search_path TO "schema";`
    /// (schema isolation) and the zero-downtime timeouts, or nothing.
    set_local: String,
    interrupt: Interrupt,
    running: Running,
    /// Timeouts are set: statements go one by one (see `run_step_by_step`).
    step_by_step: bool,
    /// The history table, schema-qualified when the tenant has a schema.
    recorder: Recorder,
    pid: Option<i32>,
    /// How this tenant was reached: the run lock this process holds for it is looked up by it.
    params: ConnectionParams,
}

pub fn check_identifier(kind: &str, name: &str) -> Result<(), DbError> {
    if name.is_empty() {
        return Err(DbError::Config(format!("{kind} name is empty")));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(DbError::Config(format!(
            "{kind} name '{name}' is {} bytes long; PostgreSQL allows at most {MAX_IDENTIFIER_BYTES}",
            name.len()
        )));
    }
    quote_ident(name).map(|_| ())
}

/// How long connecting (start-up and authentication included) may take: the `connect_timeout`
/// given (libpq's, from the alias's OPTIONS), or this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP keepalives: a server that died under a long statement is noticed within about a minute.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;

fn config(
    params: &ConnectionParams,
) -> Result<(tokio_postgres::Config, Duration, String), DbError> {
    let ConnectionParams::Postgresql {
        host,
        port,
        user,
        password,
        dbname,
        connect_timeout,
        application_name,
        ..
    } = params
    else {
        return Err(DbError::Config("not PostgreSQL parameters".into()));
    };
    check_identifier("database", dbname)?;
    let host = host
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    let port = port.unwrap_or(5432);
    let user = user
        .as_deref()
        .filter(|u| !u.is_empty())
        .unwrap_or("postgres");
    let mut config = tokio_postgres::Config::new();
    config.host(host).port(port).dbname(dbname).user(user);
    if let Some(password) = password.as_deref().filter(|p| !p.is_empty()) {
        config.password(password);
    }
    let connect_timeout = connect_timeout
        .filter(|s| *s > 0)
        .map_or(CONNECT_TIMEOUT, Duration::from_secs);
    config
        .connect_timeout(connect_timeout)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES);
    config.application_name(
        application_name
            .as_deref()
            .unwrap_or("django-tenant-migrate"),
    );
    // The password is part of the key: a pooled connection is only reused with the same login.
    let key = format!(
        "{host}\0{port}\0{dbname}\0{user}\0{}",
        password.as_deref().unwrap_or("")
    );
    Ok((config, connect_timeout, key))
}

/// A connection of its own (not pooled), within the connect timeout.
pub fn connect(params: &ConnectionParams) -> Result<Client, DbError> {
    let (config, timeout, _) = config(params)?;
    Client::connect(&config, timeout)
}

/// An idle pooled connection to the same server, database and login, if one is kept, with
/// its pool key (to give it back with `give_back`).
pub(crate) fn take_pooled(params: &ConnectionParams) -> Result<(Option<Client>, String), DbError> {
    let (_, _, key) = config(params)?;
    let pooled = pool()
        .lock()
        .ok()
        .and_then(|mut p| p.take(&key))
        .filter(|c| !c.is_closed());
    Ok((pooled, key))
}

/// Keep a connection, idle and outside any transaction, for the next tenant.
pub(crate) fn give_back(key: String, client: Client) {
    if client.is_closed() {
        return;
    }
    if let Ok(mut p) = pool().lock() {
        p.put(key, client);
    }
}

/// Close the idle pooled connections to one database (before it is used as a template: a
/// database with other sessions cannot be copied).
pub fn release_idle(params: &ConnectionParams) -> Result<usize, DbError> {
    let (_, _, key) = config(params)?;
    let released = pool().lock().map_or(0, |mut p| {
        let before = p.idle.len();
        p.idle.retain(|(k, _)| *k != key);
        before - p.idle.len()
    });
    Ok(released)
}

impl PostgresBackend {
    pub fn open(params: &ConnectionParams, interrupt: Interrupt) -> Result<Self, DbError> {
        let ConnectionParams::Postgresql {
            schema,
            lock_timeout_ms,
            statement_timeout_ms,
            ..
        } = params
        else {
            return Err(DbError::Config("not PostgreSQL parameters".into()));
        };
        if let Some(schema) = schema {
            check_identifier("schema", schema)?;
        }
        let (pooled, pool_key) = take_pooled(params)?;
        let mut client = match pooled {
            Some(c) => c,
            None => connect(params)?,
        };
        let recorder = Recorder::new(Dialect::Postgres, schema.as_deref())?;
        let set_search_path = match schema {
            None => String::new(),
            Some(schema) => {
                let exists = client
                    .query_typed_opt(
                        "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
                        // As `name`: the catalog's index on nspname answers, not a scan.
                        &[(schema, Type::NAME)],
                    )?
                    .is_some();
                if !exists {
                    return Err(DbError::Connect(format!(
                        "{}: schema \"{schema}\" does not exist",
                        client.server()
                    )));
                }
                format!("SET LOCAL search_path TO {};\n", quote_ident(schema)?)
            }
        };
        // Every migration transaction takes the tenant's record lock first (see `backend/lock.rs`).
        let mut set_local = format!(
            "{};\n{set_search_path}",
            super::lock::record_lock_sql(params).map_err(|e| DbError::Config(e.to_string()))?
        );
        // Integers formatted by Rust: nothing user-supplied reaches the statement text.
        if let Some(ms) = lock_timeout_ms {
            set_local.push_str(&format!("SET LOCAL lock_timeout = '{ms}ms';\n"));
        }
        if let Some(ms) = statement_timeout_ms {
            set_local.push_str(&format!("SET LOCAL statement_timeout = '{ms}ms';\n"));
        }
        let pid = client
            .query_typed_one("SELECT pg_backend_pid()", &[])?
            .get::<_, i32>(0);
        Ok(PostgresBackend {
            pid: Some(pid),
            client: Some(client),
            pool_key,
            schema: schema.clone(),
            set_local,
            interrupt,
            running: Running::default(),
            step_by_step: lock_timeout_ms.is_some() || statement_timeout_ms.is_some(),
            recorder,
            params: params.clone(),
        })
    }

    fn client(&mut self) -> Result<&mut Client, DbError> {
        self.client
            .as_mut()
            .ok_or_else(|| DbError::Config("the connection is closed".into()))
    }

    /// BEGIN with the tenant's search path and timeouts, in one round trip.
    fn open_transaction(&mut self) -> Result<(), DbError> {
        let begin = format!("BEGIN;\n{}", self.set_local);
        self.client()?.batch_execute(&begin)
    }

    fn rollback(&mut self) {
        if let Ok(client) = self.client() {
            let _ = client.batch_execute("ROLLBACK");
        }
    }

    fn record_and_commit(&mut self, recording: &Recording) -> Result<(), DbError> {
        let insert = self.recorder.insert();
        let delete = self.recorder.delete();
        let interrupted_now = self.interrupt.is_set();
        let guard = self.history_guard(recording);
        let client = self.client()?;
        if interrupted_now {
            return Err(interrupted());
        }
        if let Some((sql, applied, unapplied)) = guard {
            let keys = |keys: &[Key], part: fn(&Key) -> &String| -> Vec<String> {
                keys.iter().map(|k| part(k).clone()).collect()
            };
            let row = client.query_typed_one(
                &sql,
                &[
                    (&keys(&applied, |k| &k.0), Type::TEXT_ARRAY),
                    (&keys(&applied, |k| &k.1), Type::TEXT_ARRAY),
                    (&keys(&unapplied, |k| &k.0), Type::TEXT_ARRAY),
                    (&keys(&unapplied, |k| &k.1), Type::TEXT_ARRAY),
                ],
            )?;
            let (alive, present, still) = (
                row.get::<_, bool>(0),
                row.get::<_, i64>(1),
                row.get::<_, i64>(2),
            );
            if !alive {
                return Err(DbError::RunLockLost);
            }
            // Rows to write must be absent, and of rows to delete at least one present (a
            // squash's own row may be missing): otherwise another run got there first.
            if present > 0 || (applied.is_empty() && !unapplied.is_empty() && still == 0) {
                return Err(DbError::RecordedElsewhere);
            }
        }
        for (app, name) in &recording.applied {
            client.query_typed(&insert, &[(app, Type::TEXT), (name, Type::TEXT)])?;
        }
        for (app, name) in &recording.unapplied {
            client.query_typed(&delete, &[(app, Type::TEXT), (name, Type::TEXT)])?;
        }
        client.batch_execute("COMMIT")
    }

    /// The query that checks, in the migration's transaction and under its record lock, that
    /// this process still holds the tenant's run lock (when it took one) and that no other run
    /// wrote or deleted the rows this recording is about (see `backend/lock.rs`); `$1`/`$2` are the
    /// apps and names to insert, `$3`/`$4` those to delete. None when nothing is recorded.
    fn history_guard(&self, recording: &Recording) -> Option<(String, Vec<Key>, Vec<Key>)> {
        if recording.applied.is_empty() && recording.unapplied.is_empty() {
            return None;
        }
        let alive = super::lock::held(&self.params)
            .map_or_else(|| "true".to_string(), super::lock::alive_condition);
        let matching = |apps: &str, names: &str| {
            format!(
                "(SELECT count(*) FROM {} r WHERE (r.\"app\", r.\"name\") IN \
                 (SELECT * FROM unnest({apps}::text[], {names}::text[])))",
                self.recorder.table()
            )
        };
        let sql = format!(
            "SELECT {alive}, {}, {}",
            matching("$1", "$2"),
            matching("$3", "$4")
        );
        Some((sql, recording.applied.clone(), recording.unapplied.clone()))
    }

    /// Each statement in a round trip of its own, inside the open transaction, naming the one
    /// that fails.
    fn each_statement(&mut self, statements: &[String]) -> Result<(), StatementError> {
        let running = self.running.clone();
        let client = self.client()?;
        for statement in statements {
            running.set(Some(statement.clone()));
            let result = client.batch_execute(statement);
            running.set(None);
            result.map_err(|e| StatementError {
                statement: statement.clone(),
                source: e,
            })?;
        }
        Ok(())
    }

    /// Records the step and commits it, or rolls the whole step back.
    fn commit(&mut self, recording: &Recording) -> Result<(), StatementError> {
        self.record_and_commit(recording).map_err(|e| {
            self.rollback();
            StatementError::from(e)
        })
    }

    /// Zero-downtime mode: one round trip per statement, so a statement that times out waiting
    /// for its lock is known at once, without running the migration a second time to find it.
    fn run_step_by_step(
        &mut self,
        statements: &[String],
        recording: &Recording,
    ) -> Result<(), StatementError> {
        self.open_transaction()?;
        if let Err(e) = self.each_statement(statements) {
            self.rollback();
            return Err(e);
        }
        self.commit(recording)
    }

    /// Runs the statements again one by one, only to name the one that fails, and rolls back.
    fn locate_failure(&mut self, statements: &[String], batch_error: DbError) -> StatementError {
        if self.open_transaction().is_err() {
            return StatementError::from(batch_error);
        }
        let located = self.each_statement(statements).err();
        self.rollback();
        located.unwrap_or_else(|| StatementError::from(batch_error))
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            give_back(std::mem::take(&mut self.pool_key), client);
        }
    }
}

impl Backend for PostgresBackend {
    fn backend_pid(&self) -> Option<i32> {
        self.pid
    }

    fn canceller(&self) -> Option<Canceller> {
        self.client
            .as_ref()
            .map(|c| Canceller::Postgres(c.cancel_token()))
    }

    fn running(&self) -> Running {
        self.running.clone()
    }

    fn lock_holders(&mut self) -> Vec<String> {
        let schema = self.schema.clone();
        let Ok(client) = self.client() else {
            return Vec::new();
        };
        let rows = client
            .query_typed(LOCK_HOLDERS_SQL, &[(&schema, Type::TEXT)])
            .unwrap_or_default();
        rows.iter()
            .map(|r| {
                let table: String = r.get(0);
                let mode: String = r.get(1);
                let pid: i32 = r.get(2);
                let state: String = r.get(3);
                let query: String = r.get(4);
                format!("\"{table}\" ({mode}, pid {pid}, {state}: {query})")
            })
            .collect()
    }

    fn recorder_exists(&mut self) -> Result<bool, DbError> {
        // The tenant's schema, or for a database of its own the first schema of its search
        // path, as Django's introspection sees it. Both names are bound as `name`, not `text`,
        // and the schema's oid is looked up first: then the catalog's (relname, relnamespace)
        // index finds the one row. Compared as text, `relname` reads all of `pg_class`; joined
        // by name, the index still returns the table of every tenant's schema (one per
        // tenant: 5 ms a call at 200 tenants, three calls per tenant, growing with N).
        let schema = self.schema.clone();
        let row = self.client()?.query_typed_one(
            "SELECT count(*) FROM pg_catalog.pg_class c \
                 WHERE c.relname = $1 AND c.relkind IN ('r', 'p') \
                 AND c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n \
                 WHERE n.nspname = coalesce($2, current_schema()))",
            &[(&RECORDER_TABLE, Type::NAME), (&schema, Type::NAME)],
        )?;
        Ok(row.get::<_, i64>(0) > 0)
    }

    fn applied(&mut self) -> Result<Vec<Key>, DbError> {
        if !self.recorder_exists()? {
            return Ok(Vec::new());
        }
        let sql = self.recorder.select_applied();
        let rows = self.client()?.query_typed(&sql, &[])?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect())
    }

    /// One round trip: the catalog digest, the history rows and the server version. Called
    /// once the history table exists (the executor creates it first); the query fails
    /// otherwise, so no separate existence check costs a round trip on the replay path.
    fn fingerprint(&mut self) -> Result<String, DbError> {
        let schema = self.schema.clone();
        let history = format!(
            "current_setting('server_version_num'), \
             (SELECT coalesce(string_agg(\"app\" || '.' || \"name\", ',' ORDER BY \"app\", \"name\"), '') FROM {})",
            self.recorder.table()
        );
        let row = match &schema {
            None => self.client()?.query_typed_one(
                &format!("SELECT ({FINGERPRINT_SQL}), {history}"),
                &[(&schema, Type::TEXT)],
            )?,
            Some(name) => {
                let relations: Vec<u32> = self
                    .client()?
                    .query_typed_one(SCHEMA_RELATIONS_SQL, &[(name, Type::TEXT)])?
                    .get(0);
                self.client()?.query_typed_one(
                    &format!("SELECT ({}), {history}", schema_fingerprint_sql()),
                    &[(&schema, Type::TEXT), (&relations, Type::OID_ARRAY)],
                )?
            }
        };
        let catalog: String = row.get(0);
        let version: String = row.get(1);
        let history: String = row.get(2);
        Ok(super::digest(&format!(
            "postgres {version}\n{catalog}\n{history}"
        )))
    }

    /// One round trip for the migration's statements (with BEGIN and the search path), one per
    /// history row, one for COMMIT. If the batch fails, the same statements are re-run one by
    /// one in a transaction that is rolled back, only to name the failing statement.
    fn run_migration(
        &mut self,
        statements: &[String],
        recording: &Recording,
    ) -> Result<(), StatementError> {
        if self.step_by_step {
            return self.run_step_by_step(statements, recording);
        }
        let mut batch = String::from("BEGIN;\n");
        batch.push_str(&self.set_local);
        for statement in statements {
            // A newline first ends a trailing `--` comment; empty statements are harmless.
            batch.push_str(statement);
            batch.push_str("\n;\n");
        }
        // One round trip: which of its statements runs is not known from here.
        self.running
            .set(statements.first().map(|first| match statements.len() {
                1 => first.clone(),
                n => format!("{first} (and {} more sent with it)", n - 1),
            }));
        let result = self.client()?.batch_execute(&batch);
        self.running.set(None);
        if let Err(e) = result {
            self.rollback();
            // Cancelled by the user: running the statements again to name one would undo that.
            if self.interrupt.is_set() {
                return Err(StatementError::from(e));
            }
            return Err(self.locate_failure(statements, e));
        }
        self.commit(recording)
    }
}

/// Locks other sessions hold on the tenant's tables (`$1`: its schema, NULL for the connection's
/// current schema), each with what the holder is doing.
const LOCK_HOLDERS_SQL: &str = r#"
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
const FINGERPRINT_SQL: &str = r#"
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
const SCHEMA_RELATIONS_SQL: &str = r#"
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

fn schema_fingerprint_sql() -> &'static str {
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
