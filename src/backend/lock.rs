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
//!
//! A lock held on a connection of its own can be lost while the run goes on: an operator's
//! `pg_terminate_backend`, a proxy's idle-transaction timeout. So the lock is not what keeps a
//! migration from being applied twice; every migration transaction is (see `record_guard`):
//! it takes a transaction-level advisory lock of its own (the *record lock*, which dies with the
//! transaction), and before its history rows are written it checks, in that transaction, that
//! this process still holds the run lock and that no other run recorded the migration
//! meanwhile. A run whose lock died stops before its next commit; a second run that took the
//! lock over while the first was half-way through a migration finds that migration recorded and
//! rolls its own copy back.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tokio_postgres::types::Type;

use crate::backend::client::{pg_err, Client, READ_TIMEOUT};
use crate::backend::postgres::{check_identifier, connect, give_back, take_pooled};
use crate::backend::ConnectionParams;
use crate::error::{DbError, Error, Result};

/// Held for the duration of a run; dropping it releases the lock.
pub enum RunLock {
    Postgres(PgRunLock),
    Sqlite(File),
    /// Nothing to lock (an in-memory SQLite database belongs to one process).
    None,
}

/// The lock connection, registered (see `held`) while it is held.
pub struct PgRunLock {
    client: Option<Box<Client>>,
    pool_key: String,
    registered_as: String,
}

impl Drop for PgRunLock {
    fn drop(&mut self) {
        if let Ok(mut held) = registry().lock() {
            held.remove(&self.registered_as);
        }
        // The lock ends with its transaction; the connection, back outside any transaction,
        // serves the next tenant's lock (or its migrations) instead of a new connection per
        // tenant. One that cannot end its transaction is closed (dropped).
        if let Some(mut client) = self.client.take() {
            if client.batch_execute("ROLLBACK").is_ok() {
                give_back(std::mem::take(&mut self.pool_key), *client);
            }
        }
    }
}

/// A run lock this process holds: the advisory lock's id and the server process holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLock {
    pub lock_id: i64,
    pub pid: i32,
}

fn registry() -> &'static Mutex<HashMap<String, HeldLock>> {
    static HELD: OnceLock<Mutex<HashMap<String, HeldLock>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The run lock this process holds for the tenant reached by `params`, if any.
pub fn held(params: &ConnectionParams) -> Option<HeldLock> {
    let key = registry_key(params).ok()?;
    registry().lock().ok()?.get(&key).copied()
}

/// Server and tenant storage: the same database name on two servers is two tenants.
fn registry_key(params: &ConnectionParams) -> Result<String> {
    let ConnectionParams::Postgresql { host, port, .. } = params else {
        return Err(Error::InvalidArgument("not PostgreSQL parameters".into()));
    };
    let host = host
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    Ok(format!(
        "{host}\0{}\0{}",
        port.unwrap_or(5432),
        pg_key(params)?
    ))
}

/// What identifies the tenant's storage: two tenants never share it, and every process that
/// migrates the same tenant computes the same key.
fn pg_key(params: &ConnectionParams) -> Result<String> {
    storage_key("tenant_migrate", params)
}

fn storage_key(namespace: &str, params: &ConnectionParams) -> Result<String> {
    let ConnectionParams::Postgresql { dbname, schema, .. } = params else {
        return Err(Error::InvalidArgument("not PostgreSQL parameters".into()));
    };
    check_identifier("database", dbname)?;
    Ok(match schema {
        Some(schema) => {
            check_identifier("schema", schema)?;
            format!("{namespace} schema {dbname}.{schema}")
        }
        None => format!("{namespace} database {dbname}"),
    })
}

