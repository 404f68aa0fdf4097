//! The run's state file: one JSON document per run, rewritten atomically (temporary file,
//! fsync, rename) after every change, so a crash leaves either the old or the new version and
//! never half of one. It records each step as started before its first side effect and as
//! finished after it, every resource created (by id, the moment it exists) and the copy's last
//! committed key. It never holds a secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::rowcodec::StoredValue;
use crate::verify::Verification;

/// 2: the copy's group is created before the restore and passed to it (no attach, no detach).
pub const STATE_VERSION: u32 = 2;

/// The steps of a restore, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Validate,
    /// The copy's own security group, created with no rule before the restore, so the copy
    /// never sits in the VPC's default group.
    SecurityGroup,
    Restore,
    Wait,
    OpenAccess,
    Copy,
    Verify,
    Revoke,
    Teardown,
    Report,
}

impl Step {
    pub const ALL: [Step; 10] = [
        Step::Validate,
        Step::SecurityGroup,
        Step::Restore,
        Step::Wait,
        Step::OpenAccess,
        Step::Copy,
        Step::Verify,
        Step::Revoke,
        Step::Teardown,
        Step::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Validate => "validate",
            Step::SecurityGroup => "security-group",
            Step::Restore => "restore",
            Step::Wait => "wait",
            Step::OpenAccess => "open-access",
            Step::Copy => "copy",
            Step::Verify => "verify",
            Step::Revoke => "revoke",
            Step::Teardown => "teardown",
            Step::Report => "report",
        }
    }

    pub fn number(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Started,
    Finished,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: Step,
    pub status: StepStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// One line on what the step did or why it failed.
    pub note: Option<String>,
}

impl StepRecord {
    pub fn seconds(&self) -> Option<f64> {
        self.finished_at
            .map(|f| (f - self.started_at).num_milliseconds() as f64 / 1000.0)
    }
}

/// Everything the run created, recorded as soon as it exists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub restored_instance: Option<String>,
    /// Its deletion was requested (or found under way).
    pub restored_instance_deleted: bool,
    /// AWS no longer describes it: the deletion is over.
    #[serde(default)]
    pub restored_instance_gone: bool,
    /// The restored copy is a DB cluster (with its instances), not an instance.
    #[serde(default)]
    pub restored_is_cluster: bool,
    pub restored_endpoint: Option<crate::ports::Endpoint>,
    pub security_group: Option<String>,
    pub security_group_deleted: bool,
    /// The ingress rule (cidr, port), while it exists.
    pub ingress_rule: Option<(String, u16)>,
    /// A drill's side table in production, recorded before it is created.
    #[serde(default)]
    pub side_table: Option<crate::ports::TableRef>,
    #[serde(default)]
    pub side_table_dropped: bool,
    /// A production table this run created from the restored definition (it was dropped),
    /// recorded before it is created. Never dropped by the tool: it holds production data.
    #[serde(default)]
    pub created_table: Option<crate::ports::TableRef>,
    /// `--source binlog`: the as-of table the rewind builds in production, recorded before it
    /// is created; dropped at teardown (or by the next rewind of a resumed run).
    #[serde(default)]
    pub asof_table: Option<crate::ports::TableRef>,
    #[serde(default)]
    pub asof_table_dropped: bool,
}

impl Resources {
    /// Resources that still exist, for messages.
    pub fn held(&self) -> Vec<String> {
        let mut held = Vec::new();
        if let (Some(sg), Some((cidr, port))) = (&self.security_group, &self.ingress_rule) {
            held.push(format!("ingress rule {cidr} tcp/{port} in {sg}"));
        }
        if let Some(sg) = self.security_group.as_ref().filter(|_| !self.security_group_deleted) {
            held.push(format!("security group {sg}"));
        }
        if let Some(t) = self.asof_table.as_ref().filter(|_| !self.asof_table_dropped) {
            held.push(format!("as-of table {t} in production"));
        }
        if let Some(id) = self.restored_instance.as_ref().filter(|_| !self.restored_instance_gone) {
            let noun = if self.restored_is_cluster {
                "DB cluster"
            } else {
                "RDS instance"
            };
            if self.restored_instance_deleted {
                held.push(format!("{noun} {id} (being deleted)"));
            } else if self.restored_is_cluster {
                held.push(format!("{noun} {id} (with its instances)"));
            } else {
                held.push(format!("{noun} {id}"));
            }
        }
        held
    }
}

