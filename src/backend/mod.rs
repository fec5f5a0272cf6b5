//! One small trait, one implementation per database. The executor is written once against it.

mod catalog;
pub mod client;
pub mod lock;
pub mod pool;
pub mod postgres;
pub mod recorder;
pub mod registry;
pub mod sqlite;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::error::DbError;
use crate::graph::Key;

pub use recorder::RECORDER_TABLE;

/// How to reach one database, as resolved by the Python side from Django's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "vendor", rename_all = "lowercase")]
pub enum ConnectionParams {
    Sqlite {
        path: String,
    },
    Postgresql {
        #[serde(default)]
        host: Option<String>,
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        password: Option<String>,
        dbname: String,
        /// Schema isolation: the only schema on the search path of every transaction.
        #[serde(default)]
        schema: Option<String>,
        #[serde(default)]
        connect_timeout: Option<u64>,
        /// Zero-downtime mode: `SET LOCAL lock_timeout` in every migration transaction, so a
        /// statement that cannot get its lock fails fast instead of queueing the application
        /// behind it.
        #[serde(default)]
        lock_timeout_ms: Option<u64>,
        #[serde(default)]
        statement_timeout_ms: Option<u64>,
        #[serde(default)]
        application_name: Option<String>,
    },
}

impl ConnectionParams {
    /// The error says where, never what: the text may hold a password.
    pub fn from_json(text: &str) -> Result<Self, DbError> {
        serde_json::from_str(text).map_err(|e| {
            DbError::Config(format!(
                "invalid connection parameters (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }
}

/// Rows to write to, and delete from, the history table together with a migration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    pub applied: Vec<Key>,
    pub unapplied: Vec<Key>,
}

/// A failing statement of a migration, kept with the statement so the user sees which one.
#[derive(Debug)]
pub struct StatementError {
    pub statement: String,
    pub source: DbError,
}

impl From<DbError> for StatementError {
    fn from(source: DbError) -> Self {
        StatementError {
            statement: String::new(),
            source,
        }
    }
}

/// Set when the user interrupts the run: a migration still in progress is rolled back instead
/// of committed, and no further migration starts.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The statement a connection is running now, read from another thread by the heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Running(Arc<Mutex<Option<String>>>);

impl Running {
    pub fn set(&self, statement: Option<String>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = statement;
        }
    }

    pub fn get(&self) -> Option<String> {
        self.0.lock().ok()?.clone()
    }
}

/// Stops the statement a connection is running, from another thread.
pub enum Canceller {
    Postgres(tokio_postgres::CancelToken),
    Sqlite(rusqlite::InterruptHandle),
}

impl Canceller {
    pub fn cancel(&self) {
        match self {
            // Best effort: a statement that already finished has nothing to cancel, and the
            // interrupt flag stops the migration before its commit anyway.
            Canceller::Postgres(token) => client::cancel(token),
            Canceller::Sqlite(handle) => handle.interrupt(),
        }
    }
}

pub trait Backend: Send {
    /// `MigrationRecorder.has_table`, as seen by this tenant only.
    fn recorder_exists(&mut self) -> Result<bool, DbError>;
    /// Create the history table with the DDL Django compiled for this vendor (in one
    /// transaction, as a migration without history rows), unless it exists.
    fn create_recorder(&mut self, ddl: &[String]) -> Result<(), DbError> {
        if self.recorder_exists()? {
            return Ok(());
        }
        self.run_migration(ddl, &Recording::default())
            .map_err(|e| e.source)
    }
    /// Applied `(app, name)` rows; empty when the table does not exist yet.
    fn applied(&mut self) -> Result<Vec<Key>, DbError>;
    /// Run one migration's statements and its history rows in one transaction.
    fn run_migration(
        &mut self,
        statements: &[String],
        recording: &Recording,
    ) -> Result<(), StatementError>;
    /// A digest of everything compiled SQL may depend on: the tenant's catalog (tables, columns,
    /// constraints, indexes, sequences, without schema names), its history rows and the server
    /// version. Equal digests mean SQL compiled on one tenant is exact for the other.
    fn fingerprint(&mut self) -> Result<String, DbError>;
    /// The server process serving this connection (PostgreSQL), for monitoring from outside.
    fn backend_pid(&self) -> Option<i32> {
        None
    }
    /// Something to stop the running statement with, from another thread.
    fn canceller(&self) -> Option<Canceller> {
        None
    }
    /// Where the statement running now can be read, from another thread.
    fn running(&self) -> Running;
    /// Who holds locks on the tenant's tables right now (after a lock timeout: what the
    /// migration waited on), one `"table" (mode, pid N, state: query)` per holder.
    fn lock_holders(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Write history rows without running anything (`--fake`, soft-applied, squash bookkeeping).
    fn record(&mut self, recording: &Recording) -> Result<(), DbError> {
        self.run_migration(&[], recording).map_err(|e| e.source)
    }
}

/// Quote an identifier the way both SQLite and PostgreSQL read it: double quotes, doubled inside.
/// NUL cannot be represented in either, so it is refused rather than truncated.
pub fn quote_ident(name: &str) -> Result<String, DbError> {
    if name.contains('\0') {
        return Err(DbError::Config(
            "identifier contains a NUL character".into(),
        ));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A stable-within-process digest of a text (two independent 64-bit hashes and the length).
pub fn digest(text: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut a = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    (text.len(), "tenant-migrate", text).hash(&mut b);
    format!("{:016x}{:016x}-{}", a.finish(), b.finish(), text.len())
}

pub fn open(params: &ConnectionParams, interrupt: Interrupt) -> Result<Box<dyn Backend>, DbError> {
    match params {
        ConnectionParams::Sqlite { path } => {
            Ok(Box::new(sqlite::SqliteBackend::open(path, interrupt)?))
        }
        ConnectionParams::Postgresql { .. } => Ok(Box::new(postgres::PostgresBackend::open(
            params, interrupt,
        )?)),
    }
}

/// Close this process's idle pooled connections to a database (none for SQLite); returns how
/// many were closed.
pub fn release_idle(params: &ConnectionParams) -> Result<usize, DbError> {
    match params {
        ConnectionParams::Sqlite { .. } => Ok(0),
        ConnectionParams::Postgresql { .. } => postgres::release_idle(params),
    }
}

/// The error a migration gets when the user interrupted it before its commit.
pub fn interrupted() -> DbError {
    DbError::Query {
        message: "interrupted".into(),
        sqlstate: Some(crate::error::QUERY_CANCELED.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_nul_refused() {
        assert_eq!(quote_ident("public_acme").unwrap(), "\"public_acme\"");
        assert_eq!(
            quote_ident("a\"; DROP TABLE x; --").unwrap(),
            "\"a\"\"; DROP TABLE x; --\""
        );
        assert!(quote_ident("a\0b").is_err());
    }
}
