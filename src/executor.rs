//! Runs a plan on one tenant: Django's `MigrationExecutor.migrate`, with the SQL work done here.
//!
//! Compilation is just in time: before each migration, Django compiles its SQL against the
//! tenant's own database, which by then holds exactly the state left by the previous migration.
//! So every schema-editor call that introspects the live catalog (constraint and sequence names)
//! reads what Django's own `migrate` would read at that moment.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::backend::{Backend, Interrupt, Recording};
use crate::error::{DbError, Error, Result};
use crate::graph::Key;
use crate::plan::{Plan, Step};
use crate::replay::{Compiled, Lookup, ReplayCache, Sharing};
use crate::report::{Outcome, Report, Route, StepReport};

/// The few things only Django can do, called back in execution order.
pub trait Hooks {
    /// A step is about to run (for progress output).
    fn started(&mut self, step: &Step, fake: bool) -> Result<()>;
    /// `--fake-initial`: Django's `detect_soft_applied` on the tenant's catalog.
    fn soft_applied(&mut self, step: &Step) -> Result<bool>;
    /// The migration's SQL, compiled by Django's schema editor, and whom it is good for; `None`
    /// when it must run in Django.
    fn compile(&mut self, step: &Step) -> Result<Option<(Vec<String>, Sharing)>>;
    /// Apply or unapply through Django's executor on the tenant connection (records itself).
    /// For a migration that runs no Python, returns the SQL Django ran, for replay elsewhere,
    /// and whom it is good for.
    fn apply_with_django(&mut self, step: &Step) -> Result<Option<(Vec<String>, Sharing)>>;
    /// SQL compiled on another tenant in the same state was replayed here: Django's project
    /// state for this tenant moves on without compiling.
    fn replayed(&mut self, step: &Step) -> Result<()>;
    /// A step finished.
    fn finished(&mut self, report: &StepReport) -> Result<()>;
    /// A step gave up waiting for its locks, was rolled back, and will be retried after
    /// `delay` seconds; `reason` says what it waited on.
    fn retrying(
        &mut self,
        step: &Step,
        attempt: u32,
        retries: u32,
        delay: f64,
        reason: &str,
    ) -> Result<()>;
}

pub struct Options<'a> {
    pub tenant: &'a str,
    pub fake: bool,
    pub fake_initial: bool,
    /// Django's `CREATE TABLE django_migrations` for this vendor.
    pub recorder_ddl: &'a [String],
    /// Compile once, replay many (migratealltenants); `None` compiles every migration here.
    pub cache: Option<&'a ReplayCache>,
    /// What Django's project state at each step depends on for this tenant (its history
    /// group, its plan, the server), from the Python side: SQL built from that state alone is
    /// shared by the tenants with the same key.
    pub state: Option<&'a str>,
    /// Set from another thread when the user interrupts the run.
    pub interrupt: &'a Interrupt,
    /// How many times a step that hit `lock_timeout`/`statement_timeout` is retried.
    pub retries: u32,
    /// The first retry's delay; each further retry waits twice as long (capped at 30 s).
    pub retry_delay: Duration,
}

fn label(step: &Step) -> String {
    format!("{}.{}", step.key.0, step.key.1)
}

/// Exponential back-off with +-25% jitter, so tenants that timed out together do not all come
/// back at the same instant.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(Duration::from_secs(30));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = 0.75 + f64::from(nanos % 1000) / 2000.0;
    capped.mul_f64(jitter)
}

