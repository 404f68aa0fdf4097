//! The restore as a state machine: validate, security group, restore, wait, open access, copy,
//! verify, revoke, teardown, report. Each step is recorded in the state file as started before its first side
//! effect and as finished after its last; every resource is recorded the moment it exists.
//!
//! Resuming runs the same machine over a loaded state: finished steps are skipped, and a step
//! found started is reconciled with AWS rather than guessed: a restored instance or security
//! group created just before a crash is found by name and adopted only if it carries this
//! run's tag. When a step fails or the run is interrupted, the network access is revoked at once
//! (an open port never outlives a failure); the restored instance is kept for `resume` unless
//! `--on-failure teardown`. The machine reaches AWS and MySQL only through the ports, so the
//! unit tests run it against fakes.
//!
//! `restored_copy` holds the steps that live in AWS (group, restore, wait, access, teardown,
//! abort), in the order real AWS needs; this file the validation, the data steps and failure.

mod data_steps;
mod dependents;
mod packets;
mod plan_text;
mod restored_copy;
mod rewind;
mod tables;
mod validate;

pub use dependents::find_dependents;
pub use plan_text::plan_text;

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use chrono::{DateTime, Utc};

use crate::copy::{copy_rows, count_changes, CopyJob};
use crate::error::{Error, Result, Side};
use crate::plan::{rfc3339, Mode, OnFailure, Plan, TAG_RUN_ID};
use crate::ports::{Connector, Ec2, Endpoint, Instance, Merge, Rds, Session, TableSchema};
use crate::progress::{Progress, Prompter};
use crate::state::{list_runs, Connection, Outcome, RunState, StateStore, Step, StepRecord, StepStatus};
use crate::verify::{verify_parts, Part};

/// How many times the copy reconnects after a lost connection before it gives up.
const RECONNECTS: u32 = 8;

/// What the machine talks through.
pub struct Deps<'a> {
    pub rds: &'a dyn Rds,
    pub ec2: &'a dyn Ec2,
    pub db: &'a dyn Connector,
    pub ui: &'a dyn Progress,
    pub prompter: &'a dyn Prompter,
}

pub struct Settings {
    /// For messages only.
    pub region: String,
    /// `--yes`: the operator consented up front.
    pub assume_yes: bool,
    /// The first wait between polls of the restored instance's status.
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// The first wait before reconnecting to a database.
    pub reconnect_min: Duration,
    /// How long a resource that was just created (or whose creation answer was lost) may stay
    /// invisible to AWS's describe calls: eventual consistency, seconds on real AWS.
    pub settle: Duration,
    /// How long a deleting instance is waited for before the run says how to finish the job.
    pub gone_timeout: Duration,
    /// How long EC2's `DependencyViolation` on the group is waited out after the instance went.
    pub dependency_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            region: "us-east-1".into(),
            assume_yes: false,
            poll_min: Duration::from_secs(1),
            poll_max: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(500),
            settle: Duration::from_secs(60),
            gone_timeout: Duration::from_secs(45 * 60),
            dependency_timeout: Duration::from_secs(20 * 60),
        }
    }
}

/// A run that did not finish.
#[derive(Debug)]
pub struct RunFailure {
    pub error: Error,
    pub state: RunState,
    pub state_path: PathBuf,
    /// Resources still held after the failure handling (empty when all were cleaned up).
    pub resources_left: Vec<String>,
    /// AWS was asked after the failure and describes nothing of this run: the only ground for
    /// saying nothing is left.
    pub confirmed_clean: bool,
}

/// What validation established, used by later steps.
#[derive(Clone)]
struct Source {
    instance: Instance,
    production: Endpoint,
    /// The production table's schema; `None` when the table is gone (DROP TABLE) and is to be
    /// created from the restored definition before the copy.
    schema: Option<TableSchema>,
    /// In a run of several tables, each one's production schema, in the order of
    /// `RunState::tables`.
    schemas: Vec<TableSchema>,
}

impl Source {
    fn schema(&self) -> Result<&TableSchema> {
        self.schema
            .as_ref()
            .ok_or_else(|| Error::SchemaMismatch("the production table does not exist".into()))
    }
}

