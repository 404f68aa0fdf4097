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
    /// `restore` or `drill`.
    pub kind: &'static str,
    pub outcome: Outcome,
    /// A drill passes when it ran to the end with a verification that passed.
    pub passed: bool,
    /// Where the rows were written: the real table, or the drill's side table.
    pub target_table: String,
    /// How far behind the present the latest restorable time was when the run checked it.
    pub latest_restorable_age_seconds: Option<i64>,
    pub source_instance: String,
    pub table: String,
    pub restore_time: String,
    pub restored_instance: String,
    /// `--source`: `pitr` (a restored instance or cluster) or `binlog` (rewound through
    /// production's binlog, nothing created in AWS).
    pub source: &'static str,
    pub rows_read: u64,
    /// The chunks (production transactions) the copy took: more than the rows over
    /// `--chunk-size` when rows are wide (`--chunk-bytes`) or locks were held long
    /// (`--max-lock-ms`).
    pub chunks: u64,
    pub rows_inserted: u64,
    pub rows_already_present: u64,
    pub rows_present_differing_kept: u64,
    /// `--mode`: missing-rows, overwrite, side-table or replace-all.
    pub mode: &'static str,
    /// Rows set back to their restored values (overwrite, replace-all).
    pub rows_updated: u64,
    /// Rows deleted because the restored table lacks them (replace-all).
    pub rows_deleted: u64,
    pub verification: Option<Verification>,
    /// Tables that reference the restored one through foreign keys, with their counts on both
    /// sides: a CASCADE dependent that lost rows was not brought back by this run.
    pub dependents: Vec<crate::state::Dependent>,
    /// A run of several tables (`--table` more than once, `--with-dependents`): each table
    /// in the order it was merged, with what was done to it. The row counts above are their sums.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableReport>,
    pub steps: Vec<StepTime>,
    pub total_seconds: f64,
    pub resources_left: Vec<String>,
    pub state_file: String,
    pub error: Option<String>,
}

/// One table of a run of several.
#[derive(Debug, Serialize)]
pub struct TableReport {
    pub table: String,
    /// `named`, or the foreign key that brought it in: `CASCADE from shop.customers`.
    pub reason: String,
    pub rows_read: u64,
    pub rows_inserted: u64,
    pub rows_already_present: u64,
    pub rows_updated: u64,
    /// References a SET NULL cleared, set back to their restored values.
    pub references_restored: u64,
    /// References production holds with another value (re-pointed since): kept.
    pub references_kept: u64,
    /// References left NULL: the row they pointed at is not in production.
    pub references_left_null: u64,
    pub verification: Option<Verification>,
}

/// The report is laid out for an 80-column terminal: long values wrap under their column.
const REPORT_WIDTH: usize = 80;
const VALUE_COLUMN: usize = 36;

/// Re-wraps the lines of `text` longer than [`REPORT_WIDTH`]: a `label   value` row (value at
/// `value_column`) under its value, any other line under its own indentation plus two.
pub fn fit(text: &str, value_column: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.chars().count() <= REPORT_WIDTH {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let lead = line.len() - line.trim_start().len();
        let column = match line.get(value_column - 2..value_column) {
            Some("  ") if lead == 2 && line.chars().nth(value_column).is_some_and(|c| c != ' ') => value_column,
            // A continuation row of a value (indented to the value column already).
            _ if lead == value_column => value_column,
            _ => lead + 2,
        };
        let (head, body) = line.split_at(if column == value_column && lead != value_column {
            value_column
        } else {
            lead
        });
        for (i, part) in wrap(body, REPORT_WIDTH - column).iter().enumerate() {
            if i == 0 {
                out.push_str(head);
            } else {
                out.push_str(&" ".repeat(column));
            }
            out.push_str(part);
            out.push('\n');
        }
    }
    out
}

/// Splits `text` into lines of at most `width` characters at spaces (a longer word stands
/// alone on its line). Always at least one line.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        if line.is_empty() {
            line.push_str(word);
        } else if line.chars().count() + 1 + word.chars().count() <= width {
            line.push(' ');
            line.push_str(word);
        } else {
            lines.push(word.to_string());
        }
    }
    lines
}