/// The copy's checkpoint: the key of the last row whose chunk is committed in production.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CopyProgress {
    pub last_key: Option<Vec<StoredValue>>,
    pub chunks: u64,
    pub rows_read: u64,
    pub inserted: u64,
    pub already_present: u64,
    /// Rows present on both sides with other values: kept (missing-rows) or overwritten.
    pub present_differing: u64,
    #[serde(default)]
    pub updated: u64,
    #[serde(default)]
    pub deleted: u64,
    /// Rows whose written values were proven inside their chunk's transaction.
    #[serde(default)]
    pub proven: u64,
    pub done: bool,
    /// What overwrite and replace-all modes counted before writing, once the operator agreed.
    #[serde(default)]
    pub planned: Option<PlannedChanges>,
    /// `--parallel N`: the key range of each writer and its own checkpoint; the fields above
    /// are then their sums.
    #[serde(default)]
    pub workers: Vec<WorkerProgress>,
}

impl CopyProgress {
    /// Recomputes the totals from the writers' checkpoints.
    pub fn sum_workers(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        let total = CopyProgress::total(self.workers.iter().map(|w| &w.copy));
        let (last_key, planned, workers) = (self.last_key.take(), self.planned, std::mem::take(&mut self.workers));
        *self = CopyProgress {
            last_key,
            planned,
            workers,
            ..total
        };
    }

    /// The counts of several copies added up (the writers of one table, or the tables of one
    /// run); done when all are.
    pub fn total<'a>(parts: impl Iterator<Item = &'a CopyProgress>) -> CopyProgress {
        let mut t = CopyProgress {
            done: true,
            ..Default::default()
        };
        for p in parts {
            t.chunks += p.chunks;
            t.rows_read += p.rows_read;
            t.inserted += p.inserted;
            t.already_present += p.already_present;
            t.present_differing += p.present_differing;
            t.updated += p.updated;
            t.deleted += p.deleted;
            t.proven += p.proven;
            t.done &= p.done;
        }
        t
    }
}

/// One of `--parallel` writers: the keys after `start` up to `end` (`None`: open), and how far
/// it got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerProgress {
    pub start: Option<Vec<StoredValue>>,
    pub end: Option<Vec<StoredValue>>,
    pub copy: CopyProgress,
}

/// The changes a merge would make, counted on both servers before the first write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChanges {
    pub insert: u64,
    pub update: u64,
    pub delete: u64,
    /// Rows the merge leaves as they are.
    pub unchanged: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Under way, or the process died: `resume` continues it, `abort` ends it.
    Running,
    Succeeded,
    /// A step failed; what is left can be resumed or aborted.
    Failed,
    /// Stopped by Ctrl-C or SIGTERM; can be resumed or aborted.
    Interrupted,
    /// Ended by `abort`: everything it created is removed.
    Aborted,
}

impl Outcome {
    /// Finished runs hold nothing and cannot be resumed.
    pub fn is_final(self) -> bool {
        matches!(self, Outcome::Succeeded | Outcome::Aborted)
    }
}

/// How to reach the databases, kept so `resume` and `abort` need only the password.
/// None of it is secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub region: Option<String>,
    pub db_user: String,
    pub tls: Option<crate::mysql::TlsMode>,
    pub ssl_ca: Option<std::path::PathBuf>,
    pub production_endpoint: Option<crate::ports::Endpoint>,
    pub restored_endpoint: Option<crate::ports::Endpoint>,
    #[serde(default)]
    pub iam_auth: bool,
    /// The ARN of the secret holding the password (the ARN, never the secret).
    #[serde(default)]
    pub db_secret_arn: Option<String>,
    #[serde(default)]
    pub disable_foreign_key_checks: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub version: u32,
    pub tool_version: String,
    pub run_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub plan: Plan,
    #[serde(default)]
    pub connection: Connection,
    pub outcome: Outcome,
    pub steps: Vec<StepRecord>,
    pub resources: Resources,
    pub copy: CopyProgress,
    pub verification: Option<Verification>,
    pub error: Option<String>,
    /// The restore window as validation saw it, for the drill report.
    #[serde(default)]
    pub window: Option<Window>,
    /// Tables whose foreign keys reference the restored one (through ON DELETE CASCADE, at any
    /// depth): what the accident may have taken or changed with it, which this run does not
    /// bring back.
    #[serde(default)]
    pub dependents: Vec<Dependent>,
    /// A run of several tables (`--table` more than once, `--with-dependents`): each table, in
    /// the order they are merged (parents before children), with its own checkpoint. Empty for a
    /// run of one table, whose progress is `copy` and `verification`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TablePass>,
}

