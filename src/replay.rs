//! Compile once, replay many: SQL compiled by Django on one tenant, kept for every tenant whose
//! fingerprint (catalog + history + server version) is the same before the same migration, or,
//! where Django read nothing from the catalog to compile it, for every tenant whose project state
//! is the same (same history, same plan, same server): those need no fingerprint at all.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::graph::Key;

type Entry = (Key, bool, String);

/// SQL compiled for a step on a tenant in a given state, and the state that tenant was in
/// afterwards: a tenant that replays it from the same state ends in that same state, so the
/// next step can be verified without asking the database again.
pub struct Compiled {
    pub sql: Vec<String>,
    pub fingerprint_after: String,
}

/// Whom the SQL Django compiled for a step on one tenant is good for, as the Python side saw
/// the compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Django read the tenant's catalog (constraint names...): tenants with the same fingerprint.
    Catalog,
    /// Built from the project state alone: tenants with the same state key, fingerprint or not.
    State,
    /// It holds a value computed while compiling (a callable default such as `uuid4` filling
    /// existing rows): Django computes it for each tenant, so each tenant compiles its own.
    Tenant,
}

#[derive(Default)]
pub struct ReplayCache {
    entries: Mutex<HashMap<Entry, Arc<Compiled>>>,
    /// By (step, direction, state key): SQL of `Sharing::State`.
    by_state: Mutex<HashMap<Entry, Arc<Vec<String>>>>,
    /// Steps compiled as `Sharing::Tenant`: compiled on every tenant, never fingerprinted for.
    per_tenant: Mutex<HashSet<(Key, bool)>>,
    /// Steps that were compiled at least once, whatever the fingerprint.
    compiled_steps: Mutex<HashSet<(Key, bool)>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub drifts: AtomicU64,
    /// Catalog fingerprints read from tenants' databases.
    pub fingerprints: AtomicU64,
}

/// What the cache says about a step on one tenant.
pub enum Lookup {
    Hit(Arc<Compiled>),
    /// Nothing compiled for this step yet: the first tenant in this state.
    Miss,
    /// Compiled before, but for a tenant in another state: this tenant has drifted.
    Drift,
}

impl ReplayCache {
    pub fn lookup(&self, key: &Key, backwards: bool, fingerprint: &str) -> Lookup {
        let entry = (key.clone(), backwards, fingerprint.to_string());
        if let Some(sql) = self
            .entries
            .lock()
            .ok()
            .and_then(|m| m.get(&entry).cloned())
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Hit(sql);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let seen = self
            .compiled_steps
            .lock()
            .map(|s| s.contains(&(key.clone(), backwards)))
            .unwrap_or(false);
        if seen {
            self.drifts.fetch_add(1, Ordering::Relaxed);
            Lookup::Drift
        } else {
            Lookup::Miss
        }
    }

    pub fn insert(&self, key: &Key, backwards: bool, fingerprint: &str, compiled: Compiled) {
        if let Ok(mut m) = self.entries.lock() {
            m.insert(
                (key.clone(), backwards, fingerprint.to_string()),
                Arc::new(compiled),
            );
        }
        if let Ok(mut s) = self.compiled_steps.lock() {
            s.insert((key.clone(), backwards));
        }
    }

    /// SQL of `Sharing::State` compiled for this step on a tenant with the same state key.
    pub fn for_state(&self, key: &Key, backwards: bool, state: &str) -> Option<Arc<Vec<String>>> {
        let entry = (key.clone(), backwards, state.to_string());
        let found = self
            .by_state
            .lock()
            .ok()
            .and_then(|m| m.get(&entry).cloned());
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    pub fn insert_for_state(&self, key: &Key, backwards: bool, state: &str, sql: Vec<String>) {
        if let Ok(mut m) = self.by_state.lock() {
            m.insert((key.clone(), backwards, state.to_string()), Arc::new(sql));
        }
    }

    pub fn mark_per_tenant(&self, key: &Key, backwards: bool) {
        if let Ok(mut s) = self.per_tenant.lock() {
            s.insert((key.clone(), backwards));
        }
    }

    pub fn is_per_tenant(&self, key: &Key, backwards: bool) -> bool {
        self.per_tenant
            .lock()
            .map(|s| s.contains(&(key.clone(), backwards)))
            .unwrap_or(false)
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_miss_and_drift() {
        let cache = ReplayCache::default();
        let key = ("a".to_string(), "0001".to_string());
        assert!(matches!(cache.lookup(&key, false, "fp1"), Lookup::Miss));
        cache.insert(
            &key,
            false,
            "fp1",
            Compiled {
                sql: vec!["CREATE TABLE t (id int);".into()],
                fingerprint_after: "fp2".into(),
            },
        );
        assert!(matches!(cache.lookup(&key, false, "fp1"), Lookup::Hit(_)));
        assert!(matches!(cache.lookup(&key, false, "fp2"), Lookup::Drift));
        assert!(matches!(cache.lookup(&key, true, "fp1"), Lookup::Miss));
        assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
        assert_eq!(cache.drifts.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn state_sql_is_kept_per_state_and_direction() {
        let cache = ReplayCache::default();
        let key = ("a".to_string(), "0002".to_string());
        assert!(cache.for_state(&key, false, "s1").is_none());
        cache.insert_for_state(&key, false, "s1", vec!["ALTER TABLE t ADD x int;".into()]);
        assert_eq!(cache.for_state(&key, false, "s1").map(|s| s.len()), Some(1));
        assert!(cache.for_state(&key, false, "s2").is_none());
        assert!(cache.for_state(&key, true, "s1").is_none());
        assert!(!cache.is_per_tenant(&key, false));
        cache.mark_per_tenant(&key, false);
        assert!(cache.is_per_tenant(&key, false));
        assert!(!cache.is_per_tenant(&key, true));
    }
}
