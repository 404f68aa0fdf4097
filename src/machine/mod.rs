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

mod plan_text;
mod restored_copy;

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
use crate::verify::verify;

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
struct Source {
    instance: Instance,
    production: Endpoint,
    /// The production table's schema; `None` when the table is gone (DROP TABLE) and is to be
    /// created from the restored definition before the copy.
    schema: Option<TableSchema>,
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
    /// Holds `GET_LOCK` on production for the whole run.
    lock_session: Option<Box<dyn Session>>,
    /// Holds the state directory's lock on the table for the whole run.
    _table_lock: File,
    /// `--dump-file` / `--dump-only`, open during the copy.
    dump: Option<crate::copy::DumpFile>,
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
            if other.plan.source_instance == plan.source_instance
                && other.plan.target_table() == plan.target_table()
                && is_open(&other)
            {
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
            lock_session: None,
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
    fn access_open(&self) -> bool {
        let r = &self.state.resources;
        r.security_group.is_some()
            && !r.security_group_deleted
            && r.ingress_rule.is_some()
            && self.state.finished(Step::OpenAccess)
    }

    // ---- 1. validate ----

    async fn validate(&mut self) -> Result<Source> {
        let plan = self.state.plan.clone();
        self.begin(Step::Validate, &format!("{} on {}", plan.table, plan.source_instance))?;
        let instance = self
            .deps
            .rds
            .describe_instance(&plan.source_instance)
            .await?
            .ok_or_else(|| Error::InstanceNotFound {
                id: plan.source_instance.clone(),
                region: self.settings.region.clone(),
            })?;
        if let Some(cluster) = &instance.cluster {
            return Err(Error::InvalidInput(format!(
                "`{}` is a member of the DB cluster `{cluster}` (Aurora MySQL or a Multi-AZ DB cluster): a cluster \
                 is restored as a whole (RestoreDBClusterToPointInTime), which this version does not do yet; \
                 restore the cluster to the moment by hand, or use a version with cluster support",
                instance.id
            )));
        }
        let engine = instance.engine.to_ascii_lowercase();
        if engine != "mysql" && engine != "mariadb" {
            return Err(Error::UnsupportedEngine {
                id: instance.id.clone(),
                engine: instance.engine.clone(),
            });
        }
        let mut window = String::from("restore already under way");
        // A copy requested just before a crash may not be visible yet: only a settled answer
        // says it is gone.
        let target = match self.deps.rds.describe_instance(&plan.target_instance).await? {
            None if self.state.resources.restored_instance.is_some() && !self.state.finished(Step::Verify) => {
                self.until_described(&plan.target_instance).await?
            }
            found => found,
        };
        match target {
            // Ours, from before a crash or an interruption: it is adopted, the window no longer matters.
            Some(target) if target.tag(TAG_RUN_ID) == Some(plan.run_id.as_str()) => {}
            Some(_) => {
                return Err(Error::InvalidInput(format!(
                    "an RDS instance named `{}` already exists and was not created by this run: \
                     another run is restoring the same table to the same second",
                    plan.target_instance
                )))
            }
            // Gone after the data work: the teardown was under way, nothing is missing.
            None if self.state.finished(Step::Verify) => {}
            None if self.state.resources.restored_instance.is_some() => {
                return Err(Error::InvalidInput(format!(
                    "the restored instance `{}` no longer exists (deleted outside this run?): \
                     end this run with `rds-table-restore abort {}` and start a new one",
                    plan.target_instance, plan.run_id
                )));
            }
            None => {
                if instance.backup_retention_days <= 0 {
                    return Err(Error::NoBackups {
                        id: instance.id.clone(),
                    });
                }
                let latest = instance.latest_restorable.ok_or_else(|| Error::NoRestoreWindow {
                    id: instance.id.clone(),
                    status: instance.status.clone(),
                })?;
                // RDS gives the window's start in the automated backups; without it, the
                // instance's creation is the earliest moment that can exist. Never assume there
                // is no lower bound.
                let earliest = match self
                    .deps
                    .rds
                    .earliest_restorable_time(&instance.id, instance.dbi_resource_id.as_deref())
                    .await?
                {
                    Some(t) => t,
                    None => instance.created.ok_or_else(|| Error::NoRestoreWindow {
                        id: instance.id.clone(),
                        status: instance.status.clone(),
                    })?,
                };
                check_window(&instance, plan.restore_time, earliest, latest)?;
                self.state.window = Some(crate::state::Window {
                    earliest,
                    latest,
                    checked_at: Utc::now(),
                });
                window = format!("window {} .. {}", rfc3339(earliest), rfc3339(latest));
            }
        }
        let production = instance.endpoint.clone().ok_or_else(|| Error::NoEndpoint {
            id: instance.id.clone(),
        })?;
        let mut session = self.deps.db.connect(Side::Production, &production).await?;
        let not_found = || Error::TableNotFound {
            database: plan.table.database.clone(),
            table: plan.table.table.clone(),
        };
        let schema = session.table_schema(&plan.table).await?;
        match &schema {
            // A side table is made like the production table, so that one must exist.
            None if plan.drill.is_some() => return Err(not_found()),
            // Dropped: recreated after the restore, with consent (a prompt, or the flag).
            None if self.settings.assume_yes
                && !plan.recreate_table
                && self.state.resources.created_table.is_none() =>
            {
                return Err(not_found())
            }
            None => self.deps.ui.warn(&format!(
                "`{}` does not exist in production: after the restore, the restored copy's definition is \
                 shown and the table is created only {}",
                plan.table,
                if plan.recreate_table {
                    "as --recreate-table asks"
                } else {
                    "if you agree"
                }
            )),
            Some(s) if s.key.is_empty() && plan.drill.is_none() => {
                return Err(Error::NoPrimaryKey {
                    database: plan.table.database.clone(),
                    table: plan.table.table.clone(),
                })
            }
            Some(s) => {
                if s.key.is_empty() {
                    if plan.dump_file.is_some() {
                        return Err(Error::InvalidInput(format!(
                            "`{}` has no primary key, so its copy cannot resume where it stopped and a dump \
                             file could hold rows twice: leave out --dump-file/--dump-only",
                            plan.table
                        )));
                    }
                    self.deps.ui.warn(&format!(
                        "`{}` has no primary key: it is loaded into `{}` in one streaming pass; if the copy \
                         is interrupted, resuming empties that new table and loads it again",
                        plan.table,
                        plan.target_table()
                    ));
                }
                if let Some(p) = &plan.where_predicate {
                    check_where(session.as_mut(), &plan.table, p, "production").await?;
                }
                let missing = session.missing_privileges(&plan.table, s, plan.merge()).await?;
                if !missing.is_empty() {
                    return Err(Error::MissingPrivileges {
                        mode: plan.mode.name(),
                        privileges: missing.join(", "),
                        table: plan.table.to_string(),
                        user: self.state.connection.db_user.clone(),
                    });
                }
            }
        }
        if plan.drill.is_some() && self.state.resources.side_table.is_none() {
            let target = plan.target_table();
            if session.table_schema(target).await?.is_some() {
                return Err(Error::InvalidInput(format!(
                    "the drill's table `{target}` already exists in production: drop it, or choose another --drill-database"
                )));
            }
        }
        let triggers = session.insert_triggers(plan.target_table()).await?;
        if !triggers.is_empty() {
            self.deps.ui.warn(&format!(
                "`{}` has triggers that fire on the rows this run inserts ({}): they run as for any insert \
                 and may change or add rows; the verification compares what lands with the restored rows",
                plan.target_table(),
                triggers.join(", ")
            ));
        }
        let lock = production_lock_name(&plan);
        if !session.try_advisory_lock(&lock).await? {
            return Err(Error::ProductionBusy {
                table: plan.table.to_string(),
                lock,
            });
        }
        self.lock_session = Some(session);
        self.finish(&format!(
            "{} ({} {}), {window}, {}",
            instance.id,
            instance.engine,
            instance.engine_version.as_deref().unwrap_or(""),
            match &schema {
                Some(s) => format!("table has {} columns", s.columns.len()),
                None => "table missing in production".into(),
            }
        ))?;
        Ok(Source {
            instance,
            production,
            schema,
        })
    }

    fn consent(&mut self, source: &Source, resuming: bool) -> Result<()> {
        let plan = &self.state.plan;
        let replace_all = plan.merge() == crate::ports::Merge::ReplaceAll;
        if self.settings.assume_yes {
            if replace_all && plan.confirm_table.as_deref() != Some(plan.table.table.as_str()) {
                return Err(Error::InvalidInput(format!(
                    "--mode replace-all deletes the rows of `{}` the restored copy lacks: with --yes, also pass \
                     --confirm-table {} to show the table is meant",
                    plan.table, plan.table.table
                )));
            }
            return Ok(());
        }
        let heading = if resuming {
            let at = self.state.current_step().map(|s| s.step.name()).unwrap_or("validate");
            format!("Resume run {} (stopped at {at}).\n", plan.run_id)
        } else {
            String::new()
        };
        self.deps.ui.note(&format!(
            "{heading}{}",
            plan_text(plan, &source.instance, source.schema.is_none())
        ));
        if !self.deps.prompter.confirm("Proceed?")? {
            return Err(Error::Declined);
        }
        if replace_all {
            let table = plan.table.table.clone();
            self.deps.ui.warn(&format!(
                "replace-all makes `{}` equal to its restored copy: rows written since {} are DELETED, \
                 changed rows are overwritten (the counts are shown again before the first write)",
                plan.table,
                rfc3339(plan.restore_time)
            ));
            if !self
                .deps
                .prompter
                .type_to_confirm(&format!("Type the table name ({table}) to replace it"), &table)?
            {
                return Err(Error::Declined);
            }
        }
        if !plan.single_host() {
            self.deps.ui.warn(&format!(
                "--client-cidr {} opens the database port to more than one address; a /32 (or /128) \
                 for the address you connect from is enough",
                plan.client_cidr
            ));
            if !self
                .deps
                .prompter
                .confirm(&format!("Open the port to all of {}?", plan.client_cidr))?
            {
                return Err(Error::Declined);
            }
        }
        Ok(())
    }

    /// Validation only, for `plan`: every read-only check, then the plan as text. Creates
    /// nothing and writes nothing (the caller gives it a throwaway state directory).
    pub async fn preview(mut self) -> std::result::Result<String, RunFailure> {
        match self.validate().await {
            Ok(source) => Ok(plan_text(&self.state.plan, &source.instance, source.schema.is_none())),
            Err(error) => Err(self.fail(error).await),
        }
    }

    // ---- 5. copy ----

    /// Opens both sessions and checks the restored table matches production's.
    async fn connect_pair(&mut self, source: &Source, endpoint: &Endpoint) -> Result<()> {
        let plan = &self.state.plan;
        let mut restored = self.deps.db.connect(Side::Restored, endpoint).await?;
        let restored_schema = restored
            .table_schema(&plan.table)
            .await?
            .ok_or_else(|| missing_on_restored(plan))?;
        // A side table is made from the restored definition, so only a merge needs them equal.
        if plan.drill.is_none() {
            compare_schemas(&restored_schema, source.schema()?)?;
        }
        if let Some(p) = &plan.where_predicate {
            let n = check_where(restored.as_mut(), &plan.table, p, "the restored instance").await?;
            self.deps.ui.note(&format!("--where matches {n} restored rows"));
        }
        let production = self.deps.db.connect(Side::Production, &source.production).await?;
        self.restored_session = Some(restored);
        self.production_session = Some(production);
        Ok(())
    }

    /// Runs `work` with both sessions, reconnecting after a lost connection (the chunk in
    /// flight was rolled back by the server; the work continues from the checkpoint).
    async fn with_reconnects<F>(&mut self, source: &Source, endpoint: &Endpoint, mut work: F) -> Result<()>
    where
        F: for<'m> FnMut(&'m mut Self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'm>>,
    {
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(self.settings.reconnect_min)
            .with_max_delay(Duration::from_secs(20))
            .with_jitter()
            .with_max_times(RECONNECTS as usize)
            .build();
        loop {
            let attempt = match (&self.restored_session, &self.production_session) {
                (Some(_), Some(_)) => Ok(()),
                _ => self.connect_pair(source, endpoint).await,
            };
            let result = match attempt {
                Ok(()) => work(self).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e @ (Error::DbConnectionLost { .. } | Error::DbConnect { .. })) => {
                    self.restored_session = None;
                    self.production_session = None;
                    let Some(delay) = delays.next() else { return Err(e) };
                    self.deps
                        .ui
                        .warn(&format!("{e}; reconnecting in {:.1}s", delay.as_secs_f64()));
                    tokio::time::sleep(delay).await;
                    self.check_cancel()?;
                }
                other => return other,
            }
        }
    }

