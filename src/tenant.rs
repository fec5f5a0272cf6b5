//! The tenant registry: a table in the master database, read directly with a bound tenant id.

use rusqlite::OptionalExtension;

use crate::backend::postgres::{connect, pg_err};
use crate::backend::{quote_ident, ConnectionParams};
use crate::error::{DbError, Error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant_id: String,
    pub name: String,
    /// `database` or `schema`.
    pub isolation: String,
    pub database_name: String,
    pub schema_name: String,
    /// JSON object of connection overrides (HOST, PORT, USER, PASSWORD, ...), as stored.
    pub connection: String,
}

const COLUMNS: &str = "\"tenant_id\", \"name\", \"isolation\", \"database_name\", \"schema_name\"";

fn missing_registry(table: &str) -> Error {
    Error::InvalidArgument(format!(
        "The tenant registry table '{table}' does not exist in the master database. \
         Run 'python manage.py migrate' first."
    ))
}

/// Find one tenant. Absent means `TenantNotFound` with the spec's text.
pub fn lookup(
    master: &ConnectionParams,
    table: &str,
    tenant_id: &str,
) -> Result<TenantRecord, Error> {
    let quoted = quote_ident(table)?;
    let found = match master {
        ConnectionParams::Sqlite { path } => {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(|e| DbError::Connect(format!("master database {path}: {e}")))?;
            let exists: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .map_err(|e| DbError::query(e.to_string(), None))?;
            if exists == 0 {
                return Err(missing_registry(table));
            }
            conn.query_row(
                &format!("SELECT {COLUMNS}, \"connection\" FROM {quoted} WHERE \"tenant_id\" = ?1"),
                [tenant_id],
                |r| {
                    Ok(TenantRecord {
                        tenant_id: r.get(0)?,
                        name: r.get(1)?,
                        isolation: r.get(2)?,
                        database_name: r.get(3)?,
                        schema_name: r.get(4)?,
                        connection: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(|e| DbError::query(e.to_string(), None))?
        }
        ConnectionParams::Postgresql { .. } => {
            let mut client = connect(master)?;
            let exists = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quoted])
                .map_err(pg_err)?
                .get::<_, bool>(0);
            if !exists {
                return Err(missing_registry(table));
            }
            client
                .query_opt(
                    &format!("SELECT {COLUMNS}, \"connection\"::text FROM {quoted} WHERE \"tenant_id\" = $1"),
                    &[&tenant_id],
                )
                .map_err(pg_err)?
                .map(|r| TenantRecord {
                    tenant_id: r.get(0),
                    name: r.get(1),
                    isolation: r.get(2),
                    database_name: r.get(3),
                    schema_name: r.get(4),
                    connection: r.get(5),
                })
        }
    };
    found.ok_or_else(|| Error::TenantNotFound(tenant_id.to_string()))
}
