//! Verification after the copy, chunk by chunk over the restored table's key ranges: each
//! server computes a checksum of the canonical rows of the range (the pt-table-checksum idea),
//! so identical ranges are confirmed without moving their rows. Only a range whose checksums
//! differ is read from both sides and compared row by row, which names the keys that differ.
//!
//! Production is live during an incident: the application keeps writing while the tool runs.
//! So what the tool wrote is proven where nothing else can touch it, inside each chunk's own
//! transaction before it commits (`Session::merge_chunk` with a proof: every restored key of the
//! chunk present, every row written with the restored server's hash, every deleted key gone).
//! This pass comes after: it checks that the copy accounted for every restored row (the copy
//! read as many rows as the restored table holds), and reports what differs now as the
//! application's own activity since each chunk's commit: information, not failure.
//!
//! A `--dump-only` run writes nothing to production, so it has nothing to verify: the machine
//! skips this step for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::copy::{within, CopyJob};
use crate::error::{Error, Result};
use crate::ports::{KeyRange, Merge, Row, Session, Value};
use crate::progress::Progress;
use crate::rowcodec::{display_key, encode_values};
use crate::state::CopyProgress;

const SAMPLE: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub restored_rows: u64,
    pub present_in_production: u64,
    pub identical: u64,
    pub differing: u64,
    pub missing: u64,
    /// Production rows the restored table lacks, in the ranges compared (replace-all: the
    /// whole table; otherwise rows written since, which are expected and not a failure).
    #[serde(default)]
    pub extra: u64,
    /// Rows the copy found already present and different, and left alone (missing-rows).
    pub kept_differing_at_copy: u64,
    /// Key ranges compared, and how many of them the servers' checksums confirmed whole.
    #[serde(default)]
    pub chunks: u64,
    #[serde(default)]
    pub chunks_matching: u64,
    /// The checksums of each side: SHA-256 over the servers' per-range checksums.
    pub restored_checksum: String,
    pub production_checksum: String,
    pub sample_missing_keys: Vec<String>,
    pub sample_differing_keys: Vec<String>,
    #[serde(default)]
    pub sample_extra_keys: Vec<String>,
    /// Rows the copy proved in their chunks' transactions, and the restored rows it read.
    #[serde(default)]
    pub proven_at_write: u64,
    #[serde(default)]
    pub read_by_copy: u64,
    /// Rows that differ now although their chunk proved them: changed, deleted or added by
    /// others (the application) after that chunk committed.
    #[serde(default)]
    pub changed_by_others: u64,
    #[serde(default)]
    pub sample_changed_keys: Vec<String>,
    pub passed: bool,
}

impl Verification {
    pub fn summary(&self) -> String {
        if self.proven_at_write > 0 || self.read_by_copy > 0 {
            return self.live_summary();
        }
        let mut s = format!(
            "{} restored rows, {} in production, {} identical",
            self.restored_rows, self.present_in_production, self.identical
        );
        if self.differing > 0 && self.differing <= self.kept_differing_at_copy {
            s.push_str(&format!(
                ", {} differ (production's own version kept; the copy found {} such rows before writing)",
                self.differing, self.kept_differing_at_copy
            ));
        } else if self.differing > 0 {
            s.push_str(&format!(", {} DIFFER", self.differing));
        }
        if self.missing > 0 {
            s.push_str(&format!(", {} MISSING", self.missing));
        }
        if self.extra > 0 {
            s.push_str(&format!(", {} in production only", self.extra));
        }
        s.push_str(&format!(
            "; {} of {} key ranges identical by server-side checksum",
            self.chunks_matching, self.chunks
        ));
        if self.restored_checksum == self.production_checksum {
            s.push_str(&format!("; checksums match (sha256 {})", &self.restored_checksum[..16]));
        } else {
            s.push_str(&format!(
                "; checksums restored {} / production {}",
                &self.restored_checksum[..16],
                &self.production_checksum[..16]
            ));
        }
        s
    }

