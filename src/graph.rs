//! The migration graph, rebuilt exactly as Django's `MigrationLoader.build_graph` builds it.
//!
//! Python hands us every migration found on disk, with its dependencies already resolved through
//! Django's own `check_key` (so `__first__`/`__latest__` mean what they mean to Django). What
//! depends on the tenant (which squashes are usable) is decided here, from the tenant's applied
//! set, so that one serialised graph serves every tenant.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;

use crate::error::PlanError;

/// `(app_label, migration_name)`, ordered as Python orders the tuples (code point order).
pub type Key = (String, String);

/// Version of the JSON structure Python sends; bumped on any incompatible change.
pub const GRAPH_FORMAT_VERSION: u32 = 1;

/// Django's rule for a squash: it counts as applied once every migration it replaces is (a
/// migration that replaces nothing is no squash).
pub fn all_replaced_applied(replaces: &[Key], applied: &BTreeSet<Key>) -> bool {
    !replaces.is_empty() && replaces.iter().all(|r| applied.contains(r))
}

#[derive(Debug, Clone, Deserialize)]
pub struct MigrationSpec {
    pub app: String,
    pub name: String,
    /// Resolved parents (internal and external), as Django adds them.
    #[serde(default)]
    pub dependencies: Vec<Key>,
    /// Resolved `run_before` children.
    #[serde(default)]
    pub run_before: Vec<Key>,
    #[serde(default)]
    pub replaces: Vec<Key>,
    #[serde(default)]
    pub initial: Option<bool>,
    #[serde(default = "yes")]
    pub atomic: bool,
    /// Whether applying it runs Python (RunPython and friends, a non-atomic migration).
    #[serde(default)]
    pub needs_python: bool,
    /// The same when unapplying, which differs where a `RunPython`'s code is `RunPython.noop`
    /// in one direction only; absent (an older graph): as `needs_python`.
    #[serde(default)]
    pub needs_python_backwards: Option<bool>,
}

