//! What runs on a tenant: Django's `migrate` decisions (consistency, conflicts, targets,
//! `MigrationExecutor.migration_plan`) as a pure function of graph + applied set + target.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::PlanError;
use crate::graph::{Graph, GraphSpec, Key};

/// What the user asked for: `[app_label] [migration_name]` of the command line.
#[derive(Debug, Clone, Default)]
pub struct TargetRequest {
    pub app_label: Option<String>,
    pub migration_name: Option<String>,
}

/// A resolved target: `name == None` means `zero` (unapply the whole app).
pub type Target = (String, Option<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub key: Key,
    pub backwards: bool,
}

/// How Django's "Operations to perform" header describes the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    ApplyAll(Vec<String>),
    Specific { app: String, name: String },
    UnapplyAll(String),
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// In Django's plan order (what `--plan` prints).
    pub steps: Vec<Step>,
    /// Django's clean-start plan to every leaf: forward steps execute in this order.
    pub full_plan: Vec<Key>,
    pub header: Header,
    /// Squash -> the migrations it replaces, for recording exactly as Django does.
    pub replacements: BTreeMap<Key, Vec<Key>>,
    /// Whether the plan was computed on the graph without squashes (Django's fallback).
    pub replace_migrations: bool,
    /// Migrations whose application runs Python: never compiled, never replayed, forwards.
    pub needs_python: BTreeSet<Key>,
    /// The same, backwards (a `RunPython` whose reverse is `RunPython.noop` runs none).
    pub needs_python_backwards: BTreeSet<Key>,
    /// Migrations with `atomic = False`: what they ran before a failure stays committed.
    pub non_atomic: BTreeSet<Key>,
    /// Django's applied set for this tenant, after squash bookkeeping.
    pub applied: BTreeSet<Key>,
}

impl Plan {
    /// Whether this step runs Python in its direction: Django applies it on every tenant.
    pub fn needs_python(&self, step: &Step) -> bool {
        if step.backwards {
            self.needs_python_backwards.contains(&step.key)
        } else {
            self.needs_python.contains(&step.key)
        }
    }

    pub fn is_backwards(&self) -> bool {
        self.steps.first().is_some_and(|s| s.backwards)
    }

    /// Steps in the order they execute: forwards follow the full plan, as Django's
    /// `_migrate_all_forwards` does; backwards follow the plan itself.
    pub fn execution_order(&self) -> Vec<Step> {
        if self.is_backwards() {
            return self.steps.clone();
        }
        let wanted: BTreeSet<&Key> = self.steps.iter().map(|s| &s.key).collect();
        self.full_plan
            .iter()
            .filter(|k| wanted.contains(k))
            .map(|k| Step {
                key: k.clone(),
                backwards: false,
            })
            .collect()
    }
}

/// The whole of Django's `migrate` decision process for one tenant.
pub fn plan_for_target(
    spec: &GraphSpec,
    recorded: &BTreeSet<Key>,
    request: &TargetRequest,
) -> Result<Plan, PlanError> {
    let graph = Graph::build(spec, recorded, true)?;
    check_consistent_history(spec, &graph, recorded)?;
    detect_conflicts(&graph)?;

    let (targets, header) = resolve_targets(spec, &graph, request)?;
    let mut replace_migrations = true;
    let (graph, steps) = match migration_plan(&graph, &targets, false)? {
        Some(steps) => (graph, steps),
        None => {
            // A replaced target (before Django 6.0: an applied one): Django reloads the
            // graph without squashes.
            replace_migrations = false;
            let plain = Graph::build(spec, recorded, false)?;
            let steps = migration_plan(&plain, &targets, false)?
                .ok_or_else(|| PlanError::NodeNotFound("target not in graph".into()))?;
            (plain, steps)
        }
    };
    let all_forwards = steps.iter().all(|s| !s.backwards);
    let all_backwards = steps.iter().all(|s| s.backwards);
    if !steps.is_empty() && all_forwards == all_backwards {
        return Err(PlanError::InvalidPlan(
            "Migration plans with both forwards and backwards migrations are not supported. \
             Please split your migration process into separate plans of only forwards OR \
             backwards migrations."
                .into(),
        ));
    }
    let leaves: Vec<Target> = graph
        .leaf_nodes(None)
        .into_iter()
        .map(|(a, n)| (a, Some(n)))
        .collect();
    let full_plan = migration_plan(&graph, &leaves, true)?
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.key)
        .collect();
    let replacements = spec
        .replacements()
        .map(|m| ((m.app.clone(), m.name.clone()), m.replaces.clone()))
        .collect();
    let python_in = |backwards: bool| {
        spec.migrations
            .iter()
            .filter(|m| m.needs_python_in(backwards))
            .map(spec_key)
            .collect()
    };
    let needs_python = python_in(false);
    let needs_python_backwards = python_in(true);
    let non_atomic = spec
        .migrations
        .iter()
        .filter(|m| !m.atomic)
        .map(spec_key)
        .collect();
    Ok(Plan {
        steps,
        full_plan,
        header,
        replacements,
        replace_migrations,
        needs_python,
        needs_python_backwards,
        non_atomic,
        applied: graph.applied.clone(),
    })
}