/// True while the run can still be resumed or aborted: it holds resources, or it stopped
/// before creating any without failing.
pub fn is_open(state: &RunState) -> bool {
    match state.outcome {
        Outcome::Succeeded | Outcome::Aborted => false,
        Outcome::Running | Outcome::Interrupted => true,
        Outcome::Failed => !state.resources.held().is_empty(),
    }
}

pub struct Machine<'a> {
    deps: Deps<'a>,
    settings: Settings,
    store: StateStore,
    state: RunState,
    cancel: Arc<AtomicBool>,
    current: Option<(Step, Instant)>,
    restored_session: Option<Box<dyn Session>>,
    production_session: Option<Box<dyn Session>>,
    /// The copy's other writers' sessions, kept for the verification's parts of the same table
    /// (over a slow link opening them again took half a second). Cleared with the pair above.
    spare_pairs: Vec<(Box<dyn Session>, Box<dyn Session>)>,
    /// Holds `GET_LOCK` on production for the whole run.
    lock_session: Option<Box<dyn Session>>,
    /// Holds the state directory's lock on the table for the whole run.
    _table_lock: File,
    /// `--dump-file` / `--dump-only`, open during the copy.
    dump: Option<crate::copy::DumpFile>,
    /// What validation's binlog checks found (`--source binlog`), for `plan`.
    rewind_checked: Option<crate::ports::RewindOutcome>,
    /// In a run of several tables, the one being copied or verified (an index into
    /// `RunState::tables`).
    pass: Option<usize>,
}

impl<'a> Machine<'a> {
    /// A new run. Refused while another run of the same table is open in this state directory.
    pub fn new(
        deps: Deps<'a>,
        settings: Settings,
        store: StateStore,
        plan: Plan,
        connection: Connection,
        cancel: Arc<AtomicBool>,
    ) -> Result<Self> {
        let table_lock = lock_table(&store, &plan)?;
        for (_, other) in list_runs(store.dir())? {
            let Ok(other) = other else { continue };
            let written = |p: &Plan| {
                let mut t = vec![p.target_table().clone()];
                t.extend(p.also.iter().cloned());
                t
            };
            let overlap = written(&other.plan).iter().any(|t| written(&plan).contains(t))
                || other.tables.iter().any(|o| written(&plan).contains(&o.table));
            if other.plan.source_instance == plan.source_instance && overlap && is_open(&other) {
                let step = other.current_step().map(|s| s.step.name()).unwrap_or("none");
                return Err(Error::Unfinished {
                    run_id: other.run_id,
                    step: step.into(),
                });
            }
        }
        let mut state = RunState::new(plan, Utc::now());
        state.connection = connection;
        store.save(&state)?;
        Ok(Machine::with_state(deps, settings, store, state, cancel, table_lock))
    }

    /// An existing run, to resume or abort. Refused when it is over.
    pub fn open(
        deps: Deps<'a>,
        settings: Settings,
        store: StateStore,
        state: RunState,
        cancel: Arc<AtomicBool>,
        action: &'static str,
    ) -> Result<Self> {
        if !is_open(&state) {
            let outcome = format!("{:?}", state.outcome).to_lowercase();
            return Err(Error::AlreadyFinished {
                run_id: state.run_id.clone(),
                outcome,
                action,
            });
        }
        if state.version < crate::state::STATE_VERSION && action == "resume" {
            return Err(Error::InvalidInput(format!(
                "run {} was started by an older rds-table-restore, which attached its security group to the copy \
                 by a modify: end it with `rds-table-restore abort {}` and start a new run",
                state.run_id, state.run_id
            )));
        }
        let table_lock = lock_table(&store, &state.plan)?;
        Ok(Machine::with_state(deps, settings, store, state, cancel, table_lock))
    }

    fn with_state(
        deps: Deps<'a>,
        settings: Settings,
        store: StateStore,
        state: RunState,
        cancel: Arc<AtomicBool>,
        table_lock: File,
    ) -> Self {
        Machine {
            deps,
            settings,
            store,
            state,
            cancel,
            current: None,
            restored_session: None,
            production_session: None,
            spare_pairs: Vec::new(),
            lock_session: None,
            rewind_checked: None,
            pass: None,
            _table_lock: table_lock,
            dump: None,
        }
    }

