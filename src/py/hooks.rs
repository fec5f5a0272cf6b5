//! The executor's `Hooks`, answered by a Python object.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::plan::StepReport;
use crate::error::{self, Error};
use crate::executor;
use crate::plan::Step;
use crate::replay::Sharing;
use crate::report::StepReport as CoreStepReport;

/// Adapts a Python hooks object to the executor's `Hooks`. The interpreter is attached only for
/// the duration of each callback; a Python exception is kept and re-raised unchanged.
pub(crate) struct PyHooks {
    obj: Py<PyAny>,
    error: Option<PyErr>,
}

impl PyHooks {
    pub(crate) fn new(obj: Py<PyAny>) -> Self {
        PyHooks { obj, error: None }
    }

    /// The Python exception a callback raised, to be raised again unchanged.
    pub(crate) fn take_error(&mut self) -> Option<PyErr> {
        self.error.take()
    }

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

/// `(statements, "catalog" | "state" | "tenant")` from Python, or `None`.
fn with_sharing(answer: Option<(Vec<String>, String)>) -> PyResult<Option<(Vec<String>, Sharing)>> {
    let Some((sql, sharing)) = answer else {
        return Ok(None);
    };
    let sharing = match sharing.as_str() {
        "catalog" => Sharing::Catalog,
        "state" => Sharing::State,
        "tenant" => Sharing::Tenant,
        other => return Err(PyValueError::new_err(format!("unknown sharing {other:?}"))),
    };
    Ok(Some((sql, sharing)))
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

    fn compile(&mut self, step: &Step) -> Result<Option<(Vec<String>, Sharing)>, Error> {
        self.call(|_, o| {
            let compiled = o.call_method1("compile", (&step.key.0, &step.key.1, step.backwards))?;
            with_sharing(compiled.extract()?)
        })
    }

    fn apply_with_django(&mut self, step: &Step) -> Result<Option<(Vec<String>, Sharing)>, Error> {
        self.call(|_, o| {
            let ran = o.call_method1(
                "apply_with_django",
                (&step.key.0, &step.key.1, step.backwards),
            )?;
            with_sharing(ran.extract()?)
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
