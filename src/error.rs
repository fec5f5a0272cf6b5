//! The one error boundary of the core: one enum per concern (`PlanError` for graph and plan
//! decisions, `DbError` for talking to a database), the top-level `Error` they convert into,
//! and the one place (`impl From<Error> for PyErr`, below) where an `Error` becomes a Python
//! exception. Every exception class is created here, exported by the module and documented in
//! `_core.pyi`; all derive from `TenantMigrateError`. Texts of `PlanError` are Django's own,
//! word for word, so the command can show them unchanged.

use pyo3::prelude::*;
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

/// SQLSTATE `lock_not_available`: a `lock_timeout` expired.
pub const LOCK_NOT_AVAILABLE: &str = "55P03";
/// SQLSTATE `query_canceled`: a `statement_timeout` expired, or a cancel request.
pub const QUERY_CANCELED: &str = "57014";
/// SQLSTATE `insufficient_privilege`: it has a message of its own (the user lacks a privilege).
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// The SQLSTATEs after which a migration is worth a retry once the blockers go.
pub const TIMEOUT_SQLSTATES: [&str; 2] = [LOCK_NOT_AVAILABLE, QUERY_CANCELED];

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
        if sqlstate.as_deref() == Some(INSUFFICIENT_PRIVILEGE) {
            DbError::PermissionDenied(message)
        } else {
            DbError::Query { message, sqlstate }
        }
    }
}

/// A statement as the user wrote it: backends get it with or without Django's closing `;`.
pub fn statement_text(statement: &str) -> &str {
    let trimmed = statement.trim_end();
    trimmed.strip_suffix(';').unwrap_or(trimmed).trim_end()
}

/// The text of a failed migration: which tenant, which migration (`app.name`, shown as human
/// output names a migration: `app/name.py`), why, and (when a statement was running) the
/// statement as the user wrote it.
pub fn migration_failed_text(
    tenant: &str,
    migration: &str,
    reason: &str,
    statement: Option<&str>,
) -> String {
    let shown = match migration.split_once('.') {
        Some((app, name)) => format!("{app}/{name}.py"),
        None => migration.to_string(),
    };
    let mut text = format!("Migration {shown} failed for tenant '{tenant}': {reason}");
    if let Some(statement) = statement.map(statement_text).filter(|s| !s.is_empty()) {
        text.push_str("\nStatement: ");
        text.push_str(statement);
    }
    text
}

/// The two lines for an id no registry row has: it does not exist, create it first.
pub fn tenant_not_found_text(tenant: &str) -> String {
    format!(
        "Tenant '{tenant}' does not exist.\nPlease create one with the tenant id '{tenant}' first."
    )
}

/// Everything a call from Python can fail with.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{}", tenant_not_found_text(.0))]
    TenantNotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A statement of a migration failed; nothing of that migration was kept.
    #[error(
        "{}",
        migration_failed_text(.tenant, .migration, &.source.to_string(), Some(.statement))
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
    /// Another run changed the tenant while this one applied `migration` (see `backend/lock.rs`).
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
    /// Another process holds this tenant's migration lock (see `backend/lock.rs`).
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
        matches!(self, DbError::Query { sqlstate: Some(code), .. } if TIMEOUT_SQLSTATES.contains(&code.as_str()))
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

// --- Python exceptions ----------------------------------------------------------------

/// The exception classes, by their Python names (`py::PlanError` is the Python class of
/// the `PlanError` enum above).
pub mod py {
    use pyo3::create_exception;
    use pyo3::exceptions::PyException;

    create_exception!(
        _core,
        TenantMigrateError,
        PyException,
        "Root of every error raised by tenant_migrate._core."
    );
    create_exception!(
        _core,
        TenantNotFound,
        TenantMigrateError,
        "No tenant with this id in the registry."
    );
    create_exception!(
        _core,
        ConnectionFailed,
        TenantMigrateError,
        "The tenant's (or master) database cannot be reached."
    );
    create_exception!(
        _core,
        PermissionDenied,
        TenantMigrateError,
        "The database refused for lack of privilege (SQLSTATE 42501)."
    );
    create_exception!(
        _core,
        DatabaseError,
        TenantMigrateError,
        "Any other database error."
    );
    create_exception!(
        _core,
        InvalidArgument,
        TenantMigrateError,
        "Bad input handed to the core."
    );
    create_exception!(
        _core,
        MigrationFailed,
        TenantMigrateError,
        "A migration's statement failed; args: (message, tenant, migration, statement, reason)."
    );
    create_exception!(
        _core,
        NotRolledBack,
        MigrationFailed,
        "A non-atomic migration failed part way: what it ran before the failure is committed; it \
         was neither rolled back nor retried. args as MigrationFailed."
    );
    create_exception!(
        _core,
        PlanError,
        TenantMigrateError,
        "Django would refuse to plan this migration run."
    );
    create_exception!(
        _core,
        NodeNotFound,
        PlanError,
        "A dependency names a migration that does not exist (Django's NodeNotFoundError)."
    );
    create_exception!(
        _core,
        CircularDependency,
        PlanError,
        "The graph has a cycle (Django's CircularDependencyError)."
    );
    create_exception!(
        _core,
        InconsistentHistory,
        PlanError,
        "An applied migration has an unapplied dependency."
    );
    create_exception!(
        _core,
        ConflictingMigrations,
        PlanError,
        "An app has more than one leaf migration."
    );
    create_exception!(
        _core,
        AppWithoutMigrations,
        PlanError,
        "The app has no migrations module."
    );
    create_exception!(
        _core,
        MigrationNotFound,
        PlanError,
        "No migration of the app matches the name prefix."
    );
    create_exception!(
        _core,
        AmbiguousMigration,
        PlanError,
        "Several migrations of the app match the name prefix."
    );
    create_exception!(
        _core,
        InvalidPlan,
        PlanError,
        "The plan mixes forwards and backwards steps."
    );