    async fn copy(&mut self, source: &Source, endpoint: &Endpoint) -> Result<()> {
        let plan = self.state.plan.clone();
        let merge = plan.merge();
        self.begin(
            Step::Copy,
            &format!(
                "{} from {} into production `{}` ({})",
                plan.table,
                plan.target_instance,
                plan.target_table(),
                if plan.drill.is_some() {
                    "new table"
                } else {
                    plan.mode.name()
                }
            ),
        )?;
        if let Some(drill) = plan.drill.clone() {
            self.create_side_table(&drill.target, endpoint).await?;
        }
        let schema = self.data_schema(source, endpoint).await?;
        if let Some(path) = plan.dump_file.clone() {
            let header = format!(
                "rds-table-restore run {}: rows of {} restored from {} as of {} that production lacked",
                plan.run_id,
                plan.table,
                plan.source_instance,
                rfc3339(plan.restore_time)
            );
            self.dump = Some(crate::copy::DumpFile::open(
                &path,
                plan.target_table(),
                &schema,
                &header,
            )?);
        }
        let mut announced = false;
        let endpoints = (endpoint.clone(), source.production.clone());
        self.with_reconnects(source, endpoint, |m| {
            let schema = schema.clone();
            let (restored_at, production_at) = endpoints.clone();
            let first = !announced;
            announced = true;
            Box::pin(async move {
                let plan = m.state.plan.clone();
                if schema.key.is_empty() && m.state.copy.chunks > 0 && !m.state.copy.done {
                    // Without a key, what was loaded cannot be told apart: the side table (ours,
                    // new) is emptied and loaded again.
                    let target = plan.target_table();
                    if m.state.resources.side_table.as_ref() != Some(target) || *target == plan.table {
                        return Err(Error::InvalidInput(format!(
                            "refusing to empty {target}: it is not a side table this run created"
                        )));
                    }
                    m.deps.ui.warn(&format!(
                        "`{target}` holds a partial load of a table without a primary key: emptying it and loading again"
                    ));
                    m.lock_session.as_mut().ok_or(Error::Interrupted)?.drop_table(target).await?;
                    m.create_side_table(target, &restored_at).await?;
                    m.state.copy = Default::default();
                    m.state.updated_at = Utc::now();
                    m.store.save(&m.state)?;
                }
                let (Some(restored), Some(production)) = (m.restored_session.as_mut(), m.production_session.as_mut())
                else {
                    return Err(Error::Interrupted);
                };
                let job = CopyJob::of(&plan, &schema);
                if merge != Merge::MissingRows && m.state.copy.planned.is_none() {
                    m.deps
                        .ui
                        .note("Counting what the merge would change (nothing is written yet)...");
                    let counted = count_changes(restored.as_mut(), production.as_mut(), &job, &m.cancel).await?;
                    let text = changes_text(&plan, &counted);
                    m.deps.ui.note(&text);
                    let destructive = counted.update + counted.delete > 0;
                    if destructive
                        && !plan.dump_only
                        && !m.settings.assume_yes
                        && !m.deps.prompter.confirm("Write these changes?")?
                    {
                        return Err(Error::Declined);
                    }
                    m.state.copy.planned = Some(counted);
                    m.state.updated_at = Utc::now();
                    m.store.save(&m.state)?;
                }
                if first {
                    let estimate = restored.estimate_rows(&plan.table).await.unwrap_or(None);
                    m.deps.ui.copy_started(estimate);
                }
                let writers = match schema.key.is_empty() || plan.dump_file.is_some() {
                    true => 1,
                    false => plan.parallel.max(1),
                };
                if writers > 1 || !m.state.copy.workers.is_empty() {
                    if m.state.copy.workers.is_empty() {
                        let ranges = split(restored.as_mut(), &job, writers).await?;
                        m.state.copy.workers = ranges;
                        m.state.updated_at = Utc::now();
                        m.store.save(&m.state)?;
                    }
                    // The first writer uses the run's sessions; each other one opens its own.
                    let mut extra = Vec::new();
                    for _ in 1..m.state.copy.workers.len() {
                        extra.push((
                            m.deps.db.connect(Side::Restored, &restored_at).await?,
                            m.deps.db.connect(Side::Production, &production_at).await?,
                        ));
                    }
                    let mut pairs: Vec<(&mut dyn Session, &mut dyn Session)> = vec![(restored.as_mut(), production.as_mut())];
                    pairs.extend(extra.iter_mut().map(|(r, p)| (r.as_mut(), p.as_mut())));
                    let (ui, cancel) = (m.deps.ui, &m.cancel);
                    let first_chunks: Vec<bool> = m.state.copy.workers.iter().map(|w| w.copy.chunks == 0).collect();
                    let shared = std::sync::Mutex::new((&mut m.state, &m.store));
                    // On a sparse table every writer's locking read would take the same gap and
                    // they would deadlock each other. So the writers' first chunks go one at a
                    // time, from the highest range down: each then finds the rows of the range
                    // above it in place, which bound its gap locks.
                    for (i, (r, p)) in pairs.iter_mut().enumerate().skip(1).rev() {
                        if first_chunks[i] {
                            run_writer(i, &mut **r, &mut **p, &job, &shared, ui, cancel, true).await?;
                        }
                    }
                    let runs = pairs
                        .into_iter()
                        .enumerate()
                        .map(|(i, (r, p))| run_writer(i, r, p, &job, &shared, ui, cancel, false));
                    // Every writer runs to its end or its error; the first error is the run's.
                    for result in futures_util::future::join_all(runs).await {
                        result?;
                    }
                    return Ok(());
                }
                let start = m.state.copy.clone();
                let (store, state) = (&m.store, &mut m.state);
                let mut checkpoint = |p: &crate::state::CopyProgress| {
                    state.copy = p.clone();
                    state.updated_at = Utc::now();
                    store.save(state)
                };
                copy_rows(
                    restored.as_mut(),
                    production.as_mut(),
                    &job,
                    start,
                    &mut checkpoint,
                    m.dump.as_mut(),
                    m.deps.ui,
                    &m.cancel,
                )
                .await
                .map(|_| ())
            })
        })
        .await?;
        let done = self.state.copy.clone();
        let method = self
            .production_session
            .as_ref()
            .map(|s| s.write_method())
            .unwrap_or("INSERT");
        let writers = match done.workers.len() {
            0 | 1 => String::new(),
            n => format!(", {n} writers"),
        };
        let how = format!(" (rows written with {method}{writers})");
        self.finish(
            &(match merge {
                Merge::MissingRows => format!(
                    "{} rows read, {} inserted, {} already present ({} of them differ and were kept)",
                    done.rows_read, done.inserted, done.already_present, done.present_differing
                ),
                _ => format!(
                    "{} rows read, {} inserted, {} overwritten, {} deleted, {} already identical",
                    done.rows_read,
                    done.inserted,
                    done.updated,
                    done.deleted,
                    done.already_present - done.present_differing
                ),
            } + &how),
        )
    }

