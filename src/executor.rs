//! Runs a plan on one tenant: Django's `MigrationExecutor.migrate`, with the SQL work done here.
//!
//! Compilation is just in time: before each migration, Django compiles its SQL against the
//! tenant's own database, which by then holds exactly the state left by the previous migration.
//! So every schema-editor call that introspects the live catalog (constraint and sequence names)
//! reads what Django's own `migrate` would read at that moment.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::backend::{Backend, Recording};
use crate::error::{Error, Result};
use crate::graph::Key;
use crate::plan::{Plan, Step};
use crate::replay::{Lookup, ReplayCache};
use crate::report::{Outcome, Report, Route, StepReport};

/// The few things only Django can do, called back in execution order.
pub trait Hooks {
    /// A step is about to run (for progress output).
    fn started(&mut self, step: &Step, fake: bool) -> Result<()>;
    /// `--fake-initial`: Django's `detect_soft_applied` on the tenant's catalog.
    fn soft_applied(&mut self, step: &Step) -> Result<bool>;
    /// The migration's SQL, compiled by Django's schema editor; `None` when it must run in Django.
    fn compile(&mut self, step: &Step) -> Result<Option<Vec<String>>>;
    /// Apply or unapply through Django's executor on the tenant connection (records itself).
    fn apply_with_django(&mut self, step: &Step) -> Result<()>;
    /// SQL compiled on another tenant in the same state was replayed here: Django's project
    /// state for this tenant moves on without compiling.
    fn replayed(&mut self, step: &Step) -> Result<()>;
    /// A step finished.
    fn finished(&mut self, report: &StepReport) -> Result<()>;
}

pub struct Options<'a> {
    pub tenant: &'a str,
    pub fake: bool,
    pub fake_initial: bool,
    /// Django's `CREATE TABLE django_migrations` for this vendor.
    pub recorder_ddl: &'a [String],
    /// Compile once, replay many (migratealltenants); `None` compiles every migration here.
    pub cache: Option<&'a ReplayCache>,
}

/// What `record_migration` / `unapply_migration` write for one step.
pub fn recording_for(plan: &Plan, step: &Step) -> Recording {
    let replaced = plan.replacements.get(&step.key);
    if step.backwards {
        let mut unapplied: Vec<Key> = replaced.cloned().unwrap_or_default();
        unapplied.push(step.key.clone());
        Recording {
            applied: vec![],
            unapplied,
        }
    } else {
        Recording {
            applied: replaced.cloned().unwrap_or_else(|| vec![step.key.clone()]),
            unapplied: vec![],
        }
    }
}

pub fn migrate(
    backend: &mut dyn Backend,
    plan: &Plan,
    hooks: &mut dyn Hooks,
    opts: &Options,
) -> Result<Report> {
    let mut report = Report::default();
    // Like Django: no history table is created for an empty plan.
    if plan.steps.is_empty() {
        if backend.recorder_exists()? {
            report.squashes_recorded = check_replacements(backend, plan)?;
        }
        return Ok(report);
    }
    backend.create_recorder(opts.recorder_ddl)?;
    for step in plan.execution_order() {
        let began = Instant::now();
        hooks.started(&step, opts.fake)?;
        let (outcome, route, statements, drift) = run_step(backend, plan, hooks, opts, &step)?;
        let done = StepReport {
            key: step.key.clone(),
            backwards: step.backwards,
            outcome,
            route,
            statements,
            drift,
            seconds: began.elapsed().as_secs_f64(),
        };
        hooks.finished(&done)?;
        report.steps.push(done);
    }
    report.squashes_recorded = check_replacements(backend, plan)?;
    Ok(report)
}

fn run_step(
    backend: &mut dyn Backend,
    plan: &Plan,
    hooks: &mut dyn Hooks,
    opts: &Options,
    step: &Step,
) -> Result<(Outcome, Route, usize, bool)> {
    let recording = recording_for(plan, step);
    if opts.fake || (!step.backwards && opts.fake_initial && hooks.soft_applied(step)?) {
        backend.record(&recording)?;
        return Ok((Outcome::Faked, Route::Record, 0, false));
    }
    let mut route = Route::Sql;
    let mut drift = false;
    let statements = match opts
        .cache
        .filter(|_| !plan.needs_python.contains(&step.key))
    {
        None => hooks.compile(step)?,
        Some(cache) => {
            // Verify before replay: SQL is reused only for a tenant in the very same state.
            let fingerprint = backend.fingerprint()?;
            match cache.lookup(&step.key, step.backwards, &fingerprint) {
                Lookup::Hit(sql) => {
                    hooks.replayed(step)?;
                    route = Route::Replay;
                    Some(sql.as_ref().clone())
                }
                lookup => {
                    drift = matches!(lookup, Lookup::Drift);
                    let compiled = hooks.compile(step)?;
                    if let Some(sql) = &compiled {
                        cache.insert(&step.key, step.backwards, &fingerprint, sql.clone());
                    }
                    compiled
                }
            }
        }
    };
    let Some(statements) = statements else {
        hooks.apply_with_django(step)?;
        return Ok((Outcome::Done, Route::Django, 0, drift));
    };
    backend
        .run_migration(&statements, &recording)
        .map_err(|e| Error::MigrationFailed {
            tenant: opts.tenant.to_string(),
            migration: format!("{}.{}", step.key.0, step.key.1),
            statement: e.statement,
            source: e.source,
        })?;
    Ok((Outcome::Done, route, statements.len(), drift))
}

/// `MigrationExecutor.check_replacements`: a squash whose replaced migrations are all applied
/// is recorded as applied too.
fn check_replacements(backend: &mut dyn Backend, plan: &Plan) -> Result<Vec<Key>> {
    let applied: BTreeSet<Key> = backend.applied()?.into_iter().collect();
    let mut recorded = Vec::new();
    for (squash, replaces) in &plan.replacements {
        if !applied.contains(squash) && replaces.iter().all(|r| applied.contains(r)) {
            backend.record(&Recording {
                applied: vec![squash.clone()],
                unapplied: vec![],
            })?;
            recorded.push(squash.clone());
        }
    }
    Ok(recorded)
}
