//! One turn of the copy in production: a chunk written, the one held before it closed, and
//! what is committed recorded (progress, checkpoint, chunk size, dump file) in the order it was
//! committed.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{adapt_cap, CopyJob, DumpFile, CONFLICT_RETRIES};
use crate::error::{Error, Result};
use crate::ports::{ChunkOutcome, ChunkProof, HeldChunk, KeyRange, Merge, Opened, Row, Session, Value};
use crate::progress::Progress;
use crate::rowcodec::StoredValue;
use crate::state::CopyProgress;

/// A chunk in production: its key, its rows, what its merge found and did, and when its
/// transaction began (what `--max-lock-ms` is measured from).
pub(super) struct ChunkMeta {
    pub(super) key: Option<Vec<Value>>,
    pub(super) rows: usize,
    pub(super) outcome: ChunkOutcome,
    pub(super) opened: std::time::Instant,
}

/// A chunk written and held open: its check and commit go with the next chunk.
pub(super) struct InFlight {
    pub(super) chunk: HeldChunk,
    pub(super) meta: ChunkMeta,
}

/// The chunk a range starts after: the held one's last key, or the last committed.
pub(super) fn after_of<'k>(in_flight: &'k Option<InFlight>, after: &'k Option<Vec<Value>>) -> Option<&'k [Value]> {
    match in_flight {
        Some(held) => held.meta.key.as_deref(),
        None => after.as_deref(),
    }
}

/// What one turn of the copy did in production.
#[derive(Default)]
pub(super) struct Step {
    /// The chunk held before, committed in this turn, and when.
    pub(super) closed: Option<(ChunkMeta, std::time::Instant)>,
    /// This turn's chunk, unless there was nothing to write.
    pub(super) this: Option<This>,
    /// What stopped the turn (after `closed`, which is in production).
    pub(super) error: Option<Error>,
}

pub(super) enum This {
    Committed(ChunkMeta, std::time::Instant),
    Held(Box<InFlight>),
}

/// Writes one chunk, closing the one held before (in the same batch where the session can), and
/// holds it open when asked and the next chunk is already read. A deadlock or a lock wait
/// timeout rolls the chunk back: it is run again, a few times, with growing pauses (parallel
/// writers meet this at their ranges' edges on a sparse table; an application's transactions
/// can cause it too).
#[allow(clippy::too_many_arguments)]
pub(super) async fn write_chunk(
    production: &mut dyn Session,
    job: &CopyJob<'_>,
    rows: &[Row],
    proof: &ChunkProof,
    range: KeyRange<'_>,
    last_chunk: bool,
    hold: bool,
    held_before: Option<InFlight>,
    mut meta: ChunkMeta,
    read_done: &AtomicBool,
) -> Step {
    let mut step = Step::default();
    let (mut close, before) = match held_before {
        Some(InFlight { chunk, meta }) => (Some(chunk), Some(meta)),
        None => (None, None),
    };
    if rows.is_empty() && !(job.merge == Merge::ReplaceAll && last_chunk) {
        // Nothing to write: the chunk held before goes alone.
        if let (Some(chunk), Some(before)) = (close, before) {
            match production.close_chunk(job.target, job.schema, chunk).await {
                Ok(()) => step.closed = Some((before, std::time::Instant::now())),
                Err(e) => step.error = Some(e),
            }
        }
        return step;
    }
    let mut before = before;
    let mut conflicts = 0;
    loop {
        let closing = close.is_some();
        let opened = if job.dry {
            // --dump-only: what the merge would do, found without a lock or a write.
            let found = production
                .merge_chunk(job.target, job.schema, rows, range, job.merge, true, proof)
                .await;
            Ok(Opened {
                closed: None,
                chunk: found.map(HeldChunk::committed),
            })
        } else {
            production
                .open_chunk(
                    job.target,
                    job.schema,
                    rows,
                    range,
                    job.merge,
                    proof,
                    close.take(),
                    hold,
                )
                .await
        };
        let chunk = match opened {
            Ok(Opened { closed, chunk }) => {
                if let (Some(at), Some(before)) = (closed, before.take()) {
                    step.closed = Some((before, at));
                }
                chunk
            }
            // The chunk held before was not committed: its check failed, or the link broke.
            Err(e) if closing => {
                step.error = Some(e);
                return step;
            }
            Err(e) => Err(e),
        };
        // A chunk's lock time runs from its locking read's answer, where the session can tell.
        if let Ok(opened) = &chunk {
            meta.opened = opened.locked_at.unwrap_or(meta.opened);
        }
        match chunk {
            Err(Error::DbConflict { side, detail }) => {
                conflicts += 1;
                if conflicts > CONFLICT_RETRIES {
                    step.error = Some(Error::DbConflict { side, detail });
                    return step;
                }
                tracing::debug!(%detail, conflicts, "lock conflict; running the chunk again");
                // InnoDB finds a deadlock at once, so a short pause is enough; a random part
                // keeps two writers from meeting again in step.
                let pause = 5 * u64::from(conflicts) + u64::from(rand::random::<u8>() % 20);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                meta.opened = std::time::Instant::now();
            }
            Err(e) => {
                step.error = Some(e);
                return step;
            }
            Ok(chunk) if chunk.pending.is_none() => {
                meta.outcome = chunk.outcome;
                step.this = Some(This::Committed(meta, std::time::Instant::now()));
                return step;
            }
            Ok(chunk) if read_done.load(Ordering::SeqCst) => {
                meta.outcome = chunk.outcome.clone();
                step.this = Some(This::Held(Box::new(InFlight { chunk, meta })));
                return step;
            }
            Ok(chunk) => {
                // The next chunk is not read yet: this one is closed now rather than hold its
                // locks while the restored server answers.
                let outcome = chunk.outcome.clone();
                match production.close_chunk(job.target, job.schema, chunk).await {
                    Ok(()) => {
                        meta.outcome = outcome;
                        step.this = Some(This::Committed(meta, std::time::Instant::now()));
                    }
                    Err(e) => step.error = Some(e),
                }
                return step;
            }
        }
    }
}

