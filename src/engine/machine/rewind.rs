//! The run when the table is rewound through production's binlog (`--source binlog`): the
//! same steps in the same order, so a state file, a report and a resume read alike. The
//! restore step builds the as-of table beside the real one; the steps that exist for a
//! restored instance (its security group, the wait, the door) have nothing to do; the copy
//! and the verification read the as-of table through a production session; the teardown
//! drops it. Nothing is asked of AWS but descriptions.

use super::*;

impl Machine<'_> {
    pub(super) async fn drive_binlog(&mut self, source: Source) -> Result<()> {
        if source.schema.is_none() {
            return Err(Error::InvalidInput(format!(
                "`{}` does not exist in production: a binlog rewind starts from its rows now; use --source pitr \
                 (the default) with --recreate-table",
                self.state.plan.table
            )));
        }
        self.skip(Step::SecurityGroup)?;
        if !self.state.finished(Step::Restore) {
            self.rewind(&source).await?;
        }
        self.skip(Step::Wait)?;
        self.skip(Step::OpenAccess)?;
        let endpoint = source.production.clone();
        if !self.state.finished(Step::Copy) {
            self.copy(&source, &endpoint).await?;
        }
        if !self.state.finished(Step::Verify) {
            self.verify(&source, &endpoint).await?;
        }
        self.skip(Step::Revoke)?;
        if !self.state.finished(Step::Teardown) {
            self.begin(Step::Teardown, "the as-of table")?;
            let mut summary = self.drop_asof_table(&endpoint).await?;
            if let Some(drill) = self.state.plan.drill.clone() {
                if drill.keep {
                    summary.push_str(&format!("; side table {} kept", drill.target));
                } else {
                    summary.push_str(&format!("; {}", self.drop_side_table().await?));
                }
            }
            self.finish(&summary)?;
        }
        self.begin(Step::Report, "summary")?;
        self.state.outcome = Outcome::Succeeded;
        self.finish("done")
    }

    /// A step of the instance restore that a rewind has no use for: recorded as done, so the
    /// run's steps read the same either way.
    fn skip(&mut self, step: Step) -> Result<()> {
        if self.state.finished(step) {
            return Ok(());
        }
        self.begin(step, "not needed: the table is rewound through the binlog")?;
        self.finish("not needed: nothing is created in AWS")
    }

    /// Builds the as-of table. A rewind cut short is begun again: the as-of table is dropped
    /// and made anew (it is recorded, and named for this run, before it exists).
    async fn rewind(&mut self, source: &Source) -> Result<()> {
        let plan = self.state.plan.clone();
        let asof = plan
            .asof
            .clone()
            .ok_or_else(|| Error::InvalidInput("a binlog rewind without an as-of table".into()))?;
        self.begin(
            Step::Restore,
            &format!(
                "rewinding `{}` to {} through production's binlog",
                plan.table,
                rfc3339(plan.restore_time)
            ),
        )?;
        if self.state.resources.asof_table.is_none() {
            self.state.resources.asof_table = Some(asof.clone());
            self.save()?;
        }
        // Validation's read, made just before in this process, found where the changes begin.
        let from = self.rewind_checked.as_ref().and_then(|c| c.first_at.clone());
        let request = crate::ports::RewindRequest {
            table: &plan.table,
            asof: &asof,
            to: plan.restore_time,
            before: plan.before.as_deref(),
            from: from.as_deref(),
            changed_keys_only: plan.asof_changed_keys_only(),
        };
        let outcome = self.deps.db.rewind(&source.production, &request, false).await?;
        self.state.resources.asof_table_dropped = false;
        crash_point!("rewind-after-build");
        let at = rfc3339(plan.restore_time);
        let holds = match outcome.changed_keys_only {
            true => format!(
                "the {} rows of the {} keys changed since, as they were at {at} (every other row is in `{}` as it \
                 was then)",
                outcome.rows, outcome.keys_rewound, plan.table
            ),
            false => format!(
                "the table as of {at}: {} rows, {} keys put back",
                outcome.rows, outcome.keys_rewound
            ),
        };
        self.finish(&format!(
            "`{asof}` holds {holds}, from {} transactions since (binlog read to {})",
            outcome.transactions, outcome.end
        ))
    }

    /// Drops the as-of table: only the one this run recorded, never the real table.
    pub(super) async fn drop_asof_table(&mut self, endpoint: &Endpoint) -> Result<String> {
        let Some(asof) = self.state.resources.asof_table.clone() else {
            return Ok("no as-of table was created".into());
        };
        if self.state.resources.asof_table_dropped {
            return Ok(format!("as-of table {asof} already dropped"));
        }
        if asof == self.state.plan.table || Some(&asof) == self.state.plan.drill.as_ref().map(|d| &d.target) {
            return Err(Error::InvalidInput(format!(
                "refusing to drop {asof}: it is not the as-of table"
            )));
        }
        let mut session = self.deps.db.connect(Side::Production, endpoint).await?;
        session.drop_table(&asof).await?;
        self.state.resources.asof_table_dropped = true;
        self.save()?;
        Ok(format!("as-of table {asof} dropped"))
    }
}
