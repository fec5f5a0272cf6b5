//! Compile once, replay many: SQL compiled by Django on one tenant, kept for every tenant whose
//! fingerprint (catalog + history + server version) is the same before the same migration.

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

#[derive(Default)]
pub struct ReplayCache {
    entries: Mutex<HashMap<Entry, Arc<Compiled>>>,
    /// Steps that were compiled at least once, whatever the fingerprint.
    compiled_steps: Mutex<HashSet<(Key, bool)>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub drifts: AtomicU64,
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
}
