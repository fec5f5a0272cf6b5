//! The tenant registry's records, as Python sees them.

use pyo3::prelude::*;

use crate::backend::ConnectionParams;
use crate::tenant::{self, RegistrySpec};

#[pyclass(frozen, module = "tenant_migrate._core", get_all)]
#[derive(Clone)]
pub(crate) struct TenantRecord {
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

pub(crate) fn record_to_py(record: tenant::TenantRecord) -> TenantRecord {
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
pub(crate) fn list_tenants(
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
pub(crate) fn lookup_tenant(
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
