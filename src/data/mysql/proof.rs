//! The proof of a chunk's writes, read in its own transaction before the commit.

use std::collections::HashMap;

use super::MysqlSession;
use crate::error::{Error, Result};
use crate::ports::{ChunkOutcome, ChunkProof, KeyRange, Merge, Row, Session, TableRef, TableSchema, Value};
use crate::rowcodec::encode_values;

impl MysqlSession {
    /// Read-your-writes, before the commit: the server's hash of every row this chunk inserted
    /// or updated, read in the same transaction (the range is locked, so only this chunk's
    /// writes are in it), must equal the restored server's hash of that row, and every key it
    /// deleted must be gone. What the application does after the commit cannot make this look
    /// wrong, and nothing the tool read, encoded or wrote wrong can pass it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn prove(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        range: KeyRange<'_>,
        merge: Merge,
        outcome: &ChunkOutcome,
        proof: &ChunkProof,
    ) -> Result<u64> {
        let written: HashMap<Vec<u8>, String> = self
            .row_hashes(table, schema, range, None)
            .await?
            .into_iter()
            .map(|(key, hash)| (encode_values(key.iter()), hash))
            .collect();
        let inserted: std::collections::HashSet<usize> = outcome.missing.iter().copied().collect();
        let wrong = |key: &[&Value], what: &str| {
            Error::VerificationFailed(format!(
                "in {table}, the row with key {} {what}; the chunk was rolled back, nothing of it is in production",
                crate::rowcodec::display_key(key)
            ))
        };
        let mut proven = 0;
        for (i, row) in rows.iter().enumerate() {
            let key = schema.key_of(row);
            let encoded = encode_values(key.iter().copied());
            // Every restored key of the chunk is in production once it commits, whatever the mode.
            let Some(got) = written.get(&encoded) else {
                return Err(wrong(
                    &key,
                    "is not in production at the end of its chunk's transaction",
                ));
            };
            // A row it wrote has the restored values; in missing-rows mode, a row that was
            // there already keeps production's own.
            if merge == Merge::MissingRows && !inserted.contains(&i) {
                continue;
            }
            match proof.get(&encoded) {
                Some(want) if want == got => proven += 1,
                Some(_) => {
                    return Err(wrong(
                        &key,
                        "reads back in production with other values than on the restored server",
                    ))
                }
                None => return Err(wrong(&key, "was read from the restored server, which has no such row")),
            }
        }
        for key in &outcome.extra {
            let refs: Vec<&Value> = key.iter().collect();
            if written.contains_key(&encode_values(refs.iter().copied())) {
                return Err(wrong(&refs, "was deleted but production still shows it"));
            }
            proven += 1;
        }
        Ok(proven)
    }
}