impl Report {
    pub fn from_state(state: &RunState, state_file: &std::path::Path) -> Report {
        let total = (state.updated_at - state.created_at).num_milliseconds() as f64 / 1000.0;
        // A run of several tables: the counts are the sums of its tables'.
        let copy = match state.tables.is_empty() {
            true => state.copy.clone(),
            false => crate::state::CopyProgress::total(state.tables.iter().map(|p| &p.copy)),
        };
        let tables = state
            .tables
            .iter()
            .map(|p| {
                let refs = p.references_total();
                TableReport {
                    table: p.table.to_string(),
                    reason: p.reason.clone(),
                    rows_read: p.copy.rows_read,
                    rows_inserted: p.copy.inserted,
                    rows_already_present: p.copy.already_present,
                    rows_updated: p.copy.updated,
                    references_restored: refs.restored,
                    references_kept: refs.kept,
                    references_left_null: refs.parent_gone,
                    verification: p.verification.clone(),
                }
            })
            .collect();
        Report {
            run_id: state.run_id.clone(),
            kind: if state.plan.is_drill() { "drill" } else { "restore" },
            outcome: state.outcome,
            passed: state.outcome == Outcome::Succeeded && state.verification.as_ref().is_some_and(|v| v.passed),
            target_table: state.plan.target_table().to_string(),
            latest_restorable_age_seconds: state.window.as_ref().map(|w| (w.checked_at - w.latest).num_seconds()),
            source_instance: state.plan.source().to_string(),
            table: state.plan.table.to_string(),
            restore_time: rfc3339(state.plan.restore_time),
            restored_instance: match &state.plan.asof {
                Some(asof) if state.plan.is_binlog() => asof.to_string(),
                _ => state.plan.target_instance.clone(),
            },
            source: if state.plan.is_binlog() { "binlog" } else { "pitr" },
            rows_read: copy.rows_read,
            chunks: copy.chunks,
            dependents: state.dependents.clone(),
            tables,
            rows_inserted: copy.inserted,
            rows_already_present: copy.already_present,
            rows_present_differing_kept: match state.plan.merge() {
                crate::ports::Merge::MissingRows => copy.present_differing,
                _ => 0,
            },
            mode: state.plan.mode.name(),
            rows_updated: copy.updated,
            rows_deleted: copy.deleted,
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

    /// The report as text, every line within 80 columns: a long value wraps under its column.
    pub fn to_text(&self) -> String {
        fit(&self.layout(), VALUE_COLUMN)
    }

    fn layout(&self) -> String {
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
        out.push_str(&format!(
            "  rows read from the restored copy  {} (in {} chunks)\n",
            self.rows_read, self.chunks
        ));
        out.push_str(&format!("  rows inserted into production     {}\n", self.rows_inserted));
        if self.mode == "overwrite" || self.mode == "replace-all" {
            out.push_str(&format!("  rows overwritten in production    {}\n", self.rows_updated));
            out.push_str(&format!("  rows deleted from production      {}\n", self.rows_deleted));
        } else {
            out.push_str(&format!(
                "  rows already present (kept)       {} ({} of them differ from the restored copy)\n",
                self.rows_already_present, self.rows_present_differing_kept
            ));
        }
        if let Some(v) = &self.verification {
            out.push_str(&format!(
                "  verification                      {}: {}\n",
                if v.passed { "passed" } else { "FAILED" },
                v.summary()
            ));
        }
        for t in &self.tables {
            let mut what = format!("{} rows inserted", t.rows_inserted);
            if t.rows_updated > 0 {
                what.push_str(&format!(", {} overwritten", t.rows_updated));
            }
            if t.references_restored + t.references_kept + t.references_left_null > 0 {
                what.push_str(&format!(
                    ", {} references set back ({} re-pointed since kept, {} left NULL)",
                    t.references_restored, t.references_kept, t.references_left_null
                ));
            }
            if let Some(v) = &t.verification {
                what.push_str(if v.passed {
                    ", verified"
                } else {
                    ", verification FAILED"
                });
            }
            out.push_str(&format!("  table {} ({})  {what}\n", t.table, t.reason));
        }
        let in_run = |table: &str| self.tables.iter().any(|t| t.table == table);
        for d in self
            .dependents
            .iter()
            .filter(|d| d.changed_by_delete() && !in_run(&d.table.to_string()))
        {
            let counts = match (d.restored_rows, d.production_rows, d.on_delete.as_str()) {
                (Some(r), Some(p), "CASCADE") => format!("{r} rows at the restore time, {p} now"),
                (Some(r), Some(p), _) => format!("{r} NULL references at the restore time, {p} now"),
                _ => "not counted".to_string(),
            };
            let flag = match (d.lost(), d.on_delete.as_str()) {
                (Some(n), _) if n == 0 || d.restored_by_the_run(&self.table) => "",
                (Some(_), "CASCADE") => {
                    "  NOT RESTORED: restore it with --with-dependents, or --table, and the same --time"
                }
                (Some(_), _) => "  REFERENCES CLEARED: --with-dependents sets them back",
                (None, _) => "",
            };
            out.push_str(&format!(
                "  dependent {} (ON DELETE {} from {})  {counts}{flag}\n",
                d.table, d.on_delete, d.references
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
            out.push_str(&format!("    {:<15}{secs}{status}\n", s.step));
        }
        out.push_str(&format!("  total {:.1}s\n", self.total_seconds));
        if self.resources_left.is_empty() && self.source == "binlog" {
            out.push_str(&format!(
                "  AWS resources: none created (rewound through production's binlog; the as-of table {} is \
                 dropped)\n",
                self.restored_instance
            ));
        } else if self.resources_left.is_empty() {
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

/// The run as a UTC timeline, ready to paste into the incident channel.
pub fn timeline(state: &RunState) -> String {
    let t = |d: chrono::DateTime<chrono::Utc>| d.format("%H:%M:%SZ").to_string();
    let mut out = format!(
        "**rds-table-restore {} {}**: `{}` on `{}` as of {} (UTC, {})\n",
        if state.plan.is_drill() { "drill" } else { "restore" },
        state.run_id,
        state.plan.table,
        state.plan.source(),
        rfc3339(state.plan.restore_time),
        state.created_at.format("%Y-%m-%d"),
    );
    for s in &state.steps {
        out.push_str(&format!("- {} {} started\n", t(s.started_at), s.step.name()));
        if let Some(f) = s.finished_at {
            let verb = match s.status {
                StepStatus::Finished => "finished",
                StepStatus::Failed => "FAILED",
                StepStatus::Started => "stopped",
            };
            out.push_str(&format!(
                "- {} {} {verb} ({:.1}s): {}\n",
                t(f),
                s.step.name(),
                s.seconds().unwrap_or(0.0),
                s.note.as_deref().unwrap_or("")
            ));
        }
    }
    let r = &state.resources;
    out.push_str(&format!(
        "- resources: {} {} ({}), security group {} ({}){}\n",
        state.plan.copy_noun(),
        r.restored_instance.as_deref().unwrap_or("none"),
        if r.restored_instance_deleted {
            "deleted"
        } else if r.restored_instance.is_some() {
            "STILL RUNNING"
        } else {
            "-"
        },
        r.security_group.as_deref().unwrap_or("none"),
        if r.security_group_deleted {
            "deleted"
        } else if r.security_group.is_some() {
            "STILL PRESENT"
        } else {
            "-"
        },
        r.side_table
            .as_ref()
            .map(|s| format!(
                ", side table {s} ({})",
                if r.side_table_dropped { "dropped" } else { "kept" }
            ))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "- rows ({}): {} read from the restored copy, {} inserted into {}, {} already present ({} differ), {} overwritten, {} deleted\n",
        state.plan.mode.name(),
        state.copy.rows_read,
        state.copy.inserted,
        state.plan.target_table(),
        state.copy.already_present,
        state.copy.present_differing,
        state.copy.updated,
        state.copy.deleted
    ));
    if let Some(v) = &state.verification {
        out.push_str(&format!(
            "- verification: {}: {}\n",
            if v.passed { "passed" } else { "FAILED" },
            v.summary()
        ));
    }
    out.push_str(&format!(
        "- outcome: {:?} at {}{}\n",
        state.outcome,
        t(state.updated_at),
        state.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
    ));
    out
}

/// The drill's report, as Markdown.
pub fn drill_markdown(report: &Report) -> String {
    let mut out = format!(
        "# Restore drill {}: {}\n\n\
         Rehearsed restoring `{}` from `{}` as of {} into `{}` (the real table was not touched).\n\n\
         - **Time to recover:** {:.1} s\n\
         - **Latest restorable time** was {} behind the present when checked\n\
         - **Rows:** {} read from the restored copy, {} loaded\n",
        report.run_id,
        if report.passed { "PASS" } else { "FAIL" },
        report.table,
        report.source_instance,
        report.restore_time,
        report.target_table,
        report.total_seconds,
        report
            .latest_restorable_age_seconds
            .map(|s| format!("{s} s"))
            .unwrap_or_else(|| "not known".into()),
        report.rows_read,
        report.rows_inserted,
    );
    if let Some(v) = &report.verification {
        out.push_str(&format!("- **Verification:** {}\n", v.summary()));
    }
    if let Some(e) = &report.error {
        out.push_str(&format!("- **Error:** {e}\n"));
    }
    out.push_str("\n| step | seconds | status |\n|---|---:|---|\n");
    for s in &report.steps {
        out.push_str(&format!(
            "| {} | {} | {:?} |\n",
            s.step,
            s.seconds.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
            s.status
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrapping_keeps_every_word_in_order_within_the_width() {
        let text = "100000 restored rows, 100000 in production, 99999 identical, 1 differ (kept)";
        let lines = wrap(text, 30);
        assert!(lines.iter().all(|l| l.chars().count() <= 30), "{lines:?}");
        assert_eq!(lines.join(" "), text);
        assert_eq!(wrap("", 10), [""]);
        assert_eq!(wrap("a-very-long-word b", 5), ["a-very-long-word", "b"]);
    }

    #[test]
    fn long_rows_wrap_under_their_value_column() {
        let row = format!("  verification                      passed: {}", "word ".repeat(30));
        let text = super::fit(&row, 36);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.len() > 1 && lines.iter().all(|l| l.chars().count() <= 80),
            "{text}"
        );
        assert!(
            lines[1].starts_with(&" ".repeat(36)) && !lines[1].starts_with(&" ".repeat(37)),
            "{text}"
        );
        let header = super::fit(&format!("shop.billing restored {}", "x ".repeat(50)), 36);
        assert!(header.lines().nth(1).unwrap().starts_with("  x"), "{header}");
    }
}