/// 64-bit FNV-1a: a lock id every process computes alike, without a round trip.
fn fnv1a(text: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// What guards a migration's history rows, inside its own transaction: the statement that
/// takes the tenant's record lock (held until the transaction ends, so two runs never write the
/// same history at once), and, when this process holds the tenant's run lock, a boolean
/// expression saying whether it still does (for the caller's next query, which sees rows
/// committed while it waited for the lock). Integers only: nothing user-supplied in the text.
pub fn record_guard(params: &ConnectionParams) -> Result<(String, Option<String>)> {
    Ok((record_lock_sql(params)?, held(params).map(alive_condition)))
}

/// Whether this process still holds its run lock on the tenant reached by `params`, as a
/// boolean expression: `true` when it took none (a run without one is not guarded by it).
pub fn still_held(params: &ConnectionParams) -> String {
    held(params).map_or_else(|| "true".to_string(), alive_condition)
}

/// The record lock of the tenant reached by `params`, as a statement.
pub fn record_lock_sql(params: &ConnectionParams) -> Result<String> {
    let record_lock = fnv1a(&storage_key("tenant_migrate record", params)?);
    Ok(format!(
        "SELECT pg_catalog.pg_advisory_xact_lock({record_lock})"
    ))
}

/// Whether server process `pid` still holds advisory lock `lock_id` (a bigint lock shows in
/// `pg_locks` as its high and low 32 bits, `objsubid` 1).
pub fn alive_condition(held: HeldLock) -> String {
    let bits = u64::from_ne_bytes(held.lock_id.to_ne_bytes());
    format!(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted \
         AND pid = {} AND objsubid = 1 AND classid::bigint = {} AND objid::bigint = {})",
        held.pid,
        bits >> 32,
        bits & 0xffff_ffff
    )
}

/// What the user is told, once, before this run waits for another run's lock on `tenant`.
pub fn waiting_notice(tenant: &str, wait: Duration) -> String {
    // `Display` of a whole `f64` has no fraction: 10 s, 2.5 s.
    format!(
        "Waiting up to {} s for the run holding tenant '{tenant}'.",
        wait.as_secs_f64()
    )
}

/// Take the tenant's run lock, waiting up to `wait` for another run to finish. `tenant` names
/// the tenant in the error; `on_wait` is called once with `waiting_notice` when the lock is
/// held by another run and this one is about to wait for it (never when `wait` is zero).
pub fn acquire(
    params: &ConnectionParams,
    tenant: &str,
    wait: Duration,
    on_wait: &mut dyn FnMut(&str),
) -> Result<RunLock> {
    let mut notice = |tenant: &str| on_wait(&waiting_notice(tenant, wait));
    match params {
        ConnectionParams::Sqlite { path } => sqlite_lock(path, tenant, wait, &mut notice),
        ConnectionParams::Postgresql { .. } => pg_lock(params, tenant, wait, &mut notice),
    }
}

fn pg_lock(
    params: &ConnectionParams,
    tenant: &str,
    wait: Duration,
    notice: &mut dyn FnMut(&str),
) -> Result<RunLock> {
    let key = pg_key(params)?;
    let (pooled, pool_key) = take_pooled(params)?;
    // A server-wide idle-in-transaction timeout would end the lock while the run goes on.
    const BEGIN: &str = "BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0";
    // A pooled connection the server has closed meanwhile fails its BEGIN: then a new one.
    let began = pooled.and_then(|mut c| c.batch_execute(BEGIN).is_ok().then_some(c));
    let mut client = match began {
        Some(c) => c,
        None => {
            let mut c = connect(params)?;
            c.batch_execute(BEGIN)?;
            c
        }
    };
    // 64 bits of the key's md5 as the lock id; the key is a bound value.
    const KEY: &str = "('x' || substr(md5($1), 1, 16))::bit(64)::bigint";
    let ids = format!("{KEY}, pg_catalog.pg_backend_pid()");
    let row = client.query_typed_one(
        &format!("SELECT pg_try_advisory_xact_lock({KEY}), {ids}"),
        &[(&key, Type::TEXT)],
    )?;
    let free = row.try_get::<_, bool>(0).map_err(pg_err)?;
    let got = if free {
        Some(held_lock(&row)?)
    } else if wait.is_zero() {
        None
    } else {
        notice(tenant);
        let ms = wait.as_millis().max(1);
        client.batch_execute(&format!("SET LOCAL lock_timeout = '{ms}ms'"))?;
        let sql = format!("SELECT pg_advisory_xact_lock({KEY})::text, {ids}");
        // The server gives up after `wait` (lock_timeout); this side, a little later.
        client.read_timeout = wait + READ_TIMEOUT;
        let locked = client.query_typed_one(&sql, &[(&key, Type::TEXT)]);
        client.read_timeout = READ_TIMEOUT;
        match locked {
            Ok(row) => Some(held_lock(&row)?),
            Err(e) if is_lock_timeout(&e) => None,
            Err(e) => return Err(e.into()),
        }
    };
    let Some(held) = got else {
        return Err(Error::Busy(tenant.to_string()));
    };
    // The lock was taken by an extended-protocol query, whose unnamed portal lives, with its
    // snapshot, until the next query: left so, this idle transaction would hold back the xmin
    // horizon for the whole run, and CREATE INDEX CONCURRENTLY (which waits for every older
    // snapshot) would wait for it forever. A simple-protocol statement closes that portal.
    client.batch_execute("SET LOCAL lock_timeout = 0")?;
    let registered_as = registry_key(params)?;
    if let Ok(mut registry) = registry().lock() {
        registry.insert(registered_as.clone(), held);
    }
    Ok(RunLock::Postgres(PgRunLock {
        client: Some(Box::new(client)),
        pool_key,
        registered_as,
    }))
}