/// Sleep, but wake up early when the run is interrupted.
fn pause(delay: Duration, interrupt: &Interrupt) {
    let until = Instant::now() + delay;
    while !interrupt.is_set() {
        let now = Instant::now();
        if now >= until {
            return;
        }
        thread::sleep((until - now).min(Duration::from_millis(50)));
    }
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
    // The tenant's fingerprint, when known without asking the database (after a replay).
    let mut known: Option<String> = None;
    for step in plan.execution_order() {
        if opts.interrupt.is_set() {
            return Err(Error::Interrupted {
                tenant: opts.tenant.to_string(),
                rolled_back: None,
            });
        }
        let began = Instant::now();
        hooks.started(&step, opts.fake)?;
        let mut attempt = 0;
        let (outcome, route, statements, drift) = loop {
            match run_step(backend, plan, hooks, opts, &step, &mut known) {
                Ok(done) => break done,
                Err(_) if opts.interrupt.is_set() => {
                    return Err(Error::Interrupted {
                        tenant: opts.tenant.to_string(),
                        rolled_back: Some(label(&step)),
                    })
                }
                Err(e) if e.is_timeout() && attempt < opts.retries => {
                    attempt += 1;
                    let delay = backoff(opts.retry_delay, attempt);
                    let mut reason = match &e {
                        Error::MigrationFailed {
                            statement, source, ..
                        } if !statement.is_empty() => format!("{source} on: {statement}"),
                        other => other.to_string(),
                    };
                    let holders = backend.lock_holders();
                    if !holders.is_empty() {
                        reason.push_str("; locks held by ");
                        reason.push_str(&holders.join(", "));
                    }
                    hooks.retrying(&step, attempt, opts.retries, delay.as_secs_f64(), &reason)?;
                    pause(delay, opts.interrupt);
                }
                Err(e) => return Err(e),
            }
        };
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
    known: &mut Option<String>,
) -> Result<(Outcome, Route, usize, bool)> {
    let fingerprint_before = known.take();
    let recording = recording_for(plan, step);
    if opts.fake || (!step.backwards && opts.fake_initial && hooks.soft_applied(step)?) {
        record(backend, opts, step, &recording)?;
        return Ok((Outcome::Faked, Route::Record, 0, false));
    }
    let cache = opts.cache.filter(|_| !plan.needs_python(step));
    let Some(cache) = cache else {
        return compile_here(backend, plan, hooks, opts, step, &recording);
    };
    if fingerprint_before.is_none() {
        // Nothing is known of this tenant's catalog (first step, or after one Django applied):
        // SQL that Django builds from the project state alone needs no fingerprint to be
        // Django's own SQL for this tenant, and SQL computed per tenant is never replayed.
        if let Some(sql) = opts
            .state
            .and_then(|state| cache.for_state(&step.key, step.backwards, state))
        {
            hooks.replayed(step)?;
            execute(backend, opts, step, &sql, &recording)?;
            return Ok((Outcome::Done, Route::Replay, sql.len(), false));
        }
        if cache.is_per_tenant(&step.key, step.backwards) {
            return compile_here(backend, plan, hooks, opts, step, &recording);
        }
    }
    // Verify before replay: SQL is reused only on a tenant in the very state it was compiled
    // for. The fingerprint is read from the database unless the previous step was a replay,
    // whose outcome is the compiled tenant's recorded after-state.
    let fingerprint = match fingerprint_before {
        Some(f) => f,
        None => read_fingerprint(backend, cache)?,
    };
    match cache.lookup(&step.key, step.backwards, &fingerprint) {
        Lookup::Hit(compiled) => {
            hooks.replayed(step)?;
            execute(backend, opts, step, &compiled.sql, &recording)?;
            *known = Some(compiled.fingerprint_after.clone());
            Ok((Outcome::Done, Route::Replay, compiled.sql.len(), false))
        }
        lookup => {
            let drift = matches!(lookup, Lookup::Drift);
            let (statements, route, sharing) = match hooks.compile(step)? {
                Some((statements, sharing)) => {
                    execute(backend, opts, step, &statements, &recording)?;
                    (statements, Route::Sql, sharing)
                }
                // Order-sensitive: Django applies it here, and what it ran is kept for replay.
                None => match apply_with_django(hooks, plan, opts, step)? {
                    Some((ran, sharing)) => (ran, Route::Django, sharing),
                    None => return Ok((Outcome::Done, Route::Django, 0, drift)),
                },
            };
            let count = statements.len();
            match (sharing, opts.state) {
                (Sharing::Tenant, _) => {
                    cache.mark_per_tenant(&step.key, step.backwards);
                    return Ok((Outcome::Done, route, count, drift));
                }
                (Sharing::State, Some(state)) => {
                    cache.insert_for_state(&step.key, step.backwards, state, statements.clone());
                }
                _ => {}
            }
            // Also kept by fingerprint: a tenant whose catalog is known from a replay just
            // before goes on replaying without asking the database.
            let fingerprint_after = read_fingerprint(backend, cache)?;
            *known = Some(fingerprint_after.clone());
            cache.insert(
                &step.key,
                step.backwards,
                &fingerprint,
                Compiled {
                    sql: statements,
                    fingerprint_after,
                },
            );
            Ok((Outcome::Done, route, count, drift))
        }
    }
}

fn read_fingerprint(backend: &mut dyn Backend, cache: &ReplayCache) -> Result<String> {
    cache.fingerprints.fetch_add(1, Ordering::Relaxed);
    Ok(backend.fingerprint()?)
}

/// Compiled by Django on this tenant, or applied by Django, and nothing kept for others.
fn compile_here(
    backend: &mut dyn Backend,
    plan: &Plan,
    hooks: &mut dyn Hooks,
    opts: &Options,
    step: &Step,
    recording: &Recording,
) -> Result<(Outcome, Route, usize, bool)> {
    let Some((statements, _)) = hooks.compile(step)? else {
        let ran = apply_with_django(hooks, plan, opts, step)?;
        return Ok((
            Outcome::Done,
            Route::Django,
            ran.map_or(0, |(s, _)| s.len()),
            false,
        ));
    };
    execute(backend, opts, step, &statements, recording)?;
    Ok((Outcome::Done, Route::Sql, statements.len(), false))
}

/// Django applies the step. A non-atomic one that fails has committed what it ran before the
/// failure: never retried as if it had been rolled back, and reported for what it is.
fn apply_with_django(
    hooks: &mut dyn Hooks,
    plan: &Plan,
    opts: &Options,
    step: &Step,
) -> Result<Option<(Vec<String>, Sharing)>> {
    hooks.apply_with_django(step).map_err(|e| {
        if !plan.non_atomic.contains(&step.key) || opts.interrupt.is_set() {
            return e;
        }
        let detail = match &e {
            Error::MigrationFailed { .. } => e.to_string(),
            // The glue replaces this with the Python exception's own text.
            Error::Hook => String::new(),
            other => crate::error::migration_failed_text(
                opts.tenant,
                &label(step),
                &other.to_string(),
                None,
            ),
        };
        Error::NotRolledBack {
            tenant: opts.tenant.to_string(),
            migration: label(step),
            detail,
        }
    })
}

fn execute(
    backend: &mut dyn Backend,
    opts: &Options,
    step: &Step,
    statements: &[String],
    recording: &Recording,
) -> Result<()> {
    backend
        .run_migration(statements, recording)
        .map_err(|e| match e.source {
            source @ (DbError::RunLockLost | DbError::RecordedElsewhere) => {
                concurrent(opts, step, source)
            }
            source => Error::MigrationFailed {
                tenant: opts.tenant.to_string(),
                migration: label(step),
                statement: e.statement,
                source,
            },
        })
}

/// History rows written without running anything (`--fake`, soft-applied initial migrations).
fn record(
    backend: &mut dyn Backend,
    opts: &Options,
    step: &Step,
    recording: &Recording,
) -> Result<()> {
    backend.record(recording).map_err(|e| match e {
        DbError::RunLockLost | DbError::RecordedElsewhere => concurrent(opts, step, e),
        other => other.into(),
    })
}

fn concurrent(opts: &Options, step: &Step, source: DbError) -> Error {
    Error::Concurrent {
        tenant: opts.tenant.to_string(),
        migration: label(step),
        source,
    }
}

/// `MigrationExecutor.check_replacements`: a squash whose replaced migrations are all applied
/// is recorded as applied too.
fn check_replacements(backend: &mut dyn Backend, plan: &Plan) -> Result<Vec<Key>> {
    // Most plans name no squash: then the history need not be read again.
    if plan.replacements.is_empty() {
        return Ok(Vec::new());
    }
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