/// Django's `migrate --prune`: history rows of `app` whose migration is no longer on disk, and
/// the squashes that still name one of them in `replaces` (which make Django refuse to prune).
pub fn prune_candidates(
    spec: &GraphSpec,
    recorded: &BTreeSet<Key>,
    app: &str,
) -> (Vec<Key>, Vec<Key>) {
    let on_disk: BTreeSet<Key> = spec.migrations.iter().map(spec_key).collect();
    let to_prune: Vec<Key> = recorded
        .iter()
        .filter(|k| k.0 == app && !on_disk.contains(*k))
        .cloned()
        .collect();
    let blocking: Vec<Key> = spec
        .replacements()
        .filter(|m| m.replaces.iter().any(|r| to_prune.contains(r)))
        .map(spec_key)
        .collect();
    (to_prune, blocking)
}

/// `MigrationLoader.check_consistent_history`.
fn check_consistent_history(
    spec: &GraphSpec,
    graph: &Graph,
    recorded: &BTreeSet<Key>,
) -> Result<(), PlanError> {
    for migration in recorded {
        if !graph.is_real(migration) {
            continue;
        }
        for parent in graph.parents(migration) {
            if recorded.contains(parent) {
                continue;
            }
            let squash_done = spec
                .get(parent)
                .is_some_and(|m| crate::graph::all_replaced_applied(&m.replaces, recorded));
            if squash_done {
                continue;
            }
            return Err(PlanError::InconsistentHistory {
                migration: format!("{}.{}", migration.0, migration.1),
                dependency: format!("{}.{}", parent.0, parent.1),
            });
        }
    }
    Ok(())
}

/// `MigrationLoader.detect_conflicts`, with `migrate`'s message.
fn detect_conflicts(graph: &Graph) -> Result<(), PlanError> {
    let mut by_app: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (app, name) in graph.leaf_nodes(None) {
        by_app.entry(app).or_default().push(name);
    }
    let conflicts: Vec<String> = by_app
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(app, names)| format!("{} in {}", names.join(", "), app))
        .collect();
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(PlanError::Conflicts(conflicts.join("; ")))
}

fn resolve_targets(
    spec: &GraphSpec,
    graph: &Graph,
    request: &TargetRequest,
) -> Result<(Vec<Target>, Header), PlanError> {
    // migrate.py tests both arguments for truthiness: an empty string means "not given".
    let given = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let (app_label, migration_name) = (given(&request.app_label), given(&request.migration_name));
    let apply_all = |targets: Vec<Target>| {
        // Django lists the apps of the targets: none for an app whose package is empty.
        let apps: BTreeSet<String> = targets.iter().map(|t| t.0.clone()).collect();
        (targets, Header::ApplyAll(apps.into_iter().collect()))
    };
    let Some(app) = app_label.as_deref() else {
        let targets = graph
            .leaf_nodes(None)
            .into_iter()
            .map(|(a, n)| (a, Some(n)))
            .collect();
        return Ok(apply_all(targets));
    };
    if !spec.migrated_apps.iter().any(|a| a == app) {
        return Err(PlanError::AppWithoutMigrations(app.to_string()));
    }
    let Some(name) = migration_name.as_deref() else {
        let targets = graph
            .leaf_nodes(Some(app))
            .into_iter()
            .map(|(a, n)| (a, Some(n)))
            .collect();
        return Ok(apply_all(targets));
    };
    if name == "zero" {
        return Ok((
            vec![(app.to_string(), None)],
            Header::UnapplyAll(app.to_string()),
        ));
    }
    let matches: Vec<Key> = spec
        .migrations
        .iter()
        .filter(|m| m.app == app && m.name.starts_with(name))
        .map(spec_key)
        .collect();
    let found = match matches.as_slice() {
        [] => {
            return Err(PlanError::MigrationNotFound {
                app: app.to_string(),
                name: name.to_string(),
            })
        }
        [one] => one.clone(),
        _ => {
            return Err(PlanError::AmbiguousMigration {
                app: app.to_string(),
                name: name.to_string(),
            })
        }
    };
    let mut target = found.clone();
    // A partially applied squash is not in the graph: target its last replaced migration.
    if !graph.is_real(&target) {
        if let Some(last) = spec.get(&target).and_then(|m| m.replaces.last()) {
            target = last.clone();
        }
    }
    let header = Header::Specific {
        app: target.0.clone(),
        name: target.1.clone(),
    };
    Ok((vec![(target.0, Some(target.1))], header))
}

