//! `tenant_migrate._core`: the whole Python surface of the Rust core, in one place.
//!
//! The core modules (`graph`, `plan`, `tenant`, `backend`, `executor`) are plain Rust and know
//! nothing of Django; this file only converts between them and Python.

pub mod backend;
pub mod error;
mod errors;
pub mod executor;
pub mod graph;
pub mod plan;
pub mod replay;
pub mod report;
pub mod tenant;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use crate::backend::{Backend, ConnectionParams};
use crate::error::Error;
use crate::graph::{GraphSpec, Key};
use crate::plan::{Header, Step, TargetRequest};
use crate::report::StepReport as CoreStepReport;
use crate::tenant::RegistrySpec;

/// Bumped whenever the JSON handed over by Python changes shape.
const GRAPH_FORMAT_VERSION: u32 = graph::GRAPH_FORMAT_VERSION;

#[pyclass(frozen, module = "tenant_migrate._core", get_all)]
struct TenantRecord {
    tenant_id: String,
    name: String,
    isolation: String,
    database_name: String,
    schema_name: String,
    connection: String,
}

#[pymethods]
impl TenantRecord {
    fn __repr__(&self) -> String {
        format!(
            "TenantRecord(tenant_id={:?}, isolation={:?})",
            self.tenant_id, self.isolation
        )
    }
}

#[pyclass(frozen, module = "tenant_migrate._core")]
struct Plan {
    inner: plan::Plan,
}

fn step_tuples(steps: &[Step]) -> Vec<(String, String, bool)> {
    steps
        .iter()
        .map(|s| (s.key.0.clone(), s.key.1.clone(), s.backwards))
        .collect()
}

#[pymethods]
impl Plan {
    /// `(app, name, backwards)` in Django's plan order.
    #[getter]
    fn steps(&self) -> Vec<(String, String, bool)> {
        step_tuples(&self.inner.steps)
    }

    /// The same steps in the order they execute.
    #[getter]
    fn execution_order(&self) -> Vec<(String, String, bool)> {
        step_tuples(&self.inner.execution_order())
    }

    #[getter]
    fn full_plan(&self) -> Vec<Key> {
        self.inner.full_plan.clone()
    }

    /// `("apply_all", apps)`, `("specific", [app, name])` or `("unapply_all", [app])`.
    #[getter]
    fn header(&self) -> (&'static str, Vec<String>) {
        match &self.inner.header {
            Header::ApplyAll(apps) => ("apply_all", apps.clone()),
            Header::Specific { app, name } => ("specific", vec![app.clone(), name.clone()]),
            Header::UnapplyAll(app) => ("unapply_all", vec![app.clone()]),
        }
    }

    /// Django's `loader.applied_migrations` for this tenant (squash bookkeeping included).
    #[getter]
    fn applied(&self) -> Vec<Key> {
        self.inner.applied.iter().cloned().collect()
    }

    /// False when Django would plan on the graph without squashes (a replaced backwards target).
    #[getter]
    fn replace_migrations(&self) -> bool {
        self.inner.replace_migrations
    }

    fn __len__(&self) -> usize {
        self.inner.steps.len()
    }
}

#[pyclass(frozen, module = "tenant_migrate._core", get_all)]
struct StepReport {
    app: String,
    name: String,
    backwards: bool,
    /// `OK` or `FAKED`.
    outcome: &'static str,
    /// `sql`, `django` or `record`.
    route: &'static str,
    statements: usize,
    /// The tenant's state differed from the one its SQL was first compiled for.
    drift: bool,
    seconds: f64,
}

impl From<&CoreStepReport> for StepReport {
    fn from(r: &CoreStepReport) -> Self {
        StepReport {
            app: r.key.0.clone(),
            name: r.key.1.clone(),
            backwards: r.backwards,
            outcome: r.outcome.as_str(),
            route: r.route.as_str(),
            statements: r.statements,
            drift: r.drift,
            seconds: r.seconds,
        }
    }
}

#[pyclass(frozen, module = "tenant_migrate._core", get_all)]
struct Report {
    steps: Vec<Py<StepReport>>,
    squashes_recorded: Vec<Key>,
}

/// Adapts a Python hooks object to the executor's `Hooks`. The interpreter is attached only for
/// the duration of each callback; a Python exception is kept and re-raised unchanged.
struct PyHooks {
    obj: Py<PyAny>,
    error: Option<PyErr>,
}

impl PyHooks {
    fn call<T>(
        &mut self,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> PyResult<T>,
    ) -> Result<T, Error> {
        let result = Python::attach(|py| f(py, self.obj.bind(py)));
        result.map_err(|e| {
            self.error = Some(e);
            Error::Hook
        })
    }
}

impl executor::Hooks for PyHooks {
    fn started(&mut self, step: &Step, fake: bool) -> Result<(), Error> {
        self.call(|_, o| {
            o.call_method1("started", (&step.key.0, &step.key.1, step.backwards, fake))
                .map(|_| ())
        })
    }

