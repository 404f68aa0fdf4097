//! The restore as a state machine: validate, restore, wait, open access, copy, verify, revoke,
//! teardown, report. Each step is recorded in the state file as started before its first side
//! effect and as finished after its last; every resource is recorded the moment it exists.
//!
//! When a step fails, the network access is revoked at once (an open port never outlives a
//! failure) and the restored instance is deleted or kept as `--on-failure` says. The machine
//! reaches AWS and MySQL only through the ports, so the unit tests run it against fakes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use chrono::{DateTime, Utc};

use crate::copy::{copy_missing_rows, CopyJob};
use crate::error::{Error, Result, Side};
use crate::plan::{rfc3339, OnFailure, Plan, TAG_RUN_ID};
use crate::ports::{Connector, Ec2, Endpoint, Instance, Rds, RestoreRequest, Session, TableSchema};
use crate::progress::{Progress, Prompter};
use crate::state::{Outcome, RunState, StateStore, Step, StepRecord, StepStatus};
use crate::verify::verify;

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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            region: "us-east-1".into(),
            assume_yes: false,
            poll_min: Duration::from_secs(5),
            poll_max: Duration::from_secs(30),
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
    schema: TableSchema,
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
}

impl<'a> Machine<'a> {
    pub fn new(
        deps: Deps<'a>,
        settings: Settings,
        store: StateStore,
        plan: Plan,
        cancel: Arc<AtomicBool>,
    ) -> Result<Self> {
        let state = RunState::new(plan, Utc::now());
        store.save(&state)?;
        Ok(Machine {
            deps,
            settings,
            store,
            state,
            cancel,
            current: None,
            restored_session: None,
            production_session: None,
        })
    }

    pub fn state_path(&self) -> PathBuf {
        self.store.path().to_path_buf()
    }

    /// Runs every step. On failure, cleans up as the plan says and reports what is left.
    pub async fn run(mut self) -> std::result::Result<RunState, RunFailure> {
        match self.drive().await {
            Ok(()) => Ok(self.state),
            Err(error) => Err(self.fail(error).await),
        }
    }

