//! The data steps: connect to both servers, copy the restored rows into production chunk by
//! chunk (or into a side table), recreate a dropped table, verify, and the side table's life.

use super::*;
use crate::ports::KeyRange;
use crate::verify::Verification;

impl Machine<'_> {
    // ---- 5. copy ----

    /// Opens both sessions and checks the restored table matches production's.
    pub(super) async fn connect_pair(&mut self, source: &Source, endpoint: &Endpoint) -> Result<()> {
        let plan = &self.tplan();
        // Both sessions open at once: over a VPN or a tunnel each takes several round trips
        // (TCP, TLS, the handshake, and with `--compress auto` a first session that measures
        // the link), and one after the other they kept the copy from starting for a second.
        let (mut restored, production) = tokio::try_join!(
            self.deps.db.connect(self.restored_side(), endpoint),
            production_for_writes(self.deps.db, &source.production, self.checks_off())
        )?;
        let restored_schema = restored
            .table_schema(plan.restored_table())
            .await?
            .ok_or_else(|| missing_on_restored(plan))?;
        // A side table is made from the restored definition, so only a merge needs them equal.
        if plan.drill.is_none() {
            compare_schemas(&restored_schema, source.schema()?)?;
        }
        if let Some(p) = &plan.where_predicate {
            let n = check_where(restored.as_mut(), plan.restored_table(), p, "the restored copy").await?;
            self.deps.ui.note(&format!("--where matches {n} restored rows"));
        }
        self.restored_session = Some(restored);
        self.production_session = Some(production);
        Ok(())
    }

    /// Runs `work` with both sessions, reconnecting after a lost connection (the chunk in
    /// flight was rolled back by the server; the work continues from the checkpoint).
    pub(super) async fn with_reconnects<F>(&mut self, source: &Source, endpoint: &Endpoint, mut work: F) -> Result<()>
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
                    self.drop_sessions();
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

    pub(super) async fn copy(&mut self, source: &Source, endpoint: &Endpoint) -> Result<()> {
        if !self.state.tables.is_empty() {
            return self.copy_tables(source, endpoint).await;
        }
        let plan = self.state.plan.clone();
        self.begin(
            Step::Copy,
            &format!(
                "{} from {} into production `{}` ({})",
                plan.table,
                match &plan.asof {
                    Some(asof) => format!("the as-of table {asof}"),
                    None => plan.target_instance.clone(),
                },
                plan.target_table(),
                if plan.drill.is_some() {
                    "new table"
                } else {
                    plan.mode.name()
                }
            ),
        )?;
        let summary = self.copy_table(source, endpoint).await?;
        self.finish(&summary)
    }

    /// The copy of one table (the run's, or the current pass's of a run of several), from its
    /// checkpoint to its end; the summary comes back.
    pub(super) async fn copy_table(&mut self, source: &Source, endpoint: &Endpoint) -> Result<String> {
        let plan = self.tplan();
        let merge = plan.merge();
        let schema = self.data_schema(source, endpoint).await?;
        // Before anything is written or created: a row no statement can carry stops the run.
        let chunk_bytes = self.check_packets(source, endpoint, &schema).await?;
        if let Some(drill) = plan.drill.clone() {
            self.create_side_table(&drill.target, endpoint).await?;
        }
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
                let plan = m.tplan();
                let pass = m.pass;
                let checks_off = m.checks_off();
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
                let restored_side = m.restored_side();
                let (Some(restored), Some(production)) = (m.restored_session.as_mut(), m.production_session.as_mut())
                else {
                    return Err(Error::Interrupted);
                };
                // The link, measured once per connection: what each statement waits on it.
                let (to_restored, to_production) =
                    tokio::try_join!(restored.link_round_trip(), production.link_round_trip())?;
                let job = CopyJob {
                    chunk_bytes,
                    lock_floor: to_production * ROUND_TRIPS_PER_CHUNK,
                    ..CopyJob::of(&plan, &schema)
                };
                if merge != Merge::MissingRows && m.state.progress(pass).planned.is_none() {
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
                    m.state.progress_mut(pass).planned = Some(counted);
                    m.state.updated_at = Utc::now();
                    m.store.save(&m.state)?;
                }
                if first {
                    let estimate = restored.estimate_rows(plan.restored_table()).await.unwrap_or(None);
                    m.deps.ui.copy_started(estimate);
                }
                let progress = m.state.progress(pass);
                let writers = match (schema.key.is_empty() || plan.dump_file.is_some(), plan.parallel) {
                    (true, _) => 1,
                    // `auto`, chosen once: a run that already split keeps its writers, one that
                    // checkpointed with one writer keeps one.
                    (false, 0) if !progress.workers.is_empty() => progress.workers.len(),
                    (false, 0) if progress.chunks > 0 => 1,
                    (false, 0) => {
                        let n = auto_writers(to_restored.max(to_production));
                        m.deps.ui.note(&format!(
                            "--parallel auto: {n} writers (round trip {:.1} ms to the restored copy, {:.1} ms to \
                             production: {})",
                            to_restored.as_secs_f64() * 1000.0,
                            to_production.as_secs_f64() * 1000.0,
                            if n <= 2 {
                                "a fast link, where the servers' CPUs are the limit"
                            } else {
                                "a slow link, where each writer waits on round trips"
                            }
                        ));
                        n
                    }
                    (false, n) => n,
                };
                if writers > 1 || !m.state.progress(pass).workers.is_empty() {
                    // The first writer uses the run's sessions; each other one opens its own,
                    // while the restored server finds the writers' bounds (over a slow link
                    // each takes about as long). A small table may split into fewer ranges:
                    // the pairs it does not need are closed.
                    let mut extra = if m.state.progress(pass).workers.is_empty() {
                        let (ranges, extra) = tokio::try_join!(
                            split(restored.as_mut(), &job, writers),
                            open_pairs(m.deps.db, writers - 1, restored_side, &restored_at, &production_at, checks_off)
                        )?;
                        m.state.progress_mut(pass).workers = ranges;
                        m.state.updated_at = Utc::now();
                        m.store.save(&m.state)?;
                        extra
                    } else {
                        let others = m.state.progress(pass).workers.len() - 1;
                        open_pairs(m.deps.db, others, restored_side, &restored_at, &production_at, checks_off).await?
                    };
                    extra.truncate(m.state.progress(pass).workers.len() - 1);
                    let mut pairs: Vec<(&mut dyn Session, &mut dyn Session)> = vec![(restored.as_mut(), production.as_mut())];
                    pairs.extend(extra.iter_mut().map(|(r, p)| (r.as_mut(), p.as_mut())));
                    let (ui, cancel) = (m.deps.ui, &m.cancel);
                    let first_chunks: Vec<bool> = m.state.progress(pass).workers.iter().map(|w| w.copy.chunks == 0).collect();
                    let shared = std::sync::Mutex::new((&mut m.state, &m.store));
                    // On a sparse table every writer's locking read would take the same gap and
                    // they would deadlock each other. So the writers' first chunks go one at a
                    // time, from the highest range down: each then finds the rows of the range
                    // above it in place, which bound its gap locks.
                    for (i, (r, p)) in pairs.iter_mut().enumerate().skip(1).rev() {
                        if first_chunks[i] {
                            run_writer(i, pass, &mut **r, &mut **p, &job, &shared, ui, cancel, true).await?;
                        }
                    }
                    let runs = pairs
                        .into_iter()
                        .enumerate()
                        .map(|(i, (r, p))| run_writer(i, pass, r, p, &job, &shared, ui, cancel, false));
                    // Every writer runs to its end or its error; the first error is the run's.
                    for result in futures_util::future::join_all(runs).await {
                        result?;
                    }
                    m.spare_pairs = extra;
                    return Ok(());
                }
                let start = m.state.progress(pass).clone();
                let (store, state) = (&m.store, &mut m.state);
                let mut checkpoint = |p: &crate::state::CopyProgress| {
                    *state.progress_mut(pass) = p.clone();
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
        let done = self.state.progress(self.pass).clone();
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
        Ok(match merge {
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
        } + &how)
    }

    /// The production table was dropped: creates it from the restored copy's definition, with
    /// the operator's consent (asked here, with the definition on screen, or `--recreate-table`).
    /// Recorded before it is created, so a crash in between is finished on resume without
    /// asking again. The copy then fills it.
    pub(super) async fn recreate_table(&mut self, mut source: Source, endpoint: &Endpoint) -> Result<Source> {
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

    pub(super) async fn verify(&mut self, source: &Source, endpoint: &Endpoint) -> Result<()> {
        // What a foreign key cascade took with the table is counted whatever the mode.
        self.count_dependents(endpoint, source).await;
        if self.state.plan.dump_only {
            self.begin(Step::Verify, "nothing to verify: --dump-only")?;
            let path = self.state.plan.dump_file.clone().unwrap_or_default();
            return self.finish(&format!(
                "skipped: production was not written; the rows it lacks are in {}",
                path.display()
            ));
        }
        if !self.state.tables.is_empty() {
            return self.verify_tables(source, endpoint).await;
        }
        self.begin(Step::Verify, "every restored row against production, by key")?;
        let v = self.verify_table(source, endpoint).await?;
        if !v.passed {
            return Err(v.failure());
        }
        self.finish(&v.summary())
    }

    /// The final pass over one table (the run's, or the current pass's): its verification, recorded in
    /// the state (the run's, or the pass's) and saved before it is returned.
    pub(super) async fn verify_table(&mut self, source: &Source, endpoint: &Endpoint) -> Result<Verification> {
        let schema = self.data_schema(source, endpoint).await?;
        let endpoints = (endpoint.clone(), source.production.clone());
        self.with_reconnects(source, endpoint, |m| {
            let schema = schema.clone();
            let endpoints = endpoints.clone();
            Box::pin(async move {
                let plan = m.tplan();
                let restored_side = m.restored_side();
                let (Some(restored), Some(production)) = (m.restored_session.as_mut(), m.production_session.as_mut())
                else {
                    return Err(Error::Interrupted);
                };
                // Ranges of at least VERIFY_RANGE_ROWS: a checksum moves no rows, so a bigger
                // range costs the servers no more and the link fewer round trips.
                let job = CopyJob {
                    chunk_size: plan.chunk_size.max(VERIFY_RANGE_ROWS),
                    ..CopyJob::of(&plan, &schema)
                };
                // The copy's writers' key ranges, verified side by side as they were copied:
                // over a slow link each range's checksums wait on round trips, and the writers'
                // count was chosen for that link. The first part uses the run's sessions; the
                // others take the copy's other writers' sessions when this run copied the
                // table, and open theirs all at once otherwise (a resumed run).
                let progress = m.state.progress(m.pass);
                let bounds = verify_bounds(&progress.workers)?;
                let (restored_at, production_at) = &endpoints;
                let mut extra = std::mem::take(&mut m.spare_pairs);
                extra.truncate(bounds.len() - 1);
                let more = open_pairs(
                    m.deps.db,
                    bounds.len() - 1 - extra.len(),
                    restored_side,
                    restored_at,
                    production_at,
                    false,
                )
                .await?;
                extra.extend(more);
                let sessions = std::iter::once((restored.as_mut(), production.as_mut()))
                    .chain(extra.iter_mut().map(|(r, p)| (r.as_mut(), p.as_mut())));
                let parts = sessions
                    .zip(bounds)
                    .map(|((restored, production), (start, end))| Part {
                        restored,
                        production,
                        start,
                        end,
                    })
                    .collect();
                let v = verify_parts(parts, &job, progress, m.deps.ui, &m.cancel).await?;
                crash_point!("verify-after-call");
                match m.pass {
                    Some(i) => m.state.tables[i].verification = Some(v),
                    None => m.state.verification = Some(v),
                }
                m.save()
            })
        })
        .await?;
        let v = match self.pass {
            Some(i) => self.state.tables[i].verification.clone(),
            None => self.state.verification.clone(),
        };
        v.ok_or(Error::Interrupted)
    }

    pub(super) async fn create_side_table(
        &mut self,
        target: &crate::ports::TableRef,
        endpoint: &Endpoint,
    ) -> Result<()> {
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
            let read_from = self.state.plan.restored_table().clone();
            let definition = self
                .deps
                .db
                .connect(self.restored_side(), endpoint)
                .await?
                .show_create_table(&read_from)
                .await?
                .ok_or_else(|| missing_on_restored(&self.state.plan))?;
            let session = self.lock_session.as_mut().ok_or(Error::Interrupted)?;
            session.create_table_from(target, &read_from.table, &definition).await?;
        }
        Ok(())
    }

    /// The schema the copy and the verification work with: production's for a merge (checked
    /// equal to the restored one), the restored table's for a new side table (production's may
    /// have changed since, which side-table mode is for).
    pub(super) async fn data_schema(&mut self, source: &Source, endpoint: &Endpoint) -> Result<TableSchema> {
        if self.state.plan.drill.is_none() {
            return Ok(source.schema()?.clone());
        }
        let table = self.tplan().restored_table().clone();
        self.deps
            .db
            .connect(self.restored_side(), endpoint)
            .await?
            .table_schema(&table)
            .await?
            .ok_or_else(|| missing_on_restored(&self.state.plan))
    }

    /// Drops the drill's side table: only the one this run recorded, never the real table.
    pub(super) async fn drop_side_table(&mut self) -> Result<String> {
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
}

/// The fewest rows a range of the final verification holds. Each range is one checksum query
/// per server, which returns two numbers whatever its size: over a link of 40 ms, 1M rows in
/// ranges of 1,000 (the default chunk) wait 40 s on round trips alone, in ranges of 10,000 four.
/// A range whose checksums differ is compared by per-row hashes: 10,000 keys and 32 bytes each.
const VERIFY_RANGE_ROWS: usize = 10_000;

/// The round trips a chunk's locks wait on in production, from the locking read's answer to its
/// commit's (missing-rows mode): the LOAD's file, then the check and commit, which go with the
/// next chunk's first statements (`data/mysql/chunk.rs`). The other modes' updates and deletes
/// add theirs.
const ROUND_TRIPS_PER_CHUNK: u32 = 2;

/// `--parallel auto`: how many writers for a link whose slower round trip is `rtt`. On a fast
/// link (under 2 ms: the same host, the same VPC) two, which scripts/bench found best on two
/// cores, where the servers' CPUs are the limit; over a VPN or a tunnel each writer spends most
/// of a chunk waiting for round trips (two or three in production, one to the restored copy), so more
/// writers keep the link busy: four up to 10 ms, eight beyond.
pub(super) fn auto_writers(rtt: Duration) -> usize {
    match rtt.as_micros() {
        0..2_000 => 2,
        2_000..10_000 => 4,
        _ => 8,
    }
}

pub(super) type SharedState<'s> = std::sync::Mutex<(&'s mut RunState, &'s StateStore)>;

/// One of `--parallel` writers: copies its key range from its checkpoint, recording each chunk
/// in its own slot of the state (and the totals); with `first_only`, one chunk and no more.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_writer(
    i: usize,
    pass: Option<usize>,
    restored: &mut dyn Session,
    production: &mut dyn Session,
    job: &CopyJob<'_>,
    shared: &SharedState<'_>,
    ui: &dyn Progress,
    cancel: &AtomicBool,
    first_only: bool,
) -> Result<()> {
    let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
    let (w, writers) = {
        let state = lock();
        let workers = &state.0.progress(pass).workers;
        (workers[i].clone(), workers.len())
    };
    let start = w.start.as_deref().map(crate::copy::decode_key).transpose()?;
    let end = w.end.as_deref().map(crate::copy::decode_key).transpose()?;
    let job = CopyJob {
        start: start.as_deref(),
        end: end.as_deref(),
        max_chunks: first_only.then_some(1),
        // The writers share the byte budget: what the tool holds in flight does not grow with
        // their number (8 writers over a slow link held 8 budgets before).
        chunk_bytes: writer_budget(job.chunk_bytes, writers),
        ..*job
    };
    let mut checkpoint = |progress: &crate::state::CopyProgress| {
        let mut guard = lock();
        let (state, store) = &mut *guard;
        let copy = state.progress_mut(pass);
        copy.workers[i].copy = progress.clone();
        copy.sum_workers();
        let (read, written) = (copy.rows_read, copy.inserted + copy.updated);
        state.updated_at = Utc::now();
        ui.copy_progress(read, written);
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

/// `n` more pairs of sessions (restored, production), all opened at once: over a 40 ms link a
/// TLS session takes about 0.3 s to open, and one after another 14 of them took 4 s.
async fn open_pairs(
    db: &dyn Connector,
    n: usize,
    restored_side: Side,
    restored_at: &Endpoint,
    production_at: &Endpoint,
    checks_off: bool,
) -> Result<Vec<(Box<dyn Session>, Box<dyn Session>)>> {
    futures_util::future::try_join_all((0..n).map(|_| async move {
        tokio::try_join!(
            db.connect(restored_side, restored_at),
            production_for_writes(db, production_at, checks_off)
        )
    }))
    .await
}

/// One writer's share of the chunk byte budget: an equal part, but never under `--chunk-bytes`'
/// own floor (64 KiB), so a narrow table's chunks are not cut to a few rows.
pub(super) fn writer_budget(chunk_bytes: usize, writers: usize) -> usize {
    (chunk_bytes / writers.max(1)).max(MIN_WRITER_BYTES.min(chunk_bytes))
}

const MIN_WRITER_BYTES: usize = 64 << 10;

/// The key ranges verification takes side by side: the copy's writers' ranges, or the whole
/// table (one writer, or none recorded).
fn verify_bounds(
    workers: &[crate::state::WorkerProgress],
) -> Result<Vec<(Option<crate::ports::Row>, Option<crate::ports::Row>)>> {
    let decode =
        |key: &Option<Vec<crate::rowcodec::StoredValue>>| key.as_deref().map(crate::copy::decode_key).transpose();
    match workers.len() {
        0 | 1 => Ok(vec![(None, None)]),
        _ => workers
            .iter()
            .map(|w| Ok((decode(&w.start)?, decode(&w.end)?)))
            .collect(),
    }
}

/// Splits the restored table's keys into `writers` ranges of about the same number of rows
/// (fewer when the table is small), as `--parallel` writers' checkpoints to start from.
pub(super) async fn split(
    restored: &mut dyn Session,
    job: &CopyJob<'_>,
    writers: usize,
) -> Result<Vec<crate::state::WorkerProgress>> {
    use crate::rowcodec::StoredValue;
    let rows = restored.count_where(job.source, job.filter.unwrap_or("TRUE")).await?;
    let writers = (writers as u64).min(rows / job.chunk_size.max(1) as u64).max(1);
    // Each bound is found from the one before it: the server walks the table once, not once
    // per bound (at 1M rows and 8 writers, 0.9M rows instead of 3.5M).
    let step = (rows / writers).max(1) as usize;
    let mut bounds: Vec<Vec<StoredValue>> = Vec::new();
    let mut after: Option<crate::ports::Row> = None;
    for _ in 1..writers {
        match restored
            .chunk_end(
                job.source,
                job.schema,
                KeyRange {
                    after: after.as_deref(),
                    upto: None,
                },
                job.filter,
                step,
            )
            .await?
        {
            Some((key, true)) => {
                bounds.push(key.iter().map(StoredValue::from).collect());
                after = Some(key);
            }
            _ => break,
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
pub(super) fn missing_on_restored(plan: &Plan) -> Error {
    Error::SchemaMismatch(format!(
        "`{}` does not exist on the restored instance (it did not exist at {})",
        plan.table,
        rfc3339(plan.restore_time)
    ))
}

/// The changes counted before an overwrite or replace-all writes anything.
pub(super) fn changes_text(plan: &Plan, c: &crate::state::PlannedChanges) -> String {
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

/// The restored table must have production's columns, types and key, or rows would not fit.
pub(super) fn compare_schemas(restored: &TableSchema, production: &TableSchema) -> Result<()> {
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

    #[test]
    fn auto_writers_grow_with_the_round_trip() {
        let ms = |n: u64| Duration::from_micros(n * 1000);
        assert_eq!(auto_writers(Duration::from_micros(80)), 2, "loopback");
        assert_eq!(auto_writers(ms(1)), 2, "the same VPC");
        assert_eq!(auto_writers(ms(5)), 4, "a nearby tunnel");
        assert_eq!(auto_writers(ms(40)), 8, "a VPN across a continent");
    }

    #[test]
    fn writers_share_the_byte_budget_down_to_its_floor() {
        assert_eq!(writer_budget(8 << 20, 1), 8 << 20);
        assert_eq!(writer_budget(8 << 20, 8), 1 << 20);
        assert_eq!(writer_budget(256 << 10, 8), 64 << 10, "never under 64 KiB");
        assert_eq!(
            writer_budget(32 << 10, 8),
            32 << 10,
            "nor over a smaller budget (half a packet limit)"
        );
    }
}