    /// What a proven copy's final pass found.
    fn live_summary(&self) -> String {
        let mut s = format!(
            "{} restored rows, {} in production, {} identical; every row the tool wrote ({}) was proven in its \
             chunk's own transaction",
            self.restored_rows, self.present_in_production, self.identical, self.proven_at_write
        );
        if self.read_by_copy != self.restored_rows {
            s.push_str(&format!(
                "; but the copy read {} rows of the {} the restored table holds",
                self.read_by_copy, self.restored_rows
            ));
        }
        if self.kept_differing_at_copy > 0 {
            s.push_str(&format!(
                "; {} rows already there were kept as production had them",
                self.kept_differing_at_copy
            ));
        }
        if self.changed_by_others > 0 {
            s.push_str(&format!(
                "; changed by others during the run (after the tool's chunk committed): {} rows, keys include {}",
                self.changed_by_others,
                self.sample_changed_keys.join(", ")
            ));
        }
        s.push_str(&format!(
            "; {} of {} key ranges identical by server-side checksum now",
            self.chunks_matching, self.chunks
        ));
        s
    }

    /// The error for a failed verification, with sample keys to look at.
    pub fn failure(&self) -> Error {
        if self.proven_at_write > 0 || self.read_by_copy > 0 {
            return Error::VerificationFailed(self.live_summary());
        }
        let mut msg = self.summary();
        if !self.sample_missing_keys.is_empty() {
            msg.push_str(&format!(
                "; missing keys include {}",
                self.sample_missing_keys.join(", ")
            ));
        }
        if self.differing > self.kept_differing_at_copy && !self.sample_differing_keys.is_empty() {
            msg.push_str(&format!(
                "; differing keys include {}",
                self.sample_differing_keys.join(", ")
            ));
        }
        if !self.sample_extra_keys.is_empty() {
            msg.push_str(&format!(
                "; keys in production only include {}",
                self.sample_extra_keys.join(", ")
            ));
        }
        Error::VerificationFailed(msg)
    }
}

/// A part of the key space, verified on its own pair of sessions: after `start` up to `end`
/// (`None`: from the first key, to the last).
pub struct Part<'s> {
    pub restored: &'s mut dyn Session,
    pub production: &'s mut dyn Session,
    pub start: Option<Row>,
    pub end: Option<Row>,
}

/// What one part found: its counts and samples, and the servers' checksums of its ranges in
/// key order (the run's digests take every part's in turn).
struct PartFound {
    v: Verification,
    restored_sums: Vec<String>,
    production_sums: Vec<String>,
}