impl MigrationSpec {
    pub fn needs_python_in(&self, backwards: bool) -> bool {
        match (backwards, self.needs_python_backwards) {
            (true, Some(flag)) => flag,
            _ => self.needs_python,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
pub struct GraphSpec {
    pub version: u32,
    /// Every migration on disk, in Django's `disk_migrations` order.
    pub migrations: Vec<MigrationSpec>,
    /// Apps that have a migrations module (Django's `loader.migrated_apps`).
    #[serde(default)]
    pub migrated_apps: Vec<String>,
    /// Django 6.0+: `migration_plan` reloads the graph without replacements for any target
    /// missing from it (a migration replaced by a squash); before 6.0 only for an applied one.
    #[serde(default)]
    pub reload_missing_targets: bool,
}

impl GraphSpec {
    pub fn from_json(text: &str) -> Result<Self, PlanError> {
        let spec: GraphSpec =
            serde_json::from_str(text).map_err(|e| PlanError::BadGraph(e.to_string()))?;
        if spec.version != GRAPH_FORMAT_VERSION {
            return Err(PlanError::BadGraph(format!(
                "graph format version {} is not supported (expected {})",
                spec.version, GRAPH_FORMAT_VERSION
            )));
        }
        Ok(spec)
    }

    pub fn get(&self, key: &Key) -> Option<&MigrationSpec> {
        self.migrations
            .iter()
            .find(|m| m.app == key.0 && m.name == key.1)
    }

    pub fn replacements(&self) -> impl Iterator<Item = &MigrationSpec> {
        self.migrations.iter().filter(|m| !m.replaces.is_empty())
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    parents: BTreeSet<Key>,
    children: BTreeSet<Key>,
    /// Set for Django's `DummyNode`: a dependency on something not on disk.
    dummy_error: Option<String>,
    /// Insertion order, because Django reports the first dummy of its `node_map` dict.
    seq: usize,
}

/// Django's `MigrationGraph` after `build_graph`: real nodes plus the applied set it computed.
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: BTreeMap<Key, Node>,
    next_seq: usize,
    /// Django's `loader.applied_migrations` after replacement bookkeeping.
    pub applied: BTreeSet<Key>,
    /// Built with replacements, for a Django whose `migration_plan` reloads without them
    /// when any target is missing (`GraphSpec::reload_missing_targets`).
    pub reload_missing_targets: bool,
}

pub fn py_repr(key: &Key) -> String {
    format!("('{}', '{}')", key.0, key.1)
}

impl Graph {
    /// `MigrationLoader.build_graph`, for one tenant's applied set.
    pub fn build(
        spec: &GraphSpec,
        recorded: &BTreeSet<Key>,
        replace_migrations: bool,
    ) -> Result<Graph, PlanError> {
        let mut g = Graph {
            nodes: BTreeMap::new(),
            next_seq: 0,
            applied: recorded.clone(),
            reload_missing_targets: replace_migrations && spec.reload_missing_targets,
        };
        for m in &spec.migrations {
            g.add_node((m.app.clone(), m.name.clone()));
        }
        // Django adds internal edges first and external ones second; edges are sets, so the order
        // only matters for which dummy node is created first.
        for m in &spec.migrations {
            let key = (m.app.clone(), m.name.clone());
            for parent in m.dependencies.iter().filter(|p| p.0 == m.app) {
                g.add_dependency(&key, &key, parent);
            }
        }
        for m in &spec.migrations {
            let key = (m.app.clone(), m.name.clone());
            for parent in m.dependencies.iter().filter(|p| p.0 != m.app) {
                g.add_dependency(&key, &key, parent);
            }
            for child in &m.run_before {
                g.add_dependency(&key, child, &key);
            }
        }
        if replace_migrations {
            for m in spec.replacements() {
                let key = (m.app.clone(), m.name.clone());
                let all = all_replaced_applied(&m.replaces, &g.applied);
                let any = m.replaces.iter().any(|r| g.applied.contains(r));
                if all {
                    g.applied.insert(key.clone());
                } else {
                    g.applied.remove(&key);
                }
                if all || !any {
                    g.remove_replaced_nodes(&key, &m.replaces)?;
                } else {
                    g.remove_replacement_node(&key, &m.replaces)?;
                }
            }
        }
        if let Err(err) = g.validate_consistency() {
            return Err(g.explain_missing_node(spec, err));
        }
        g.ensure_not_cyclic()?;
        Ok(g)
    }

    fn add_node(&mut self, key: Key) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.nodes.insert(
            key,
            Node {
                seq,
                ..Node::default()
            },
        );
    }

    fn add_dummy(&mut self, key: &Key, error: String) {
        self.add_node(key.clone());
        if let Some(node) = self.nodes.get_mut(key) {
            node.dummy_error = Some(error);
        }
    }

    fn add_dependency(&mut self, migration: &Key, child: &Key, parent: &Key) {
        let origin = format!("{}.{}", migration.0, migration.1);
        if !self.nodes.contains_key(child) {
            let msg = format!(
                "Migration {} dependencies reference nonexistent child node {}",
                origin,
                py_repr(child)
            );
            self.add_dummy(child, msg);
        }
        if !self.nodes.contains_key(parent) {
            let msg = format!(
                "Migration {} dependencies reference nonexistent parent node {}",
                origin,
                py_repr(parent)
            );
            self.add_dummy(parent, msg);
        }
        if let Some(n) = self.nodes.get_mut(child) {
            n.parents.insert(parent.clone());
        }
        if let Some(n) = self.nodes.get_mut(parent) {
            n.children.insert(child.clone());
        }
    }

    fn remove_replaced_nodes(
        &mut self,
        replacement: &Key,
        replaced: &[Key],
    ) -> Result<(), PlanError> {
        if !self.nodes.contains_key(replacement) {
            return Err(PlanError::NodeNotFound(format!(
                "Unable to find replacement node {}. It was either never added to the migration graph, or has been removed.",
                py_repr(replacement)
            )));
        }
        let replaced_set: BTreeSet<Key> = replaced.iter().cloned().collect();
        for replaced_key in replaced {
            let Some(node) = self.nodes.remove(replaced_key) else {
                continue;
            };
            for child in &node.children {
                if let Some(c) = self.nodes.get_mut(child) {
                    c.parents.remove(replaced_key);
                }
                if !replaced_set.contains(child) {
                    self.link(child, replacement);
                }
            }
            for parent in &node.parents {
                if let Some(p) = self.nodes.get_mut(parent) {
                    p.children.remove(replaced_key);
                }
                if !replaced_set.contains(parent) {
                    self.link(replacement, parent);
                }
            }
        }
        Ok(())
    }

    fn remove_replacement_node(
        &mut self,
        replacement: &Key,
        replaced: &[Key],
    ) -> Result<(), PlanError> {
        let Some(node) = self.nodes.remove(replacement) else {
            return Err(PlanError::NodeNotFound(format!(
                "Unable to remove replacement node {}. It was either never added to the migration graph, or has been removed already.",
                py_repr(replacement)
            )));
        };
        let mut latest: BTreeSet<Key> = BTreeSet::new();
        let mut their_parents: BTreeSet<Key> = BTreeSet::new();
        for key in replaced {
            if let Some(n) = self.nodes.get(key) {
                latest.insert(key.clone());
                their_parents.extend(n.parents.iter().cloned());
            }
        }
        // Only the latest replaced nodes take over the children.
        let latest: Vec<Key> = latest.difference(&their_parents).cloned().collect();
        for child in &node.children {
            if let Some(c) = self.nodes.get_mut(child) {
                c.parents.remove(replacement);
            }
            for r in &latest {
                self.link(child, r);
            }
        }
        for parent in &node.parents {
            if let Some(p) = self.nodes.get_mut(parent) {
                p.children.remove(replacement);
            }
        }
        Ok(())
    }

    /// Make `child` depend on `parent` (both must exist).
    fn link(&mut self, child: &Key, parent: &Key) {
        if let Some(c) = self.nodes.get_mut(child) {
            c.parents.insert(parent.clone());
        }
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.insert(child.clone());
        }
    }

    fn validate_consistency(&self) -> Result<(), (Key, String)> {
        let first = self
            .nodes
            .iter()
            .filter_map(|(k, n)| n.dummy_error.as_ref().map(|e| (n.seq, k, e)))
            .min_by_key(|(seq, _, _)| *seq);
        match first {
            Some((_, key, err)) => Err((key.clone(), err.clone())),
            None => Ok(()),
        }
    }

    /// Django re-raises a missing node with more detail when a squash could not replace it (#23556).
    fn explain_missing_node(
        &self,
        spec: &GraphSpec,
        (missing, message): (Key, String),
    ) -> PlanError {
        let candidates: BTreeSet<Key> = spec
            .replacements()
            .filter(|m| m.replaces.contains(&missing))
            .map(|m| (m.app.clone(), m.name.clone()))
            .collect();
        if !candidates.is_empty() && !candidates.iter().any(|c| self.is_real(c)) {
            let origin = message
                .strip_prefix("Migration ")
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_default()
                .to_string();
            let tries: Vec<String> = candidates
                .iter()
                .map(|c| format!("{}.{}", c.0, c.1))
                .collect();
            return PlanError::NodeNotFound(format!(
                "Migration {} depends on nonexistent node ('{}', '{}'). Django tried to replace migration {}.{} with any of [{}] but wasn't able to because some of the replaced migrations are already applied.",
                origin, missing.0, missing.1, missing.0, missing.1, tries.join(", ")
            ));
        }
        PlanError::NodeNotFound(message)
    }

    fn ensure_not_cyclic(&self) -> Result<(), PlanError> {
        // Iterative colouring DFS; a back edge is a cycle.
        let mut state: HashMap<&Key, u8> = HashMap::new();
        for start in self.nodes.keys() {
            if state.contains_key(start) {
                continue;
            }
            let mut stack: Vec<(&Key, bool)> = vec![(start, false)];
            let mut path: Vec<&Key> = Vec::new();
            while let Some((key, done)) = stack.pop() {
                if done {
                    state.insert(key, 2);
                    path.pop();
                    continue;
                }
                match state.get(key) {
                    Some(2) => continue,
                    Some(1) => continue,
                    _ => {}
                }
                state.insert(key, 1);
                path.push(key);
                stack.push((key, true));
                for child in &self.nodes[key].children {
                    match state.get(child) {
                        Some(1) => {
                            let from = path.iter().position(|k| *k == child).unwrap_or(0);
                            let cycle: Vec<String> = path[from..]
                                .iter()
                                .map(|k| format!("{}.{}", k.0, k.1))
                                .collect();
                            return Err(PlanError::CircularDependency(cycle.join(", ")));
                        }
                        Some(2) => {}
                        _ => stack.push((child, false)),
                    }
                }
            }
        }
        Ok(())
    }

    pub fn is_real(&self, key: &Key) -> bool {
        self.nodes.get(key).is_some_and(|n| n.dummy_error.is_none())
    }

    pub fn parents(&self, key: &Key) -> impl Iterator<Item = &Key> {
        self.nodes
            .get(key)
            .into_iter()
            .flat_map(|n| n.parents.iter())
    }

    pub fn children(&self, key: &Key) -> impl Iterator<Item = &Key> {
        self.nodes
            .get(key)
            .into_iter()
            .flat_map(|n| n.children.iter())
    }

    /// `MigrationGraph.iterative_dfs`: the same visiting order, hence the same plan order.
    fn iterative_dfs(&self, start: &Key, forwards: bool) -> Vec<Key> {
        let mut visited: Vec<Key> = Vec::new();
        let mut seen: BTreeSet<&Key> = BTreeSet::new();
        let mut stack: Vec<(&Key, bool)> = vec![(start, false)];
        while let Some((key, processed)) = stack.pop() {
            if seen.contains(key) {
                continue;
            }
            if processed {
                seen.insert(key);
                visited.push(key.clone());
            } else {
                stack.push((key, true));
                let Some(node) = self.nodes.get(key) else {
                    continue;
                };
                let next = if forwards {
                    &node.parents
                } else {
                    &node.children
                };
                stack.extend(next.iter().map(|k| (k, false)));
            }
        }
        visited
    }

    pub fn forwards_plan(&self, target: &Key) -> Result<Vec<Key>, PlanError> {
        self.require(target)?;
        Ok(self.iterative_dfs(target, true))
    }

    pub fn backwards_plan(&self, target: &Key) -> Result<Vec<Key>, PlanError> {
        self.require(target)?;
        Ok(self.iterative_dfs(target, false))
    }

    fn require(&self, key: &Key) -> Result<(), PlanError> {
        if self.is_real(key) {
            Ok(())
        } else {
            Err(PlanError::NodeNotFound(format!(
                "Node {} not a valid node",
                py_repr(key)
            )))
        }
    }

    /// Nodes with no parent in their own app, sorted (Django's `root_nodes`).
    pub fn root_nodes(&self, app: Option<&str>) -> Vec<Key> {
        self.nodes
            .iter()
            .filter(|(k, n)| app.is_none_or(|a| a == k.0) && n.parents.iter().all(|p| p.0 != k.0))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Nodes with no child in their own app, sorted (Django's `leaf_nodes`).
    pub fn leaf_nodes(&self, app: Option<&str>) -> Vec<Key> {
        self.nodes
            .iter()
            .filter(|(k, n)| app.is_none_or(|a| a == k.0) && n.children.iter().all(|c| c.0 != k.0))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(app: &str, name: &str) -> Key {
        (app.to_string(), name.to_string())
    }

    fn mig(app: &str, name: &str, deps: &[(&str, &str)]) -> MigrationSpec {
        MigrationSpec {
            app: app.into(),
            name: name.into(),
            dependencies: deps.iter().map(|(a, n)| k(a, n)).collect(),
            run_before: vec![],
            replaces: vec![],
            initial: None,
            atomic: true,
            needs_python: false,
            needs_python_backwards: None,
        }
    }

    fn spec(migrations: Vec<MigrationSpec>) -> GraphSpec {
        GraphSpec {
            version: 1,
            migrations,
            migrated_apps: vec![],
            reload_missing_targets: false,
        }
    }

    #[test]
    fn forwards_plan_follows_django_dfs_order() {
        let s = spec(vec![
            mig("users", "0001", &[]),
            mig("users", "0002", &[("users", "0001")]),
            mig("products", "0001", &[]),
            mig("orders", "0001", &[("users", "0002"), ("products", "0001")]),
        ]);
        let g = Graph::build(&s, &BTreeSet::new(), true).unwrap();
        let plan = g.forwards_plan(&k("orders", "0001")).unwrap();
        assert_eq!(
            plan,
            vec![
                k("users", "0001"),
                k("users", "0002"),
                k("products", "0001"),
                k("orders", "0001")
            ]
        );
        assert_eq!(
            g.leaf_nodes(None),
            vec![
                k("orders", "0001"),
                k("products", "0001"),
                k("users", "0002")
            ]
        );
    }

    #[test]
    fn unapplied_squash_replaces_its_originals() {
        let mut squash = mig("a", "0001_squashed_0002", &[]);
        squash.replaces = vec![k("a", "0001"), k("a", "0002")];
        let s = spec(vec![
            mig("a", "0001", &[]),
            mig("a", "0002", &[("a", "0001")]),
            squash,
            mig("a", "0003", &[("a", "0002")]),
        ]);
        let g = Graph::build(&s, &BTreeSet::new(), true).unwrap();
        assert_eq!(
            g.forwards_plan(&k("a", "0003")).unwrap(),
            vec![k("a", "0001_squashed_0002"), k("a", "0003")]
        );
        // Partly applied: the squash is dropped and the originals stay.
        let applied: BTreeSet<Key> = [k("a", "0001")].into_iter().collect();
        let g = Graph::build(&s, &applied, true).unwrap();
        assert!(!g.is_real(&k("a", "0001_squashed_0002")));
        assert_eq!(g.forwards_plan(&k("a", "0003")).unwrap().len(), 3);
    }

    #[test]
    fn missing_dependency_is_reported_like_django() {
        let s = spec(vec![mig("a", "0001", &[("b", "0001")])]);
        let err = Graph::build(&s, &BTreeSet::new(), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Migration a.0001 dependencies reference nonexistent parent node ('b', '0001')"
        );
    }

    #[test]
    fn cycles_are_refused() {
        let s = spec(vec![
            mig("a", "0001", &[("a", "0002")]),
            mig("a", "0002", &[("a", "0001")]),
        ]);
        assert!(matches!(
            Graph::build(&s, &BTreeSet::new(), true),
            Err(PlanError::CircularDependency(_))
        ));
    }
}
