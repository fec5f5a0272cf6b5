//! One migration run per tenant at a time.
//!
//! PostgreSQL: a transaction-level advisory lock taken on a connection of its own and held by
//! keeping that transaction open for the whole run. A transaction-pooling proxy (pgbouncer)
//! keeps one server connection for an open transaction, so the lock holds through it, where a
//! session-level advisory lock would be released or leaked when the proxy switches server
//! connections. When the process dies its connection closes, the server (or the proxy) aborts
//! the transaction, and the lock is gone: there is no lock row to go stale.
//!
//! SQLite: an exclusive advisory lock on a file next to the tenant's database, released by the
//! operating system when the process exits, however it exits.

use std::fs::{File, OpenOptions, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use postgres::types::Type;
use postgres::Client;

use crate::backend::postgres::{check_identifier, connect, pg_err};
use crate::backend::ConnectionParams;
use crate::error::{DbError, Error, Result};

/// Held for the duration of a run; dropping it releases the lock.
pub enum RunLock {
    Postgres(Box<Client>),
    Sqlite(File),
    /// Nothing to lock (an in-memory SQLite database belongs to one process).
    None,
}

/// What identifies the tenant's storage: two tenants never share it, and every process that
/// migrates the same tenant computes the same key.
fn pg_key(params: &ConnectionParams) -> Result<String> {
    let ConnectionParams::Postgresql { dbname, schema, .. } = params else {
        return Err(Error::InvalidArgument("not PostgreSQL parameters".into()));
    };
    check_identifier("database", dbname)?;
    Ok(match schema {
        Some(schema) => {
            check_identifier("schema", schema)?;
            format!("tenant_migrate schema {dbname}.{schema}")
        }
        None => format!("tenant_migrate database {dbname}"),
    })
}

/// Take the tenant's run lock, waiting up to `wait` for another run to finish.
/// `tenant` names the tenant in the error.
pub fn acquire(params: &ConnectionParams, tenant: &str, wait: Duration) -> Result<RunLock> {
    match params {
        ConnectionParams::Sqlite { path } => sqlite_lock(path, tenant, wait),
        ConnectionParams::Postgresql { .. } => pg_lock(params, tenant, wait),
    }
}

fn pg_lock(params: &ConnectionParams, tenant: &str, wait: Duration) -> Result<RunLock> {
    let key = pg_key(params)?;
    let mut client = connect(params)?;
    client.batch_execute("BEGIN").map_err(pg_err)?;
    // A server-wide idle-in-transaction timeout would end the lock while the run goes on.
    client
        .batch_execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        .map_err(pg_err)?;
    // 64 bits of the key's md5 as the lock id; the key is a bound value.
    const KEY: &str = "('x' || substr(md5($1), 1, 16))::bit(64)::bigint";
    let got = if wait.is_zero() {
        let row = client
            .query_typed_one(
                &format!("SELECT pg_try_advisory_xact_lock({KEY})"),
                &[(&key, Type::TEXT)],
            )
            .map_err(pg_err)?;
        row.get::<_, bool>(0)
    } else {
        let ms = wait.as_millis().max(1);
        client
            .batch_execute(&format!("SET LOCAL lock_timeout = '{ms}ms'"))
            .map_err(pg_err)?;
        let sql = format!("SELECT pg_advisory_xact_lock({KEY})::text");
        match client.query_typed_one(&sql, &[(&key, Type::TEXT)]) {
            Ok(_) => {
                client
                    .batch_execute("SET LOCAL lock_timeout = 0")
                    .map_err(pg_err)?;
                true
            }
            Err(e) if pg_err_is_lock_timeout(&e) => false,
            Err(e) => return Err(pg_err(e).into()),
        }
    };
    if !got {
        return Err(Error::Busy(tenant.to_string()));
    }
    Ok(RunLock::Postgres(Box::new(client)))
}

fn pg_err_is_lock_timeout(e: &postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| db.code().code() == "55P03")
}

fn sqlite_lock(path: &str, tenant: &str, wait: Duration) -> Result<RunLock> {
    if path.is_empty() || path == ":memory:" || path.starts_with("file::memory:") {
        return Ok(RunLock::None);
    }
    let lock_path = format!("{path}.migrate-lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| DbError::Connect(format!("unable to open lock file {lock_path}: {e}")))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(RunLock::Sqlite(file)),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => return Err(Error::Busy(tenant.to_string())),
            Err(TryLockError::Error(e)) => {
                return Err(DbError::Connect(format!("unable to lock {lock_path}: {e}")).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_sqlite_lock_on_the_same_tenant_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("tm-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let params = ConnectionParams::Sqlite {
            path: dir.join("acme.sqlite3").to_string_lossy().into_owned(),
        };
        let first = acquire(&params, "acme", Duration::ZERO).unwrap();
        let second = acquire(&params, "acme", Duration::from_millis(120));
        assert!(matches!(second, Err(Error::Busy(t)) if t == "acme"));
        drop(first);
        assert!(acquire(&params, "acme", Duration::ZERO).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
