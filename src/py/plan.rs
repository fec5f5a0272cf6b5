//! Plans and reports, as Python sees them, and pure planning.

use std::collections::BTreeSet;

use pyo3::prelude::*;

use crate::error::Error;
use crate::graph::{GraphSpec, Key};
use crate::plan::{self, Header, Step, TargetRequest};
use crate::report::StepReport as CoreStepReport;

#[pyclass(frozen, module = "tenant_migrate._core")]
pub(crate) struct Plan {
    pub(crate) inner: plan::Plan,
}

pub(crate) fn step_tuples(steps: &[Step]) -> Vec<(String, String, bool)> {
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
pub(crate) struct StepReport {
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
pub(crate) struct Report {
    pub(crate) steps: Vec<Py<StepReport>>,
    pub(crate) squashes_recorded: Vec<Key>,
}

/// Pure planning: Django's decisions for a graph and an applied set (used by tests and tools).
#[pyfunction]
#[pyo3(signature = (graph_json, applied, app_label=None, migration_name=None))]
pub(crate) fn compute_plan(
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