    fn soft_applied(&mut self, step: &Step) -> Result<bool, Error> {
        self.call(|_, o| {
            o.call_method1("soft_applied", (&step.key.0, &step.key.1))?
                .extract::<bool>()
        })
    }

    fn compile(&mut self, step: &Step) -> Result<Option<Vec<String>>, Error> {
        self.call(|_, o| {
            o.call_method1("compile", (&step.key.0, &step.key.1, step.backwards))?
                .extract::<Option<Vec<String>>>()
        })
    }

    fn apply_with_django(&mut self, step: &Step) -> Result<Option<Vec<String>>, Error> {
        self.call(|_, o| {
            o.call_method1(
                "apply_with_django",
                (&step.key.0, &step.key.1, step.backwards),
            )?
            .extract::<Option<Vec<String>>>()
        })
    }

    fn replayed(&mut self, step: &Step) -> Result<(), Error> {
        self.call(|_, o| {
            o.call_method1("replayed", (&step.key.0, &step.key.1, step.backwards))
                .map(|_| ())
        })
    }

    fn finished(&mut self, report: &CoreStepReport) -> Result<(), Error> {
        self.call(|py, o| {
            let r = Py::new(py, StepReport::from(report))?;
            o.call_method1("finished", (r,)).map(|_| ())
        })
    }
}

/// SQL compiled once per migration and tenant state, shared by every tenant of a run.
#[pyclass(frozen, module = "tenant_migrate._core")]
struct ReplayCache {
    inner: Arc<replay::ReplayCache>,
}

#[pymethods]
impl ReplayCache {
    #[new]
    fn new() -> Self {
        ReplayCache {
            inner: Arc::new(replay::ReplayCache::default()),
        }
    }

    /// Migrations replayed without compiling.
    #[getter]
    fn hits(&self) -> u64 {
        self.inner.hits.load(Ordering::Relaxed)
    }

    /// Migrations that had to be compiled (first tenant in a state, or drift).
    #[getter]
    fn misses(&self) -> u64 {
        self.inner.misses.load(Ordering::Relaxed)
    }

    /// Compilations caused by a tenant whose state differed from an earlier tenant's.
    #[getter]
    fn drifts(&self) -> u64 {
        self.inner.drifts.load(Ordering::Relaxed)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// One open connection to one tenant's database (or schema).
#[pyclass(module = "tenant_migrate._core")]
struct TenantDatabase {
    backend: Mutex<Option<Box<dyn Backend>>>,
}

impl TenantDatabase {
    fn with_backend<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn Backend) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut guard = self.backend.lock().map_err(|_| {
                Error::InvalidArgument("the tenant connection is unusable after a crash".into())
            })?;
            let backend = guard
                .as_mut()
                .ok_or_else(|| Error::InvalidArgument("the tenant connection is closed".into()))?;
            f(backend.as_mut())
        })
        .map_err(PyErr::from)
    }
}

#[pymethods]
impl TenantDatabase {
    /// Connect with parameters resolved by the Python side (see `ConnectionParams`).
    #[new]
    fn new(py: Python<'_>, params_json: &str) -> PyResult<Self> {
        let backend = py.detach(|| {
            let params = ConnectionParams::from_json(params_json)?;
            backend::open(&params)
        })?;
        Ok(TenantDatabase {
            backend: Mutex::new(Some(backend)),
        })
    }

    fn recorder_exists(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_backend(py, |b| Ok(b.recorder_exists()?))
    }

    fn applied(&self, py: Python<'_>) -> PyResult<Vec<Key>> {
        self.with_backend(py, |b| Ok(b.applied()?))
    }

    /// The PostgreSQL server process of this connection (None on SQLite): what a heartbeat
    /// looks up in `pg_stat_activity` while a migration runs.
    fn backend_pid(&self) -> Option<i32> {
        self.backend.lock().ok()?.as_ref()?.backend_pid()
    }

    /// The digest replay is verified against (catalog, history and server version).
    fn fingerprint(&self, py: Python<'_>) -> PyResult<String> {
        self.with_backend(py, |b| Ok(b.fingerprint()?))
    }

    /// Read the applied set and plan exactly as Django's `migrate` would for this database.
    #[pyo3(signature = (graph_json, app_label=None, migration_name=None))]
    fn plan(
        &self,
        py: Python<'_>,
        graph_json: &str,
        app_label: Option<String>,
        migration_name: Option<String>,
    ) -> PyResult<Plan> {
        let spec = GraphSpec::from_json(graph_json)?;
        let recorded: BTreeSet<Key> = self.applied(py)?.into_iter().collect();
        let request = TargetRequest {
            app_label,
            migration_name,
        };
        let inner = py.detach(|| plan::plan_for_target(&spec, &recorded, &request))?;
        Ok(Plan { inner })
    }