    pub fn state_path(&self) -> PathBuf {
        self.store.path().to_path_buf()
    }

    /// Runs every step not yet finished. On failure, cleans up as the plan says.
    pub async fn run(mut self) -> std::result::Result<RunState, RunFailure> {
        self.state.outcome = Outcome::Running;
        self.state.error = None;
        match self.drive().await {
            Ok(()) => Ok(self.state),
            Err(error) => Err(self.fail(error).await),
        }
    }

    async fn drive(&mut self) -> Result<()> {
        let resuming = !self.state.steps.is_empty();
        let source = self.validate().await?;
        self.consent(&source, resuming)?;
        if self.state.plan.is_binlog() {
            return self.drive_binlog(source).await;
        }
        if !self.state.finished(Step::SecurityGroup) {
            self.security_group(&source).await?;
        }
        if !self.state.finished(Step::Restore) {
            self.restore(&source).await?;
        }
        let endpoint = match (&self.state.resources.restored_endpoint, self.state.finished(Step::Wait)) {
            (Some(e), true) => e.clone(),
            _ => self.wait().await?,
        };
        let needs_data = !self.state.finished(Step::Copy) || !self.state.finished(Step::Verify);
        if needs_data && !self.access_open() {
            self.open_access(endpoint.port).await?;
        }
        let source = match source.schema {
            None => self.recreate_table(source, &endpoint).await?,
            Some(_) => source,
        };
        if !self.state.finished(Step::Copy) {
            self.copy(&source, &endpoint).await?;
        }
        if !self.state.finished(Step::Verify) {
            self.verify(&source, &endpoint).await?;
        }
        if !self.state.finished(Step::Revoke) {
            self.revoke().await?;
        }
        if !self.state.finished(Step::Teardown) {
            self.teardown().await?;
        }
        self.begin(Step::Report, "summary")?;
        self.state.outcome = Outcome::Succeeded;
        self.finish("done")
    }

    // ---- step bookkeeping ----

    fn save(&mut self) -> Result<()> {
        self.state.updated_at = Utc::now();
        self.store.save(&self.state)
    }

    fn begin(&mut self, step: Step, detail: &str) -> Result<()> {
        self.check_cancel()?;
        self.state.steps.push(StepRecord {
            step,
            status: StepStatus::Started,
            started_at: Utc::now(),
            finished_at: None,
            note: None,
        });
        self.current = Some((step, Instant::now()));
        self.save()?;
        self.deps.ui.step_started(step, detail);
        crash_point!(&format!("{}-before", step.name()));
        Ok(())
    }

    fn finish(&mut self, summary: &str) -> Result<()> {
        let Some((step, started)) = self.current.take() else {
            return Ok(());
        };
        if let Some(rec) = self.state.steps.last_mut() {
            rec.status = StepStatus::Finished;
            rec.finished_at = Some(Utc::now());
            rec.note = Some(summary.to_string());
        }
        self.save()?;
        self.deps.ui.step_finished(step, started.elapsed(), summary);
        crash_point!(&format!("{}-after-checkpoint", step.name()));
        Ok(())
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::SeqCst) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// The rule is in place: recorded, and the step that adds it finished since.
    /// How the side read as "restored" is reached: the restored copy, or, for a binlog
    /// rewind, production itself (where the as-of table is).
    /// Lets go of the run's sessions and the copy's other writers' kept for verification: after
    /// a lost link, or for another table, none of them is to be used again.
    fn drop_sessions(&mut self) {
        self.restored_session = None;
        self.production_session = None;
        self.spare_pairs.clear();
    }

    fn restored_side(&self) -> Side {
        if self.state.plan.is_binlog() {
            Side::Production
        } else {
            Side::Restored
        }
    }

    /// The plan as it applies to the table being worked on: the run's own, or in a run of
    /// several, the current pass's.
    fn tplan(&self) -> Plan {
        match self.pass {
            Some(i) => self.state.plan.for_table(&self.state.tables[i].table),
            None => self.state.plan.clone(),
        }
    }

    /// True while the table being written references itself or a table merged after it.
    fn checks_off(&self) -> bool {
        self.pass.is_some_and(|i| self.state.tables[i].checks_off)
    }

