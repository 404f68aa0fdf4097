//! The copy: walks the restored table in primary-key order, one chunk at a time, and merges each
//! chunk into production in its own transaction. After each commit the caller's checkpoint
//! records the chunk's last key, so a resumed copy starts after it. Re-running a chunk is
//! harmless in every mode: what the first run wrote is found in place the second time.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::ports::{ChunkOutcome, ChunkProof, KeyRange, Merge, Row, Session, TableRef, TableSchema, Value};
use crate::progress::Progress;
use crate::rowcodec::StoredValue;
use crate::state::CopyProgress;

mod dump;
mod turn;

pub use dump::DumpFile;
use turn::{after_of, write_chunk, ChunkMeta, Committed, InFlight, This};

pub struct CopyJob<'a> {
    /// The table on the restored instance.
    pub source: &'a TableRef,
    /// The table written in production: the real one, or a drill's side table.
    pub target: &'a TableRef,
    pub schema: &'a TableSchema,
    pub chunk_size: usize,
    /// The bytes of restored rows a chunk holds at most (unless one row alone is wider).
    pub chunk_bytes: usize,
    /// How long a chunk's transaction should hold its locks in production: the application
    /// waits on them.
    pub max_lock: std::time::Duration,
    /// What a chunk's transaction waits on the link whatever its size: its statements' round
    /// trips to production. Over a VPN or a tunnel that alone can pass `max_lock`, and smaller
    /// chunks would not shorten it, so only the time beyond it counts against `max_lock`.
    pub lock_floor: std::time::Duration,
    /// `--where`, applied to the restored rows.
    pub filter: Option<&'a str>,
    /// `--dump-only`: find the missing rows and write them to the dump file, never to production.
    pub dry: bool,
    pub merge: Merge,
    /// The key range this copy covers, for one of `--parallel` writers: after `start` up to
    /// `end` (`None`: from the first key, to the last).
    pub start: Option<&'a [Value]>,
    pub end: Option<&'a [Value]>,
    /// Stop after this many chunks (not done): how parallel writers take their first turns.
    pub max_chunks: Option<u64>,
    /// Production is verified at the keys `source` holds alone: it holds only the keys changed
    /// after the point (the binlog rewind's as-of table, [`crate::plan::Plan::asof_changed_keys_only`]),
    /// and production's other rows are as they were then.
    pub changed_keys_only: bool,
}

impl<'a> CopyJob<'a> {
    /// The whole table, as the plan says.
    pub fn of(plan: &'a crate::plan::Plan, schema: &'a TableSchema) -> CopyJob<'a> {
        CopyJob {
            source: plan.restored_table(),
            target: plan.target_table(),
            schema,
            chunk_size: plan.chunk_size,
            chunk_bytes: plan.chunk_bytes,
            max_lock: std::time::Duration::from_millis(plan.max_lock_ms),
            lock_floor: std::time::Duration::ZERO,
            filter: plan.where_predicate.as_deref(),
            dry: plan.dump_only,
            merge: plan.merge(),
            start: None,
            end: None,
            max_chunks: None,
            changed_keys_only: plan.asof_changed_keys_only(),
        }
    }
}

/// How many times a chunk is run again after a deadlock or a lock wait timeout.
const CONFLICT_RETRIES: u32 = 12;

/// The key of a chunk's last row, and whether the chunk is the last one (keyset reads return
/// fewer rows than asked, `limit`, only at the end).
fn chunk_end(job: &CopyJob<'_>, rows: &[crate::ports::Row], limit: usize) -> (Option<Vec<Value>>, bool) {
    let key = rows
        .last()
        .map(|last| job.schema.key_of(last).into_iter().cloned().collect());
    (key, rows.len() < limit)
}

/// The rows the next chunk asks for, kept from the sizes the reader sees: the row budget,
/// lowered so that the widest row of the last chunk times the count stays within the byte
/// budget (a row wider than that goes alone). Wide rows (documents, PDFs, sessions) would
/// otherwise make a chunk of `--chunk-size` rows gigabytes in memory and a packet no server
/// accepts. Before any size is known the first chunk reads one row.
fn next_limit(job: &CopyJob<'_>, rows: Option<&[Row]>, cap: usize) -> usize {
    let Some(rows) = rows else {
        return 1;
    };
    let widest = rows.iter().map(|r| row_memory(r)).max().unwrap_or(1);
    (job.chunk_bytes.max(1) / widest).clamp(1, cap.clamp(1, job.chunk_size.max(1)))
}

