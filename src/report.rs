//! What happened, step by step, returned to Python for printing.

use crate::graph::Key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and was recorded (or unrecorded, going backwards).
    Done,
    /// Recorded without running (`--fake`, or `--fake-initial` found its tables).
    Faked,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "OK",
            Outcome::Faked => "FAKED",
        }
    }
}

/// How a migration reached the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// SQL compiled by Django, executed by Rust with its history rows in one transaction.
    Sql,
    /// Applied by Django itself (RunPython, non-atomic, or order-sensitive introspection).
    Django,
    /// SQL compiled on another tenant in the same verified state, replayed here.
    Replay,
    /// Only history rows were written.
    Record,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Sql => "sql",
            Route::Django => "django",
            Route::Replay => "replay",
            Route::Record => "record",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub key: Key,
    pub backwards: bool,
    pub outcome: Outcome,
    pub route: Route,
    pub statements: usize,
    /// The tenant's state differed from the one SQL had been compiled for; compiled afresh.
    pub drift: bool,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub steps: Vec<StepReport>,
    /// Squashes recorded afterwards because all they replace is applied (`check_replacements`).
    pub squashes_recorded: Vec<Key>,
}