    /// The production table was dropped: creates it from the restored copy's definition, with
    /// the operator's consent (asked here, with the definition on screen, or `--recreate-table`).
    /// Recorded before it is created, so a crash in between is finished on resume without
    /// asking again. The copy then fills it.
    async fn recreate_table(&mut self, mut source: Source, endpoint: &Endpoint) -> Result<Source> {
        let table = self.state.plan.table.clone();
        let mut restored = self.deps.db.connect(Side::Restored, endpoint).await?;
        let definition = restored.show_create_table(&table).await?.ok_or_else(|| {
            Error::SchemaMismatch(format!(
                "`{table}` exists neither in production nor on the restored instance (it did not exist at {}): \
                 check --database, --table and --time",
                rfc3339(self.state.plan.restore_time)
            ))
        })?;
        if self.state.resources.created_table.is_none() {
            self.deps.ui.note(&format!(
                "`{table}` does not exist in production. Its definition on the restored copy:\n{definition}"
            ));
            let agreed = self.state.plan.recreate_table
                || (!self.settings.assume_yes
                    && self
                        .deps
                        .prompter
                        .confirm(&format!("Create `{table}` in production with this definition?"))?);
            if !agreed {
                return Err(Error::Declined);
            }
            self.state.resources.created_table = Some(table.clone());
            self.save()?;
            crash_point!("recreate-after-record");
        }
        let mut production = self.deps.db.connect(Side::Production, &source.production).await?;
        if production.table_schema(&table).await?.is_none() {
            production.create_table_from(&table, &table.table, &definition).await?;
            crash_point!("recreate-after-create");
            self.deps.ui.note(&format!("created `{table}` in production"));
        }
        let schema = production.table_schema(&table).await?.ok_or_else(|| {
            Error::SchemaMismatch(format!("`{table}` was created in production but cannot be read back"))
        })?;
        if schema.key.is_empty() {
            return Err(Error::NoPrimaryKey {
                database: table.database.clone(),
                table: table.table.clone(),
            });
        }
        source.schema = Some(schema);
        Ok(source)
    }