fn spec_key(m: &crate::graph::MigrationSpec) -> Key {
    (m.app.clone(), m.name.clone())
}

/// `MigrationExecutor.migration_plan`. `None` means Django would rebuild the graph without
/// squashes and try again (a backwards target that a squash replaced).
pub fn migration_plan(
    graph: &Graph,
    targets: &[Target],
    clean_start: bool,
) -> Result<Option<Vec<Step>>, PlanError> {
    let mut applied: BTreeSet<Key> = if clean_start {
        BTreeSet::new()
    } else {
        graph.applied.clone()
    };
    let mut plan = Vec::new();
    for (app, name) in targets {
        match name {
            None => {
                for root in graph.root_nodes(Some(app)) {
                    for m in graph.backwards_plan(&root)? {
                        if applied.remove(&m) {
                            plan.push(Step {
                                key: m,
                                backwards: true,
                            });
                        }
                    }
                }
            }
            Some(name) => {
                let target = (app.clone(), name.clone());
                if graph.reload_missing_targets && !graph.is_real(&target) {
                    return Ok(None);
                }
                if applied.contains(&target) {
                    if !graph.is_real(&target) {
                        return Ok(None);
                    }
                    // Roll back through the target's children in its own app, and no further.
                    let next_in_app: Vec<Key> = graph
                        .children(&target)
                        .filter(|c| c.0 == *app)
                        .cloned()
                        .collect();
                    for node in next_in_app {
                        for m in graph.backwards_plan(&node)? {
                            if applied.remove(&m) {
                                plan.push(Step {
                                    key: m,
                                    backwards: true,
                                });
                            }
                        }
                    }
                } else {
                    for m in graph.forwards_plan(&target)? {
                        if applied.insert(m.clone()) {
                            plan.push(Step {
                                key: m,
                                backwards: false,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(Some(plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::MigrationSpec;

    fn k(app: &str, name: &str) -> Key {
        (app.to_string(), name.to_string())
    }

    fn example() -> GraphSpec {
        let mig = |app: &str, name: &str, deps: Vec<Key>| MigrationSpec {
            app: app.into(),
            name: name.into(),
            dependencies: deps,
            run_before: vec![],
            replaces: vec![],
            initial: None,
            atomic: true,
            needs_python: false,
            needs_python_backwards: None,
        };
        GraphSpec {
            version: 1,
            migrations: vec![
                mig("users", "0001_initial", vec![]),
                mig(
                    "users",
                    "0002_alter_user_email",
                    vec![k("users", "0001_initial")],
                ),
                mig("products", "0001_initial", vec![]),
                mig(
                    "orders",
                    "0001_initial",
                    vec![
                        k("users", "0002_alter_user_email"),
                        k("products", "0001_initial"),
                    ],
                ),
            ],
            migrated_apps: vec!["users".into(), "products".into(), "orders".into()],
            reload_missing_targets: false,
        }
    }

    fn req(app: Option<&str>, name: Option<&str>) -> TargetRequest {
        TargetRequest {
            app_label: app.map(String::from),
            migration_name: name.map(String::from),
        }
    }

    #[test]
    fn python_is_decided_per_direction() {
        // users 0002: Python forwards only (a `RunPython(code, RunPython.noop)`); orders 0001:
        // an older graph without the backwards flag, taken as the forward one.
        let mut spec = example();
        spec.migrations[1].needs_python = true;
        spec.migrations[1].needs_python_backwards = Some(false);
        spec.migrations[3].needs_python = true;
        let applied: BTreeSet<Key> = spec.migrations.iter().map(spec_key).collect();
        let back = plan_for_target(&spec, &applied, &req(Some("users"), Some("zero"))).unwrap();
        let forward = plan_for_target(&spec, &BTreeSet::new(), &req(None, None)).unwrap();
        let python = |plan: &Plan| -> Vec<String> {
            plan.steps
                .iter()
                .filter(|s| plan.needs_python(s))
                .map(|s| format!("{}/{}", s.key.0, s.key.1))
                .collect()
        };
        assert_eq!(
            python(&forward),
            ["users/0002_alter_user_email", "orders/0001_initial"]
        );
        assert_eq!(python(&back), ["orders/0001_initial"]);
    }

    #[test]
    fn fresh_tenant_gets_everything_in_spec_order() {
        let plan = plan_for_target(&example(), &BTreeSet::new(), &req(None, None)).unwrap();
        let names: Vec<String> = plan
            .steps
            .iter()
            .map(|s| format!("{}/{}", s.key.0, s.key.1))
            .collect();
        assert_eq!(
            names,
            [
                "users/0001_initial",
                "users/0002_alter_user_email",
                "products/0001_initial",
                "orders/0001_initial"
            ]
        );
    }

    #[test]
    fn earlier_target_unapplies_dependants_first() {
        let all: BTreeSet<Key> = example().migrations.iter().map(spec_key).collect();
        let plan = plan_for_target(&example(), &all, &req(Some("users"), Some("0001"))).unwrap();
        let keys: Vec<Key> = plan.steps.iter().map(|s| s.key.clone()).collect();
        assert_eq!(
            keys,
            vec![
                k("orders", "0001_initial"),
                k("users", "0002_alter_user_email")
            ]
        );
        assert!(plan.is_backwards());
    }

    #[test]
    fn prune_finds_rows_without_files_and_blocking_squashes() {
        let mut spec = example();
        let recorded: BTreeSet<Key> = [
            k("users", "0001_initial"),
            k("users", "0003_gone"),
            k("orders", "0009_gone"),
        ]
        .into_iter()
        .collect();
        let (prune, blocking) = prune_candidates(&spec, &recorded, "users");
        assert_eq!(prune, vec![k("users", "0003_gone")]);
        assert!(blocking.is_empty());
        spec.migrations[1].replaces = vec![k("users", "0003_gone")];
        let (_, blocking) = prune_candidates(&spec, &recorded, "users");
        assert_eq!(blocking, vec![k("users", "0002_alter_user_email")]);
    }

    #[test]
    fn a_replaced_unapplied_target_is_valid_from_django_6() {
        let mut spec = example();
        let mut squash = spec.migrations[1].clone();
        squash.name = "0001_squashed_0002".into();
        squash.dependencies = vec![];
        squash.replaces = vec![
            k("users", "0001_initial"),
            k("users", "0002_alter_user_email"),
        ];
        spec.migrations.push(squash);
        let target = req(Some("users"), Some("0001_initial"));
        // Django 5.2: the replaced migration is not in the graph.
        let before = plan_for_target(&spec, &BTreeSet::new(), &target).unwrap_err();
        assert!(matches!(before, PlanError::NodeNotFound(_)), "{before:?}");
        // Django 6.0: reloaded without the squash, and planned.
        spec.reload_missing_targets = true;
        let plan = plan_for_target(&spec, &BTreeSet::new(), &target).unwrap();
        assert!(!plan.replace_migrations);
        let keys: Vec<Key> = plan.steps.iter().map(|s| s.key.clone()).collect();
        assert_eq!(keys, vec![k("users", "0001_initial")]);
    }

    #[test]
    fn errors_match_django() {
        let e = plan_for_target(
            &example(),
            &BTreeSet::new(),
            &req(Some("users"), Some("0009")),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Cannot find a migration matching '0009' from app 'users'."
        );
        let e = plan_for_target(
            &example(),
            &BTreeSet::new(),
            &req(Some("users"), Some("000")),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "More than one migration matches '000' in app 'users'. Please be more specific."
        );
        let applied: BTreeSet<Key> = [k("orders", "0001_initial")].into_iter().collect();
        let e = plan_for_target(&example(), &applied, &req(None, None)).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("Migration orders.0001_initial is applied before its dependency"));
    }
}
