//! One tenant's connection and run lock, and the replay cache shared by a run's tenants.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

use super::hooks::PyHooks;
use super::plan::{Plan, Report, StepReport};
use crate::backend::{self, Backend, Canceller, ConnectionParams, Interrupt, Running};
use crate::error::{self, Error};
use crate::graph::{GraphSpec, Key};
use crate::plan::{self as core_plan, TargetRequest};
use crate::{executor, replay};

/// A tenant's run lock (see `backend/lock.rs`), held until `release()` or until the object goes.
#[pyclass(module = "tenant_migrate._core")]
pub(crate) struct RunLock {
    inner: Mutex<Option<backend::lock::RunLock>>,
}

/// Take the run lock of the tenant reached by `params`, waiting up to `wait` seconds, with the
/// interpreter released; `on_wait` gets the notice when this run is about to wait.
pub(crate) fn take_lock(
    py: Python<'_>,
    params: &ConnectionParams,
    tenant: &str,
    wait: f64,
    on_wait: Option<&Py<PyAny>>,
) -> PyResult<backend::lock::RunLock> {
    let wait = Duration::try_from_secs_f64(wait.max(0.0))
        .map_err(|e| Error::InvalidArgument(format!("invalid lock wait: {e}")))?;
    let mut raised: Option<PyErr> = None;
    let mut tell = |text: &str| {
        if let Some(callback) = on_wait {
            Python::attach(|py| {
                if let Err(e) = callback.call1(py, (text,)) {
                    raised.get_or_insert(e);
                }
            });
        }
    };
    let held = py.detach(|| backend::lock::acquire(params, tenant, wait, &mut tell));
    // The notice's own failure (a closed stdout) says more than a lock taken or refused.
    if let Some(e) = raised {
        return Err(e);
    }
    Ok(held?)
}

#[pymethods]
impl RunLock {
    /// Take the run lock of the tenant reached by `params_json`, waiting up to `wait` seconds;
    /// raises `LockBusy` naming `tenant` when another run holds it. When it is held and this
    /// run is about to wait, `on_wait` (if given) is called once with the notice for the user.
    #[new]
    #[pyo3(signature = (params_json, tenant, wait, on_wait=None))]
    fn new(
        py: Python<'_>,
        params_json: &str,
        tenant: &str,
        wait: f64,
        on_wait: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let params = ConnectionParams::from_json(params_json).map_err(Error::from)?;
        let held = take_lock(py, &params, tenant, wait, on_wait.as_ref())?;
        Ok(RunLock {
            inner: Mutex::new(Some(held)),
        })
    }

    fn release(&self) {
        if let Ok(mut guard) = self.inner.lock() {
            guard.take();
        }
    }
}

/// SQL compiled once per migration and tenant state, shared by every tenant of a run.
#[pyclass(frozen, module = "tenant_migrate._core")]
pub(crate) struct ReplayCache {
    pub(crate) inner: Arc<replay::ReplayCache>,
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

    /// Catalog fingerprints read from tenants' databases to verify a replay.
    #[getter]
    fn fingerprints(&self) -> u64 {
        self.inner.fingerprints.load(Ordering::Relaxed)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// How a plan is executed: `executor::Options` less what the connection itself holds.
pub(crate) struct Execution<'a> {
    pub tenant: &'a str,
    pub recorder_ddl: Vec<String>,
    pub fake: bool,
    pub fake_initial: bool,
    pub cache: Option<Arc<replay::ReplayCache>>,
    /// The project state's key (`executor::Options::state`).
    pub state: Option<String>,
    pub retries: u32,
    pub retry_delay: f64,
}

/// One open connection to one tenant's database (or schema).
#[pyclass(frozen, module = "tenant_migrate._core")]
pub(crate) struct TenantDatabase {
    backend: Mutex<Option<Box<dyn Backend>>>,
    interrupt: Interrupt,
    canceller: Option<Canceller>,
    running: Running,
}

impl TenantDatabase {
    pub(crate) fn connect(py: Python<'_>, params: &ConnectionParams) -> PyResult<Self> {
        let interrupt = Interrupt::default();
        let backend = py
            .detach(|| backend::open(params, interrupt.clone()))
            .map_err(Error::from)?;
        Ok(TenantDatabase {
            canceller: backend.canceller(),
            running: backend.running(),
            backend: Mutex::new(Some(backend)),
            interrupt,
        })
    }

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

