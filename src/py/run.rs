//! One tenant's run as one call: run lock, connection, history, plan and execution in Rust,
//! with Python called back only for Django's part of it (output, signals, what only Django
//! can apply). The steps and their order are Django's `migrate`'s.

use std::sync::Arc;

use pyo3::prelude::*;

use super::database::{take_lock, Execution, ReplayCache, TenantDatabase};
use super::plan::{Plan, Report};
use crate::backend::ConnectionParams;
use crate::error::Error;
use crate::graph::GraphSpec;
use crate::plan::TargetRequest;

/// Run one tenant's migrations. `session` is called back, in this order:
///
/// - `waiting(notice)`: the run lock is held by another run and this one waits for it;
/// - `opened(database)`: the tenant's `TenantDatabase` (to interrupt it, for the heartbeat);
/// - `target_checked()`: with `app_label` only, once the history passed Django's checks and
///   before the target is resolved (Django checks the app label between the two);
/// - `planned(plan)`: returns `None` to end the run there (`--plan`, `--check`, nothing to
///   do), or `(hooks, recorder_ddl, state_key)` to execute it, `hooks` answering the
///   executor, `state_key` naming Django's project state for this plan (or `None`);
/// - `finished(report)`: the plan is executed; still under the run lock (`post_migrate`);
/// - `closing()`: once connected, however the run ends, before the connection is closed and
///   the lock released (Python's own connection to the tenant goes first).
///
/// Without `lock_wait` no run lock is taken (a run that writes nothing).
#[pyfunction]
#[pyo3(signature = (params_json, tenant, graph_json, session, *, app_label=None, migration_name=None, lock_wait=None, fake=false, fake_initial=false, cache=None, retries=0, retry_delay=1.0))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_tenant(
    py: Python<'_>,
    params_json: &str,
    tenant: &str,
    graph_json: &str,
    session: Bound<'_, PyAny>,
    app_label: Option<String>,
    migration_name: Option<String>,
    lock_wait: Option<f64>,
    fake: bool,
    fake_initial: bool,
    cache: Option<PyRef<'_, ReplayCache>>,
    retries: u32,
    retry_delay: f64,
) -> PyResult<Option<Py<Report>>> {
    let params = ConnectionParams::from_json(params_json).map_err(Error::from)?;
    let spec = GraphSpec::from_json(graph_json).map_err(Error::from)?;
    // Taken before the history is read: another run may be half-way through this tenant.
    let _lock = match lock_wait {
        Some(wait) => {
            let on_wait = session.getattr("waiting")?.unbind();
            Some(take_lock(py, &params, tenant, wait, Some(&on_wait))?)
        }
        None => None,
    };
    let database = Py::new(py, TenantDatabase::connect(py, &params)?)?;
    let request = TargetRequest {
        app_label,
        migration_name,
    };
    // The DDL of the history table and the state key come with the session's answer to the plan.
    let run = Execution {
        tenant,
        recorder_ddl: Vec::new(),
        state: None,
        fake,
        fake_initial,
        cache: cache.map(|c| Arc::clone(&c.inner)),
        retries,
        retry_delay,
    };
    let outcome = run_open(py, &database, &spec, &session, request, run);
    let closed = session.call_method0("closing");
    // Closed before the lock goes, so that no later run meets this connection's session.
    database.get().close();
    // The run's own error says more than one met while cleaning up after it.
    let report = outcome?;
    closed?;
    Ok(report)
}

fn run_open(
    py: Python<'_>,
    database: &Py<TenantDatabase>,
    spec: &GraphSpec,
    session: &Bound<'_, PyAny>,
    request: TargetRequest,
    mut run: Execution<'_>,
) -> PyResult<Option<Py<Report>>> {
    let db = database.get();
    session.call_method1("opened", (database.clone_ref(py),))?;
    // Django's order: history and conflicts, then the app label, then the target.
    if request.app_label.is_some() {
        db.plan_for(py, spec, &TargetRequest::default())?;
        session.call_method0("target_checked")?;
    }
    let plan = Py::new(
        py,
        Plan {
            inner: db.plan_for(py, spec, &request)?,
        },
    )?;
    let answer = session.call_method1("planned", (plan.clone_ref(py),))?;
    if answer.is_none() {
        return Ok(None);
    }
    let hooks: Py<PyAny>;
    (hooks, run.recorder_ddl, run.state) = answer.extract()?;
    let plan = &plan.get().inner;
    // Django fakes nothing, and so says nothing of it, when nothing is pending.
    let pending = !plan.steps.is_empty();
    run.fake &= pending;
    run.fake_initial &= pending;
    let report = Py::new(py, db.execute(py, plan, hooks, &run)?)?;
    session.call_method1("finished", (report.clone_ref(py),))?;
    Ok(Some(report))
}