/// What the copy keeps up to date as chunks are committed: its progress and checkpoint, the
/// chunk size, the dump file and the progress line.
pub(super) struct Committed<'a, 'j> {
    pub(super) progress: &'a mut CopyProgress,
    pub(super) after: &'a mut Option<Vec<Value>>,
    pub(super) cap: &'a mut usize,
    pub(super) checkpoint: &'a mut (dyn FnMut(&CopyProgress) -> Result<()> + Send),
    pub(super) dump: Option<&'a mut DumpFile>,
    pub(super) ui: &'a dyn Progress,
    pub(super) job: &'a CopyJob<'j>,
}

impl Committed<'_, '_> {
    /// A chunk whose commit was answered at `at`: the next chunk's size from how long it held
    /// its locks, its SQL in the dump file (`rows` given), its counts, then the checkpoint.
    pub(super) fn record(&mut self, meta: ChunkMeta, at: std::time::Instant, rows: Option<&[Row]>) -> Result<()> {
        let held = at.saturating_duration_since(meta.opened);
        let before = *self.cap;
        *self.cap = adapt_cap(self.job, *self.cap, meta.rows, held);
        if *self.cap < before {
            tracing::debug!(
                held_ms = held.as_millis() as u64,
                rows = meta.rows,
                cap = *self.cap,
                "chunk held its locks too long; smaller chunks"
            );
        }
        if let (Some(d), Some(rows)) = (self.dump.as_deref_mut(), rows) {
            d.write(rows, &meta.outcome, self.job.merge)?;
        }
        crate::crash_point!("copy-chunk-after-commit");
        let outcome = &meta.outcome;
        let progress = &mut *self.progress;
        if meta.key.is_some() {
            progress.last_key = meta.key.as_ref().map(|k| k.iter().map(StoredValue::from).collect());
            *self.after = meta.key;
        }
        progress.chunks += 1;
        progress.rows_read += meta.rows as u64;
        progress.inserted += outcome.inserted;
        progress.already_present += outcome.already_present;
        progress.present_differing += outcome.differing.len() as u64;
        progress.updated += outcome.updated;
        progress.deleted += outcome.deleted;
        progress.proven += outcome.proven;
        (self.checkpoint)(progress)?;
        crate::crash_point!("copy-chunk-after-checkpoint");
        self.ui
            .copy_progress(progress.rows_read, progress.inserted + progress.updated);
        Ok(())
    }
}
