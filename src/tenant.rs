//! The tenant registry: a table in the master database, read directly with a bound tenant id.

use postgres::types::Type;

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
    read(master, table, Some(tenant_id))?
        .pop()
        .ok_or_else(|| Error::TenantNotFound(tenant_id.to_string()))
}

/// Every tenant, ordered by tenant id (the documented order of all-tenant runs).
pub fn list(master: &ConnectionParams, table: &str) -> Result<Vec<TenantRecord>, Error> {
    read(master, table, None)
}

fn read(
    master: &ConnectionParams,
    table: &str,
    tenant_id: Option<&str>,
) -> Result<Vec<TenantRecord>, Error> {
    let quoted = quote_ident(table)?;
    match master {
        ConnectionParams::Sqlite { path } => {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(|e| DbError::Connect(format!("master database {path}: {e}")))?;
            let sq = |e: rusqlite::Error| DbError::query(e.to_string(), None);
            let exists: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .map_err(sq)?;
            if exists == 0 {
                return Err(missing_registry(table));
            }
            let filter = if tenant_id.is_some() {
                "WHERE \"tenant_id\" = ?1"
            } else {
                ""
            };
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {COLUMNS}, \"connection\" FROM {quoted} {filter} ORDER BY \"tenant_id\""
                ))
                .map_err(sq)?;
            let map = |r: &rusqlite::Row<'_>| {
                Ok(TenantRecord {
                    tenant_id: r.get(0)?,
                    name: r.get(1)?,
                    isolation: r.get(2)?,
                    database_name: r.get(3)?,
                    schema_name: r.get(4)?,
                    connection: r.get(5)?,
                })
            };
            let rows = match tenant_id {
                Some(id) => stmt.query_map([id], map),
                None => stmt.query_map([], map),
            }
            .map_err(sq)?;
            Ok(rows.collect::<Result<Vec<_>, _>>().map_err(sq)?)
        }
        ConnectionParams::Postgresql { .. } => {
            let mut client = connect(master)?;
            let exists = client
                .query_typed_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[(&quoted, Type::TEXT)],
                )
                .map_err(pg_err)?
                .get::<_, bool>(0);
            if !exists {
                return Err(missing_registry(table));
            }
            let sql = format!("SELECT {COLUMNS}, \"connection\"::text FROM {quoted}");
            let rows = match tenant_id {
                Some(id) => client.query_typed(
                    &format!("{sql} WHERE \"tenant_id\" = $1"),
                    &[(&id, Type::TEXT)],
                ),
                None => client.query_typed(&format!("{sql} ORDER BY \"tenant_id\""), &[]),
            }
            .map_err(pg_err)?;
            Ok(rows
                .iter()
                .map(|r| TenantRecord {
                    tenant_id: r.get(0),
                    name: r.get(1),
                    isolation: r.get(2),
                    database_name: r.get(3),
                    schema_name: r.get(4),
                    connection: r.get(5),
                })
                .collect())
        }
    }
}