/// The rows a chunk may hold after one that held its locks for `held`: half as many when it
/// took longer than `--max-lock-ms` (the application was waiting on it), twice as many, up to
/// `--chunk-size`, when it took less than a quarter of it. The link's own round trips
/// (`lock_floor`) are not counted: no chunk size makes them shorter.
fn adapt_cap(job: &CopyJob<'_>, cap: usize, rows: usize, held: std::time::Duration) -> usize {
    let held = held.saturating_sub(job.lock_floor);
    if held > job.max_lock {
        (rows.min(cap) / 2).max(1)
    } else if held < job.max_lock / 4 {
        cap.saturating_mul(2).min(job.chunk_size.max(1))
    } else {
        cap
    }
}

/// What a row costs the tool while its chunk is in flight: its bytes, and each value's own
/// size. A narrow row's values weigh more than its bytes (the sandbox's `billing`: about 150
/// bytes of data in 9 values of 32 bytes each), and the chunk budget is the tool's memory.
fn row_memory(row: &[Value]) -> usize {
    row_bytes(row) + std::mem::size_of_val(row)
}

/// About what a row holds in memory: its bytes, and 8 for each other value.
pub fn row_bytes(row: &[Value]) -> usize {
    row.iter()
        .map(|v| match v {
            Value::Bytes(b) => b.len(),
            _ => 8,
        })
        .sum::<usize>()
        .max(1)
}

/// The production keys a chunk's merge covers: after the previous chunk's last key up to its
/// own. In replace-all the last chunk runs to the end of the copy's range, so production rows
/// past the restored table's last key are found too (and an empty restored table empties
/// production).
fn chunk_range<'k>(
    job: &CopyJob<'k>,
    after: Option<&'k [Value]>,
    key: Option<&'k [Value]>,
    last_chunk: bool,
) -> KeyRange<'k> {
    let upto = match job.merge == Merge::ReplaceAll && last_chunk {
        true => job.end,
        false => key,
    };
    KeyRange { after, upto }
}

/// The keys after `after` up to `end`.
pub(crate) fn within<'k>(after: Option<&'k [Value]>, end: Option<&'k [Value]>) -> KeyRange<'k> {
    KeyRange { after, upto: end }
}

/// Decodes the checkpointed key.
pub fn decode_key(stored: &[StoredValue]) -> Result<Vec<Value>> {
    stored
        .iter()
        .map(Value::try_from)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::State {
            path: "(copy checkpoint)".into(),
            detail: format!("bad key: {e}"),
        })
}