    /// Django's plan for `request`, from the history read now.
    pub(crate) fn plan_for(
        &self,
        py: Python<'_>,
        spec: &GraphSpec,
        request: &TargetRequest,
    ) -> PyResult<core_plan::Plan> {
        self.with_backend(py, |b| {
            let recorded: BTreeSet<Key> = b.applied()?.into_iter().collect();
            Ok(core_plan::plan_for_target(spec, &recorded, request)?)
        })
    }

    /// Execute `plan`, calling back into `hooks` for what only Django can do.
    pub(crate) fn execute(
        &self,
        py: Python<'_>,
        plan: &core_plan::Plan,
        hooks: Py<PyAny>,
        run: &Execution<'_>,
    ) -> PyResult<Report> {
        let retry_delay = Duration::try_from_secs_f64(run.retry_delay.max(0.0))
            .map_err(|e| Error::InvalidArgument(format!("invalid retry delay: {e}")))?;
        let mut adapter = PyHooks::new(hooks);
        let opts = executor::Options {
            tenant: run.tenant,
            fake: run.fake,
            fake_initial: run.fake_initial,
            recorder_ddl: &run.recorder_ddl,
            cache: run.cache.as_deref(),
            state: run.state.as_deref(),
            interrupt: &self.interrupt,
            retries: run.retries,
            retry_delay,
        };
        // A non-atomic step that failed in Python: (tenant, migration), to say so.
        let mut partial: Option<(String, String)> = None;
        let result = self.with_backend(py, |b| {
            executor::migrate(b, plan, &mut adapter, &opts).inspect_err(|e| {
                if let Error::NotRolledBack {
                    tenant, migration, ..
                } = e
                {
                    partial = Some((tenant.clone(), migration.clone()));
                }
            })
        });
        if let Some(err) = adapter.take_error() {
            return Err(match partial {
                Some((tenant, migration)) => error::not_rolled_back(py, err, tenant, migration),
                None => err,
            });
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
}

#[pymethods]
impl TenantDatabase {
    /// Connect with parameters resolved by the Python side (see `ConnectionParams`).
    #[new]
    fn new(py: Python<'_>, params_json: &str) -> PyResult<Self> {
        let params = ConnectionParams::from_json(params_json).map_err(Error::from)?;
        Self::connect(py, &params)
    }

    /// Stop the run from another thread: the statement running now is cancelled, the
    /// migration in progress is rolled back rather than committed, and no other one starts.
    fn interrupt(&self, py: Python<'_>) {
        self.interrupt.set();
        if let Some(canceller) = &self.canceller {
            py.detach(|| canceller.cancel());
        }
    }

    #[getter]
    fn interrupted(&self) -> bool {
        self.interrupt.is_set()
    }

    fn recorder_exists(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_backend(py, |b| Ok(b.recorder_exists()?))
    }

    fn applied(&self, py: Python<'_>) -> PyResult<Vec<Key>> {
        self.with_backend(py, |b| Ok(b.applied()?))
    }

    /// The statement the core is running on this tenant now, if any (for the heartbeat; it
    /// can be called while `migrate` runs in another thread).
    fn running_statement(&self) -> Option<String> {
        self.running.get()
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
        let spec = GraphSpec::from_json(graph_json).map_err(Error::from)?;
        let request = TargetRequest {
            app_label,
            migration_name,
        };
        let inner = self.plan_for(py, &spec, &request)?;
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
        let spec = GraphSpec::from_json(graph_json).map_err(Error::from)?;
        let app = app_label.to_string();
        self.with_backend(py, move |b| {
            let recorded: BTreeSet<Key> = b.applied()?.into_iter().collect();
            let (to_prune, blocking) = core_plan::prune_candidates(&spec, &recorded, &app);
            if blocking.is_empty() && !to_prune.is_empty() {
                b.record(&backend::Recording {
                    applied: vec![],
                    unapplied: to_prune.clone(),
                })?;
            }
            Ok((to_prune, blocking))
        })
    }

    /// Close the connection now rather than when the object is collected.
    pub(crate) fn close(&self) {
        if let Ok(mut guard) = self.backend.lock() {
            guard.take();
        }
    }
}
