//! This process's PostgreSQL connections: idle ones kept for reuse, and interrupting waits.

use pyo3::prelude::*;

use crate::backend::{self, ConnectionParams};
use crate::error::Error;

/// Close this process's idle pooled connections to a PostgreSQL database (none for SQLite);
/// returns how many were closed.
#[pyfunction]
pub(crate) fn release_idle_connections(params_json: &str) -> PyResult<usize> {
    let params = ConnectionParams::from_json(params_json).map_err(Error::from)?;
    Ok(backend::release_idle(&params).map_err(Error::from)?)
}

/// Interrupt (True) or stop interrupting (False) every wait of this process on a PostgreSQL
/// server: connecting, a lock wait, a query (see `backend::client`). Set on Ctrl-C, so that a
/// server that never answers cannot hold the command.
#[pyfunction]
pub(crate) fn interrupt_all(on: bool) {
    backend::client::interrupt_all(on);
}

/// Close the idle PostgreSQL connections kept for reuse by later tenants; returns how many.
#[pyfunction]
pub(crate) fn close_idle_connections(py: Python<'_>) -> usize {
    py.detach(backend::pool::close_idle)
}

/// Keep at most `limit` idle PostgreSQL connections for reuse (default 16, all databases
/// together); returns the previous limit.
#[pyfunction]
pub(crate) fn set_idle_connection_limit(py: Python<'_>, limit: usize) -> usize {
    py.detach(|| backend::pool::set_idle_limit(limit))
}