fn held_lock(row: &tokio_postgres::Row) -> Result<HeldLock> {
    Ok(HeldLock {
        lock_id: row.try_get(1).map_err(pg_err)?,
        pid: row.try_get(2).map_err(pg_err)?,
    })
}

fn is_lock_timeout(e: &DbError) -> bool {
    matches!(e, DbError::Query { sqlstate: Some(code), .. } if code == crate::error::LOCK_NOT_AVAILABLE)
}

fn sqlite_lock(
    path: &str,
    tenant: &str,
    wait: Duration,
    notice: &mut dyn FnMut(&str),
) -> Result<RunLock> {
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
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(RunLock::Sqlite(file)),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                if !told {
                    told = true;
                    notice(tenant);
                }
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
    fn record_guard_names_the_record_lock_and_checks_the_run_lock_only_when_held() {
        let params = ConnectionParams::from_json(
            r#"{"vendor": "postgresql", "dbname": "shared", "schema": "public_acme"}"#,
        )
        .unwrap();
        let (lock, alive) = record_guard(&params).unwrap();
        let id = fnv1a("tenant_migrate record schema shared.public_acme");
        assert_eq!(
            lock,
            format!("SELECT pg_catalog.pg_advisory_xact_lock({id})")
        );
        assert_eq!(alive, None);
        let key = registry_key(&params).unwrap();
        registry().lock().unwrap().insert(
            key.clone(),
            HeldLock {
                lock_id: -8070080442485551184,
                pid: 42,
            },
        );
        let alive = record_guard(&params).unwrap().1.unwrap();
        assert!(alive.contains("pid = 42 AND objsubid = 1 AND classid::bigint = 2416005272 AND objid::bigint = 1020415920"), "{alive}");
        registry().lock().unwrap().remove(&key);
    }

    #[test]
    fn the_waiting_notice_gives_the_wait_in_seconds() {
        assert_eq!(
            waiting_notice("acme", Duration::from_secs(10)),
            "Waiting up to 10 s for the run holding tenant 'acme'."
        );
        assert_eq!(
            waiting_notice("acme", Duration::from_secs_f64(2.5)),
            "Waiting up to 2.5 s for the run holding tenant 'acme'."
        );
    }

    #[test]
    fn a_second_sqlite_lock_on_the_same_tenant_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("tm-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let params = ConnectionParams::Sqlite {
            path: dir.join("acme.sqlite3").to_string_lossy().into_owned(),
        };
        let mut notices = Vec::new();
        let mut told = |text: &str| notices.push(text.to_string());
        let first = acquire(&params, "acme", Duration::ZERO, &mut told).unwrap();
        assert!(matches!(
            acquire(&params, "acme", Duration::ZERO, &mut told),
            Err(Error::Busy(t)) if t == "acme"
        ));
        let second = acquire(&params, "acme", Duration::from_millis(120), &mut told);
        assert!(matches!(second, Err(Error::Busy(t)) if t == "acme"));
        drop(first);
        assert!(acquire(&params, "acme", Duration::from_millis(120), &mut told).is_ok());
        // Told once, and only by the run that had to wait.
        assert_eq!(
            notices,
            ["Waiting up to 0.12 s for the run holding tenant 'acme'."]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
