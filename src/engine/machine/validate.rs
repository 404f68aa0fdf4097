//! Step 1, validate: every read-only check before anything is created (the source, the
//! restore window, the table and its key, privileges, triggers, the production lock), and the
//! operator's consent to the plan.

use super::*;

impl Machine<'_> {
    // ---- 1. validate ----

    pub(super) async fn validate(&mut self) -> Result<Source> {
        let plan = self.state.plan.clone();
        self.begin(Step::Validate, &format!("{} on {}", plan.table, plan.source_instance))?;
        // The source: an instance, or a DB cluster (named, or through one of its members).
        let found = crate::restored::find_source(
            self.deps.rds,
            &plan.source_instance,
            plan.source_cluster.as_deref(),
            &self.settings.region,
        )
        .await?;
        if self.state.plan.cluster.is_none() {
            if let Some(cluster) = found.cluster_plan(&plan.target_instance, plan.instance_class.as_deref())? {
                if let Some(note) = found.note() {
                    self.deps.ui.note(note);
                }
                // Kept in the plan before anything is created, so the kind of copy (and its
                // writer's name) is the same on every resume.
                self.state.plan.cluster = Some(cluster);
                self.state.resources.restored_is_cluster = true;
                self.save()?;
            }
        }
        let plan = self.state.plan.clone();
        let instance = found.view();
        let engine = instance.engine.to_ascii_lowercase();
        if plan.cluster.is_none() && engine != "mysql" && engine != "mariadb" {
            return Err(Error::UnsupportedEngine {
                id: instance.id.clone(),
                engine: instance.engine.clone(),
            });
        }
        let mut window = String::from("restore already under way");
        if plan.is_binlog() {
            // No copy is restored: the window is the binlog's, checked with the rest of the
            // rewind's conditions below.
            window = "the binlog's".into();
            if plan.dump_only {
                return Err(Error::InvalidInput(
                    "--dump-only writes nothing to production, and a binlog rewind builds its as-of table there: \
                     use --source pitr (the default) with --dump-only"
                        .into(),
                ));
            }
        } else {
            // A copy requested just before a crash may not be visible yet: only a settled answer
            // says it is gone.
            let target = match self.copy_kind().observe().await? {
                None if self.state.resources.restored_instance.is_some() && !self.state.finished(Step::Verify) => {
                    self.until_described().await?
                }
                found => found,
            };
            match target {
                // Ours, from before a crash or an interruption: it is adopted, the window no longer matters.
                Some(target) if target.tag(TAG_RUN_ID) == Some(plan.run_id.as_str()) => {}
                Some(_) => {
                    return Err(Error::InvalidInput(format!(
                        "the name `{}` is taken by an existing {} that this run did not create: \
                         another run is restoring the same table to the same second",
                        plan.target_instance,
                        plan.copy_noun()
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
                    let (earliest, latest) = self.restore_window(&instance).await?;
                    check_window(&instance, plan.restore_time, earliest, latest)?;
                    self.state.window = Some(crate::state::Window {
                        earliest,
                        latest,
                        checked_at: Utc::now(),
                    });
                    window = format!("window {} .. {}", rfc3339(earliest), rfc3339(latest));
                }
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
        if schema.is_none() && plan.is_multi() {
            return Err(Error::InvalidInput(format!(
                "`{}` does not exist in production: bring it back alone first (its definition comes from the \
                 restored copy, with --recreate-table), then the other tables",
                plan.table
            )));
        }
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
        self.check_dependents(session.as_mut()).await?;
        let schemas = match plan.is_multi() {
            true => self.check_tables(session.as_mut()).await?,
            false => Vec::new(),
        };
        if let (true, Some(asof), Some(_)) = (plan.is_binlog(), &plan.asof, &schema) {
            if !self.state.finished(Step::Restore) {
                let checked = self
                    .deps
                    .db
                    .rewind(
                        &production,
                        &crate::ports::RewindRequest {
                            table: &plan.table,
                            asof,
                            to: plan.restore_time,
                            before: plan.before.as_deref(),
                            from: None,
                            changed_keys_only: plan.asof_changed_keys_only(),
                        },
                        true,
                    )
                    .await?;
                self.deps.ui.note(&format!(
                    "binlog rewind possible: {} transactions wrote `{}` after {} (binlog read to {})",
                    checked.transactions,
                    plan.table,
                    rfc3339(plan.restore_time),
                    checked.end
                ));
                self.rewind_checked = Some(checked);
            }
        }
        // What a statement may carry: the copy's chunks are held within it, and a restored row
        // past it is refused before the first write.
        let packet = super::packets::size_text(session.max_allowed_packet().await?);
        // One lock per table written: a run of several tables holds each one's.
        let mut written = vec![plan.clone()];
        written.extend(
            self.state
                .tables
                .iter()
                .filter(|p| p.table != plan.table)
                .map(|p| plan.for_table(&p.table)),
        );
        for each in &written {
            let lock = production_lock_name(each);
            if !session.try_advisory_lock(&lock).await? {
                return Err(Error::ProductionBusy {
                    table: each.table.to_string(),
                    lock,
                });
            }
        }
        self.lock_session = Some(session);
        self.finish(&format!(
            "{} ({} {}), {window}, {}",
            instance.id,
            instance.engine,
            instance.engine_version.as_deref().unwrap_or(""),
            match &schema {
                Some(s) => format!("table has {} columns, max_allowed_packet {packet}", s.columns.len()),
                None => format!("table missing in production, max_allowed_packet {packet}"),
            }
        ))?;
        Ok(Source {
            instance,
            production,
            schema,
            schemas,
        })
    }

    pub(super) fn consent(&mut self, source: &Source, resuming: bool) -> Result<()> {
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
            plan_text(
                plan,
                &source.instance,
                source.schema.is_none(),
                &self.state.dependents,
                &self.state.tables
            )
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
        if !plan.is_binlog() && !plan.single_host() {
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
            Ok(source) => {
                let text = plan_text(
                    &self.state.plan,
                    &source.instance,
                    source.schema.is_none(),
                    &self.state.dependents,
                    &self.state.tables,
                );
                let sources = self.sources(&source.instance).await;
                Ok(format!("{text}\n{}", super::plan_text::sources_text(&sources)))
            }
            Err(error) => Err(self.fail(error).await),
        }
    }

    /// RDS's restore window of the source: (earliest, latest).
    async fn restore_window(&self, instance: &Instance) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
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
        let earliest = match instance.earliest_restorable {
            Some(t) => Some(t),
            None if self.state.plan.cluster.is_some() => None,
            None => {
                self.deps
                    .rds
                    .earliest_restorable_time(&instance.id, instance.dbi_resource_id.as_deref())
                    .await?
            }
        };
        let earliest = match earliest {
            Some(t) => t,
            None => instance.created.ok_or_else(|| Error::NoRestoreWindow {
                id: instance.id.clone(),
                status: instance.status.clone(),
            })?,
        };
        Ok((earliest, latest))
    }

    /// For `plan`: both ways of obtaining the table, the one not chosen asked read-only whether
    /// it could serve (the RDS window; the binlog's checks, which read the binlog from the point).
    async fn sources(&mut self, instance: &Instance) -> super::plan_text::Sources {
        let plan = self.state.plan.clone();
        let rows = match self.lock_session.as_mut() {
            Some(s) => s.estimate_rows(&plan.table).await.unwrap_or(None),
            None => None,
        };
        let why = |e: Error| match e {
            Error::BinlogUnusable { what, .. } => what,
            other => crate::error::one_line(&other.to_string()),
        };
        let pitr = if plan.is_binlog() {
            match self.restore_window(instance).await {
                Ok((earliest, latest)) => check_window(instance, plan.restore_time, earliest, latest).map_err(why),
                Err(e) => Err(why(e)),
            }
        } else {
            Ok(())
        };
        let binlog = match (plan.is_binlog(), instance.endpoint.as_ref()) {
            (true, _) => Ok(self.rewind_checked.clone().unwrap_or_default()),
            (false, None) => Err("production has no endpoint".to_string()),
            (false, Some(production)) => {
                let asof = crate::ports::TableRef {
                    database: crate::plan::SCRATCH_DATABASE.into(),
                    table: crate::plan::asof_table_name(&plan.table.table, &plan.run_id),
                };
                self.deps
                    .db
                    .rewind(
                        production,
                        &crate::ports::RewindRequest {
                            table: &plan.table,
                            asof: &asof,
                            to: plan.restore_time,
                            before: None,
                            from: None,
                            // As `--source binlog` would with the same mode.
                            changed_keys_only: !plan.rewind_needs_whole_table(),
                        },
                        true,
                    )
                    .await
                    .map_err(why)
            }
        };
        super::plan_text::Sources {
            chosen_binlog: plan.is_binlog(),
            rows,
            pitr,
            binlog,
        }
    }
}

/// The name of the production advisory lock for the table the run writes (at most 64
/// characters, as MySQL wants): a drill writing its side table never blocks a real restore.
pub(super) fn production_lock_name(plan: &Plan) -> String {
    use sha2::{Digest, Sha256};
    let t = plan.target_table();
    let digest = hex::encode(Sha256::digest(format!("{}\0{}", t.database, t.table)));
    format!("rds-table-restore:{}", &digest[..40])
}

pub(super) fn check_window(
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
