//! Idle PostgreSQL connections kept for the next tenant of the same server, database and login.

use std::sync::{Mutex, OnceLock};

use super::client::Client;

/// Idle connections kept for reuse, all databases together, the most recently used last.
///
/// The next tenant of the same database (schema isolation, the master) reuses one instead of
/// paying a connection start-up. The bound is on the total, not per database: with database
/// isolation every tenant is a database of its own, visited once per run, and a per-database
/// pool would keep one idle session per tenant until the server's `max_connections` (or the
/// role's `CONNECTION LIMIT`) refuses the next one. The oldest idle connection is closed first.
const DEFAULT_IDLE_LIMIT: usize = 16;

struct Pool {
    idle: Vec<(String, Client)>,
    limit: usize,
}

impl Pool {
    fn take(&mut self, key: &str) -> Option<Client> {
        let at = self.idle.iter().rposition(|(k, _)| k == key)?;
        Some(self.idle.remove(at).1)
    }

    fn put(&mut self, key: String, client: Client) {
        self.idle.push((key, client));
        self.trim();
    }

    fn trim(&mut self) {
        let excess = self.idle.len().saturating_sub(self.limit);
        self.idle.drain(..excess);
    }
}

fn pool() -> &'static Mutex<Pool> {
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Mutex::new(Pool {
            idle: Vec::new(),
            limit: DEFAULT_IDLE_LIMIT,
        })
    })
}

/// Close every idle pooled connection (a test tearing down its database, say); returns how many.
pub fn close_idle() -> usize {
    match pool().lock() {
        Ok(mut p) => p.idle.drain(..).count(),
        Err(_) => 0,
    }
}

/// Keep at most `limit` idle connections from now on (0: close each when its tenant is done),
/// for a role whose `CONNECTION LIMIT` leaves no room for idle ones; returns the previous limit.
pub fn set_idle_limit(limit: usize) -> usize {
    match pool().lock() {
        Ok(mut p) => {
            let previous = std::mem::replace(&mut p.limit, limit);
            p.trim();
            previous
        }
        Err(_) => DEFAULT_IDLE_LIMIT,
    }
}

/// The most recently kept idle connection for `key`, if one is kept and still open.
pub(super) fn take(key: &str) -> Option<Client> {
    pool()
        .lock()
        .ok()
        .and_then(|mut p| p.take(key))
        .filter(|c| !c.is_closed())
}

/// Keep a connection, idle and outside any transaction, for the next tenant.
pub(super) fn put(key: String, client: Client) {
    if client.is_closed() {
        return;
    }
    if let Ok(mut p) = pool().lock() {
        p.put(key, client);
    }
}

/// Close the idle connections kept for `key`; returns how many.
pub(super) fn release(key: &str) -> usize {
    pool().lock().map_or(0, |mut p| {
        let before = p.idle.len();
        p.idle.retain(|(k, _)| k != key);
        before - p.idle.len()
    })
}
