//! The end-of-run report, for the operator (text) and for scripts (JSON), built from the state.

use serde::Serialize;

use crate::plan::rfc3339;
use crate::state::{Outcome, RunState, StepStatus};
use crate::verify::Verification;

#[derive(Debug, Serialize)]
pub struct StepTime {
    pub step: &'static str,
    pub status: StepStatus,
    pub seconds: Option<f64>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub run_id: String,
    pub outcome: Outcome,
    pub source_instance: String,
    pub table: String,
    pub restore_time: String,
    pub restored_instance: String,
    pub rows_read: u64,
    pub rows_inserted: u64,
    pub rows_already_present: u64,
    pub rows_present_differing_kept: u64,
    pub verification: Option<Verification>,
    pub steps: Vec<StepTime>,
    pub total_seconds: f64,
    pub resources_left: Vec<String>,
    pub state_file: String,
    pub error: Option<String>,
}

impl Report {
    pub fn from_state(state: &RunState, state_file: &std::path::Path) -> Report {
        let total = (state.updated_at - state.created_at).num_milliseconds() as f64 / 1000.0;
        Report {
            run_id: state.run_id.clone(),
            outcome: state.outcome,
            source_instance: state.plan.source_instance.clone(),
            table: state.plan.table.to_string(),
            restore_time: rfc3339(state.plan.restore_time),
            restored_instance: state.plan.target_instance.clone(),
            rows_read: state.copy.rows_read,
            rows_inserted: state.copy.inserted,
            rows_already_present: state.copy.already_present,
            rows_present_differing_kept: state.copy.present_differing,
            verification: state.verification.clone(),
            steps: state
                .steps
                .iter()
                .map(|s| StepTime {
                    step: s.step.name(),
                    status: s.status,
                    seconds: s.seconds(),
                    note: s.note.clone(),
                })
                .collect(),
            total_seconds: total,
            resources_left: state.resources.held(),
            state_file: state_file.display().to_string(),
            error: state.error.clone(),
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let verdict = match self.outcome {
            Outcome::Succeeded => "restored",
            Outcome::Failed => "FAILED",
            Outcome::Running => "unfinished",
            Outcome::Interrupted => "INTERRUPTED",
            Outcome::Aborted => "aborted",
        };
        out.push_str(&format!(
            "{} {verdict} from {} as of {} (run {})\n",
            self.table, self.source_instance, self.restore_time, self.run_id
        ));
        out.push_str(&format!("  rows read from the restored copy  {}\n", self.rows_read));
        out.push_str(&format!("  rows inserted into production     {}\n", self.rows_inserted));
        out.push_str(&format!(
            "  rows already present (kept)       {} ({} of them differ from the restored copy)\n",
            self.rows_already_present, self.rows_present_differing_kept
        ));
        if let Some(v) = &self.verification {
            out.push_str(&format!(
                "  verification                      {}: {}\n",
                if v.passed { "passed" } else { "FAILED" },
                v.summary()
            ));
        }
        out.push_str("  steps:\n");
        for s in &self.steps {
            let secs = s
                .seconds
                .map(|x| format!("{x:>8.1}s"))
                .unwrap_or_else(|| "        -".into());
            let status = match s.status {
                StepStatus::Finished => "",
                StepStatus::Started => " (interrupted)",
                StepStatus::Failed => " (failed)",
            };
            out.push_str(&format!("    {:<12}{secs}{status}\n", s.step));
        }
        out.push_str(&format!("  total {:.1}s\n", self.total_seconds));
        if self.resources_left.is_empty() {
            out.push_str(&format!(
                "  AWS resources: none left ({} and its security group removed)\n",
                self.restored_instance
            ));
        } else {
            out.push_str(&format!(
                "  AWS resources still held: {}\n",
                self.resources_left.join(", ")
            ));
        }
        out.push_str(&format!("  state file: {}\n", self.state_file));
        out
    }
}