/// One table of a run of several: why it is in the run, what is done to it, and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePass {
    pub table: crate::ports::TableRef,
    /// `named` (by --table), or how a foreign key brought it in: `CASCADE from db.parent`.
    pub reason: String,
    /// Its missing rows are merged in the run's mode (a named table, or one a CASCADE emptied);
    /// false for a table only a SET NULL reached, whose rows are all still there.
    pub restore_rows: bool,
    /// The SET NULL foreign keys whose cleared references the run sets back.
    #[serde(default)]
    pub references: Vec<crate::ports::References>,
    /// Its rows are written with the session's foreign key checks off: it references itself,
    /// or a table merged after it (a cycle). What that may leave dangling is counted after.
    #[serde(default)]
    pub checks_off: bool,
    #[serde(default)]
    pub copy: CopyProgress,
    /// How far setting back each of `references` got, in the same order.
    #[serde(default)]
    pub references_progress: Vec<ReferencesProgress>,
    /// Its rows and references are all merged.
    #[serde(default)]
    pub copied: bool,
    #[serde(default)]
    pub verification: Option<Verification>,
}

impl TablePass {
    /// The totals of setting references back, over every foreign key of the table.
    pub fn references_total(&self) -> ReferencesProgress {
        let mut t = ReferencesProgress::default();
        for p in &self.references_progress {
            t.restored += p.restored;
            t.kept += p.kept;
            t.parent_gone += p.parent_gone;
            t.absent += p.absent;
            t.unchanged += p.unchanged;
        }
        t.done = self.references_progress.iter().all(|p| p.done);
        t
    }
}

/// The checkpoint of setting back one foreign key's references: the last key whose chunk is
/// committed, and what the chunks did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferencesProgress {
    pub last_key: Option<Vec<StoredValue>>,
    pub restored: u64,
    pub kept: u64,
    pub unchanged: u64,
    pub parent_gone: u64,
    pub absent: u64,
    pub done: bool,
}

/// A table that references the restored table, or one of its CASCADE dependents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependent {
    pub table: crate::ports::TableRef,
    /// The table its foreign key references.
    pub references: crate::ports::TableRef,
    pub constraint: String,
    pub columns: Vec<String>,
    /// The referenced table's columns, in the order of `columns` (empty in state files from
    /// before they were recorded).
    #[serde(default)]
    pub referenced_columns: Vec<String>,
    /// `ON DELETE`: CASCADE, SET NULL, RESTRICT, NO ACTION or SET DEFAULT.
    pub on_delete: String,
    /// Counted once the restored copy is reachable: its rows as of the restore time and in
    /// production now (for SET NULL, the rows whose reference is NULL).
    #[serde(default)]
    pub restored_rows: Option<u64>,
    #[serde(default)]
    pub production_rows: Option<u64>,
}

impl Dependent {
    /// Whether a delete of the referenced rows changes this table (CASCADE, SET NULL or SET
    /// DEFAULT); RESTRICT and NO ACTION would have refused the delete instead.
    pub fn changed_by_delete(&self) -> bool {
        matches!(self.on_delete.as_str(), "CASCADE" | "SET NULL" | "SET DEFAULT")
    }

    /// A CASCADE of the restored table onto itself: what it took are rows of that table, which
    /// the run brings back. `restored` is the restored table as `db.table`.
    pub fn restored_by_the_run(&self, restored: &str) -> bool {
        self.on_delete == "CASCADE" && self.table.to_string() == restored
    }

