//! `tenant_migrate._core`: the Rust core and its Python surface.
//!
//! The core modules (`graph`, `plan`, `tenant`, `backend`, `executor`) are plain Rust and know
//! nothing of Django; `py/` only converts between them and Python, and this file lists what
//! the Python module holds.

pub mod backend;
pub mod error;
pub mod executor;
pub mod graph;
pub mod plan;
mod py;
pub mod replay;
pub mod report;
pub mod status;
pub mod tenant;

use pyo3::prelude::*;

use crate::py::{database, plan as py_plan, pool, records, rules, run, status as py_status};

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("GRAPH_FORMAT_VERSION", graph::GRAPH_FORMAT_VERSION)?;
    let [lock_timeout, statement_timeout] = error::TIMEOUT_SQLSTATES;
    m.add("TIMEOUT_SQLSTATES", (lock_timeout, statement_timeout))?;
    m.add("INSUFFICIENT_PRIVILEGE", error::INSUFFICIENT_PRIVILEGE)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(records::lookup_tenant, m)?)?;
    m.add_function(wrap_pyfunction!(py_plan::compute_plan, m)?)?;
    m.add_function(wrap_pyfunction!(records::list_tenants, m)?)?;
    m.add_function(wrap_pyfunction!(py_status::tenant_status, m)?)?;
    m.add_function(wrap_pyfunction!(pool::release_idle_connections, m)?)?;
    m.add_function(wrap_pyfunction!(pool::close_idle_connections, m)?)?;
    m.add_function(wrap_pyfunction!(pool::set_idle_connection_limit, m)?)?;
    m.add_function(wrap_pyfunction!(rules::history_guard, m)?)?;
    m.add_function(wrap_pyfunction!(pool::interrupt_all, m)?)?;
    m.add_function(wrap_pyfunction!(rules::concurrent_run, m)?)?;
    m.add_function(wrap_pyfunction!(rules::quote_ident, m)?)?;
    m.add_function(wrap_pyfunction!(rules::statement_text, m)?)?;
    m.add_function(wrap_pyfunction!(rules::migration_failed, m)?)?;
    m.add_function(wrap_pyfunction!(rules::tenant_not_found, m)?)?;
    m.add_function(wrap_pyfunction!(rules::all_replaced_applied, m)?)?;
    m.add_class::<database::ReplayCache>()?;
    m.add_class::<database::RunLock>()?;
    m.add_class::<database::TenantDatabase>()?;
    m.add_function(wrap_pyfunction!(run::run_tenant, m)?)?;
    m.add_class::<py_plan::Plan>()?;
    m.add_class::<py_plan::Report>()?;
    m.add_class::<py_plan::StepReport>()?;
    m.add_class::<records::TenantRecord>()?;
    m.add_class::<py_status::TenantStatus>()?;
    error::register(m)
}