    // ---- 6. verify ----

    async fn verify(&mut self, source: &Source, endpoint: &Endpoint) -> Result<()> {
        if self.state.plan.dump_only {
            self.begin(Step::Verify, "nothing to verify: --dump-only")?;
            let path = self.state.plan.dump_file.clone().unwrap_or_default();
            return self.finish(&format!(
                "skipped: production was not written; the rows it lacks are in {}",
                path.display()
            ));
        }
        self.begin(Step::Verify, "every restored row against production, by key")?;
        let schema = self.data_schema(source, endpoint).await?;
        self.with_reconnects(source, endpoint, |m| {
            let schema = schema.clone();
            Box::pin(async move {
                let plan = m.state.plan.clone();
                let (Some(restored), Some(production)) = (m.restored_session.as_mut(), m.production_session.as_mut())
                else {
                    return Err(Error::Interrupted);
                };
                let job = CopyJob::of(&plan, &schema);
                let v = verify(
                    restored.as_mut(),
                    production.as_mut(),
                    &job,
                    &m.state.copy,
                    m.deps.ui,
                    &m.cancel,
                )
                .await?;
                crash_point!("verify-after-call");
                m.state.verification = Some(v);
                m.save()
            })
        })
        .await?;
        let v = self.state.verification.clone().unwrap_or_default();
        if !v.passed {
            return Err(v.failure());
        }
        self.finish(&v.summary())
    }

