//! Rules and texts the Python side takes from the core rather than writing them again.

use std::collections::BTreeSet;

use pyo3::prelude::*;

use crate::backend::{self, ConnectionParams};
use crate::error::{self, Error};
use crate::graph::{self, Key};

/// The statements that guard a migration's history rows when Django writes them, run in the
/// migration's own transaction before the row (see `backend/lock.rs`): the tenant's record lock, and
/// (None when this process holds no run lock for the tenant) a boolean expression saying
/// whether this process still holds its run lock.
#[pyfunction]
pub(crate) fn history_guard(params_json: &str) -> PyResult<(String, Option<String>)> {
    let params = ConnectionParams::from_json(params_json).map_err(Error::from)?;
    Ok(backend::lock::record_guard(&params)?)
}

/// The error a Django-applied migration raises when its history guard fails: `lost` when the
/// run lock is gone, else the migration was recorded by another run meanwhile.
#[pyfunction]
pub(crate) fn concurrent_run(
    py: Python<'_>,
    tenant: String,
    migration: String,
    lost: bool,
) -> Py<PyAny> {
    let source = if lost {
        error::DbError::RunLockLost
    } else {
        error::DbError::RecordedElsewhere
    };
    PyErr::from(Error::Concurrent {
        tenant,
        migration,
        source,
    })
    .into_value(py)
    .into_any()
}

/// Quote an identifier as the core does (double quotes, doubled inside); raises
/// `InvalidArgument` for a NUL character.
#[pyfunction]
pub(crate) fn quote_ident(name: &str) -> PyResult<String> {
    Ok(backend::quote_ident(name).map_err(Error::from)?)
}

/// A statement as the user wrote it (no closing `;`), as a failed migration shows it.
#[pyfunction]
pub(crate) fn statement_text(statement: &str) -> &str {
    error::statement_text(statement)
}

/// The exception (not raised) the core raises when a migration fails, with the core's text:
/// `Migration <migration> failed for tenant '<tenant>': <reason>` and, when a statement was
/// running, `Statement: <statement>` on the next line.
#[pyfunction]
#[pyo3(signature = (tenant, migration, reason, statement=None))]
pub(crate) fn migration_failed(
    py: Python<'_>,
    tenant: String,
    migration: String,
    reason: String,
    statement: Option<String>,
) -> Py<PyAny> {
    error::migration_failed(tenant, migration, reason, statement)
        .into_value(py)
        .into_any()
}

/// The exception (not raised) for an id no registry row has, in two lines: it does not exist, create it first.
#[pyfunction]
pub(crate) fn tenant_not_found(py: Python<'_>, tenant: String) -> Py<PyAny> {
    PyErr::from(Error::TenantNotFound(tenant))
        .into_value(py)
        .into_any()
}

/// Django's squash rule: a squash counts as applied once every migration it replaces is.
#[pyfunction]
pub(crate) fn all_replaced_applied(replaces: Vec<Key>, applied: BTreeSet<Key>) -> bool {
    graph::all_replaced_applied(&replaces, &applied)
}
