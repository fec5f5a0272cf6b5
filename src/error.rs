//! One error enum per layer. Texts of `PlanError` are Django's own, word for word, so the
//! command can show them unchanged; they are mapped to Python exceptions in `errors.rs`.

use thiserror::Error;

/// Graph and plan decisions (pure; no database involved).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PlanError {
    #[error("invalid migration graph from Python: {0}")]
    BadGraph(String),
    #[error("{0}")]
    NodeNotFound(String),
    #[error("{0}")]
    CircularDependency(String),
    #[error("Migration {migration} is applied before its dependency {dependency}.")]
    InconsistentHistory {
        migration: String,
        dependency: String,
    },
    #[error(
        "Conflicting migrations detected; multiple leaf nodes in the migration graph: ({0}).\n\
         To fix them run 'python manage.py makemigrations --merge'"
    )]
    Conflicts(String),
    #[error("App '{0}' does not have migrations.")]
    AppWithoutMigrations(String),
    #[error("Cannot find a migration matching '{name}' from app '{app}'.")]
    MigrationNotFound { app: String, name: String },
    #[error("More than one migration matches '{name}' in app '{app}'. Please be more specific.")]
    AmbiguousMigration { app: String, name: String },
    #[error("{0}")]
    InvalidPlan(String),
}

/// Talking to a database (master registry or tenant).
#[derive(Debug, Error)]
pub enum DbError {
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{message}")]
    Query {
        message: String,
        sqlstate: Option<String>,
    },
    #[error("{0}")]
    Config(String),
    /// The run lock's connection ended (terminated, or closed by a proxy) while the run went on.
    #[error("this run's lock on the tenant was lost (its database connection ended)")]
    RunLockLost,
    /// Another run wrote (or deleted) the history rows this migration was about to write.
    #[error("another run recorded this migration meanwhile")]
    RecordedElsewhere,
}

impl DbError {
    /// Classify a server error: 42501 (insufficient_privilege) gets its own variant because the
    /// spec gives it its own message.
    pub fn query(message: String, sqlstate: Option<String>) -> DbError {
        if sqlstate.as_deref() == Some("42501") {
            DbError::PermissionDenied(message)
        } else {
            DbError::Query { message, sqlstate }
        }
    }
}

/// A statement as the user wrote it: backends get it with or without Django's closing `;`.
fn statement_text(statement: &str) -> &str {
    let trimmed = statement.trim_end();
    trimmed.strip_suffix(';').unwrap_or(trimmed).trim_end()
}

/// Everything a call from Python can fail with.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("Tenant '{0}' does not exist.\nPlease create one with the tenant id '{0}' first.")]
    TenantNotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A statement of a migration failed; nothing of that migration was kept.
    #[error(
        "Migration {migration} failed for tenant '{tenant}': {source}\nStatement: {}",
        statement_text(.statement)
    )]
    MigrationFailed {
        tenant: String,
        migration: String,
        statement: String,
        #[source]
        source: DbError,
    },
    /// A non-atomic migration failed part way: what it ran before the failure is committed.
    /// `detail` is the failure as for any migration (`Migration ... failed for tenant ...`).
    #[error("{detail}\n{NOT_ROLLED_BACK}")]
    NotRolledBack {
        tenant: String,
        migration: String,
        detail: String,
    },
    /// Another run changed the tenant while this one applied `migration` (see `lock.rs`).
    #[error(
        "Migration {migration} was not committed for tenant '{tenant}': {source}. It was rolled \
         back and no further migration was started; run again once no other run is migrating \
         the tenant."
    )]
    Concurrent {
        tenant: String,
        migration: String,
        #[source]
        source: DbError,
    },
    /// Another process holds this tenant's migration lock (see `lock.rs`).
    #[error("another migration is running for tenant '{0}'")]
    Busy(String),
    /// The run was interrupted (Ctrl-C); the migration in progress, if any, was rolled back.
    #[error("{}", interrupted_text(.tenant, .rolled_back.as_deref()))]
    Interrupted {
        tenant: String,
        rolled_back: Option<String>,
    },
    /// A Python step hit `lock_timeout` or `statement_timeout`: retried like a SQL step.
    #[error("{0}")]
    HookTimeout(String),
    /// A Python callback raised; the exception itself is re-raised by the glue.
    #[error("a Python callback raised an exception")]
    Hook,
}

impl DbError {
    /// The server gave up waiting for a lock (`lock_timeout`, 55P03) or cancelled the statement
    /// (`statement_timeout` or a cancel request, 57014): worth a retry once the blockers go.
    pub fn is_timeout(&self) -> bool {
        matches!(self, DbError::Query { sqlstate: Some(code), .. } if code == "55P03" || code == "57014")
    }
}

impl Error {
    /// A migration that failed only because it could not get its locks in time.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::MigrationFailed { source, .. } => source.is_timeout(),
            Error::HookTimeout(_) => true,
            _ => false,
        }
    }
}

/// What is known of a non-atomic migration that failed part way (Django runs its statements
/// outside a transaction, and records it only once every operation has run).
pub const NOT_ROLLED_BACK: &str =
    "This migration is not atomic (atomic = False), so it was not rolled \
back: every statement it ran before the failure is committed. It is not recorded as applied and \
was not retried; check the tenant and finish or undo that work before running it again.";

fn interrupted_text(tenant: &str, rolled_back: Option<&str>) -> String {
    match rolled_back {
        Some(migration) => {
            format!("Interrupted: migration {migration} was rolled back for tenant '{tenant}'.")
        }
        None => format!("Interrupted between migrations for tenant '{tenant}'."),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
