//! The restored copy's life in AWS, in the order real AWS needs: the copy's own security group
//! (no rule) first; the restore into that group only, so the copy never sits in the VPC's
//! default group; the wait for `available` (through the moment a new instance is not yet
//! visible, `creating`, `backing-up`); the one ingress rule once the copy is reachable; the rule
//! revoked as soon as the data work ends; then the instance deleted, its `deleting` waited out,
//! and only then the group deleted (EC2 refuses while any instance, a deleting one too, holds it).
//!
//! Every create is idempotent: a create whose answer was lost (AWS acted, the caller saw a 5xx,
//! the SDK retried) meets `DBInstanceAlreadyExists` or `InvalidGroup.Duplicate`, and the
//! resource is adopted when it carries this run's tag, refused and named when it does not.
//! Every wait is bounded, interruptible, and names the command that finishes the job.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;

use super::{Machine, Source};
use crate::error::{Error, Result};
use crate::plan::{rfc3339, TAG_RUN_ID};
use crate::ports::{Endpoint, Group, RestoreRequest};
use crate::restored::{CopyView, Release, RestoredCopy};
use crate::state::{Outcome, Step};

fn code_is(e: &Error, code: &str) -> bool {
    e.aws_code() == Some(code)
}

impl<'a> Machine<'a> {
    /// Exponential, jittered waits between polls, from `poll_min` up to `poll_max`.
    fn delays(&self) -> impl Iterator<Item = Duration> {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.settings.poll_min)
            .with_max_delay(self.settings.poll_max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Runs `op` until it succeeds, fails with an error `retryable` does not accept, or `limit`
    /// has passed (then its last error is returned).
    async fn patiently<T, Fut>(
        &self,
        limit: Duration,
        retryable: impl Fn(&Error) -> bool,
        mut op: impl FnMut() -> Fut,
    ) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let mut delays = self.delays();
        loop {
            match op().await {
                Err(e) if retryable(&e) && started.elapsed() < limit => {
                    self.check_cancel()?;
                    let delay = delays.next().unwrap_or(self.settings.poll_max);
                    tracing::debug!(error = %e, ?delay, "waiting before trying again");
                    tokio::time::sleep(delay.min(limit.saturating_sub(started.elapsed()))).await;
                }
                other => return other,
            }
        }
    }

    /// Looks at the copy until AWS shows it, for `settle` at most: a resource that was just
    /// created (or whose creation answer was lost) may be invisible for a moment.
    pub(super) async fn until_described(&self) -> Result<Option<CopyView>> {
        let copy = self.copy_kind();
        self.settled(true, || copy.observe()).await
    }

    /// Asks `look` until it finds something, for `settle` at most: AWS is eventually
    /// consistent, so a resource just created (or whose creation answer was lost) may be
    /// unknown for a moment, and only a settled "none" means none. With `interruptible`, a
    /// Ctrl-C stops the wait; without, the wait (bounded) finishes, as revoking after an
    /// interruption must.
    async fn settled<T, Fut>(&self, interruptible: bool, mut look: impl FnMut() -> Fut) -> Result<Option<T>>
    where
        Fut: Future<Output = Result<Option<T>>>,
    {
        let started = Instant::now();
        let mut delays = self.delays();
        loop {
            if let Some(found) = look().await? {
                return Ok(Some(found));
            }
            if started.elapsed() >= self.settings.settle {
                return Ok(None);
            }
            if interruptible {
                self.check_cancel()?;
            }
            let delay = delays.next().unwrap_or(self.settings.poll_max);
            tokio::time::sleep(delay.min(self.settings.settle.saturating_sub(started.elapsed()))).await;
        }
    }

