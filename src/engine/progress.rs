//! How the core tells the operator what it is doing and asks for consent, without touching a
//! terminal itself: the `ui` module implements these for a TTY, for plain logs and for silence.

use std::time::Duration;

use crate::error::Result;
use crate::state::Step;

pub trait Progress: Send + Sync {
    fn step_started(&self, step: Step, detail: &str);
    fn step_finished(&self, step: Step, elapsed: Duration, summary: &str);
    fn step_failed(&self, step: Step, error: &str);
    /// Called on every poll while waiting for AWS.
    fn waiting(&self, what: &str, status: &str, elapsed: Duration);
    fn copy_started(&self, estimated_rows: Option<u64>);
    fn copy_progress(&self, rows_read: u64, rows_inserted: u64);
    fn note(&self, message: &str);
    fn warn(&self, message: &str);
}

pub trait Prompter: Send + Sync {
    /// Asks a yes/no question; `Err(Error::ConsentRequired)` when nobody can answer.
    fn confirm(&self, question: &str) -> Result<bool>;
    /// Asks the operator to type `expected` (a table's name) to go on: true only for that exact
    /// text. For the steps no yes/no is enough for.
    fn type_to_confirm(&self, question: &str, expected: &str) -> Result<bool>;
}

/// Progress that goes nowhere (JSON output, `--quiet`, tests).
pub struct Silent;

impl Progress for Silent {
    fn step_started(&self, _: Step, _: &str) {}
    fn step_finished(&self, _: Step, _: Duration, _: &str) {}
    fn step_failed(&self, _: Step, _: &str) {}
    fn waiting(&self, _: &str, _: &str, _: Duration) {}
    fn copy_started(&self, _: Option<u64>) {}
    fn copy_progress(&self, _: u64, _: u64) {}
    fn note(&self, _: &str) {}
    fn warn(&self, _: &str) {}
}