    create_exception!(
        _core,
        LockBusy,
        TenantMigrateError,
        "Another process is migrating this tenant (its run lock is held)."
    );
    create_exception!(
        _core,
        ConcurrentRun,
        TenantMigrateError,
        "Another run changed the tenant while this one ran (this run's lock was lost, or the \
         migration was recorded meanwhile); the migration in progress was rolled back."
    );
    create_exception!(
        _core,
        Interrupted,
        TenantMigrateError,
        "The run was interrupted; the migration in progress was rolled back."
    );
    create_exception!(
        _core,
        LockTimeout,
        TenantMigrateError,
        "A statement gave up waiting for a lock (lock_timeout or statement_timeout). Raised by \
         Python steps so the executor retries them like SQL steps."
    );
}

use self::py::*;

/// The one conversion to Python. `Error::Hook` never reaches here: the glue re-raises the
/// Python exception it stashed.
impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let msg = err.to_string();
        match err {
            Error::Plan(e) => match e {
                PlanError::BadGraph(_) => InvalidArgument::new_err(msg),
                PlanError::NodeNotFound(_) => NodeNotFound::new_err(msg),
                PlanError::CircularDependency(_) => CircularDependency::new_err(msg),
                PlanError::InconsistentHistory { .. } => InconsistentHistory::new_err(msg),
                PlanError::Conflicts(_) => ConflictingMigrations::new_err(msg),
                PlanError::AppWithoutMigrations(_) => AppWithoutMigrations::new_err(msg),
                PlanError::MigrationNotFound { .. } => MigrationNotFound::new_err(msg),
                PlanError::AmbiguousMigration { .. } => AmbiguousMigration::new_err(msg),
                PlanError::InvalidPlan(_) => InvalidPlan::new_err(msg),
            },
            Error::Db(e) => match e {
                DbError::Connect(_) => ConnectionFailed::new_err(msg),
                DbError::PermissionDenied(_) => PermissionDenied::new_err(msg),
                DbError::Query { .. } => DatabaseError::new_err(msg),
                DbError::Config(_) => InvalidArgument::new_err(msg),
                DbError::RunLockLost | DbError::RecordedElsewhere => ConcurrentRun::new_err(msg),
            },
            Error::TenantNotFound(_) => TenantNotFound::new_err(msg),
            Error::InvalidArgument(_) => InvalidArgument::new_err(msg),
            Error::MigrationFailed {
                tenant,
                migration,
                statement,
                source,
            } => {
                let reason = source.to_string();
                match source {
                    DbError::PermissionDenied(_) => PermissionDenied::new_err(reason),
                    _ => MigrationFailed::new_err((msg, tenant, migration, statement, reason)),
                }
            }
            Error::NotRolledBack {
                tenant, migration, ..
            } => NotRolledBack::new_err((msg, tenant, migration, String::new(), String::new())),
            Error::Concurrent { .. } => ConcurrentRun::new_err(msg),
            Error::Busy(_) => LockBusy::new_err(msg),
            Error::Interrupted { .. } => Interrupted::new_err(msg),
            Error::HookTimeout(_) => LockTimeout::new_err(msg),
            Error::Hook => TenantMigrateError::new_err(msg),
        }
    }
}

/// A migration that failed in Python (Django's executor), with the core's text: args as the
/// core's own `MigrationFailed` (message, tenant, migration, statement, reason).
pub fn migration_failed(
    tenant: String,
    migration: String,
    reason: String,
    statement: Option<String>,
) -> PyErr {
    let text = migration_failed_text(&tenant, &migration, &reason, statement.as_deref());
    let statement = statement.unwrap_or_default();
    MigrationFailed::new_err((text, tenant, migration, statement, reason))
}