/// Copies the restored rows into production under the job's merge policy, continuing from
/// `progress`.
#[allow(clippy::too_many_arguments)]
pub async fn copy_rows(
    restored: &mut dyn Session,
    production: &mut dyn Session,
    job: &CopyJob<'_>,
    mut progress: CopyProgress,
    checkpoint: &mut (dyn FnMut(&CopyProgress) -> Result<()> + Send),
    dump: Option<&mut DumpFile>,
    ui: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<CopyProgress> {
    let mut after = match progress.last_key.as_deref() {
        Some(k) => Some(decode_key(k)?),
        None => job.start.map(<[Value]>::to_vec),
    };
    if progress.done {
        return Ok(progress);
    }
    if job.schema.key.is_empty() {
        return copy_keyless(restored, production, job, progress, checkpoint, dump, ui, cancel).await;
    }
    // Reading the next chunk from the restored server overlaps writing this one into
    // production: the two sessions are independent, and the checkpoint still follows each
    // commit in order. In missing-rows mode a chunk is held open after its writes, and its check
    // and commit go out with the next chunk's first statements (one round trip less per chunk),
    // unless the next chunk is not read yet: no lock waits on the restored server.
    let mut limit = next_limit(job, None, job.chunk_size);
    let (mut rows, mut proof) = read_proven(restored, job, after.as_deref(), limit).await?;
    let mut taken = 0;
    // The rows a chunk may hold so that its locks are brief; the chunk read ahead was sized
    // before the last one finished, so a change shows one chunk later.
    let mut cap = job.chunk_size;
    let may_hold = job.merge == Merge::MissingRows && !job.dry && dump.is_none();
    let mut in_flight: Option<InFlight> = None;
    let mut done = Committed {
        progress: &mut progress,
        after: &mut after,
        cap: &mut cap,
        checkpoint,
        dump,
        ui,
        job,
    };
    while !done.progress.done {
        if cancel.load(Ordering::SeqCst) {
            // The chunk held open is checked and committed first: production keeps every chunk
            // written so far, each proven.
            if let Some(held) = in_flight.take() {
                production.close_chunk(job.target, job.schema, held.chunk).await?;
                done.record(held.meta, std::time::Instant::now(), None)?;
            }
            return Err(Error::Interrupted);
        }
        let (key, last_chunk) = chunk_end(job, &rows, limit);
        // After the last key written: the held chunk's, or the last committed.
        let start = after_of(&in_flight, done.after).map(<[Value]>::to_vec);
        let range = chunk_range(job, start.as_deref(), key.as_deref(), last_chunk);
        let following = next_limit(job, Some(&rows), *done.cap);
        let hold = may_hold && !last_chunk && job.max_chunks.is_none_or(|max| taken + 1 < max);
        let meta = ChunkMeta {
            key: key.clone(),
            rows: rows.len(),
            outcome: ChunkOutcome::default(),
            opened: std::time::Instant::now(),
        };
        let read_done = AtomicBool::new(false);
        let write = write_chunk(
            production,
            job,
            &rows,
            &proof,
            range,
            last_chunk,
            hold,
            in_flight.take(),
            meta,
            &read_done,
        );
        let read = async {
            let next = match (&key, last_chunk) {
                (Some(k), false) => read_proven(restored, job, Some(k), following).await.map(Some),
                _ => Ok(None),
            };
            read_done.store(true, Ordering::SeqCst);
            next
        };
        let (mut step, next) = tokio::join!(write, read);
        // What was committed is checkpointed before any error is raised.
        if let Some((meta, at)) = step.closed {
            let recording = std::time::Instant::now();
            done.record(meta, at, None)?;
            // The chunk held now does not count the time the checkpoint of the one before it
            // took: no chunk size makes that shorter (as the link's round trips, `lock_floor`).
            if let Some(This::Held(held)) = &mut step.this {
                held.meta.opened += recording.elapsed();
            }
        }
        match step.this {
            Some(This::Committed(meta, at)) => done.record(meta, at, Some(&rows))?,
            Some(This::Held(held)) => in_flight = Some(*held),
            None => {}
        }
        if let Some(e) = step.error {
            return Err(e);
        }
        let next = match next {
            Ok(next) => next,
            Err(e) => {
                if let Some(held) = in_flight.take() {
                    production.close_chunk(job.target, job.schema, held.chunk).await?;
                    done.record(held.meta, std::time::Instant::now(), None)?;
                }
                return Err(e);
            }
        };
        if last_chunk {
            done.progress.done = true;
            (done.checkpoint)(done.progress)?;
        }
        (rows, proof) = next.unwrap_or_default();
        limit = following;
        taken += 1;
        if job.max_chunks.is_some_and(|max| taken >= max) {
            break;
        }
    }
    Ok(progress)
}

/// Reads the chunk after `after` with each row's canonical key and hash, as the restored
/// server computes them: how the chunk's transaction in production matches its rows, and what
/// it must prove it wrote before it commits (a dry run matches them the same way).
async fn read_proven(
    restored: &mut dyn Session,
    job: &CopyJob<'_>,
    after: Option<&[Value]>,
    limit: usize,
) -> Result<(Vec<Row>, ChunkProof)> {
    restored
        .read_chunk_hashed(job.source, job.schema, within(after, job.end), job.filter, limit)
        .await
}

/// Counts what the copy would change, without locking or writing anything: what overwrite
/// and replace-all show the operator before the first write.
pub async fn count_changes(
    restored: &mut dyn Session,
    production: &mut dyn Session,
    job: &CopyJob<'_>,
    cancel: &AtomicBool,
) -> Result<crate::state::PlannedChanges> {
    let mut counted = crate::state::PlannedChanges::default();
    let mut after: Option<Vec<Value>> = None;
    let mut limit = next_limit(job, None, job.chunk_size);
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        let range = KeyRange {
            after: after.as_deref(),
            upto: None,
        };
        let (rows, proof) = restored
            .read_chunk_hashed(job.source, job.schema, range, job.filter, limit)
            .await?;
        let (key, last_chunk) = chunk_end(job, &rows, limit);
        limit = next_limit(job, Some(&rows), job.chunk_size);
        let range = chunk_range(job, after.as_deref(), key.as_deref(), last_chunk);
        let o = production
            .merge_chunk(job.target, job.schema, &rows, range, job.merge, true, &proof)
            .await?;
        counted.insert += o.missing.len() as u64;
        counted.update += o.differing.len() as u64;
        counted.delete += o.extra.len() as u64;
        counted.unchanged += o.already_present - o.differing.len() as u64;
        if last_chunk {
            return Ok(counted);
        }
        after = key;
    }
}