    /// What the counts say the accident took: rows gone (CASCADE) or references cleared
    /// (SET NULL), as far as the counts show it (the application's writes since move them too).
    pub fn lost(&self) -> Option<u64> {
        let (r, p) = (self.restored_rows?, self.production_rows?);
        match self.on_delete.as_str() {
            "CASCADE" => Some(r.saturating_sub(p)),
            "SET NULL" | "SET DEFAULT" => Some(p.saturating_sub(r)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
    pub checked_at: DateTime<Utc>,
}

impl RunState {
    pub fn new(plan: Plan, now: DateTime<Utc>) -> RunState {
        RunState {
            version: STATE_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            run_id: plan.run_id.clone(),
            created_at: now,
            updated_at: now,
            plan,
            connection: Connection::default(),
            outcome: Outcome::Running,
            steps: Vec::new(),
            resources: Resources::default(),
            copy: CopyProgress::default(),
            dependents: Vec::new(),
            tables: Vec::new(),
            verification: None,
            error: None,
            window: None,
        }
    }

    /// The copy's progress of the table `pass` (an index into `tables`), or of the run's one
    /// table.
    pub fn progress(&self, pass: Option<usize>) -> &CopyProgress {
        match pass {
            Some(i) => &self.tables[i].copy,
            None => &self.copy,
        }
    }

    pub fn progress_mut(&mut self, pass: Option<usize>) -> &mut CopyProgress {
        match pass {
            Some(i) => &mut self.tables[i].copy,
            None => &mut self.copy,
        }
    }

    pub fn step(&self, step: Step) -> Option<&StepRecord> {
        self.steps.iter().rev().find(|r| r.step == step)
    }

    /// True when the latest record of `step` is finished.
    pub fn finished(&self, step: Step) -> bool {
        self.step(step).is_some_and(|r| r.status == StepStatus::Finished)
    }

    /// The latest step record, for listings.
    pub fn current_step(&self) -> Option<&StepRecord> {
        self.steps.last()
    }
}

/// Every run in a state directory, oldest first. Unreadable files are reported, not skipped
/// silently: a run nobody can see is a run whose resources nobody cleans up.
pub fn list_runs(dir: &Path) -> Result<Vec<(PathBuf, std::result::Result<RunState, Error>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::State {
                path: dir.display().to_string(),
                detail: e.to_string(),
            })
        }
    };
    let mut runs: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let st = StateStore::load(&p);
            (p, st)
        })
        .collect();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(runs)
}

/// Where a run's state lives: `<state dir>/<run id>.json`.
pub struct StateStore {
    dir: PathBuf,
    path: PathBuf,
}

impl StateStore {
    /// The store of an existing run.
    pub fn open(dir: &Path, run_id: &str) -> Result<(StateStore, RunState)> {
        let store = StateStore::new(dir, run_id)?;
        if !store.path.exists() {
            return Err(Error::InvalidInput(format!(
                "no run `{run_id}` in {}: `rds-table-restore runs` lists the runs there (or pass --state-dir)",
                dir.display()
            )));
        }
        let state = StateStore::load(&store.path)?;
        Ok((store, state))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn new(dir: &Path, run_id: &str) -> Result<StateStore> {
        if run_id.is_empty() || !run_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::InvalidInput(format!(
                "`{run_id}` is not a run id (like 20261123t150227-567c)"
            )));
        }
        create_private_dir(dir)?;
        Ok(StateStore {
            dir: dir.to_path_buf(),
            path: dir.join(format!("{run_id}.json")),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the whole state atomically, readable by the owner only.
    pub fn save(&self, state: &RunState) -> Result<()> {
        let err = |e: &dyn std::fmt::Display| Error::State {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        };
        let json = serde_json::to_vec_pretty(state).map_err(|e| err(&e))?;
        // tempfile creates the file 0600, in the same directory so the rename is atomic.
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| err(&e))?;
        tmp.write_all(&json).map_err(|e| err(&e))?;
        tmp.write_all(b"\n").map_err(|e| err(&e))?;
        tmp.as_file().sync_all().map_err(|e| err(&e))?;
        tmp.persist(&self.path).map_err(|e| err(&e.error))?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<RunState> {
        let err = |e: &dyn std::fmt::Display| Error::State {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        let bytes = std::fs::read(path).map_err(|e| err(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| err(&e))
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let err = |e: std::io::Error| Error::State {
        path: dir.display().to_string(),
        detail: e.to_string(),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(err)
    }
}

/// Writes a file only its owner can read (reports and timelines name the tables and the
/// resources of an incident).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| Error::State {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)
}

/// The default state directory: `$XDG_STATE_HOME/rds-table-restore` (or the platform's
/// equivalent), falling back to the local data directory.
pub fn default_state_dir() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("rds-table-restore"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;

    fn plan() -> Plan {
        Plan::new(&crate::testing::request(), "20261123t120000-ab12".into(), Utc::now()).unwrap()
    }

    #[test]
    fn saves_atomically_and_reads_back_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(&dir.path().join("nested/state"), "run-1").unwrap();
        let mut state = RunState::new(plan(), Utc::now());
        state.copy.last_key = Some(vec![StoredValue::Int(42)]);
        state.resources.restored_instance = Some("restore-x".into());
        store.save(&state).unwrap();
        state.copy.chunks = 7;
        store.save(&state).unwrap();
        assert_eq!(StateStore::load(store.path()).unwrap(), state);
        let leftovers: Vec<_> = std::fs::read_dir(store.path().parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind: {leftovers:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
