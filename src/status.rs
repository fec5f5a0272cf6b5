//! Where tenants stand: every tenant's history (read concurrently by `backend::recorder`), and
//! Django's `showmigrations` list and `migrate` plan computed from it. Tenants with the same
//! history share one computation.

use std::collections::{BTreeSet, HashMap};

pub use crate::backend::recorder::{read_histories, History, HistoryRow};
use crate::error::PlanError;
use crate::graph::{Graph, GraphSpec, Key};
use crate::plan::{self, TargetRequest};

/// How `showmigrations` marks a migration: `[X]`, `[ ]`, or `[-]` (a squash whose replaced
/// migrations are all applied but which is not recorded itself yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Applied,
    Unapplied,
    Unrecorded,
}

impl Mark {
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Applied => "applied",
            Mark::Unapplied => "unapplied",
            Mark::Unrecorded => "unrecorded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListLine {
    pub name: String,
    /// How many migrations it replaces (a squash), else 0.
    pub replaces: usize,
    pub mark: Mark,
}

/// One app's section of `showmigrations --list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppList {
    pub app: String,
    pub lines: Vec<ListLine>,
}

/// Django's `showmigrations` list view for one applied set: for each app, its leaves' forwards
/// plans from oldest to newest, each migration once.
pub fn show_list(
    spec: &GraphSpec,
    recorded: &BTreeSet<Key>,
    apps: &[String],
) -> Result<Vec<AppList>, PlanError> {
    let graph = Graph::build(spec, recorded, true)?;
    let mut lists = Vec::with_capacity(apps.len());
    for app in apps {
        let mut shown: BTreeSet<Key> = BTreeSet::new();
        let mut lines = Vec::new();
        for leaf in graph.leaf_nodes(Some(app)) {
            for node in graph.forwards_plan(&leaf)? {
                if node.0 != *app || shown.contains(&node) {
                    continue;
                }
                let mark = if !graph.applied.contains(&node) {
                    Mark::Unapplied
                } else if recorded.contains(&node) {
                    Mark::Applied
                } else {
                    Mark::Unrecorded
                };
                lines.push(ListLine {
                    name: node.1.clone(),
                    replaces: spec.get(&node).map_or(0, |m| m.replaces.len()),
                    mark,
                });
                shown.insert(node);
            }
        }
        lists.push(AppList {
            app: app.clone(),
            lines,
        });
    }
    Ok(lists)
}

/// What `migrate` (with the given target) would do, and the list view, for one applied set.
/// Each may fail on its own: `showmigrations` lists a history that `migrate` would refuse
/// (inconsistent, conflicting leaves).
#[derive(Debug, Clone)]
pub struct Standing {
    /// `(app, name, backwards)` in plan order.
    pub plan: Result<Vec<(String, String, bool)>, PlanError>,
    pub lists: Result<Vec<AppList>, PlanError>,
}

pub fn standing(
    spec: &GraphSpec,
    recorded: &BTreeSet<Key>,
    request: &TargetRequest,
    apps: &[String],
) -> Standing {
    let plan = plan::plan_for_target(spec, recorded, request).map(|planned| {
        planned
            .steps
            .iter()
            .map(|s| (s.key.0.clone(), s.key.1.clone(), s.backwards))
            .collect()
    });
    let lists = if apps.is_empty() {
        Ok(Vec::new())
    } else {
        show_list(spec, recorded, apps)
    };
    Standing { plan, lists }
}

/// `standing` for many histories, computed once per distinct applied set.
pub fn standings(
    spec: &GraphSpec,
    histories: &[History],
    request: &TargetRequest,
    apps: &[String],
) -> Vec<Option<Standing>> {
    let mut memo: HashMap<BTreeSet<Key>, Standing> = HashMap::new();
    histories
        .iter()
        .map(|h| {
            let History::Read(rows) = h else {
                return None;
            };
            let recorded: BTreeSet<Key> = rows
                .iter()
                .map(|r| (r.app.clone(), r.name.clone()))
                .collect();
            let result = memo
                .entry(recorded)
                .or_insert_with_key(|recorded| standing(spec, recorded, request, apps));
            Some(result.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> GraphSpec {
        GraphSpec::from_json(json).unwrap()
    }

    fn key(a: &str, n: &str) -> Key {
        (a.into(), n.into())
    }

    const SQUASHED: &str = r#"{"version": 1, "migrated_apps": ["a"], "migrations": [
        {"app": "a", "name": "0001"},
        {"app": "a", "name": "0002", "dependencies": [["a", "0001"]]},
        {"app": "a", "name": "0001_squashed_0002", "replaces": [["a", "0001"], ["a", "0002"]]},
        {"app": "a", "name": "0003", "dependencies": [["a", "0001_squashed_0002"]]}
    ]}"#;

    #[test]
    fn a_squash_is_listed_as_django_lists_it() {
        let s = spec(SQUASHED);
        let apps = vec!["a".to_string()];
        let none = show_list(&s, &BTreeSet::new(), &apps).unwrap();
        assert_eq!(
            none[0].lines,
            vec![
                ListLine {
                    name: "0001_squashed_0002".into(),
                    replaces: 2,
                    mark: Mark::Unapplied
                },
                ListLine {
                    name: "0003".into(),
                    replaces: 0,
                    mark: Mark::Unapplied
                },
            ]
        );
        // Every replaced migration applied, the squash not recorded yet: [-].
        let replaced: BTreeSet<Key> = [key("a", "0001"), key("a", "0002")].into();
        let lines = &show_list(&s, &replaced, &apps).unwrap()[0].lines;
        assert_eq!(lines[0].mark, Mark::Unrecorded);
        // Partly applied: the squash cannot be used, its replaced migrations are shown.
        let partial: BTreeSet<Key> = [key("a", "0001")].into();
        let lines = &show_list(&s, &partial, &apps).unwrap()[0].lines;
        let names: Vec<(&str, Mark)> = lines.iter().map(|l| (l.name.as_str(), l.mark)).collect();
        assert_eq!(
            names,
            vec![
                ("0001", Mark::Applied),
                ("0002", Mark::Unapplied),
                ("0003", Mark::Unapplied)
            ]
        );
    }

    #[test]
    fn equal_histories_are_computed_once_and_missing_ones_skipped() {
        let s = spec(SQUASHED);
        let row = |n: &str| HistoryRow {
            app: "a".into(),
            name: n.into(),
            applied: String::new(),
        };
        let histories = vec![
            History::Read(vec![row("0001")]),
            History::Missing("gone".into()),
            History::Read(vec![row("0001")]),
            History::Read(vec![]),
        ];
        let out = standings(&s, &histories, &TargetRequest::default(), &[]);
        assert!(out[1].is_none());
        let pending = |i: usize| out[i].as_ref().unwrap().plan.as_ref().unwrap().len();
        assert_eq!((pending(0), pending(2), pending(3)), (2, 2, 2));
    }
}
