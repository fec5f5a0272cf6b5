//! The tenant registry's rows, read from the master database (SQLite or PostgreSQL); what to
//! select and how to filter is `tenant.rs`'s.

use tokio_postgres::types::{ToSql, Type};

use super::client::pg_err;
use super::postgres::connect;
use super::{quote_ident, ConnectionParams};
use crate::error::DbError;

/// The registry table's rows (`width` text columns each), or None when `table` does not exist.
/// `sql` writes the query given how bound values are prefixed (`?` or `$`).
pub fn read_rows(
    master: &ConnectionParams,
    table: &str,
    sql: &dyn Fn(&str) -> String,
    values: &[&str],
    width: usize,
) -> Result<Option<Vec<Vec<Option<String>>>>, DbError> {
    let rows = match master {
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
                return Ok(None);
            }
            let mut stmt = conn.prepare(&sql("?")).map_err(sq)?;
            let map = |r: &rusqlite::Row<'_>| {
                (0..width)
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect::<Result<Vec<_>, _>>()
            };
            let rows = stmt
                .query_map(rusqlite::params_from_iter(values.iter()), map)
                .map_err(sq)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sq)?
        }
        ConnectionParams::Postgresql { .. } => {
            let mut client = connect(master)?;
            // Typed parameters: no prepared statement round trip (and none left behind a
            // transaction-pooling proxy).
            let exists = client
                .query_typed_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[(&quote_ident(table)?, Type::TEXT)],
                )?
                .get::<_, bool>(0);
            if !exists {
                return Ok(None);
            }
            let bound: Vec<(&(dyn ToSql + Sync), Type)> = values
                .iter()
                .map(|v| (v as &(dyn ToSql + Sync), Type::TEXT))
                .collect();
            let rows = client.query_typed(&sql("$"), &bound)?;
            rows.iter()
                .map(|r| {
                    (0..width)
                        .map(|i| r.try_get::<_, Option<String>>(i))
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(pg_err)?
        }
    };
    Ok(Some(rows))
}
