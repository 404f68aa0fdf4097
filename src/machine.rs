//! The restore as a state machine: validate, restore, wait, open access, copy, verify, revoke,
//! teardown, report. Each step is recorded in the state file as started before its first side
//! effect and as finished after its last; every resource is recorded the moment it exists.
//!
//! Resuming runs the same machine over a loaded state: finished steps are skipped, and a step
//! found started is reconciled with AWS rather than guessed: a restored instance or security
//! group created just before a crash is found by name and adopted only if it carries this
//! run's tag. When a step fails or the run is interrupted, the network access is revoked at once
//! (an open port never outlives a failure); the restored instance is kept for `resume` unless
//! `--on-failure teardown`. The machine reaches AWS and MySQL only through the ports, so the
//! unit tests run it against fakes.

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
use crate::ports::{Connector, Ec2, Endpoint, Instance, Merge, Rds, RestoreRequest, Session, TableSchema};
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            region: "us-east-1".into(),
            assume_yes: false,
            poll_min: Duration::from_secs(5),
            poll_max: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(500),
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
        if !self.state.finished(Step::Restore) {
            self.restore(&source).await?;
        }
        let endpoint = match (&self.state.resources.restored_endpoint, self.state.finished(Step::Wait)) {
            (Some(e), true) => e.clone(),
            _ => self.wait().await?,
        };
        let needs_data = !self.state.finished(Step::Copy) || !self.state.finished(Step::Verify);
        if needs_data && !self.access_open() {
            self.open_access(&source, endpoint.port).await?;
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

    fn access_open(&self) -> bool {
        let r = &self.state.resources;
        r.security_group.is_some() && !r.security_group_deleted && r.ingress_rule.is_some() && r.attached
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
        let engine = instance.engine.to_ascii_lowercase();
        if engine != "mysql" && engine != "mariadb" {
            return Err(Error::UnsupportedEngine {
                id: instance.id.clone(),
                engine: instance.engine.clone(),
            });
        }
        let mut window = String::from("restore already under way");
        match self.deps.rds.describe_instance(&plan.target_instance).await? {
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
                let earliest = match self.deps.rds.earliest_restorable_time(&instance.id).await? {
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

    // ---- 2. restore ----

    async fn restore(&mut self, source: &Source) -> Result<()> {
        let plan = self.state.plan.clone();
        self.begin(
            Step::Restore,
            &format!("{} at {}", plan.target_instance, rfc3339(plan.restore_time)),
        )?;
        // A restore requested just before a crash is found by name and adopted (validation has
        // checked its tag); only when there is none is it requested.
        if let Some(existing) = self.deps.rds.describe_instance(&plan.target_instance).await? {
            self.state.resources.restored_instance = Some(existing.id.clone());
            return self.finish(&format!("{} adopted (status {})", existing.id, existing.status));
        }
        let request = RestoreRequest {
            source: plan.source_instance.clone(),
            target: plan.target_instance.clone(),
            time: plan.restore_time,
            subnet_group: plan.subnet_group.clone().or(source.instance.subnet_group.clone()),
            parameter_group: plan.parameter_group.clone().or(source.instance.parameter_group.clone()),
            class: plan.instance_class.clone().or(source.instance.class.clone()),
            publicly_accessible: plan.publicly_accessible,
            tags: plan.tags(),
            enable_iam_auth: self.state.connection.iam_auth,
        };
        let created = self.deps.rds.restore_to_point_in_time(&request).await?;
        crash_point!("restore-after-call");
        self.state.resources.restored_instance = Some(created.id.clone());
        self.finish(&format!("{} requested (status {})", created.id, created.status))
    }

    // ---- 3. wait ----

    async fn wait(&mut self) -> Result<Endpoint> {
        let id = self.state.plan.target_instance.clone();
        self.begin(Step::Wait, &format!("{id} to become available"))?;
        let started = Instant::now();
        let timeout = Duration::from_secs(self.state.plan.wait_timeout_minutes * 60);
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(self.settings.poll_min)
            .with_max_delay(self.settings.poll_max)
            .with_jitter()
            .without_max_times()
            .build();
        let mut status = String::from("unknown");
        loop {
            self.check_cancel()?;
            if let Some(instance) = self.deps.rds.describe_instance(&id).await? {
                status = instance.status.clone();
                self.deps.ui.waiting(&id, &status, started.elapsed());
                match status.as_str() {
                    "available" => {
                        let endpoint = instance
                            .endpoint
                            .clone()
                            .ok_or_else(|| Error::NoEndpoint { id: id.clone() })?;
                        self.state.resources.restored_endpoint = Some(endpoint.clone());
                        self.finish(&format!(
                            "available at {endpoint} after {}s",
                            started.elapsed().as_secs()
                        ))?;
                        return Ok(endpoint);
                    }
                    "failed"
                    | "incompatible-restore"
                    | "incompatible-parameters"
                    | "incompatible-network"
                    | "storage-full"
                    | "inaccessible-encryption-credentials"
                    | "deleting" => {
                        return Err(Error::RestoreFailed { id, status });
                    }
                    _ => {}
                }
            }
            if started.elapsed() >= timeout {
                return Err(Error::WaitTimeout {
                    id,
                    minutes: self.state.plan.wait_timeout_minutes,
                    status,
                });
            }
            let delay = delays.next().unwrap_or(self.settings.poll_max);
            tokio::time::sleep(delay.min(timeout.saturating_sub(started.elapsed()))).await;
        }
    }

    // ---- 4. open access ----

    async fn open_access(&mut self, source: &Source, port: u16) -> Result<()> {
        let plan = self.state.plan.clone();
        self.begin(Step::OpenAccess, &format!("tcp/{port} from {}", plan.client_cidr))?;
        if self.state.resources.security_group_deleted {
            // Revoked after a failure or an interruption: open it anew.
            let r = &mut self.state.resources;
            (r.security_group, r.security_group_deleted, r.ingress_rule, r.attached) = (None, false, None, false);
        }
        let vpc =
            match &source.instance.vpc_id {
                Some(v) => v.clone(),
                None => match source.instance.security_groups.first() {
                    Some(sg) => self.deps.ec2.vpc_of_security_group(sg).await?.ok_or_else(|| {
                        Error::InvalidInput(format!("cannot tell the VPC of `{}`", source.instance.id))
                    })?,
                    None => {
                        return Err(Error::InvalidInput(format!(
                            "cannot tell the VPC of `{}`",
                            source.instance.id
                        )))
                    }
                },
            };
        let sg = match self.state.resources.security_group.clone() {
            Some(sg) => sg,
            None => match self
                .deps
                .ec2
                .find_security_group(&vpc, &plan.security_group_name)
                .await?
            {
                // Created just before a crash: adopted only if it carries this run's tag.
                Some(g) if g.tag(TAG_RUN_ID) == Some(plan.run_id.as_str()) => g.id,
                Some(g) => {
                    return Err(Error::NotOurs {
                        action: "use security group",
                        id: g.id,
                        key: TAG_RUN_ID,
                        run_id: plan.run_id.clone(),
                    })
                }
                None => {
                    let description = format!(
                        "rds-table-restore run {}: temporary access to {} from {}",
                        plan.run_id, plan.target_instance, plan.client_cidr
                    );
                    let id = self
                        .deps
                        .ec2
                        .create_security_group(&vpc, &plan.security_group_name, &description, &plan.tags())
                        .await?;
                    crash_point!("open-access-after-create");
                    id
                }
            },
        };
        self.state.resources.security_group = Some(sg.clone());
        self.save()?;
        if self.state.resources.ingress_rule.is_none() {
            let note = format!("rds-table-restore {}", plan.run_id);
            self.deps
                .ec2
                .authorize_ingress(&sg, port, &plan.client_cidr, &note)
                .await?;
            crash_point!("open-access-after-authorize");
            self.state.resources.ingress_rule = Some((plan.client_cidr.clone(), port));
            self.save()?;
        }
        let mut groups = self
            .owned_instance(&plan.target_instance, "attach a security group to")
            .await?
            .security_groups;
        if !groups.contains(&sg) {
            groups.push(sg.clone());
            self.deps
                .rds
                .set_security_groups(&plan.target_instance, &groups)
                .await?;
            crash_point!("open-access-after-attach");
        }
        self.state.resources.attached = true;
        self.finish(&format!(
            "{sg} in {vpc} allows tcp/{port} from {} only",
            plan.client_cidr
        ))
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

    // ---- 7. revoke ----

    async fn revoke(&mut self) -> Result<()> {
        self.begin(Step::Revoke, "the temporary network access")?;
        let summary = self.revoke_access().await?;
        self.finish(&summary)
    }

    /// Removes the rule, detaches the group and deletes it; each part only if this run created it.
    async fn revoke_access(&mut self) -> Result<String> {
        let Some(sg) = self.state.resources.security_group.clone() else {
            return Ok("nothing to revoke".into());
        };
        if self.state.resources.security_group_deleted {
            return Ok(format!("{sg} already deleted"));
        }
        let run_id = self.state.run_id.clone();
        match self.deps.ec2.security_group_tags(&sg).await? {
            None => {
                let r = &mut self.state.resources;
                (r.ingress_rule, r.attached, r.security_group_deleted) = (None, false, true);
                self.save()?;
                return Ok(format!("{sg} no longer exists"));
            }
            Some(tags) if !tags.iter().any(|(k, v)| k == TAG_RUN_ID && *v == run_id) => {
                return Err(Error::NotOurs {
                    action: "delete security group",
                    id: sg,
                    key: TAG_RUN_ID,
                    run_id,
                });
            }
            Some(_) => {}
        }
        if let Some((cidr, port)) = self.state.resources.ingress_rule.clone() {
            self.deps.ec2.revoke_ingress(&sg, port, &cidr).await?;
            crash_point!("revoke-after-rule");
            self.state.resources.ingress_rule = None;
            self.save()?;
        }
        self.detach(&sg).await?;
        self.deps.ec2.delete_security_group(&sg).await?;
        crash_point!("revoke-after-delete");
        self.state.resources.security_group_deleted = true;
        self.save()?;
        Ok(format!("rule revoked, {sg} detached and deleted"))
    }

    /// Takes `sg` off the restored instance, if the instance is ours and carries it.
    async fn detach(&mut self, sg: &str) -> Result<()> {
        let target = self.state.plan.target_instance.clone();
        if let Some(instance) = self.deps.rds.describe_instance(&target).await? {
            if instance.security_groups.iter().any(|g| g == sg) {
                if instance.tag(TAG_RUN_ID) != Some(self.state.run_id.as_str()) {
                    return Err(Error::NotOurs {
                        action: "detach a security group from",
                        id: target,
                        key: TAG_RUN_ID,
                        run_id: self.state.run_id.clone(),
                    });
                }
                let groups: Vec<String> = instance.security_groups.into_iter().filter(|g| g != sg).collect();
                self.deps.rds.set_security_groups(&target, &groups).await?;
                crash_point!("revoke-after-detach");
            }
        }
        self.state.resources.attached = false;
        self.save()
    }

    // ---- 8. teardown ----

    async fn teardown(&mut self) -> Result<()> {
        let target = self.state.plan.target_instance.clone();
        self.begin(Step::Teardown, &target)?;
        let mut summary = self.delete_restored().await?;
        if let Some(drill) = self.state.plan.drill.clone() {
            if drill.keep {
                summary.push_str(&format!(
                    "; side table {} kept ({})",
                    drill.target,
                    if drill.rehearsal {
                        "--keep"
                    } else {
                        "side-table mode: merge it by hand"
                    }
                ));
            } else {
                summary.push_str(&format!("; {}", self.drop_side_table().await?));
            }
        }
        self.finish(&summary)
    }

    /// Creates the side table (drill, side-table mode) with the restored table's definition,
    /// so it takes the restored rows even if production's table has changed since. Recorded
    /// first, so a crash between the two is adopted on resume rather than refused as someone
    /// else's table.
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

    /// Deletes the restored instance if it exists and carries this run's tag, recorded or not
    /// (a restore requested just before a crash is not recorded yet).
    async fn delete_restored(&mut self) -> Result<String> {
        let id = self.state.plan.target_instance.clone();
        if self.state.resources.restored_instance_deleted {
            return Ok(format!("{id} already deleted"));
        }
        match self.deps.rds.describe_instance(&id).await? {
            None if self.state.resources.restored_instance.is_none() => return Ok("no instance was created".into()),
            None => {}
            Some(instance) => {
                if instance.tag(TAG_RUN_ID) != Some(self.state.run_id.as_str()) {
                    return Err(Error::NotOurs {
                        action: "delete RDS instance",
                        id,
                        key: TAG_RUN_ID,
                        run_id: self.state.run_id.clone(),
                    });
                }
                self.state.resources.restored_instance = Some(id.clone());
                if instance.status != "deleting" {
                    self.deps.rds.delete_instance(&id).await?;
                    crash_point!("teardown-after-call");
                }
            }
        }
        self.state.resources.restored_instance_deleted = true;
        self.save()?;
        Ok(format!("{id} deleted (no final snapshot, automated backups removed)"))
    }

    async fn owned_instance(&self, id: &str, action: &'static str) -> Result<Instance> {
        let instance = self
            .deps
            .rds
            .describe_instance(id)
            .await?
            .ok_or_else(|| Error::RestoreFailed {
                id: id.to_string(),
                status: "gone".into(),
            })?;
        if instance.tag(TAG_RUN_ID) != Some(self.state.run_id.as_str()) {
            return Err(Error::NotOurs {
                action,
                id: id.to_string(),
                key: TAG_RUN_ID,
                run_id: self.state.run_id.clone(),
            });
        }
        Ok(instance)
    }

    // ---- abort ----

    /// Removes whatever the run created, in any state: the rule and group (also one created
    /// just before a crash, found by its run tag) and the restored instance. Never touches
    /// production data.
    pub async fn abort(mut self) -> std::result::Result<RunState, RunFailure> {
        match self.abort_inner().await {
            Ok(()) => Ok(self.state),
            Err(error) => {
                self.state.error = Some(format!("abort: {error}"));
                let _ = self.save();
                Err(RunFailure {
                    error,
                    resources_left: self.state.resources.held(),
                    state_path: self.store.path().to_path_buf(),
                    state: self.state,
                })
            }
        }
    }

    async fn abort_inner(&mut self) -> Result<()> {
        let run_id = self.state.run_id.clone();
        self.deps.ui.step_started(Step::Revoke, "abort: the network access");
        let started = Instant::now();
        let mut notes = vec![self.revoke_access().await?];
        let ours = self.deps.ec2.security_groups_tagged(TAG_RUN_ID).await?;
        for g in ours.into_iter().filter(|g| g.tag(TAG_RUN_ID) == Some(run_id.as_str())) {
            if Some(&g.id) == self.state.resources.security_group.as_ref() {
                continue;
            }
            self.detach(&g.id).await?;
            self.deps.ec2.delete_security_group(&g.id).await?;
            notes.push(format!("unrecorded group {} deleted", g.id));
        }
        self.deps
            .ui
            .step_finished(Step::Revoke, started.elapsed(), &notes.join("; "));
        self.deps
            .ui
            .step_started(Step::Teardown, "abort: the restored instance");
        let started = Instant::now();
        let note = self.delete_restored().await?;
        self.deps.ui.step_finished(Step::Teardown, started.elapsed(), &note);
        if let (Some(side), false) = (
            &self.state.resources.side_table,
            self.state.resources.side_table_dropped,
        ) {
            // abort never connects to a database; the side table holds no production data.
            self.deps.ui.warn(&format!(
                "the drill's side table {side} is still in production: drop it when done"
            ));
        }
        self.state.outcome = Outcome::Aborted;
        self.state.error = None;
        self.save()
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
        if self.state.resources.security_group.is_some() && !self.state.resources.security_group_deleted {
            match self.revoke_access().await {
                Ok(s) => self.deps.ui.note(&format!("network access revoked: {s}")),
                Err(e) => self.deps.ui.warn(&format!("could not revoke the network access: {e}")),
            }
        }
        let held = self.state.resources.restored_instance.is_some() && !self.state.resources.restored_instance_deleted;
        if held && !interrupted && self.state.plan.on_failure == OnFailure::Teardown {
            match self.delete_restored().await {
                Ok(s) => self.deps.ui.note(&format!("restored instance removed: {s}")),
                Err(e) => self
                    .deps
                    .ui
                    .warn(&format!("could not delete the restored instance: {e}")),
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
        let _ = self.save();
        RunFailure {
            error,
            resources_left: self.state.resources.held(),
            state_path: self.store.path().to_path_buf(),
            state: self.state,
        }
    }
}

/// The whole plan on one screen: what will be created, opened and written, and where.
pub fn plan_text(plan: &Plan, source: &Instance, table_missing: bool) -> String {
    let class = plan
        .instance_class
        .as_deref()
        .or(source.class.as_deref())
        .unwrap_or("the source's class");
    let written = match &plan.drill {
        None if plan.mode == Mode::Overwrite => format!(
            "OVERWRITE: insert into production `{}` the restored rows missing there, and set the rows whose \
             values differ back to their restored values (counted and shown before the first write)",
            plan.table
        ),
        None if plan.mode == Mode::ReplaceAll => format!(
            "REPLACE ALL: make production `{}` equal to its restored copy: rows written since are DELETED, \
             differing rows overwritten, missing rows inserted (counted and shown before the first write)",
            plan.table
        ),
        None => format!(
            "insert into production `{}` the restored rows whose primary key is missing there \
             (missing-rows: rows written since are never overwritten)",
            plan.table
        ),
        Some(d) if d.rehearsal => format!(
            "REHEARSAL: create `{}` in production and load the restored rows into it; the real table is not touched; \
             the side table is {} afterwards",
            d.target,
            if d.keep { "kept" } else { "dropped" }
        ),
        Some(d) => format!(
            "create `{}` in production and load the restored rows into it (side-table mode); `{}` and everything \
             else is left as it is, for you to merge by hand",
            d.target, plan.table
        ),
    };
    let mut lines = vec![
        format!("Plan for run {}", plan.run_id),
        format!(
            "  table           {} on {} as it was at {} (UTC)",
            plan.table,
            plan.source_instance,
            rfc3339(plan.restore_time)
        ),
        format!(
            "  restore         RDS instance {} ({class}: {})",
            plan.target_instance,
            crate::plan::cost_class(class)
        ),
        format!(
            "                  in subnet group {}, parameter group {}, {}",
            plan.subnet_group
                .as_deref()
                .or(source.subnet_group.as_deref())
                .unwrap_or("default"),
            plan.parameter_group
                .as_deref()
                .or(source.parameter_group.as_deref())
                .unwrap_or("default"),
            if plan.publicly_accessible {
                "PUBLICLY ACCESSIBLE"
            } else {
                "not publicly accessible"
            }
        ),
        format!(
            "  open access     security group {} in {}: tcp/{} from {} only",
            plan.security_group_name,
            source.vpc_id.as_deref().unwrap_or("the source's VPC"),
            source.port.unwrap_or(3306),
            plan.client_cidr
        ),
        format!("  write           {written}"),
    ];
    if table_missing {
        lines.push(format!(
            "  TABLE MISSING   `{}` does not exist in production now: it is created from the restored copy's \
             SHOW CREATE TABLE, {}",
            plan.table,
            if plan.recreate_table {
                "as --recreate-table asks"
            } else {
                "shown to you first and only if you agree"
            }
        ));
    }
    if let Some(w) = &plan.where_predicate {
        lines.push(format!("  only rows       WHERE {w}"));
    }
    match (&plan.dump_file, plan.dump_only) {
        (Some(path), true) => lines.push(format!(
            "  DUMP ONLY       production is NOT written: the SQL of the rows it lacks goes to {} (review it, then \
             load it with the mysql client)",
            path.display()
        )),
        (Some(path), false) => lines.push(format!(
            "  also            the SQL of every row inserted goes to {}",
            path.display()
        )),
        (None, _) => {}
    }
    lines.push(format!(
        "  then            verify every restored row, revoke the access, delete the instance ({})",
        match plan.on_failure {
            OnFailure::Keep => "on failure: access revoked, instance kept for resume",
            OnFailure::Teardown => "on failure: access revoked, instance deleted",
        }
    ));
    lines.join("\n")
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
mod tests {
    use super::*;
    use crate::plan::{Mode, Request};
    use crate::ports::{Row, Value};
    use crate::progress::{Prompter, Silent};
    use crate::state::StepStatus;
    use crate::testing::*;
    use std::sync::Mutex;

    struct World {
        rds: FakeRds,
        ec2: FakeEc2,
        db: FakeDb,
        dir: tempfile::TempDir,
    }

    impl World {
        /// Restored: rows 1..=10. Production after the accident: even rows deleted, row 3
        /// changed since, rows 11 and 12 written since.
        fn new() -> World {
            let restored: Vec<Row> = (1..=10).map(|i| row(i, &format!("r{i}"))).collect();
            let mut production: Vec<Row> = restored
                .iter()
                .filter(|r| matches!(r[0], Value::Int(i) if i % 2 == 1))
                .cloned()
                .collect();
            production[1] = row(3, "changed");
            production.push(row(11, "new"));
            production.push(row(12, "new"));
            World {
                rds: FakeRds::with_source(),
                ec2: FakeEc2::default(),
                db: FakeDb {
                    production: table_of(production),
                    restored: table_of(restored),
                    schema: Some(schema()),
                    ..Default::default()
                },
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn request(&self) -> Request {
            Request {
                instance: "prod-db".into(),
                database: "shop".into(),
                table: "billing".into(),
                time: rfc3339(Utc::now() - chrono::Duration::hours(1)),
                client_cidr: Some("203.0.113.7/32".into()),
                allow_any_source: false,
                mode: Mode::MissingRows,
                instance_class: None,
                parameter_group: None,
                subnet_group: None,
                publicly_accessible: false,
                chunk_size: 3,
                wait_timeout_minutes: 1,
                on_failure: OnFailure::Teardown,
                where_predicate: None,
                drill: None,
                dump_file: None,
                dump_only: false,
                confirm_table: None,
                recreate_table: false,
                parallel: 1,
            }
        }

        async fn run_with(
            &self,
            req: Request,
            answer: Option<bool>,
            yes: bool,
        ) -> std::result::Result<RunState, RunFailure> {
            self.run_prompted(req, &Answer(answer), yes).await
        }

        async fn run_prompted(
            &self,
            req: Request,
            prompter: &dyn Prompter,
            yes: bool,
        ) -> std::result::Result<RunState, RunFailure> {
            let plan = Plan::new(&req, "20260101t000000-abcd".into(), Utc::now()).unwrap();
            let store = StateStore::new(self.dir.path(), &plan.run_id).unwrap();
            let deps = Deps {
                rds: &self.rds,
                ec2: &self.ec2,
                db: &self.db,
                ui: &Silent,
                prompter,
            };
            let settings = Settings {
                assume_yes: yes,
                poll_min: Duration::from_millis(1),
                poll_max: Duration::from_millis(2),
                ..Settings::default()
            };
            Machine::new(
                deps,
                settings,
                store,
                plan,
                Connection::default(),
                Arc::new(AtomicBool::new(false)),
            )
            .unwrap()
            .run()
            .await
        }

        async fn run(&self) -> std::result::Result<RunState, RunFailure> {
            self.run_with(self.request(), None, true).await
        }

        fn production(&self) -> BTreeMap<i64, Row> {
            self.db.production.lock().unwrap().clone()
        }

        fn assert_nothing_created(&self) {
            assert_eq!(self.rds.ids(), vec!["prod-db".to_string()]);
            assert!(self.ec2.group_ids().is_empty());
            assert!(
                !self.rds.calls().iter().any(|c| c.starts_with("restore")),
                "{:?}",
                self.rds.calls()
            );
        }
    }

    use std::collections::BTreeMap;

    #[tokio::test]
    async fn a_full_run_merges_missing_rows_and_leaves_nothing_behind() {
        let w = World::new();
        let before = w.production();
        let source_before = w.rds.instance("prod-db");
        let state = w.run().await.expect("run succeeds");

        let after = w.production();
        let restored = w.db.restored.lock().unwrap().clone();
        for (k, r) in &restored {
            let expected = before.get(k).unwrap_or(r);
            assert_eq!(after.get(k), Some(expected), "row {k}");
        }
        assert_eq!(
            after.get(&3),
            Some(&row(3, "changed")),
            "a row changed since the accident is kept"
        );
        assert_eq!(after.len(), 12);
        assert_eq!(
            (
                state.copy.inserted,
                state.copy.already_present,
                state.copy.present_differing
            ),
            (5, 5, 1)
        );

        assert_eq!(
            w.rds.ids(),
            vec!["prod-db".to_string()],
            "the restored instance is deleted"
        );
        assert!(w.ec2.group_ids().is_empty(), "the security group is deleted");
        assert_eq!(w.rds.instance("prod-db"), source_before, "the source is untouched");
        let ec2 = w.ec2.calls();
        assert_eq!(ec2.len(), 4, "{ec2:?}");
        assert!(
            ec2[1].ends_with("203.0.113.7/32 3306") && ec2[2].starts_with("revoke"),
            "{ec2:?}"
        );

        assert_eq!(state.outcome, Outcome::Succeeded);
        let steps: Vec<_> = state.steps.iter().map(|s| (s.step, s.status)).collect();
        assert_eq!(
            steps,
            Step::ALL.iter().map(|s| (*s, StepStatus::Finished)).collect::<Vec<_>>()
        );
        let on_disk = StateStore::load(&w.dir.path().join("20260101t000000-abcd.json")).unwrap();
        assert_eq!(on_disk, state);
        assert!(state.verification.as_ref().unwrap().passed);
        assert!(state.resources.held().is_empty());
    }

    #[tokio::test]
    async fn the_restored_instance_is_named_tagged_and_placed_like_the_source() {
        let mut w = World::new();
        // A writer that loses rows makes the run fail at verify; --on-failure keep keeps the
        // instance so it can be inspected here.
        w.db.lose_inserts = true;
        let mut req = w.request();
        req.on_failure = OnFailure::Keep;
        let failure = w.run_with(req, None, true).await.unwrap_err();
        assert!(
            matches!(failure.error, Error::VerificationFailed(_)),
            "{}",
            failure.error
        );
        let target = failure.state.plan.target_instance.clone();
        assert!(target.starts_with("restore-prod-db-billing-"), "{target}");
        let i = w.rds.instance(&target).expect("kept on failure with --on-failure keep");
        assert_eq!(i.tag(TAG_RUN_ID), Some("20260101t000000-abcd"));
        assert_eq!(i.subnet_group.as_deref(), Some("prod-subnets"));
        assert_eq!(i.parameter_group.as_deref(), Some("prod-params"));
        assert_eq!(i.class.as_deref(), Some("db.t3.medium"));
        assert!(!i.publicly_accessible);
        assert_eq!(
            i.security_groups,
            vec!["sg-app".to_string()],
            "our group is detached again"
        );
        assert!(w.ec2.group_ids().is_empty(), "network access is revoked on failure");
        assert_eq!(failure.resources_left, vec![format!("RDS instance {target}")]);
    }

    #[tokio::test]
    async fn validation_failures_create_nothing() {
        type Setup = fn(&mut World, &mut Request);
        let cases: Vec<(&str, Setup)> = vec![
            ("no RDS instance named `nope`", |_, r| r.instance = "nope".into()),
            ("engine `postgres`", |w, _| {
                w.rds.instances.lock().unwrap().get_mut("prod-db").unwrap().engine = "postgres".into()
            }),
            ("keeps no automated backups", |w, _| {
                w.rds
                    .instances
                    .lock()
                    .unwrap()
                    .get_mut("prod-db")
                    .unwrap()
                    .backup_retention_days = 0
            }),
            ("before the earliest restorable time", |_, r| {
                r.time = rfc3339(Utc::now() - chrono::Duration::days(8))
            }),
            ("after the latest restorable time", |_, r| {
                r.time = rfc3339(Utc::now() - chrono::Duration::minutes(1))
            }),
            ("does not exist on production", |w, _| w.db.schema = None),
            ("has no primary key", |w, _| w.db.schema.as_mut().unwrap().key.clear()),
            ("refused the login", |w, _| w.db.refuse_login = true),
        ];
        for (expected, setup) in cases {
            let mut w = World::new();
            let mut req = w.request();
            setup(&mut w, &mut req);
            let before = w.production();
            let failure = w.run_with(req, None, true).await.expect_err(expected);
            assert!(
                failure.error.to_string().contains(expected),
                "{expected}: got {}",
                failure.error
            );
            assert!(failure.error.is_validation(), "{expected}");
            w.assert_nothing_created();
            assert_eq!(w.production(), before);
            assert!(failure.resources_left.is_empty());
        }
    }

    #[tokio::test]
    async fn without_a_creation_time_or_window_start_there_is_no_lower_bound_to_trust() {
        let w = World::new();
        *w.rds.earliest.lock().unwrap() = None;
        w.rds.instances.lock().unwrap().get_mut("prod-db").unwrap().created = None;
        let failure = w.run().await.unwrap_err();
        assert!(
            matches!(failure.error, Error::NoRestoreWindow { .. }),
            "{}",
            failure.error
        );
        w.assert_nothing_created();
    }

    #[tokio::test]
    async fn a_cidr_wider_than_one_host_needs_its_own_confirmation() {
        let w = World::new();
        let mut req = w.request();
        req.client_cidr = Some("10.1.0.0/16".into());
        let script = Script {
            answers: Mutex::new(vec![true, false]),
            asked: Mutex::new(vec![]),
        };
        let failure = w.run_prompted(req.clone(), &script, false).await.unwrap_err();
        assert!(matches!(failure.error, Error::Declined), "{}", failure.error);
        assert_eq!(script.asked.lock().unwrap()[1], "Open the port to all of 10.1.0.0/16?");
        w.assert_nothing_created();

        let script = Script {
            answers: Mutex::new(vec![true]),
            asked: Mutex::new(vec![]),
        };
        w.run_prompted(w.request(), &script, false)
            .await
            .expect("a /32 needs one answer");
        assert_eq!(script.asked.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn overwrite_sets_changed_rows_back_and_keeps_rows_written_since() {
        let w = World::new();
        let mut req = w.request();
        req.mode = Mode::Overwrite;
        let state = w.run_with(req, None, true).await.expect("overwrite run");
        let production = w.production();
        let restored = w.db.restored.lock().unwrap().clone();
        for (k, r) in &restored {
            assert_eq!(production.get(k), Some(r), "row {k}");
        }
        assert_eq!(production.len(), 12, "rows 11 and 12, written since, stay");
        assert_eq!((state.copy.inserted, state.copy.updated, state.copy.deleted), (5, 1, 0));
        assert_eq!(
            state.copy.planned,
            Some(crate::state::PlannedChanges {
                insert: 5,
                update: 1,
                delete: 0,
                unchanged: 4
            })
        );
        assert!(state.verification.unwrap().passed);
    }

    #[tokio::test]
    async fn replace_all_in_scripts_needs_the_table_name_typed_ahead() {
        let w = World::new();
        let mut req = w.request();
        req.mode = Mode::ReplaceAll;
        let failure = w.run_with(req.clone(), None, true).await.unwrap_err();
        assert!(
            failure.error.to_string().contains("--confirm-table billing"),
            "{}",
            failure.error
        );
        w.assert_nothing_created();
        assert_eq!(w.production().len(), 7, "production untouched");

        req.confirm_table = Some("billing".into());
        let state = w.run_with(req, None, true).await.expect("replace-all run");
        assert_eq!(
            w.production(),
            *w.db.restored.lock().unwrap(),
            "production equals the restored table"
        );
        assert_eq!((state.copy.inserted, state.copy.updated, state.copy.deleted), (5, 1, 2));
        assert!(state.verification.unwrap().passed);
    }

    #[tokio::test]
    async fn replace_all_at_a_prompt_needs_the_name_typed_then_the_counts_accepted() {
        let w = World::new();
        let mut req = w.request();
        req.mode = Mode::ReplaceAll;
        // Proceed, then the name typed wrong: nothing is created.
        let script = Script {
            answers: Mutex::new(vec![true, false]),
            asked: Mutex::new(vec![]),
        };
        let failure = w.run_prompted(req.clone(), &script, false).await.unwrap_err();
        assert!(matches!(failure.error, Error::Declined), "{}", failure.error);
        assert_eq!(
            script.asked.lock().unwrap()[1],
            "Type the table name (billing) to replace it"
        );
        w.assert_nothing_created();

        // Proceed, the name, then no to the counted changes: production is not written.
        let script = Script {
            answers: Mutex::new(vec![true, true, false]),
            asked: Mutex::new(vec![]),
        };
        let failure = w.run_prompted(req.clone(), &script, false).await.unwrap_err();
        assert!(matches!(failure.error, Error::Declined), "{}", failure.error);
        assert_eq!(script.asked.lock().unwrap()[2], "Write these changes?");
        assert_eq!(w.production().len(), 7, "production untouched");
        assert!(w.ec2.group_ids().is_empty(), "access revoked");
        assert_eq!(
            w.rds.ids(),
            vec!["prod-db".to_string()],
            "restored instance deleted (--on-failure teardown)"
        );
    }

    #[tokio::test]
    async fn a_dropped_table_is_recreated_from_the_restored_definition_only_with_consent() {
        let w = World::new();
        w.db.production.lock().unwrap().clear();
        *w.db.production_dropped.lock().unwrap() = true;
        // At a prompt: the plan, then the definition; no to the second creates nothing in
        // production, and the restored instance goes.
        let script = Script {
            answers: Mutex::new(vec![true, false]),
            asked: Mutex::new(vec![]),
        };
        let failure = w.run_prompted(w.request(), &script, false).await.unwrap_err();
        assert!(matches!(failure.error, Error::Declined), "{}", failure.error);
        assert_eq!(
            script.asked.lock().unwrap()[1],
            "Create `shop.billing` in production with this definition?"
        );
        assert!(*w.db.production_dropped.lock().unwrap(), "not created");
        assert_eq!(w.rds.ids(), vec!["prod-db".to_string()]);

        let mut req = w.request();
        req.recreate_table = true;
        let state = w.run_with(req, None, true).await.expect("recreated and filled");
        assert!(!*w.db.production_dropped.lock().unwrap());
        assert_eq!(w.production(), *w.db.restored.lock().unwrap());
        assert_eq!(
            state.resources.created_table.as_ref().map(|t| t.to_string()).as_deref(),
            Some("shop.billing")
        );
        assert!(state.verification.unwrap().passed);
    }

    #[tokio::test]
    async fn parallel_writers_split_the_keys_and_each_checkpoints_its_own_range() {
        for mode in [Mode::MissingRows, Mode::ReplaceAll] {
            let w = World::new();
            let mut req = w.request();
            req.mode = mode;
            req.confirm_table = (mode == Mode::ReplaceAll).then(|| "billing".into());
            req.parallel = 3;
            let state = w.run_with(req, None, true).await.expect("parallel run");
            assert_eq!(
                state.copy.workers.len(),
                3,
                "{mode:?}: 10 rows in chunks of 3 make 3 writers"
            );
            assert!(state.copy.workers.iter().all(|w| w.copy.done));
            assert_eq!(state.copy.workers[0].start, None);
            assert_eq!(state.copy.workers[2].end, None);
            assert_eq!(
                state.copy.workers[0].end, state.copy.workers[1].start,
                "ranges tile the keys"
            );
            assert_eq!(state.copy.rows_read, 10);
            let restored = w.db.restored.lock().unwrap().clone();
            let production = w.production();
            match mode {
                Mode::ReplaceAll => assert_eq!(production, restored),
                _ => {
                    assert_eq!(state.copy.inserted, 5);
                    assert_eq!(production.len(), 12);
                }
            }
            assert!(state.verification.unwrap().passed);
        }
    }

    #[tokio::test]
    async fn nothing_happens_without_consent() {
        for (answer, expected) in [(Some(false), "stopped at your request"), (None, "--yes")] {
            let w = World::new();
            let before = w.production();
            let failure = w.run_with(w.request(), answer, false).await.unwrap_err();
            assert!(failure.error.to_string().contains(expected), "{}", failure.error);
            w.assert_nothing_created();
            assert_eq!(w.production(), before);
        }
        let w = World::new();
        w.run_with(w.request(), Some(true), false)
            .await
            .expect("consent given at the prompt");
    }

    #[tokio::test]
    async fn a_failed_copy_revokes_access_and_tears_down_keeping_committed_chunks() {
        let mut w = World::new();
        w.db.fail_insert_at = Some(7);
        let failure = w.run().await.unwrap_err();
        assert!(failure.error.to_string().contains("injected failure"));
        assert!(failure.resources_left.is_empty(), "{:?}", failure.resources_left);
        assert_eq!(w.rds.ids(), vec!["prod-db".to_string()]);
        assert!(w.ec2.group_ids().is_empty());
        // Chunks [1,2,3] and [4,5,6] were committed before the failure: rows 2, 4 and 6 are back.
        let p = w.production();
        assert!(p.contains_key(&2) && p.contains_key(&4) && p.contains_key(&6) && !p.contains_key(&8));
        assert_eq!(
            failure.state.copy.last_key,
            Some(vec![crate::rowcodec::StoredValue::Int(6)])
        );
        let copy = failure.state.step(Step::Copy).unwrap();
        assert_eq!(copy.status, StepStatus::Failed);
        assert_eq!(failure.state.outcome, Outcome::Failed);
    }

    #[tokio::test]
    async fn an_instance_without_our_tag_is_never_touched() {
        let w = World {
            rds: FakeRds {
                drop_tags: true,
                ..FakeRds::with_source()
            },
            ..World::new()
        };
        let failure = w.run().await.unwrap_err();
        assert!(matches!(failure.error, Error::NotOurs { .. }), "{}", failure.error);
        assert!(
            !w.rds
                .calls()
                .iter()
                .any(|c| c.starts_with("delete") || c.starts_with("set-groups")),
            "{:?}",
            w.rds.calls()
        );
        assert_eq!(failure.resources_left.len(), 1, "{:?}", failure.resources_left);
    }
}