/// A non-atomic migration failed in Python (Django's executor): the Python exception's own
/// text, then what that means, as `NotRolledBack` caused by the original exception.
pub fn not_rolled_back(py: Python<'_>, cause: PyErr, tenant: String, migration: String) -> PyErr {
    let value = cause.value(py);
    let detail = if cause.is_instance_of::<MigrationFailed>(py) {
        value
            .getattr("args")
            .and_then(|args| args.get_item(0))
            .map(|first| first.to_string())
            .unwrap_or_else(|_| value.to_string())
    } else {
        let kind = value
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "Exception".into());
        migration_failed_text(&tenant, &migration, &format!("{kind}: {value}"), None)
    };
    let message = format!("{detail}\n{}", NOT_ROLLED_BACK);
    let err = NotRolledBack::new_err((message, tenant, migration, String::new(), String::new()));
    err.set_cause(py, Some(cause));
    err
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TenantMigrateError", py.get_type::<TenantMigrateError>())?;
    m.add("TenantNotFound", py.get_type::<TenantNotFound>())?;
    m.add("ConnectionFailed", py.get_type::<ConnectionFailed>())?;
    m.add("PermissionDenied", py.get_type::<PermissionDenied>())?;
    m.add("DatabaseError", py.get_type::<DatabaseError>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("MigrationFailed", py.get_type::<MigrationFailed>())?;
    m.add("NotRolledBack", py.get_type::<NotRolledBack>())?;
    m.add("LockBusy", py.get_type::<LockBusy>())?;
    m.add("ConcurrentRun", py.get_type::<ConcurrentRun>())?;
    m.add("Interrupted", py.get_type::<Interrupted>())?;
    m.add("LockTimeout", py.get_type::<LockTimeout>())?;
    m.add("PlanError", py.get_type::<py::PlanError>())?;
    m.add("NodeNotFound", py.get_type::<NodeNotFound>())?;
    m.add("CircularDependency", py.get_type::<CircularDependency>())?;
    m.add("InconsistentHistory", py.get_type::<InconsistentHistory>())?;
    m.add(
        "ConflictingMigrations",
        py.get_type::<ConflictingMigrations>(),
    )?;
    m.add(
        "AppWithoutMigrations",
        py.get_type::<AppWithoutMigrations>(),
    )?;
    m.add("MigrationNotFound", py.get_type::<MigrationNotFound>())?;
    m.add("AmbiguousMigration", py.get_type::<AmbiguousMigration>())?;
    m.add("InvalidPlan", py.get_type::<InvalidPlan>())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_query(sqlstate: &str) -> DbError {
        DbError::Query {
            message: "canceling statement due to lock timeout".into(),
            sqlstate: Some(sqlstate.into()),
        }
    }

    /// Each variant, the Python class it must become (by name, with its base) and its text.
    fn cases() -> Vec<(Error, &'static str, &'static str, String)> {
        let plan = |e: PlanError| Error::Plan(e);
        let db = |e: DbError| Error::Db(e);
        vec![
            (plan(PlanError::BadGraph("x".into())), "InvalidArgument", "TenantMigrateError", "invalid migration graph from Python: x".into()),
            (plan(PlanError::NodeNotFound("n".into())), "NodeNotFound", "PlanError", "n".into()),
            (plan(PlanError::CircularDependency("c".into())), "CircularDependency", "PlanError", "c".into()),
            (
                plan(PlanError::InconsistentHistory { migration: "a.2".into(), dependency: "a.1".into() }),
                "InconsistentHistory",
                "PlanError",
                "Migration a.2 is applied before its dependency a.1.".into(),
            ),
            (
                plan(PlanError::Conflicts("0002_x, 0002_y in a".into())),
                "ConflictingMigrations",
                "PlanError",
                "Conflicting migrations detected; multiple leaf nodes in the migration graph: (0002_x, 0002_y in a).\nTo fix them run 'python manage.py makemigrations --merge'".into(),
            ),
            (plan(PlanError::AppWithoutMigrations("a".into())), "AppWithoutMigrations", "PlanError", "App 'a' does not have migrations.".into()),
            (
                plan(PlanError::MigrationNotFound { app: "a".into(), name: "9".into() }),
                "MigrationNotFound",
                "PlanError",
                "Cannot find a migration matching '9' from app 'a'.".into(),
            ),
            (
                plan(PlanError::AmbiguousMigration { app: "a".into(), name: "0".into() }),
                "AmbiguousMigration",
                "PlanError",
                "More than one migration matches '0' in app 'a'. Please be more specific.".into(),
            ),
            (plan(PlanError::InvalidPlan("mixed".into())), "InvalidPlan", "PlanError", "mixed".into()),
            (db(DbError::Connect("refused".into())), "ConnectionFailed", "TenantMigrateError", "refused".into()),
            (db(DbError::query("denied".into(), Some("42501".into()))), "PermissionDenied", "TenantMigrateError", "denied".into()),
            (db(db_query("55P03")), "DatabaseError", "TenantMigrateError", "canceling statement due to lock timeout".into()),
            (db(DbError::Config("bad".into())), "InvalidArgument", "TenantMigrateError", "bad".into()),
            (
                db(DbError::RunLockLost),
                "ConcurrentRun",
                "TenantMigrateError",
                "this run's lock on the tenant was lost (its database connection ended)".into(),
            ),
            (db(DbError::RecordedElsewhere), "ConcurrentRun", "TenantMigrateError", "another run recorded this migration meanwhile".into()),
            (
                Error::TenantNotFound("acme".into()),
                "TenantNotFound",
                "TenantMigrateError",
                "Tenant 'acme' does not exist.\nPlease create one with the tenant id 'acme' first.".into(),
            ),
            (Error::InvalidArgument("no".into()), "InvalidArgument", "TenantMigrateError", "no".into()),
            (
                Error::MigrationFailed {
                    tenant: "acme".into(),
                    migration: "shop.0002_x".into(),
                    statement: "ALTER TABLE t ADD c int;\n".into(),
                    source: db_query("55P03"),
                },
                "MigrationFailed",
                "TenantMigrateError",
                "Migration shop/0002_x.py failed for tenant 'acme': canceling statement due to lock timeout\nStatement: ALTER TABLE t ADD c int".into(),
            ),
            (
                Error::MigrationFailed {
                    tenant: "acme".into(),
                    migration: "shop.0002_x".into(),
                    statement: "CREATE TABLE t ()".into(),
                    source: DbError::query("permission denied for schema s".into(), Some("42501".into())),
                },
                "PermissionDenied",
                "TenantMigrateError",
                "permission denied for schema s".into(),
            ),
            (
                Error::NotRolledBack { tenant: "acme".into(), migration: "shop.0003".into(), detail: "it failed".into() },
                "NotRolledBack",
                "MigrationFailed",
                format!("it failed\n{NOT_ROLLED_BACK}"),
            ),
            (
                Error::Concurrent { tenant: "acme".into(), migration: "shop.0002".into(), source: DbError::RunLockLost },
                "ConcurrentRun",
                "TenantMigrateError",
                "Migration shop.0002 was not committed for tenant 'acme': this run's lock on the tenant was lost (its database connection ended). It was rolled back and no further migration was started; run again once no other run is migrating the tenant.".into(),
            ),
            (Error::Busy("acme".into()), "LockBusy", "TenantMigrateError", "another migration is running for tenant 'acme'".into()),
            (
                Error::Interrupted { tenant: "acme".into(), rolled_back: Some("shop.0002".into()) },
                "Interrupted",
                "TenantMigrateError",
                "Interrupted: migration shop.0002 was rolled back for tenant 'acme'.".into(),
            ),
            (Error::Interrupted { tenant: "acme".into(), rolled_back: None }, "Interrupted", "TenantMigrateError", "Interrupted between migrations for tenant 'acme'.".into()),
            (Error::HookTimeout("lock timeout".into()), "LockTimeout", "TenantMigrateError", "lock timeout".into()),
            (Error::Hook, "TenantMigrateError", "Exception", "a Python callback raised an exception".into()),
        ]
    }

    #[test]
    fn every_error_becomes_its_python_exception_with_its_text() {
        Python::initialize();
        Python::attach(|py| {
            for (err, class, base, text) in cases() {
                let label = format!("{err:?}");
                let value = PyErr::from(err).into_value(py);
                let ty = value.bind(py).get_type();
                assert_eq!(ty.name().unwrap().to_string(), class, "{label}");
                let parent = ty.getattr("__base__").unwrap();
                assert_eq!(
                    parent.getattr("__name__").unwrap().to_string(),
                    base,
                    "{label}"
                );
                // Everything the core raises is caught by `except TenantMigrateError`.
                assert!(
                    value.bind(py).is_instance_of::<TenantMigrateError>(),
                    "{label}"
                );
                // MigrationFailed's args are (message, tenant, migration, statement, reason).
                let args = value.bind(py).getattr("args").unwrap();
                let first = args.get_item(0).unwrap().to_string();
                assert_eq!(first, text, "{label}");
                let expected_args = if matches!(class, "MigrationFailed" | "NotRolledBack") {
                    5
                } else {
                    1
                };
                assert_eq!(args.len().unwrap(), expected_args, "{label}");
            }
        });
    }
}