    /// The run's restored copy, of the kind its plan restores.
    pub(super) fn copy_kind(&self) -> Box<dyn RestoredCopy + 'a> {
        crate::restored::for_plan(&self.state.plan, self.deps.rds)
    }

    /// The tags of a group this run created, asked until EC2 shows the group, for `settle` at
    /// most: a new group is unknown to EC2 for a moment, and that is not its deletion.
    async fn group_tags_settled(&self, sg: &str) -> Result<Option<Vec<(String, String)>>> {
        self.settled(false, || self.deps.ec2.security_group_tags(sg)).await
    }

    fn command(&self, verb: &str) -> String {
        format!("rds-table-restore {verb} {}", self.state.run_id)
    }

    /// The source's VPC: from its subnet group, else from one of its security groups.
    async fn vpc_of(&self, source: &Source) -> Result<String> {
        if let Some(v) = &source.instance.vpc_id {
            return Ok(v.clone());
        }
        let unknown = || Error::InvalidInput(format!("cannot tell the VPC of `{}`", source.instance.id));
        match source.instance.security_groups.first() {
            Some(sg) => self.deps.ec2.vpc_of_security_group(sg).await?.ok_or_else(unknown),
            None => Err(unknown()),
        }
    }

    /// The one ownership check: a resource is this run's only if it carries the run's tag. The
    /// tool never changes, uses or deletes anything else.
    fn ensure_ours(&self, tags: &[(String, String)], action: &'static str, id: &str) -> Result<()> {
        let run_id = self.state.run_id.as_str();
        if tags.iter().any(|(k, v)| k == TAG_RUN_ID && v == run_id) {
            return Ok(());
        }
        Err(Error::NotOurs {
            action,
            id: id.to_string(),
            key: TAG_RUN_ID,
            run_id: run_id.to_string(),
        })
    }

    fn adopt_group(&self, g: Group) -> Result<String> {
        self.ensure_ours(&g.tags, "use security group", &g.id)?;
        Ok(g.id)
    }

    // ---- 2. the copy's own security group ----

    pub(super) async fn security_group(&mut self, source: &Source) -> Result<()> {
        let plan = self.state.plan.clone();
        let vpc = self.vpc_of(source).await?;
        self.begin(
            Step::SecurityGroup,
            &format!("{} in {vpc}, with no inbound rule", plan.security_group_name),
        )?;
        if let Some(sg) = self.state.resources.security_group.clone() {
            return self.finish(&format!("{sg} already created"));
        }
        let ec2 = self.deps.ec2;
        // Created just before a crash: adopted only if it carries this run's tag.
        let sg = match ec2.find_security_group(&vpc, &plan.security_group_name).await? {
            Some(g) => self.adopt_group(g)?,
            None => {
                let description = format!(
                    "rds-table-restore run {}: the restored copy {} only",
                    plan.run_id, plan.target_instance
                );
                match ec2
                    .create_security_group(&vpc, &plan.security_group_name, &description, &plan.tags())
                    .await
                {
                    Ok(id) => id,
                    // Our own create, whose answer was lost and retried: find it and adopt it.
                    Err(e) if code_is(&e, "InvalidGroup.Duplicate") => {
                        let found = self
                            .patiently(
                                self.settings.settle,
                                |e| matches!(e, Error::InvalidInput(_)),
                                || async {
                                    ec2.find_security_group(&vpc, &plan.security_group_name)
                                        .await?
                                        .ok_or_else(|| Error::InvalidInput("not visible yet".into()))
                                },
                            )
                            .await
                            .map_err(|_| e)?;
                        self.adopt_group(found)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        crash_point!("security-group-after-create");
        self.state.resources.security_group = Some(sg.clone());
        self.finish(&format!("{sg} created in {vpc}, no inbound rule yet"))
    }

    // ---- 3. restore ----

    pub(super) async fn restore(&mut self, source: &Source) -> Result<()> {
        let plan = self.state.plan.clone();
        self.begin(
            Step::Restore,
            &format!("{} at {}", plan.target_instance, rfc3339(plan.restore_time)),
        )?;
        // A restore requested just before a crash is found by name and adopted (validation has
        // checked its tag); only when there is none is it requested.
        if let Some(existing) = self.copy_kind().observe().await? {
            self.state.resources.restored_instance = Some(plan.target_instance.clone());
            let label = self.copy_kind().label();
            return self.finish(&format!("{label} adopted (status {})", existing.status));
        }
        let request = self.restore_request(source)?;
        let copy = self.copy_kind();
        let status = match copy.request(&request).await {
            Ok(status) => format!("requested (status {status})"),
            // Our own request, acted on by RDS though its answer was lost (the SDK retried), or
            // sent before a crash and not visible yet: adopt it if it carries this run's tag.
            Err(e) if copy.already_exists(&e) => match self.until_described().await? {
                Some(v) => {
                    self.ensure_ours(&v.tags, "use restored copy", &plan.target_instance)?;
                    format!("adopted after a lost answer (status {})", v.status)
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let label = copy.label();
        crash_point!("restore-after-call");
        self.state.resources.restored_instance = Some(plan.target_instance.clone());
        self.finish(&format!("{label} {status}"))
    }

    /// What the restore asks for: the source's placement (or the plan's overrides), the copy's
    /// own group only, no backups, the source's CA, the run's tags.
    fn restore_request(&self, source: &Source) -> Result<RestoreRequest> {
        let plan = &self.state.plan;
        let sg = self
            .state
            .resources
            .security_group
            .clone()
            .ok_or_else(|| Error::InvalidInput("the copy's security group is not recorded".into()))?;
        Ok(RestoreRequest {
            source: plan.source().to_string(),
            target: plan.target_instance.clone(),
            time: plan.restore_time,
            subnet_group: plan.subnet_group.clone().or(source.instance.subnet_group.clone()),
            parameter_group: plan.parameter_group.clone().or(source.instance.parameter_group.clone()),
            class: plan.instance_class.clone().or(source.instance.class.clone()),
            publicly_accessible: plan.publicly_accessible,
            tags: plan.tags(),
            enable_iam_auth: self.state.connection.iam_auth,
            security_groups: vec![sg],
            ca_certificate: source.instance.ca_certificate.clone(),
        })
    }

    // ---- 4. wait ----

    /// Waits for the copy to be ready with the copy in our group only, and that membership
    /// `active`; takes the steps the kind needs from the tool on the way.
    pub(super) async fn wait(&mut self) -> Result<Endpoint> {
        let id = self.state.plan.target_instance.clone();
        self.begin(Step::Wait, &format!("{id} to become available"))?;
        let started = Instant::now();
        let timeout = Duration::from_secs(self.state.plan.wait_timeout_minutes * 60);
        let mut delays = self.delays();
        let mut seen: Vec<String> = Vec::new();
        let copy = self.copy_kind();
        loop {
            self.check_cancel()?;
            let mut status = String::from("not visible yet");
            if let Some(view) = copy.observe().await? {
                status = view.status.clone();
                if !view.ready && !view.failed && copy.advance(&view).await? {
                    // The step the kind takes itself (a cluster's writer): seen on the next look.
                    crash_point!("wait-after-advance");
                    self.deps.ui.note(&format!("{id}: {status}: writer instance requested"));
                }
                if view.ready {
                    let membership = self.isolation(&view)?;
                    if membership == "active" {
                        let endpoint = view
                            .endpoint
                            .clone()
                            .ok_or_else(|| Error::NoEndpoint { id: id.clone() })?;
                        push_new(&mut seen, "available");
                        let skipped = if self.state.plan.cluster.is_some() || seen.iter().any(|s| s == "backing-up") {
                            ""
                        } else {
                            "; backing-up skipped (no backups kept)"
                        };
                        let summary = format!(
                            "available at {endpoint} after {}s ({}{skipped})",
                            started.elapsed().as_secs(),
                            seen.join(" → "),
                        );
                        self.state.resources.restored_endpoint = Some(endpoint.clone());
                        return self.finish(&summary).map(|_| endpoint);
                    }
                    status = format!("{status}, security group {membership}");
                } else if view.failed {
                    return Err(Error::RestoreFailed { id, status });
                }
            }
            if push_new(&mut seen, &status) {
                self.deps.ui.note(&format!("{id}: {status}"));
            }
            self.deps.ui.waiting(&id, &status, started.elapsed());
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

    /// The copy must carry this run's tag and be in this run's group and no other (never the
    /// VPC's default group, which usually admits everything in it); returns that membership's
    /// status.
    fn isolation(&self, view: &CopyView) -> Result<String> {
        self.ensure_ours(&view.tags, "use restored copy", &view.id)?;
        let ours = self.state.resources.security_group.as_deref();
        let groups: Vec<&str> = view.security_groups.iter().map(|(g, _)| g.as_str()).collect();
        let others = groups.iter().any(|g| Some(*g) != ours);
        if others || ours.is_some_and(|g| !groups.contains(&g)) {
            return Err(Error::NotIsolated {
                id: view.id.clone(),
                groups: groups.join(", "),
                run_id: self.state.run_id.clone(),
            });
        }
        Ok(view
            .security_groups
            .iter()
            .find(|(g, _)| Some(g.as_str()) == ours)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| "active".into()))
    }

    // ---- 5. open access ----

    /// Adds the one rule, to the group the copy is already in. The rule is recorded before it
    /// is added, so that whatever happens next, it is revoked.
    pub(super) async fn open_access(&mut self, port: u16) -> Result<()> {
        let plan = self.state.plan.clone();
        self.begin(Step::OpenAccess, &format!("tcp/{port} from {}", plan.client_cidr))?;
        let sg = self
            .state
            .resources
            .security_group
            .clone()
            .filter(|_| !self.state.resources.security_group_deleted)
            .ok_or_else(|| Error::InvalidInput("the copy's security group is not recorded".into()))?;
        self.state.resources.ingress_rule = Some((plan.client_cidr.clone(), port));
        self.save()?;
        let note = format!("rds-table-restore {}", plan.run_id);
        let ec2 = self.deps.ec2;
        // EC2 is eventually consistent: a group may answer InvalidGroup.NotFound for a moment.
        self.patiently(
            self.settings.settle,
            |e| code_is(e, "InvalidGroup.NotFound"),
            || ec2.authorize_ingress(&sg, port, &plan.client_cidr, &note),
        )
        .await?;
        crash_point!("open-access-after-authorize");
        self.finish(&format!("{sg} allows tcp/{port} from {} only", plan.client_cidr))
    }

    // ---- 8. revoke ----

    pub(super) async fn revoke(&mut self) -> Result<()> {
        self.begin(Step::Revoke, "the temporary network access")?;
        let summary = self.revoke_rule().await?;
        self.finish(&summary)
    }

    /// Removes the rule, if this run added it (recorded) and the group is ours. The group stays,
    /// empty, until the instance is gone.
    pub(super) async fn revoke_rule(&mut self) -> Result<String> {
        let Some(sg) = self.state.resources.security_group.clone() else {
            return Ok("nothing to revoke".into());
        };
        if self.state.resources.security_group_deleted {
            return Ok(format!("{sg} already deleted"));
        }
        let Some((cidr, port)) = self.state.resources.ingress_rule.clone() else {
            return Ok(format!("{sg} has no rule of this run"));
        };
        match self.group_tags_settled(&sg).await? {
            None => {
                let r = &mut self.state.resources;
                (r.ingress_rule, r.security_group_deleted) = (None, true);
                self.save()?;
                return Ok(format!("{sg} no longer exists"));
            }
            Some(tags) => self.ensure_ours(&tags, "change security group", &sg)?,
        }
        self.deps.ec2.revoke_ingress(&sg, port, &cidr).await?;
        crash_point!("revoke-after-rule");
        self.state.resources.ingress_rule = None;
        self.save()?;
        Ok(format!("rule {cidr} tcp/{port} removed from {sg}"))
    }

    // ---- 9. teardown ----

    pub(super) async fn teardown(&mut self) -> Result<()> {
        let target = self.state.plan.target_instance.clone();
        self.begin(Step::Teardown, &format!("{target}, then its security group"))?;
        let mut summary = self.remove_copy("resume").await?;
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

    /// Everything of the copy in AWS, in the order AWS allows: the rule, the instance (until
    /// AWS no longer describes it), then the group. `verb` finishes the job after a timeout.
    pub(super) async fn remove_copy(&mut self, verb: &str) -> Result<String> {
        let mut notes = Vec::new();
        if self.state.resources.ingress_rule.is_some() {
            notes.push(self.revoke_rule().await?);
        }
        notes.push(self.delete_restored(verb).await?);
        notes.push(self.delete_group(verb).await?);
        Ok(notes.join("; "))
    }

    /// Requests the deletion of the restored copy if it exists and carries this run's tag,
    /// recorded or not (a restore requested just before a crash is not recorded yet), then
    /// releases it step by step until AWS no longer describes it.
    async fn delete_restored(&mut self, verb: &str) -> Result<String> {
        let id = self.state.plan.target_instance.clone();
        if self.state.resources.restored_instance_gone {
            return Ok(format!("{id} already deleted"));
        }
        let started = Instant::now();
        if !self.state.resources.restored_instance_deleted {
            // A restore that was requested may not be visible yet: only a settled answer counts.
            let described = if self.state.step(Step::Restore).is_some() {
                self.until_described().await?
            } else {
                self.copy_kind().observe().await?
            };
            let Some(view) = described else {
                let r = &mut self.state.resources;
                let created = r.restored_instance.is_some();
                (r.restored_instance_deleted, r.restored_instance_gone) = (true, true);
                self.save()?;
                return Ok(if created {
                    format!("{id} no longer exists")
                } else {
                    "no instance was created".into()
                });
            };
            self.ensure_ours(&view.tags, "delete restored copy", &id)?;
            self.state.resources.restored_instance = Some(id.clone());
            self.save()?;
            if view.status != "deleting" {
                self.request_deletion().await?;
                crash_point!("teardown-after-call");
            }
            self.state.resources.restored_instance_deleted = true;
            self.save()?;
        }
        let deleting = self.wait_gone(&id, verb).await?;
        crash_point!("teardown-after-gone");
        self.state.resources.restored_instance_gone = true;
        self.save()?;
        Ok(format!(
            "{id} deleted (deleting {deleting}s, {}s in all; no final snapshot, automated backups removed)",
            started.elapsed().as_secs()
        ))
    }

    /// The first release step that AWS takes: RDS refuses a delete while the copy is creating,
    /// backing up or modifying, so a busy copy is waited for, within the wait timeout.
    async fn request_deletion(&self) -> Result<()> {
        let limit = Duration::from_secs(self.state.plan.wait_timeout_minutes * 60);
        let copy = self.copy_kind();
        let started = Instant::now();
        let mut delays = self.delays();
        loop {
            match copy.release().await? {
                Release::Pending { .. } | Release::Gone => return Ok(()),
                Release::Busy { status } if started.elapsed() >= limit => {
                    return Err(Error::WaitTimeout {
                        id: copy.label(),
                        minutes: self.state.plan.wait_timeout_minutes,
                        status,
                    })
                }
                Release::Busy { status } => {
                    self.deps
                        .ui
                        .waiting(&copy.label(), &format!("{status}, delete waits"), started.elapsed());
                    self.check_cancel()?;
                    let delay = delays.next().unwrap_or(self.settings.poll_max);
                    tokio::time::sleep(delay.min(limit.saturating_sub(started.elapsed()))).await;
                }
            }
        }
    }

    /// Releases the copy until AWS no longer describes it; returns the seconds that took.
    async fn wait_gone(&self, id: &str, verb: &str) -> Result<u64> {
        let started = Instant::now();
        let limit = self.settings.gone_timeout;
        let copy = self.copy_kind();
        let mut delays = self.delays();
        loop {
            let status = match copy.release().await? {
                Release::Gone => return Ok(started.elapsed().as_secs()),
                Release::Pending { status } | Release::Busy { status } => status,
            };
            self.deps.ui.waiting(id, &status, started.elapsed());
            if started.elapsed() >= limit {
                return Err(Error::StillPending {
                    what: format!("the deletion of {id}"),
                    minutes: limit.as_secs() / 60,
                    detail: format!("status {status}"),
                    command: self.command(verb),
                });
            }
            self.check_cancel()?;
            let delay = delays.next().unwrap_or(self.settings.poll_max);
            tokio::time::sleep(delay.min(limit.saturating_sub(started.elapsed()))).await;
        }
    }

    /// Deletes the run's group, which EC2 refuses (`DependencyViolation`) while an instance
    /// still holds it and for a while after; only ever a group tagged with this run.
    async fn delete_group(&mut self, verb: &str) -> Result<String> {
        let Some(sg) = self.state.resources.security_group.clone() else {
            return Ok("no security group was created".into());
        };
        if self.state.resources.security_group_deleted {
            return Ok(format!("{sg} already deleted"));
        }
        match self.group_tags_settled(&sg).await? {
            None => {}
            Some(tags) => {
                self.ensure_ours(&tags, "delete security group", &sg)?;
                self.delete_group_patiently(&sg, verb).await?
            }
        }
        crash_point!("teardown-after-group");
        let r = &mut self.state.resources;
        (r.ingress_rule, r.security_group_deleted) = (None, true);
        self.save()?;
        Ok(format!("{sg} deleted"))
    }

    async fn delete_group_patiently(&self, sg: &str, verb: &str) -> Result<()> {
        let ec2 = self.deps.ec2;
        let limit = self.settings.dependency_timeout;
        self.patiently(
            limit,
            |e| code_is(e, "DependencyViolation"),
            || ec2.delete_security_group(sg),
        )
        .await
        .map_err(|e| match e {
            e if code_is(&e, "DependencyViolation") => Error::StillPending {
                what: format!("the deletion of security group {sg}"),
                minutes: limit.as_secs() / 60,
                detail: "EC2 still answers DependencyViolation: a network interface holds it".into(),
                command: self.command(verb),
            },
            e => e,
        })
    }

    // ---- abort ----

    /// Removes whatever the run created, in any state: the rule, the restored instance, and the
    /// group (also one created just before a crash, found by its run tag). Never touches
    /// production data.
    pub async fn abort(mut self) -> std::result::Result<crate::state::RunState, super::RunFailure> {
        match self.abort_inner().await {
            Ok(()) => Ok(self.state),
            Err(error) => {
                self.state.error = Some(format!("abort: {error}"));
                let _ = self.save();
                Err(super::RunFailure {
                    error,
                    resources_left: self.state.resources.held(),
                    state_path: self.store.path().to_path_buf(),
                    state: self.state,
                    confirmed_clean: false,
                })
            }
        }
    }

    async fn abort_inner(&mut self) -> Result<()> {
        self.deps.ui.step_started(Step::Revoke, "abort: the network access");
        let started = Instant::now();
        let note = self.revoke_rule().await?;
        self.deps.ui.step_finished(Step::Revoke, started.elapsed(), &note);
        self.deps
            .ui
            .step_started(Step::Teardown, "abort: the restored instance, then the security group");
        let started = Instant::now();
        let mut notes = vec![self.remove_copy("abort").await?];
        for g in self.unrecorded_groups().await? {
            if Some(&g.id) == self.state.resources.security_group.as_ref() {
                continue;
            }
            self.delete_group_patiently(&g.id, "abort").await?;
            notes.push(format!("unrecorded group {} deleted", g.id));
        }
        self.deps
            .ui
            .step_finished(Step::Teardown, started.elapsed(), &notes.join("; "));
        if let (Some(side), false) = (
            &self.state.resources.side_table,
            self.state.resources.side_table_dropped,
        ) {
            // abort never connects to a database; the side table holds no production data.
            self.deps.ui.warn(&format!(
                "the drill's side table {side} is still in production: drop it when done"
            ));
        }
        if let (Some(asof), false) = (
            &self.state.resources.asof_table,
            self.state.resources.asof_table_dropped,
        ) {
            // Nor for the binlog rewind's as-of table: a copy of the table, in the tool's own
            // database, holding nothing the real table needs.
            self.deps.ui.warn(&format!(
                "the binlog rewind's as-of table {asof} is still in production: drop it when done \
                 (DROP TABLE {asof})"
            ));
        }
        self.state.outcome = Outcome::Aborted;
        self.state.error = None;
        self.save()
    }

    /// Groups tagged with this run that the state does not hold: one created just before a
    /// crash. When the step that creates it had started, a group not listed yet may only be
    /// invisible for a moment, so the listing is repeated for `settle`.
    async fn unrecorded_groups(&self) -> Result<Vec<Group>> {
        let run_id = self.state.run_id.as_str();
        let recorded = self.state.resources.security_group.as_deref();
        let look = || async {
            let found: Vec<Group> = self
                .deps
                .ec2
                .security_groups_tagged(TAG_RUN_ID)
                .await?
                .into_iter()
                .filter(|g| g.tag(TAG_RUN_ID) == Some(run_id) && Some(g.id.as_str()) != recorded)
                .collect();
            Ok((!found.is_empty()).then_some(found))
        };
        let found = if recorded.is_none() && self.state.step(Step::SecurityGroup).is_some() {
            self.settled(false, look).await?
        } else {
            look().await?
        };
        Ok(found.unwrap_or_default())
    }

    /// Asks AWS whether anything of this run is left, after a failure that recorded nothing
    /// held: true only when AWS describes neither the copy nor its group. A restore that failed
    /// may still have been acted on (its answer lost): one found is recorded, so `abort` and
    /// `resume` see it.
    pub(super) async fn confirm_clean(&mut self) -> bool {
        let id = self.state.plan.target_instance.clone();
        let described = if self.state.step(Step::Restore).is_some() {
            self.until_described().await
        } else {
            self.copy_kind().observe().await
        };
        match described {
            Ok(None) => {}
            Ok(Some(i)) if i.tag(TAG_RUN_ID) == Some(self.state.run_id.as_str()) => {
                let r = &mut self.state.resources;
                (
                    r.restored_instance,
                    r.restored_instance_deleted,
                    r.restored_instance_gone,
                ) = (Some(id), i.status == "deleting", false);
                let _ = self.save();
                return false;
            }
            _ => return false,
        }
        if self.state.step(Step::SecurityGroup).is_none() {
            return true;
        }
        matches!(self.unrecorded_groups().await, Ok(g) if g.is_empty())
    }
}

/// Appends `status` when it differs from the last one seen; true when it did.
fn push_new(seen: &mut Vec<String>, status: &str) -> bool {
    if seen.last().map(String::as_str) == Some(status) {
        return false;
    }
    seen.push(status.to_string());
    true
}

#[cfg(test)]
mod tests {
    use super::push_new;

    #[test]
    fn the_statuses_seen_are_kept_once_each_in_order() {
        let mut seen = Vec::new();
        for s in ["not visible yet", "creating", "creating", "available"] {
            push_new(&mut seen, s);
        }
        assert_eq!(seen, ["not visible yet", "creating", "available"]);
    }
}
