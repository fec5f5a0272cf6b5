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
        "Migration {migration} failed for tenant '{tenant}': {source}\nStatement: {statement}"
    )]
    MigrationFailed {
        tenant: String,
        migration: String,
        statement: String,
        #[source]
        source: DbError,
    },
    /// A Python callback raised; the exception itself is re-raised by the glue.
    #[error("a Python callback raised an exception")]
    Hook,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
