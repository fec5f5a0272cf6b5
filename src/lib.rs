//! `tenant_migrate._core`: the whole Python surface of the Rust core, in one place.
//!
//! The core modules (`graph`, `plan`, `tenant`, `backend`, `executor`) are plain Rust and know
//! nothing of Django; this file only converts between them and Python.

pub mod backend;
pub mod error;
pub mod executor;
pub mod graph;
pub mod plan;
pub mod replay;
pub mod report;
pub mod status;
pub mod tenant;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

use crate::backend::{Backend, Canceller, ConnectionParams, Interrupt, Running};
use crate::error::Error;
use crate::graph::{GraphSpec, Key};
use crate::plan::{Header, Step, TargetRequest};
use crate::report::StepReport as CoreStepReport;
use crate::tenant::RegistrySpec;

/// Bumped whenever the JSON handed over by Python changes shape.
const GRAPH_FORMAT_VERSION: u32 = graph::GRAPH_FORMAT_VERSION;

#[pyclass(frozen, module = "tenant_migrate._core", get_all)]
#[derive(Clone)]
struct TenantRecord {
    tenant_id: String,
    name: String,
    isolation: String,
    database_name: String,
    schema_name: String,
    connection: String,
    /// Other tenants naming the same database (or schema): see `tenant::TenantRecord`.
    namesakes: Vec<TenantRecord>,
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
        Python::attach(|py| {
            f(py, self.obj.bind(py)).map_err(|e| {
                // A Python step that timed out waiting for a lock is retried like a SQL step.
                if e.is_instance_of::<error::py::LockTimeout>(py) {
                    return Error::HookTimeout(e.value(py).to_string());
                }
                self.error = Some(e);
                Error::Hook
            })
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

    fn retrying(
        &mut self,
        step: &Step,
        attempt: u32,
        retries: u32,
        delay: f64,
        reason: &str,
    ) -> Result<(), Error> {
        self.call(|_, o| {
            o.call_method1(
                "retrying",
                (&step.key.0, &step.key.1, attempt, retries, delay, reason),
            )
            .map(|_| ())
        })
    }
}

/// A tenant's run lock (see `backend/lock.rs`), held until `release()` or until the object goes.
#[pyclass(module = "tenant_migrate._core")]
struct RunLock {
    inner: Mutex<Option<backend::lock::RunLock>>,
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
        let wait = Duration::try_from_secs_f64(wait.max(0.0))
            .map_err(|e| Error::InvalidArgument(format!("invalid lock wait: {e}")))?;
        let mut raised: Option<PyErr> = None;
        let mut tell = |text: &str| {
            if let Some(callback) = &on_wait {
                Python::attach(|py| {
                    if let Err(e) = callback.call1(py, (text,)) {
                        raised.get_or_insert(e);
                    }
                });
            }
        };
        let held = py.detach(|| {
            let params = ConnectionParams::from_json(params_json)?;
            backend::lock::acquire(&params, tenant, wait, &mut tell)
        });
        // The notice's own failure (a closed stdout) says more than a lock taken or refused.
        if let Some(e) = raised {
            return Err(e);
        }
        let held = held?;
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
    interrupt: Interrupt,
    canceller: Option<Canceller>,
    running: Running,
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
        let interrupt = Interrupt::default();
        let backend = py
            .detach(|| {
                let params = ConnectionParams::from_json(params_json)?;
                backend::open(&params, interrupt.clone())
            })
            .map_err(Error::from)?;
        Ok(TenantDatabase {
            canceller: backend.canceller(),
            running: backend.running(),
            backend: Mutex::new(Some(backend)),
            interrupt,
        })
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

    /// The PostgreSQL server process of this connection (None on SQLite): what a heartbeat
    /// looks up in `pg_stat_activity` while a migration runs.
    /// The statement the core is running on this tenant now, if any (for the heartbeat; it
    /// can be called while `migrate` runs in another thread).
    fn running_statement(&self) -> Option<String> {
        self.running.get()
    }

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
        let recorded: BTreeSet<Key> = self.applied(py)?.into_iter().collect();
        let request = TargetRequest {
            app_label,
            migration_name,
        };
        let inner = py
            .detach(|| plan::plan_for_target(&spec, &recorded, &request))
            .map_err(Error::from)?;
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
    #[pyo3(signature = (plan, hooks, *, tenant, recorder_ddl, fake=false, fake_initial=false, cache=None, retries=0, retry_delay=1.0))]
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
        retries: u32,
        retry_delay: f64,
    ) -> PyResult<Report> {
        let retry_delay = Duration::try_from_secs_f64(retry_delay.max(0.0))
            .map_err(|e| Error::InvalidArgument(format!("invalid retry delay: {e}")))?;
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
            interrupt: &self.interrupt,
            retries,
            retry_delay,
        };
        // A non-atomic step that failed in Python: (tenant, migration), to say so.
        let mut partial: Option<(String, String)> = None;
        let result = self.with_backend(py, |b| {
            executor::migrate(b, &plan.inner, &mut adapter, &opts).inspect_err(|e| {
                if let Error::NotRolledBack {
                    tenant, migration, ..
                } = e
                {
                    partial = Some((tenant.clone(), migration.clone()));
                }
            })
        });
        if let Some(err) = adapter.error.take() {
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
    let spec = GraphSpec::from_json(graph_json).map_err(Error::from)?;
    let recorded: BTreeSet<Key> = applied.into_iter().collect();
    let request = TargetRequest {
        app_label,
        migration_name,
    };
    let inner = py
        .detach(|| plan::plan_for_target(&spec, &recorded, &request))
        .map_err(Error::from)?;
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
        namesakes: record.namesakes.into_iter().map(record_to_py).collect(),
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

/// `showmigrations` lines of one app: `(name, replaces, mark)`.
type ListLines = Vec<(String, usize, &'static str)>;

/// Close this process's idle pooled connections to a PostgreSQL database (none for SQLite);
/// returns how many were closed.
#[pyfunction]
fn release_idle_connections(params_json: &str) -> PyResult<usize> {
    let params = ConnectionParams::from_json(params_json).map_err(Error::from)?;
    Ok(backend::release_idle(&params).map_err(Error::from)?)
}

/// One tenant's standing, as `tenant_status` found it.
#[pyclass(frozen, module = "tenant_migrate._core", get_all)]
struct TenantStatus {
    /// `ok`, `missing` (no such database file, database or schema) or `error`. A plan error
    /// (a history `migrate` would refuse) keeps `history` and `apps`: Django lists it.
    state: &'static str,
    /// For `error`: `connect`, `permission`, `database` or `plan`; for `missing`: `missing`.
    error_kind: Option<&'static str>,
    error: Option<String>,
    /// The history rows `(app, name, applied)` in `id` order, `applied` in UTC.
    history: Vec<(String, String, String)>,
    /// What `migrate` with the requested target would run: `(app, name, backwards)`.
    plan: Vec<(String, String, bool)>,
    /// `showmigrations` per requested app: `(app, [(name, replaces, mark)])`, mark being
    /// `applied`, `unapplied` or `unrecorded`.
    apps: Vec<(String, ListLines)>,
}

fn tenant_status_of(history: status::History, standing: Option<status::Standing>) -> TenantStatus {
    let failed = |kind, error: String| TenantStatus {
        state: "error",
        error_kind: Some(kind),
        error: Some(error),
        history: vec![],
        plan: vec![],
        apps: vec![],
    };
    let rows = match history {
        status::History::Read(rows) => rows,
        status::History::Missing(reason) => {
            return TenantStatus {
                state: "missing",
                ..failed("missing", reason)
            }
        }
        status::History::Failed(e) => {
            let kind = match e {
                error::DbError::Connect(_) => "connect",
                error::DbError::PermissionDenied(_) => "permission",
                _ => "database",
            };
            return failed(kind, e.to_string());
        }
    };
    let Some(standing) = standing else {
        return failed("plan", "no plan computed".into());
    };
    let lists = match standing.lists {
        Ok(lists) => lists,
        Err(e) => return failed("plan", e.to_string()),
    };
    let apps = lists
        .into_iter()
        .map(|l| {
            let lines = l
                .lines
                .into_iter()
                .map(|x| (x.name, x.replaces, x.mark.as_str()))
                .collect();
            (l.app, lines)
        })
        .collect();
    let history = rows
        .into_iter()
        .map(|r| (r.app, r.name, r.applied))
        .collect();
    match standing.plan {
        Ok(plan) => TenantStatus {
            state: "ok",
            error_kind: None,
            error: None,
            history,
            plan,
            apps,
        },
        // Listed all the same, as Django's showmigrations lists it.
        Err(e) => TenantStatus {
            history,
            apps,
            ..failed("plan", e.to_string())
        },
    }
}

/// Many tenants' standing at once: their histories read concurrently (at most `threads`
/// connections), then Django's plan for the target and `showmigrations` for `app_labels`
/// (none: no list), once per distinct history. The interpreter is released throughout.
#[pyfunction]
#[pyo3(signature = (graph_json, params_json, app_labels, app_label=None, migration_name=None, threads=8))]
fn tenant_status(
    py: Python<'_>,
    graph_json: &str,
    params_json: Vec<String>,
    app_labels: Vec<String>,
    app_label: Option<String>,
    migration_name: Option<String>,
    threads: usize,
) -> PyResult<Vec<TenantStatus>> {
    let spec = GraphSpec::from_json(graph_json).map_err(Error::from)?;
    let statuses = py.detach(|| -> Result<Vec<TenantStatus>, Error> {
        // A tenant whose parameters cannot be read fails alone.
        let parsed: Vec<_> = params_json
            .iter()
            .map(|p| ConnectionParams::from_json(p))
            .collect();
        let readable: Vec<ConnectionParams> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().cloned())
            .collect();
        let mut read = status::read_histories(&readable, threads).into_iter();
        let histories: Vec<status::History> = parsed
            .into_iter()
            .map(|p| match p {
                Ok(_) => read.next().unwrap_or_else(|| {
                    status::History::Failed(error::DbError::Config("not read".into()))
                }),
                Err(e) => status::History::Failed(e),
            })
            .collect();
        let request = TargetRequest {
            app_label,
            migration_name,
        };
        let standings = status::standings(&spec, &histories, &request, &app_labels);
        Ok(histories
            .into_iter()
            .zip(standings)
            .map(|(h, s)| tenant_status_of(h, s))
            .collect())
    })?;
    Ok(statuses)
}

/// The statements that guard a migration's history rows when Django writes them, run in the
/// migration's own transaction before the row (see `backend/lock.rs`): the tenant's record lock, and
/// (None when this process holds no run lock for the tenant) a query whose one boolean says
/// whether this process still holds its run lock.
#[pyfunction]
fn history_guard(params_json: &str) -> PyResult<(String, Option<String>)> {
    let params = ConnectionParams::from_json(params_json).map_err(Error::from)?;
    Ok(backend::lock::record_guard(&params)?)
}

/// The error a Django-applied migration raises when its history guard fails: `lost` when the
/// run lock is gone, else the migration was recorded by another run meanwhile.
#[pyfunction]
fn concurrent_run(py: Python<'_>, tenant: String, migration: String, lost: bool) -> Py<PyAny> {
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
fn quote_ident(name: &str) -> PyResult<String> {
    Ok(backend::quote_ident(name).map_err(Error::from)?)
}

/// A statement as the user wrote it (no closing `;`), as a failed migration shows it.
#[pyfunction]
fn statement_text(statement: &str) -> &str {
    error::statement_text(statement)
}

/// The exception (not raised) the core raises when a migration fails, with the core's text:
/// `Migration <migration> failed for tenant '<tenant>': <reason>` and, when a statement was
/// running, `Statement: <statement>` on the next line.
#[pyfunction]
#[pyo3(signature = (tenant, migration, reason, statement=None))]
fn migration_failed(
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
fn tenant_not_found(py: Python<'_>, tenant: String) -> Py<PyAny> {
    PyErr::from(Error::TenantNotFound(tenant))
        .into_value(py)
        .into_any()
}

/// Django's squash rule: a squash counts as applied once every migration it replaces is.
#[pyfunction]
fn all_replaced_applied(replaces: Vec<Key>, applied: BTreeSet<Key>) -> bool {
    graph::all_replaced_applied(&replaces, &applied)
}

/// Interrupt (True) or stop interrupting (False) every wait of this process on a PostgreSQL
/// server: connecting, a lock wait, a query (see `backend::client`). Set on Ctrl-C, so that a
/// server that never answers cannot hold the command.
#[pyfunction]
fn interrupt_all(on: bool) {
    backend::client::interrupt_all(on);
}

/// Close the idle PostgreSQL connections kept for reuse by later tenants; returns how many.
#[pyfunction]
fn close_idle_connections(py: Python<'_>) -> usize {
    py.detach(backend::postgres::close_idle)
}

/// Keep at most `limit` idle PostgreSQL connections for reuse (default 16, all databases
/// together); returns the previous limit.
#[pyfunction]
fn set_idle_connection_limit(py: Python<'_>, limit: usize) -> usize {
    py.detach(|| backend::postgres::set_idle_limit(limit))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("GRAPH_FORMAT_VERSION", GRAPH_FORMAT_VERSION)?;
    let [lock_timeout, statement_timeout] = error::TIMEOUT_SQLSTATES;
    m.add("TIMEOUT_SQLSTATES", (lock_timeout, statement_timeout))?;
    m.add("INSUFFICIENT_PRIVILEGE", error::INSUFFICIENT_PRIVILEGE)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(lookup_tenant, m)?)?;
    m.add_function(wrap_pyfunction!(compute_plan, m)?)?;
    m.add_function(wrap_pyfunction!(list_tenants, m)?)?;
    m.add_function(wrap_pyfunction!(tenant_status, m)?)?;
    m.add_function(wrap_pyfunction!(release_idle_connections, m)?)?;
    m.add_function(wrap_pyfunction!(close_idle_connections, m)?)?;
    m.add_function(wrap_pyfunction!(set_idle_connection_limit, m)?)?;
    m.add_function(wrap_pyfunction!(history_guard, m)?)?;
    m.add_function(wrap_pyfunction!(interrupt_all, m)?)?;
    m.add_function(wrap_pyfunction!(concurrent_run, m)?)?;
    m.add_function(wrap_pyfunction!(quote_ident, m)?)?;
    m.add_function(wrap_pyfunction!(statement_text, m)?)?;
    m.add_function(wrap_pyfunction!(migration_failed, m)?)?;
    m.add_function(wrap_pyfunction!(tenant_not_found, m)?)?;
    m.add_function(wrap_pyfunction!(all_replaced_applied, m)?)?;
    m.add_class::<ReplayCache>()?;
    m.add_class::<RunLock>()?;
    m.add_class::<TenantDatabase>()?;
    m.add_class::<Plan>()?;
    m.add_class::<Report>()?;
    m.add_class::<StepReport>()?;
    m.add_class::<TenantRecord>()?;
    m.add_class::<TenantStatus>()?;
    error::register(m)
}