    /// Django's `--prune` for one app: delete history rows of migrations no longer on disk,
    /// unless a squash still replaces one of them. Returns `(pruned, blocking_squashes)`.
    fn prune(
        &self,
        py: Python<'_>,
        graph_json: &str,
        app_label: &str,
    ) -> PyResult<(Vec<Key>, Vec<Key>)> {
        let spec = GraphSpec::from_json(graph_json)?;
        let app = app_label.to_string();
        self.with_backend(py, move |b| {
            let recorded: BTreeSet<Key> = b.applied()?.into_iter().collect();
            let (to_prune, blocking) = plan::prune_candidates(&spec, &recorded, &app);
            if blocking.is_empty() && !to_prune.is_empty() {
                b.record(&backend::Recording {
                    applied: vec![],
                    unapplied: to_prune.clone(),
                })?;
            }
            Ok((to_prune, blocking))
        })
    }

    /// Execute `plan`, calling back into `hooks` for what only Django can do.
    #[pyo3(signature = (plan, hooks, *, tenant, recorder_ddl, fake=false, fake_initial=false, cache=None))]
    #[allow(clippy::too_many_arguments)]
    fn migrate(
        &self,
        py: Python<'_>,
        plan: &Plan,
        hooks: Py<PyAny>,
        tenant: String,
        recorder_ddl: Vec<String>,
        fake: bool,
        fake_initial: bool,
        cache: Option<PyRef<'_, ReplayCache>>,
    ) -> PyResult<Report> {
        let mut adapter = PyHooks {
            obj: hooks,
            error: None,
        };
        let shared = cache.map(|c| Arc::clone(&c.inner));
        let opts = executor::Options {
            tenant: &tenant,
            fake,
            fake_initial,
            recorder_ddl: &recorder_ddl,
            cache: shared.as_deref(),
        };
        let result = self.with_backend(py, |b| {
            executor::migrate(b, &plan.inner, &mut adapter, &opts)
        });
        if let Some(err) = adapter.error.take() {
            return Err(err);
        }
        let report = result?;
        let steps = report
            .steps
            .iter()
            .map(|s| Py::new(py, StepReport::from(s)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Report {
            steps,
            squashes_recorded: report.squashes_recorded,
        })
    }

    /// Close the connection now rather than when the object is collected.
    fn close(&self) {
        if let Ok(mut guard) = self.backend.lock() {
            guard.take();
        }
    }
}

/// Pure planning: Django's decisions for a graph and an applied set (used by tests and tools).
#[pyfunction]
#[pyo3(signature = (graph_json, applied, app_label=None, migration_name=None))]
fn compute_plan(
    py: Python<'_>,
    graph_json: &str,
    applied: Vec<Key>,
    app_label: Option<String>,
    migration_name: Option<String>,
) -> PyResult<Plan> {
    let spec = GraphSpec::from_json(graph_json)?;
    let recorded: BTreeSet<Key> = applied.into_iter().collect();
    let request = TargetRequest {
        app_label,
        migration_name,
    };
    let inner = py.detach(|| plan::plan_for_target(&spec, &recorded, &request))?;
    Ok(Plan { inner })
}

fn record_to_py(record: tenant::TenantRecord) -> TenantRecord {
    TenantRecord {
        tenant_id: record.tenant_id,
        name: record.name,
        isolation: record.isolation,
        database_name: record.database_name,
        schema_name: record.schema_name,
        connection: record.connection,
    }
}

/// Every tenant of the registry, ordered by tenant id. `registry_json` names the table and
/// the column (or fixed value) of each record field: see `tenant::RegistrySpec`.
#[pyfunction]
fn list_tenants(
    py: Python<'_>,
    master_json: &str,
    registry_json: &str,
) -> PyResult<Vec<TenantRecord>> {
    let records = py.detach(|| {
        let master = ConnectionParams::from_json(master_json)?;
        tenant::list(&master, &RegistrySpec::from_json(registry_json)?)
    })?;
    Ok(records.into_iter().map(record_to_py).collect())
}

/// Find a tenant in the registry table of the master database.
#[pyfunction]
fn lookup_tenant(
    py: Python<'_>,
    master_json: &str,
    registry_json: &str,
    tenant_id: &str,
) -> PyResult<TenantRecord> {
    let record = py.detach(|| {
        let master = ConnectionParams::from_json(master_json)?;
        tenant::lookup(&master, &RegistrySpec::from_json(registry_json)?, tenant_id)
    })?;
    Ok(record_to_py(record))
}

/// Close the idle PostgreSQL connections kept for reuse by later tenants; returns how many.
#[pyfunction]
fn close_idle_connections(py: Python<'_>) -> usize {
    py.detach(backend::postgres::close_idle)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("GRAPH_FORMAT_VERSION", GRAPH_FORMAT_VERSION)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(lookup_tenant, m)?)?;
    m.add_function(wrap_pyfunction!(compute_plan, m)?)?;
    m.add_function(wrap_pyfunction!(list_tenants, m)?)?;
    m.add_function(wrap_pyfunction!(close_idle_connections, m)?)?;
    m.add_class::<ReplayCache>()?;
    m.add_class::<TenantDatabase>()?;
    m.add_class::<Plan>()?;
    m.add_class::<Report>()?;
    m.add_class::<StepReport>()?;
    m.add_class::<TenantRecord>()?;
    errors::register(m)
}