/// Copies a table without a primary key into a new side table (the only place such a table is
/// ever written): one streaming read, batches inserted as they arrive, each batch one
/// transaction and one checkpoint (counts only: without a key there is no position to resume
/// from, so the caller empties the side table and starts over after an interruption).
#[allow(clippy::too_many_arguments)]
async fn copy_keyless(
    restored: &mut dyn Session,
    production: &mut dyn Session,
    job: &CopyJob<'_>,
    mut progress: CopyProgress,
    checkpoint: &mut (dyn FnMut(&CopyProgress) -> Result<()> + Send),
    mut dump: Option<&mut DumpFile>,
    ui: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<CopyProgress> {
    // Two batches in flight at most, each within the byte budget: one being read, one being
    // written.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let read = restored.scan(job.source, job.schema, job.filter, job.chunk_size, job.chunk_bytes, tx);
    let write = async {
        while let Some(rows) = rx.recv().await {
            if cancel.load(Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            let outcome = production
                .merge_chunk(
                    job.target,
                    job.schema,
                    &rows,
                    KeyRange::default(),
                    Merge::MissingRows,
                    job.dry,
                    &Vec::new(),
                )
                .await?;
            if let Some(d) = dump.as_deref_mut() {
                d.write(&rows, &outcome, Merge::MissingRows)?;
            }
            progress.chunks += 1;
            progress.rows_read += rows.len() as u64;
            progress.inserted += outcome.inserted;
            checkpoint(&progress)?;
            crate::crash_point!("copy-chunk-after-checkpoint");
            ui.copy_progress(progress.rows_read, progress.inserted);
        }
        Ok(())
    };
    let (read, written) = tokio::join!(read, write);
    // A write error closes the channel, which ends the read early: the write's error is the one.
    written?;
    read?;
    progress.done = true;
    checkpoint(&progress)?;
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn job<'a>(table: &'a TableRef, schema: &'a TableSchema) -> CopyJob<'a> {
        CopyJob {
            source: table,
            target: table,
            schema,
            chunk_size: 1000,
            chunk_bytes: 1 << 20,
            max_lock: Duration::from_millis(100),
            lock_floor: Duration::ZERO,
            filter: None,
            dry: false,
            merge: Merge::MissingRows,
            start: None,
            end: None,
            max_chunks: None,
            changed_keys_only: false,
        }
    }

    #[test]
    fn a_chunk_that_held_its_locks_too_long_halves_the_next_and_quick_ones_grow_back() {
        let table = TableRef {
            database: "shop".into(),
            table: "billing".into(),
        };
        let schema = TableSchema {
            columns: Vec::new(),
            key: Vec::new(),
        };
        let job = job(&table, &schema);
        let slow = Duration::from_millis(250);
        let quick = Duration::from_millis(10);
        assert_eq!(adapt_cap(&job, 1000, 1000, slow), 500);
        assert_eq!(adapt_cap(&job, 500, 120, slow), 60, "halves what the slow chunk held");
        assert_eq!(adapt_cap(&job, 1, 1, slow), 1, "never below one row");
        assert_eq!(
            adapt_cap(&job, 60, 60, Duration::from_millis(50)),
            60,
            "within the bound: kept"
        );
        assert_eq!(adapt_cap(&job, 60, 60, quick), 120);
        assert_eq!(
            adapt_cap(&job, 800, 800, quick),
            1000,
            "up to --chunk-size, not past it"
        );
        // Over a 40 ms link a chunk's three round trips take 120 ms whatever its size: only the
        // time beyond them counts.
        let far = CopyJob {
            lock_floor: Duration::from_millis(120),
            ..job
        };
        assert_eq!(adapt_cap(&far, 1000, 1000, Duration::from_millis(200)), 1000);
        assert_eq!(adapt_cap(&far, 1000, 1000, Duration::from_millis(300)), 500);
    }

    #[test]
    fn chunks_are_bounded_by_bytes_as_well_as_by_rows_and_the_lock_cap() {
        let table = TableRef {
            database: "shop".into(),
            table: "docs".into(),
        };
        let schema = TableSchema {
            columns: Vec::new(),
            key: Vec::new(),
        };
        let job = job(&table, &schema);
        let row = |bytes: usize| vec![Value::Int(1), Value::Bytes(vec![b'x'; bytes])];
        assert_eq!(next_limit(&job, None, 1000), 1, "the first chunk reads one row");
        assert_eq!(
            next_limit(&job, Some(&[row(100)]), 1000),
            1000,
            "small rows: --chunk-size"
        );
        assert_eq!(next_limit(&job, Some(&[row(100)]), 40), 40, "the lock cap");
        assert_eq!(
            next_limit(&job, Some(&[row(100), row(64 << 10)]), 1000),
            15,
            "the widest row sets it"
        );
        assert_eq!(
            next_limit(&job, Some(&[row(4 << 20)]), 1000),
            1,
            "a row past the budget goes alone"
        );
    }
}