/// The table in parts, all at once (the copy's writers' key ranges, each on its own sessions):
/// over a slow link each range's checksums wait on round trips, so one part after another
/// would leave the link and both servers idle most of the time. The parts must cover the
/// table in key order, without gaps: the last one runs to the end.
pub async fn verify_parts(
    parts: Vec<Part<'_>>,
    job: &CopyJob<'_>,
    copy: &CopyProgress,
    ui: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Verification> {
    use sha2::{Digest, Sha256};
    let kept_differing_at_copy = if job.merge == Merge::MissingRows {
        copy.present_differing
    } else {
        0
    };
    if job.schema.key.is_empty() {
        let mut parts = parts;
        let Part {
            restored, production, ..
        } = parts.remove(0);
        return verify_keyless(restored, production, job).await;
    }
    // With the changed keys alone on the restored side, production is compared at those keys:
    // its other rows are as they were at the point, and are not the restore's business.
    let only = job
        .changed_keys_only
        .then(|| crate::mysql::keys_in(job.schema, job.source));
    let production_filter = match (job.filter, only.as_deref()) {
        (Some(f), Some(o)) => Some(format!("({f}) AND {o}")),
        (f, o) => f.or(o).map(str::to_string),
    };
    let shown = std::sync::atomic::AtomicU64::new(0);
    let checks = Checks {
        job,
        only: only.as_deref(),
        production_filter: production_filter.as_deref(),
        ui,
        cancel,
        shown: &shown,
    };
    let found = futures_util::future::join_all(parts.into_iter().map(|part| checks.part(part))).await;
    let (mut restored_digest, mut production_digest) = (Sha256::new(), Sha256::new());
    let mut v = Verification {
        kept_differing_at_copy,
        ..Default::default()
    };
    for found in found {
        let found = found?;
        for sum in &found.restored_sums {
            restored_digest.update(sum);
        }
        for sum in &found.production_sums {
            production_digest.update(sum);
        }
        v.add(found.v);
    }
    v.restored_checksum = hex::encode(restored_digest.finalize());
    v.production_checksum = hex::encode(production_digest.finalize());
    // Every chunk proved its writes before committing (a chunk that could not was rolled back
    // and failed the copy); what differs now is others' doing, once the copy is known to have
    // gone through every restored row.
    v.proven_at_write = copy.proven;
    v.read_by_copy = copy.rows_read;
    v.changed_by_others = v.missing
        + v.differing.saturating_sub(v.kept_differing_at_copy)
        + if job.merge == Merge::ReplaceAll { v.extra } else { 0 };
    let mut changed: Vec<String> = v.sample_missing_keys.clone();
    // Production's own versions kept in missing-rows mode are not others' changes.
    if v.differing > v.kept_differing_at_copy {
        changed.extend(v.sample_differing_keys.iter().cloned());
    }
    if job.merge == Merge::ReplaceAll {
        changed.extend(v.sample_extra_keys.iter().cloned());
    }
    changed.truncate(SAMPLE);
    v.sample_changed_keys = changed;
    v.passed = v.read_by_copy == v.restored_rows;
    Ok(v)
}

impl Verification {
    /// Adds what another part found (its counts, and its samples while there is room).
    fn add(&mut self, other: Verification) {
        self.restored_rows += other.restored_rows;
        self.present_in_production += other.present_in_production;
        self.identical += other.identical;
        self.differing += other.differing;
        self.missing += other.missing;
        self.extra += other.extra;
        self.chunks += other.chunks;
        self.chunks_matching += other.chunks_matching;
        for (mine, theirs) in [
            (&mut self.sample_missing_keys, other.sample_missing_keys),
            (&mut self.sample_differing_keys, other.sample_differing_keys),
            (&mut self.sample_extra_keys, other.sample_extra_keys),
        ] {
            let room = SAMPLE.saturating_sub(mine.len());
            mine.extend(theirs.into_iter().take(room));
        }
    }
}

/// What every part shares.
struct Checks<'a> {
    job: &'a CopyJob<'a>,
    only: Option<&'a str>,
    production_filter: Option<&'a str>,
    ui: &'a dyn Progress,
    cancel: &'a AtomicBool,
    /// Restored rows verified so far, all parts together, for the progress line.
    shown: &'a std::sync::atomic::AtomicU64,
}

impl Checks<'_> {
    /// One part, range after range: each server checksums the range, and a range whose sums
    /// differ is compared row by row.
    async fn part(&self, part: Part<'_>) -> Result<PartFound> {
        let job = self.job;
        let Part {
            restored,
            production,
            start,
            end: part_end,
        } = part;
        let mut v = Verification::default();
        let (mut restored_sums, mut production_sums) = (Vec::new(), Vec::new());
        let mut after: Option<Row> = start;
        let mut next = restored
            .chunk_end(
                job.source,
                job.schema,
                within(after.as_deref(), part_end.as_deref()),
                job.filter,
                job.chunk_size,
            )
            .await?;
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            let Some((end, full)) = next.take() else {
                break;
            };
            let range = KeyRange {
                after: after.as_deref(),
                upto: Some(&end),
            };
            // Both servers compute at once; the restored one also finds where the next range
            // ends while production is still summing this one.
            let restored_side = async {
                let sum = restored
                    .range_checksum(job.source, job.schema, range, job.filter)
                    .await?;
                let next = match full {
                    true => {
                        restored
                            .chunk_end(
                                job.source,
                                job.schema,
                                within(Some(&end), part_end.as_deref()),
                                job.filter,
                                job.chunk_size,
                            )
                            .await?
                    }
                    false => None,
                };
                Ok::<_, Error>((sum, next))
            };
            let (r, p) = tokio::join!(
                restored_side,
                production.range_checksum(job.target, job.schema, range, self.production_filter)
            );
            let ((r, following), p) = (r?, p?);
            next = following;
            restored_sums.push(format!("{}:{};", r.rows, r.hash));
            production_sums.push(format!("{}:{};", p.rows, p.hash));
            v.chunks += 1;
            if r == p {
                v.chunks_matching += 1;
                v.restored_rows += r.rows;
                v.present_in_production += r.rows;
                v.identical += r.rows;
            } else {
                // Row by row, by each row's hash as its server computes it: a key and 32 bytes
                // per row, whatever the rows' width. Production is read without the filter: a
                // restored row whose production version no longer matches `--where` is there,
                // and differs.
                let restored_rows = restored.row_hashes(job.source, job.schema, range, job.filter).await?;
                let production_rows = production.row_hashes(job.target, job.schema, range, self.only).await?;
                compare(&mut v, job, &restored_rows, production_rows);
            }
            let shown = self.shown.fetch_add(r.rows, Ordering::SeqCst) + r.rows;
            self.ui.copy_progress(shown, 0);
            after = Some(end);
            if !full {
                break;
            }
        }
        if job.merge == Merge::ReplaceAll && part_end.is_none() {
            // Past the restored table's last key (all of it, for an empty restored table).
            let tail = KeyRange {
                after: after.as_deref(),
                upto: None,
            };
            let p = production.range_checksum(job.target, job.schema, tail, None).await?;
            production_sums.push(format!("{}:{};", p.rows, p.hash));
            if p.rows > 0 {
                v.extra += p.rows;
                let sample = production
                    .read_chunk(job.target, job.schema, tail, None, SAMPLE)
                    .await?;
                for row in &sample {
                    if v.sample_extra_keys.len() < SAMPLE {
                        v.sample_extra_keys.push(display_key(&job.schema.key_of(row)));
                    }
                }
            }
        }
        Ok(PartFound {
            v,
            restored_sums,
            production_sums,
        })
    }
}