    async fn drive(&mut self) -> Result<()> {
        let source = self.validate().await?;
        self.consent(&source)?;
        self.restore(&source).await?;
        let endpoint = self.wait().await?;
        self.open_access(&source, endpoint.port).await?;
        self.copy(&source, &endpoint).await?;
        self.verify(&source).await?;
        self.revoke().await?;
        self.teardown().await?;
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
        Ok(())
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::SeqCst) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
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
        if instance.backup_retention_days <= 0 {
            return Err(Error::NoBackups {
                id: instance.id.clone(),
            });
        }
        let latest = instance.latest_restorable.ok_or_else(|| Error::NoRestoreWindow {
            id: instance.id.clone(),
            status: instance.status.clone(),
        })?;
        // RDS gives the window's start in the automated backups; without it, the instance's
        // creation is the earliest moment that can exist. Never assume there is no lower bound.
        let earliest = match self.deps.rds.earliest_restorable_time(&instance.id).await? {
            Some(t) => t,
            None => instance.created.ok_or_else(|| Error::NoRestoreWindow {
                id: instance.id.clone(),
                status: instance.status.clone(),
            })?,
        };
        check_window(&instance, plan.restore_time, earliest, latest)?;
        if self.deps.rds.describe_instance(&plan.target_instance).await?.is_some() {
            return Err(Error::InvalidInput(format!(
                "an RDS instance named `{}` already exists: another run is restoring the same table to the same second",
                plan.target_instance
            )));
        }
        let production = instance.endpoint.clone().ok_or_else(|| Error::NoEndpoint {
            id: instance.id.clone(),
        })?;
        let mut session = self.deps.db.connect(Side::Production, &production).await?;
        let schema = session
            .table_schema(&plan.table)
            .await?
            .ok_or_else(|| Error::TableNotFound {
                database: plan.table.database.clone(),
                table: plan.table.table.clone(),
            })?;
        if schema.key.is_empty() {
            return Err(Error::NoPrimaryKey {
                database: plan.table.database.clone(),
                table: plan.table.table.clone(),
            });
        }
        self.production_session = Some(session);
        self.finish(&format!(
            "{} ({} {}), window {} .. {}, table has {} columns",
            instance.id,
            instance.engine,
            instance.engine_version.as_deref().unwrap_or(""),
            rfc3339(earliest),
            rfc3339(latest),
            schema.columns.len()
        ))?;
        Ok(Source {
            instance,
            production,
            schema,
        })
    }

    fn consent(&mut self, source: &Source) -> Result<()> {
        let plan = &self.state.plan;
        let question = format!(
            "Restore `{}` as it was at {} from {} into production:\n  \
             create RDS instance {} ({}), security group {} open to {} only,\n  \
             insert the restored rows missing in production ({} mode), then delete both.\nProceed?",
            plan.table,
            rfc3339(plan.restore_time),
            plan.source_instance,
            plan.target_instance,
            plan.instance_class
                .as_deref()
                .or(source.instance.class.as_deref())
                .unwrap_or("source class"),
            plan.security_group_name,
            plan.client_cidr,
            "missing-rows",
        );
        if self.settings.assume_yes {
            return Ok(());
        }
        if self.deps.prompter.confirm(&question)? {
            Ok(())
        } else {
            Err(Error::Declined)
        }
    }

    // ---- 2. restore ----

    async fn restore(&mut self, source: &Source) -> Result<()> {
        let plan = self.state.plan.clone();
        self.begin(
            Step::Restore,
            &format!("{} at {}", plan.target_instance, rfc3339(plan.restore_time)),
        )?;
        let request = RestoreRequest {
            source: plan.source_instance.clone(),
            target: plan.target_instance.clone(),
            time: plan.restore_time,
            subnet_group: plan.subnet_group.clone().or(source.instance.subnet_group.clone()),
            parameter_group: plan.parameter_group.clone().or(source.instance.parameter_group.clone()),
            class: plan.instance_class.clone().or(source.instance.class.clone()),
            publicly_accessible: plan.publicly_accessible,
            tags: plan.tags(),
        };
        let created = self.deps.rds.restore_to_point_in_time(&request).await?;
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
        let description = format!(
            "rds-table-restore run {}: temporary access to {} from {}",
            plan.run_id, plan.target_instance, plan.client_cidr
        );
        let sg = self
            .deps
            .ec2
            .create_security_group(&vpc, &plan.security_group_name, &description, &plan.tags())
            .await?;
        self.state.resources.security_group = Some(sg.clone());
        self.save()?;
        self.deps
            .ec2
            .authorize_ingress(
                &sg,
                port,
                &plan.client_cidr,
                &format!("rds-table-restore {}", plan.run_id),
            )
            .await?;
        self.state.resources.ingress_rule = Some((plan.client_cidr.clone(), port));
        self.save()?;
        let mut groups = self
            .owned_instance(&plan.target_instance, "attach a security group to")
            .await?
            .security_groups;
        if !groups.contains(&sg) {
            groups.push(sg.clone());
        }
        self.deps
            .rds
            .set_security_groups(&plan.target_instance, &groups)
            .await?;
        self.state.resources.attached = true;
        self.finish(&format!(
            "{sg} in {vpc} allows tcp/{port} from {} only",
            plan.client_cidr
        ))
    }

    // ---- 5. copy ----

    async fn copy(&mut self, source: &Source, endpoint: &Endpoint) -> Result<()> {
        let plan = self.state.plan.clone();
        self.begin(
            Step::Copy,
            &format!(
                "{} from {} into production (missing-rows)",
                plan.table, plan.target_instance
            ),
        )?;
        let mut restored = self.deps.db.connect(Side::Restored, endpoint).await?;
        let restored_schema = restored.table_schema(&plan.table).await?.ok_or_else(|| {
            Error::SchemaMismatch(format!(
                "`{}` does not exist on the restored instance (it did not exist at {})",
                plan.table,
                rfc3339(plan.restore_time)
            ))
        })?;
        compare_schemas(&restored_schema, &source.schema)?;
        // The validation session may have idled through a long wait: open a fresh one.
        self.production_session = None;
        let mut production = self.deps.db.connect(Side::Production, &source.production).await?;
        let estimate = restored.estimate_rows(&plan.table).await.unwrap_or(None);
        self.deps.ui.copy_started(estimate);
        let job = CopyJob {
            table: &plan.table,
            schema: &source.schema,
            chunk_size: plan.chunk_size,
        };
        let start = self.state.copy.clone();
        let (store, state) = (&self.store, &mut self.state);
        let mut checkpoint = |p: &crate::state::CopyProgress| {
            state.copy = p.clone();
            state.updated_at = Utc::now();
            store.save(state)
        };
        let done = copy_missing_rows(
            restored.as_mut(),
            production.as_mut(),
            &job,
            start,
            &mut checkpoint,
            self.deps.ui,
            &self.cancel,
        )
        .await?;
        self.restored_session = Some(restored);
        self.production_session = Some(production);
        self.finish(&format!(
            "{} rows read, {} inserted, {} already present ({} of them differ and were kept)",
            done.rows_read, done.inserted, done.already_present, done.present_differing
        ))
    }

    // ---- 6. verify ----

    async fn verify(&mut self, source: &Source) -> Result<()> {
        let plan = self.state.plan.clone();
        self.begin(Step::Verify, "every restored row against production, by key")?;
        let (Some(restored), Some(production)) = (self.restored_session.as_mut(), self.production_session.as_mut())
        else {
            return Err(Error::InvalidInput("verify needs the copy's connections".into()));
        };
        let job = CopyJob {
            table: &plan.table,
            schema: &source.schema,
            chunk_size: plan.chunk_size,
        };
        let v = verify(
            restored.as_mut(),
            production.as_mut(),
            &job,
            &self.state.copy,
            self.deps.ui,
            &self.cancel,
        )
        .await?;
        self.state.verification = Some(v.clone());
        self.save()?;
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
                self.state.resources.ingress_rule = None;
                self.state.resources.attached = false;
                self.state.resources.security_group_deleted = true;
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
            self.state.resources.ingress_rule = None;
            self.save()?;
        }
        if self.state.resources.attached {
            let target = self.state.plan.target_instance.clone();
            if let Some(instance) = self.deps.rds.describe_instance(&target).await? {
                if instance.tag(TAG_RUN_ID) != Some(run_id.as_str()) {
                    return Err(Error::NotOurs {
                        action: "detach a security group from",
                        id: target,
                        key: TAG_RUN_ID,
                        run_id,
                    });
                }
                let groups: Vec<String> = instance.security_groups.into_iter().filter(|g| *g != sg).collect();
                self.deps.rds.set_security_groups(&target, &groups).await?;
            }
            self.state.resources.attached = false;
            self.save()?;
        }
        self.deps.ec2.delete_security_group(&sg).await?;
        self.state.resources.security_group_deleted = true;
        self.save()?;
        Ok(format!("rule revoked, {sg} detached and deleted"))
    }

    // ---- 8. teardown ----

    async fn teardown(&mut self) -> Result<()> {
        let target = self.state.plan.target_instance.clone();
        self.begin(Step::Teardown, &target)?;
        let summary = self.delete_restored().await?;
        self.finish(&summary)
    }

    async fn delete_restored(&mut self) -> Result<String> {
        let Some(id) = self.state.resources.restored_instance.clone() else {
            return Ok("no instance was created".into());
        };
        if self.state.resources.restored_instance_deleted {
            return Ok(format!("{id} already deleted"));
        }
        match self.deps.rds.describe_instance(&id).await? {
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
                if instance.status != "deleting" {
                    self.deps.rds.delete_instance(&id).await?;
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
        self.state.outcome = Outcome::Failed;
        self.state.error = Some(message);
        let _ = self.save();
        // Closing the door comes first, whatever failed.
        if self.state.resources.security_group.is_some() && !self.state.resources.security_group_deleted {
            match self.revoke_access().await {
                Ok(s) => self.deps.ui.note(&format!("network access revoked: {s}")),
                Err(e) => self.deps.ui.warn(&format!("could not revoke the network access: {e}")),
            }
        }
        let held = self.state.resources.restored_instance.is_some() && !self.state.resources.restored_instance_deleted;
        if held {
            match self.state.plan.on_failure {
                OnFailure::Teardown => match self.delete_restored().await {
                    Ok(s) => self.deps.ui.note(&format!("restored instance removed: {s}")),
                    Err(e) => self
                        .deps
                        .ui
                        .warn(&format!("could not delete the restored instance: {e}")),
                },
                OnFailure::Keep => self.deps.ui.note(&format!(
                    "kept the restored instance {} (--on-failure keep): delete it when done",
                    self.state.plan.target_instance
                )),
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
    use crate::progress::Silent;
    use crate::state::StepStatus;
    use crate::testing::*;

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
            }
        }

        async fn run_with(
            &self,
            req: Request,
            answer: Option<bool>,
            yes: bool,
        ) -> std::result::Result<RunState, RunFailure> {
            let plan = Plan::new(&req, "20260101t000000-abcd".into(), Utc::now()).unwrap();
            let store = StateStore::new(self.dir.path(), &plan.run_id).unwrap();
            let prompter = Answer(answer);
            let deps = Deps {
                rds: &self.rds,
                ec2: &self.ec2,
                db: &self.db,
                ui: &Silent,
                prompter: &prompter,
            };
            let settings = Settings {
                assume_yes: yes,
                poll_min: Duration::from_millis(1),
                poll_max: Duration::from_millis(2),
                ..Settings::default()
            };
            Machine::new(deps, settings, store, plan, Arc::new(AtomicBool::new(false)))
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
