//! The one place where Rust errors become Python exceptions. Every class is exported by the
//! module and documented in `_core.pyi`; all derive from `TenantMigrateError`.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use crate::error::{self as core, DbError, Error};

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

impl From<core::PlanError> for PyErr {
    fn from(err: core::PlanError) -> PyErr {
        let msg = err.to_string();
        match err {
            core::PlanError::BadGraph(_) => InvalidArgument::new_err(msg),
            core::PlanError::NodeNotFound(_) => NodeNotFound::new_err(msg),
            core::PlanError::CircularDependency(_) => CircularDependency::new_err(msg),
            core::PlanError::InconsistentHistory { .. } => InconsistentHistory::new_err(msg),
            core::PlanError::Conflicts(_) => ConflictingMigrations::new_err(msg),
            core::PlanError::AppWithoutMigrations(_) => AppWithoutMigrations::new_err(msg),
            core::PlanError::MigrationNotFound { .. } => MigrationNotFound::new_err(msg),
            core::PlanError::AmbiguousMigration { .. } => AmbiguousMigration::new_err(msg),
            core::PlanError::InvalidPlan(_) => InvalidPlan::new_err(msg),
        }
    }
}

impl From<DbError> for PyErr {
    fn from(err: DbError) -> PyErr {
        let msg = err.to_string();
        match err {
            DbError::Connect(_) => ConnectionFailed::new_err(msg),
            DbError::PermissionDenied(_) => PermissionDenied::new_err(msg),
            DbError::Query { .. } => DatabaseError::new_err(msg),
            DbError::Config(_) => InvalidArgument::new_err(msg),
            DbError::RunLockLost | DbError::RecordedElsewhere => ConcurrentRun::new_err(msg),
        }
    }
}

/// `Error::Hook` never reaches here: the glue re-raises the Python exception it stashed.
impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let msg = err.to_string();
        match err {
            Error::Plan(e) => e.into(),
            Error::Db(e) => e.into(),
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
        format!("Migration {migration} failed for tenant '{tenant}': {kind}: {value}")
    };
    let message = format!("{detail}\n{}", core::NOT_ROLLED_BACK);
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
    m.add("PlanError", py.get_type::<PlanError>())?;
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