    async fn create_side_table(&mut self, target: &crate::ports::TableRef, endpoint: &Endpoint) -> Result<()> {
        let table = self.state.plan.table.clone();
        if *target == table {
            return Err(Error::InvalidInput("a drill never writes the real table".into()));
        }
        if self.state.resources.side_table.is_none() {
            self.state.resources.side_table = Some(target.clone());
            self.save()?;
        }
        if self
            .lock_session
            .as_mut()
            .ok_or(Error::Interrupted)?
            .table_schema(target)
            .await?
            .is_none()
        {
            let definition = self
                .deps
                .db
                .connect(Side::Restored, endpoint)
                .await?
                .show_create_table(&table)
                .await?
                .ok_or_else(|| missing_on_restored(&self.state.plan))?;
            let session = self.lock_session.as_mut().ok_or(Error::Interrupted)?;
            session.create_table_from(target, &table.table, &definition).await?;
        }
        Ok(())
    }

    /// The schema the copy and the verification work with: production's for a merge (checked
    /// equal to the restored one), the restored table's for a new side table (production's may
    /// have changed since, which side-table mode is for).
    async fn data_schema(&mut self, source: &Source, endpoint: &Endpoint) -> Result<TableSchema> {
        if self.state.plan.drill.is_none() {
            return Ok(source.schema()?.clone());
        }
        let table = self.state.plan.table.clone();
        self.deps
            .db
            .connect(Side::Restored, endpoint)
            .await?
            .table_schema(&table)
            .await?
            .ok_or_else(|| missing_on_restored(&self.state.plan))
    }

