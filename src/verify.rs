//! Verification after the copy: every restored row is looked up in production by key and
//! compared value for value; a SHA-256 over the canonical rows is computed on each side.
//!
//! In `missing-rows` mode production keeps its own version of rows that were already there, so
//! rows may legitimately differ, but only as many as the copy found differing before it wrote
//! anything. A restored row missing from production, or more differing rows than that, fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::copy::CopyJob;
use crate::error::{Error, Result};
use crate::ports::{Row, Session};
use crate::progress::Progress;
use crate::rowcodec::{display_key, encode_values, RowDigest};
use crate::state::CopyProgress;

const SAMPLE: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub restored_rows: u64,
    pub present_in_production: u64,
    pub identical: u64,
    pub differing: u64,
    pub missing: u64,
    /// Rows the copy found already present and different, and left alone.
    pub kept_differing_at_copy: u64,
    pub restored_checksum: String,
    pub production_checksum: String,
    pub sample_missing_keys: Vec<String>,
    pub sample_differing_keys: Vec<String>,
    pub passed: bool,
}

impl Verification {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} restored rows, {} in production, {} identical",
            self.restored_rows, self.present_in_production, self.identical
        );
        if self.differing > 0 {
            s.push_str(&format!(
                ", {} differ (production's own version kept; the copy found {} such rows before writing)",
                self.differing, self.kept_differing_at_copy
            ));
        }
        if self.missing > 0 {
            s.push_str(&format!(", {} MISSING", self.missing));
        }
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

    /// The error for a failed verification, with sample keys to look at.
    pub fn failure(&self) -> Error {
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
        Error::VerificationFailed(msg)
    }
}

pub async fn verify(
    restored: &mut dyn Session,
    production: &mut dyn Session,
    job: &CopyJob<'_>,
    copy: &CopyProgress,
    ui: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Verification> {
    let mut v = Verification {
        kept_differing_at_copy: copy.present_differing,
        ..Default::default()
    };
    let (mut restored_digest, mut production_digest) = (RowDigest::default(), RowDigest::default());
    let mut after: Option<Row> = None;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        let rows = restored
            .read_chunk(job.source, job.schema, after.as_deref(), job.filter, job.chunk_size)
            .await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            break;
        };
        let first: Row = job.schema.key_of(first).into_iter().cloned().collect();
        let last: Row = job.schema.key_of(last).into_iter().cloned().collect();
        let in_production: HashMap<Vec<u8>, Row> = production
            .rows_in_range(job.target, job.schema, &first, &last)
            .await?
            .into_iter()
            .map(|row| (encode_values(job.schema.key_of(&row)), row))
            .collect();
        for row in &rows {
            v.restored_rows += 1;
            restored_digest.add(row);
            let key = job.schema.key_of(row);
            match in_production.get(&encode_values(key.iter().copied())) {
                None => {
                    v.missing += 1;
                    production_digest.add_absent();
                    if v.sample_missing_keys.len() < SAMPLE {
                        v.sample_missing_keys.push(display_key(&key));
                    }
                }
                Some(p) => {
                    v.present_in_production += 1;
                    production_digest.add(p);
                    if p == row {
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
        ui.copy_progress(v.restored_rows, 0);
        let done = rows.len() < job.chunk_size;
        after = Some(last);
        if done {
            break;
        }
    }
    v.restored_checksum = restored_digest.finish();
    v.production_checksum = production_digest.finish();
    v.passed = v.missing == 0 && v.differing <= v.kept_differing_at_copy;
    Ok(v)
}
