//! Many tenants' standing at once (`showtenantmigrations`, `showmigrations`).

use pyo3::prelude::*;

use crate::backend::ConnectionParams;
use crate::error::{self, Error};
use crate::graph::GraphSpec;
use crate::plan::TargetRequest;
use crate::status;

/// `showmigrations` lines of one app: `(name, replaces, mark)`.
pub(crate) type ListLines = Vec<(String, usize, &'static str)>;

/// One tenant's standing, as `tenant_status` found it.
#[pyclass(frozen, module = "tenant_migrate._core", get_all)]
pub(crate) struct TenantStatus {
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

pub(crate) fn tenant_status_of(
    history: status::History,
    standing: Option<status::Standing>,
) -> TenantStatus {
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
pub(crate) fn tenant_status(
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