    /// Drops the drill's side table: only the one this run recorded, never the real table.
    async fn drop_side_table(&mut self) -> Result<String> {
        let Some(side) = self.state.resources.side_table.clone() else {
            return Ok("no side table was created".into());
        };
        if self.state.resources.side_table_dropped {
            return Ok(format!("side table {side} already dropped"));
        }
        if side == self.state.plan.table {
            return Err(Error::InvalidInput(format!(
                "refusing to drop {side}: it is the real table"
            )));
        }
        if self.lock_session.is_none() {
            let endpoint = self.production_endpoint().await?;
            self.lock_session = Some(self.deps.db.connect(Side::Production, &endpoint).await?);
        }
        let session = self.lock_session.as_mut().ok_or(Error::Interrupted)?;
        session.drop_table(&side).await?;
        self.state.resources.side_table_dropped = true;
        self.save()?;
        Ok(format!("side table {side} dropped"))
    }

    async fn production_endpoint(&self) -> Result<Endpoint> {
        let id = &self.state.plan.source_instance;
        let instance = self
            .deps
            .rds
            .describe_instance(id)
            .await?
            .ok_or_else(|| Error::InstanceNotFound {
                id: id.clone(),
                region: self.settings.region.clone(),
            })?;
        instance.endpoint.ok_or_else(|| Error::NoEndpoint { id: id.clone() })
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

type SharedState<'s> = std::sync::Mutex<(&'s mut RunState, &'s StateStore)>;

/// One of `--parallel` writers: copies its key range from its checkpoint, recording each chunk
/// in its own slot of the state (and the totals); with `first_only`, one chunk and no more.
#[allow(clippy::too_many_arguments)]
async fn run_writer(
    i: usize,
    restored: &mut dyn Session,
    production: &mut dyn Session,
    job: &CopyJob<'_>,
    shared: &SharedState<'_>,
    ui: &dyn Progress,
    cancel: &AtomicBool,
    first_only: bool,
) -> Result<()> {
    let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
    let w = lock().0.copy.workers[i].clone();
    let start = w.start.as_deref().map(crate::copy::decode_key).transpose()?;
    let end = w.end.as_deref().map(crate::copy::decode_key).transpose()?;
    let job = CopyJob {
        start: start.as_deref(),
        end: end.as_deref(),
        max_chunks: first_only.then_some(1),
        ..*job
    };
    let mut checkpoint = |progress: &crate::state::CopyProgress| {
        let mut guard = lock();
        let (state, store) = &mut *guard;
        state.copy.workers[i].copy = progress.clone();
        state.copy.sum_workers();
        state.updated_at = Utc::now();
        ui.copy_progress(state.copy.rows_read, state.copy.inserted + state.copy.updated);
        store.save(state)
    };
    copy_rows(
        restored,
        production,
        &job,
        w.copy,
        &mut checkpoint,
        None,
        &crate::progress::Silent,
        cancel,
    )
    .await
    .map(|_| ())
}

/// Splits the restored table's keys into `writers` ranges of about the same number of rows
/// (fewer when the table is small), as `--parallel` writers' checkpoints to start from.
async fn split(
    restored: &mut dyn Session,
    job: &CopyJob<'_>,
    writers: usize,
) -> Result<Vec<crate::state::WorkerProgress>> {
    use crate::rowcodec::StoredValue;
    let rows = restored.count_where(job.source, job.filter.unwrap_or("TRUE")).await?;
    let writers = (writers as u64).min(rows / job.chunk_size.max(1) as u64).max(1);
    let mut bounds: Vec<Vec<StoredValue>> = Vec::new();
    for k in 1..writers {
        let offset = (rows * k / writers) as usize;
        if let Some((key, true)) = restored
            .chunk_end(job.source, job.schema, None, job.filter, offset)
            .await?
        {
            bounds.push(key.iter().map(StoredValue::from).collect());
        }
    }
    let mut ranges = Vec::new();
    let mut start = None;
    for end in bounds.into_iter().map(Some).chain([None]) {
        ranges.push(crate::state::WorkerProgress {
            start: start.clone(),
            end: end.clone(),
            copy: Default::default(),
        });
        start = end;
    }
    Ok(ranges)
}

/// The table is not on the restored instance: it did not exist yet at the restore time (or the
/// name is wrong).
fn missing_on_restored(plan: &Plan) -> Error {
    Error::SchemaMismatch(format!(
        "`{}` does not exist on the restored instance (it did not exist at {})",
        plan.table,
        rfc3339(plan.restore_time)
    ))
}

/// The changes counted before an overwrite or replace-all writes anything.
fn changes_text(plan: &Plan, c: &crate::state::PlannedChanges) -> String {
    let mut s = format!(
        "Production `{}` ({}): {} rows to insert, {} to overwrite",
        plan.table,
        plan.mode.name(),
        c.insert,
        c.update
    );
    if plan.mode == Mode::ReplaceAll {
        s.push_str(&format!(", {} to DELETE", c.delete));
    }
    s.push_str(&format!(", {} already identical", c.unchanged));
    s
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

/// The name of the production advisory lock for the table the run writes (at most 64
/// characters, as MySQL wants): a drill writing its side table never blocks a real restore.
fn production_lock_name(plan: &Plan) -> String {
    use sha2::{Digest, Sha256};
    let t = plan.target_table();
    let digest = hex::encode(Sha256::digest(format!("{}\0{}", t.database, t.table)));
    format!("rds-table-restore:{}", &digest[..40])
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
    let name = production_lock_name(plan).replace(':', "-");
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

fn check_window(
    instance: &Instance,
    time: DateTime<Utc>,
    earliest: DateTime<Utc>,
    latest: DateTime<Utc>,
) -> Result<()> {
    if time < earliest {
        return Err(Error::TimeTooEarly {
            id: instance.id.clone(),
            time: rfc3339(time),
            earliest: rfc3339(earliest),
            latest: rfc3339(latest),
            days: instance.backup_retention_days,
        });
    }
    if time > latest {
        return Err(Error::TimeTooLate {
            id: instance.id.clone(),
            time: rfc3339(time),
            latest: rfc3339(latest),
        });
    }
    Ok(())
}

/// The restored table must have production's columns, types and key, or rows would not fit.
fn compare_schemas(restored: &TableSchema, production: &TableSchema) -> Result<()> {
    let names = |s: &TableSchema| s.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    if names(restored) != names(production) {
        return Err(Error::SchemaMismatch(format!(
            "columns are ({}) on the restored instance but ({}) on production",
            names(restored).join(", "),
            names(production).join(", ")
        )));
    }
    for (r, p) in restored.columns.iter().zip(&production.columns) {
        if r.column_type != p.column_type {
            return Err(Error::SchemaMismatch(format!(
                "column `{}` is {} on the restored instance but {} on production",
                r.name, r.column_type, p.column_type
            )));
        }
    }
    if restored.key != production.key {
        return Err(Error::SchemaMismatch("the primary keys differ".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
