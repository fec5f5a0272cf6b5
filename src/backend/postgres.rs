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

use std::time::Duration;

use tokio_postgres::types::Type;

use super::catalog::{
    schema_fingerprint_sql, FINGERPRINT_SQL, LOCK_HOLDERS_SQL, SCHEMA_RELATIONS_SQL,
};
use super::client::Client;
use super::pool;
use super::recorder::{Dialect, Recorder};

use super::{
    interrupted, quote_ident, Backend, Canceller, ConnectionParams, Interrupt, Recording, Running,
    StatementError, RECORDER_TABLE,
};
use crate::error::DbError;
use crate::graph::Key;

/// How many history tables the tenant's schema (`$1`; for a database of its own, the first
/// schema of its search path, as Django's introspection sees it) holds: `$2` is the table's
/// name. Both bound as `name`, not `text`, and the schema's oid looked up first: then the
/// catalog's (relname, relnamespace) index finds the one row. Compared as text, `relname`
/// reads all of `pg_class`; joined by name, the index still returns the table of every
/// tenant's schema (one per tenant: 5 ms a call at 200 tenants, growing with N).
const RECORDER_EXISTS: &str = "(SELECT count(*) FROM pg_catalog.pg_class c \
    WHERE c.relname = $2::name AND c.relkind IN ('r', 'p') \
    AND c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n \
    WHERE n.nspname = coalesce($1::name, current_schema())))";

/// PostgreSQL silently truncates longer identifiers, which could make two tenants share one.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// A migration transaction, whatever the server's or the role's default isolation: the history
/// guard (see `Recorder::guarded_write`) reads the rows in a statement after the record lock,
/// which sees what another run committed while this one waited only under READ COMMITTED (under
/// REPEATABLE READ the snapshot is the transaction's first statement's, taken before the wait).
const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED;\n";

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
    /// The history table was seen: a run asks up to three times per tenant (plan, create,
    /// squash check), and nothing a run does drops it.
    recorder_seen: bool,
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
    let pooled = pool::take(&key);
    Ok((pooled, key))
}

/// Keep a connection, idle and outside any transaction, for the next tenant.
pub(crate) fn give_back(key: String, client: Client) {
    pool::put(key, client);
}

/// Close the idle pooled connections to one database (before it is used as a template: a
/// database with other sessions cannot be copied).
pub fn release_idle(params: &ConnectionParams) -> Result<usize, DbError> {
    let (_, _, key) = config(params)?;
    let released = pool::release(&key);
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
        // The server process (to cancel its statement on Ctrl-C), whether the schema exists
        // and whether its history table does (see `recorder_exists`), in one round trip.
        let row = client.query_typed_one(
            &format!(
                "SELECT pg_catalog.pg_backend_pid(), $1::name IS NULL OR EXISTS \
                 (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1::name), {}",
                RECORDER_EXISTS
            ),
            &[(schema, Type::NAME), (&RECORDER_TABLE, Type::NAME)],
        )?;
        let (pid, schema_found) = (row.get::<_, i32>(0), row.get::<_, bool>(1));
        let recorder_seen = row.get::<_, i64>(2) > 0;
        let set_search_path = match schema {
            None => String::new(),
            Some(schema) => {
                if !schema_found {
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
            recorder_seen,
        })
    }

    fn client(&mut self) -> Result<&mut Client, DbError> {
        self.client
            .as_mut()
            .ok_or_else(|| DbError::Config("the connection is closed".into()))
    }

    /// BEGIN with the tenant's search path and timeouts, in one round trip.
    fn open_transaction(&mut self) -> Result<(), DbError> {
        let begin = format!("{BEGIN}{}", self.set_local);
        self.client()?.batch_execute(&begin)
    }

    fn rollback(&mut self) {
        if let Ok(client) = self.client() {
            let _ = client.batch_execute("ROLLBACK");
        }
    }

    fn record_and_commit(&mut self, recording: &Recording) -> Result<(), DbError> {
        let interrupted_now = self.interrupt.is_set();
        let guarded = self.guarded_recording(recording);
        let client = self.client()?;
        if interrupted_now {
            return Err(interrupted());
        }
        if let Some(sql) = guarded {
            let keys = |keys: &[Key], part: fn(&Key) -> &String| -> Vec<String> {
                keys.iter().map(|k| part(k).clone()).collect()
            };
            let (applied, unapplied) = (&recording.applied, &recording.unapplied);
            let row = client.query_typed_one(
                &sql,
                &[
                    (&keys(applied, |k| &k.0), Type::TEXT_ARRAY),
                    (&keys(applied, |k| &k.1), Type::TEXT_ARRAY),
                    (&keys(unapplied, |k| &k.0), Type::TEXT_ARRAY),
                    (&keys(unapplied, |k| &k.1), Type::TEXT_ARRAY),
                ],
            )?;
            // Nothing was written unless both hold; the caller rolls back.
            if !row.get::<_, bool>(0) {
                return Err(DbError::RunLockLost);
            }
            if !row.get::<_, bool>(1) {
                return Err(DbError::RecordedElsewhere);
            }
        }
        client.batch_execute("COMMIT")
    }

    /// The statement that guards and writes this recording's history rows
    /// (`Recorder::guarded_write`); None when nothing is recorded.
    fn guarded_recording(&self, recording: &Recording) -> Option<String> {
        if recording.applied.is_empty() && recording.unapplied.is_empty() {
            return None;
        }
        Some(
            self.recorder
                .guarded_write(&super::lock::still_held(&self.params)),
        )
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
        if self.recorder_seen {
            return Ok(true);
        }
        // Read with the connection's first query when the table was there already.
        let schema = self.schema.clone();
        let row = self.client()?.query_typed_one(
            &format!("SELECT {RECORDER_EXISTS}"),
            &[(&schema, Type::NAME), (&RECORDER_TABLE, Type::NAME)],
        )?;
        self.recorder_seen = row.get::<_, i64>(0) > 0;
        Ok(self.recorder_seen)
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
        let mut batch = String::from(BEGIN);
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