    fn access_open(&self) -> bool {
        let r = &self.state.resources;
        r.security_group.is_some()
            && !r.security_group_deleted
            && r.ingress_rule.is_some()
            && self.state.finished(Step::OpenAccess)
    }

    async fn production_endpoint(&self) -> Result<Endpoint> {
        let plan = &self.state.plan;
        let source = crate::restored::find_source(
            self.deps.rds,
            &plan.source_instance,
            plan.source_cluster.as_deref(),
            &self.settings.region,
        )
        .await?
        .view();
        source
            .endpoint
            .ok_or_else(|| Error::NoEndpoint { id: source.id.clone() })
    }

    // ---- failure ----

    async fn fail(mut self, error: Error) -> RunFailure {
        let message = error.to_string();
        if let Some((step, _)) = self.current.take() {
            if let Some(rec) = self.state.steps.last_mut() {
                rec.status = StepStatus::Failed;
                rec.finished_at = Some(Utc::now());
                rec.note = Some(message.clone());
            }
            self.deps.ui.step_failed(step, &message);
        }
        let interrupted = matches!(error, Error::Interrupted);
        self.state.outcome = if interrupted {
            Outcome::Interrupted
        } else {
            Outcome::Failed
        };
        self.state.error = Some(message);
        let _ = self.save();
        // Closing the door comes first, whatever happened.
        if self.state.resources.ingress_rule.is_some() && !self.state.resources.security_group_deleted {
            match self.revoke_rule().await {
                Ok(s) => self.deps.ui.note(&format!("network access revoked: {s}")),
                Err(e) => self.deps.ui.warn(&format!("could not revoke the network access: {e}")),
            }
        }
        let held = !self.state.resources.held().is_empty();
        if held && !interrupted && self.state.plan.on_failure == OnFailure::Teardown {
            match self.remove_copy("abort").await {
                Ok(s) => self.deps.ui.note(&format!("restored copy removed: {s}")),
                Err(e) => self.deps.ui.warn(&format!("could not remove the restored copy: {e}")),
            }
            // Nothing can resume this run now: a drill's side table goes too.
            if self.state.resources.side_table.is_some() && !self.state.resources.side_table_dropped {
                match self.drop_side_table().await {
                    Ok(s) => self.deps.ui.note(&s),
                    Err(e) => self
                        .deps
                        .ui
                        .warn(&format!("could not drop the drill's side table: {e}")),
                }
            }
        }
        let confirmed_clean =
            !error.is_validation() && self.state.resources.held().is_empty() && self.confirm_clean().await;
        let _ = self.save();
        RunFailure {
            error,
            resources_left: self.state.resources.held(),
            state_path: self.store.path().to_path_buf(),
            state: self.state,
            confirmed_clean,
        }
    }
}

/// A production session for the copy's writes: with the foreign key checks off (`checks_off`)
/// while the table being written references itself or a table merged after it.
async fn production_for_writes(db: &dyn Connector, endpoint: &Endpoint, checks_off: bool) -> Result<Box<dyn Session>> {
    let mut session = db.connect(Side::Production, endpoint).await?;
    if checks_off {
        session.set_foreign_key_checks(false).await?;
    }
    Ok(session)
}

/// Asks a server whether `--where` is valid SQL for the table (before anything is written).
async fn check_where(session: &mut dyn Session, table: &crate::ports::TableRef, p: &str, on: &str) -> Result<u64> {
    session.count_where(table, p).await.map_err(|e| match e {
        Error::Db { detail, .. } => {
            Error::InvalidInput(format!("--where `{p}` does not work on {on}'s `{table}`: {detail}"))
        }
        other => other,
    })
}

/// Locks `<state dir>/locks/<source>.<table>.lock` for this process, so two processes sharing a
/// state directory never drive the same table at once. The OS drops the lock if we die.
fn lock_table(store: &StateStore, plan: &Plan) -> Result<File> {
    let dir = store.dir().join("locks");
    let err = |e: std::io::Error| Error::State {
        path: dir.display().to_string(),
        detail: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(err)?;
    let name = validate::production_lock_name(plan).replace(':', "-");
    let path = dir.join(format!("{}-{}.lock", plan.source_instance, &name[18..]));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy {
            what: plan.table.to_string(),
            lock: path.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests;