/// Row-by-row comparison of one key range whose checksums differ, each row given as its key
/// and its hash.
fn compare(v: &mut Verification, job: &CopyJob<'_>, restored: &[(Row, String)], production: Vec<(Row, String)>) {
    let mut in_production: HashMap<Vec<u8>, (Row, String)> = production
        .into_iter()
        .map(|(key, hash)| (encode_values(key.iter()), (key, hash)))
        .collect();
    for (key, hash) in restored {
        v.restored_rows += 1;
        let key: Vec<&Value> = key.iter().collect();
        match in_production.remove(&encode_values(key.iter().copied())) {
            None => {
                v.missing += 1;
                if v.sample_missing_keys.len() < SAMPLE {
                    v.sample_missing_keys.push(display_key(&key));
                }
            }
            Some((_, p)) => {
                v.present_in_production += 1;
                if p == *hash {
                    v.identical += 1;
                } else {
                    v.differing += 1;
                    if v.sample_differing_keys.len() < SAMPLE {
                        v.sample_differing_keys.push(display_key(&key));
                    }
                }
            }
        }
    }
    // What is left was not restored: rows written since (or, in replace-all, rows to be gone).
    // With `--where`, production rows outside the predicate are not the restore's business.
    if job.filter.is_none() {
        v.extra += in_production.len() as u64;
        if job.merge == Merge::ReplaceAll {
            let mut left: Vec<String> = in_production
                .values()
                .map(|(key, _)| display_key(&key.iter().collect::<Vec<_>>()))
                .collect();
            left.sort();
            let room = SAMPLE.saturating_sub(v.sample_extra_keys.len());
            v.sample_extra_keys.extend(left.into_iter().take(room));
        }
    }
}

/// A table without a primary key (loaded into a new side table): rows cannot be paired, so the
/// whole table's count and order-independent checksum are compared, each computed on its server.
async fn verify_keyless(
    restored: &mut dyn Session,
    production: &mut dyn Session,
    job: &CopyJob<'_>,
) -> Result<Verification> {
    let (r, p) = tokio::join!(
        restored.range_checksum(job.source, job.schema, KeyRange::default(), job.filter),
        production.range_checksum(job.target, job.schema, KeyRange::default(), None)
    );
    let (r, p) = (r?, p?);
    let same = r == p;
    Ok(Verification {
        restored_rows: r.rows,
        present_in_production: p.rows,
        identical: if same { r.rows } else { 0 },
        // Without a key a difference cannot be pinned to rows: the counts say how far apart.
        missing: r.rows.saturating_sub(p.rows),
        extra: p.rows.saturating_sub(r.rows),
        differing: u64::from(!same && r.rows == p.rows),
        chunks: 1,
        chunks_matching: u64::from(same),
        restored_checksum: r.hash,
        production_checksum: p.hash,
        passed: same,
        ..Default::default()
    })
}
