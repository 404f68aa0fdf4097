//! The proof of a chunk's writes: the restored rows' hashes read with the rows, and, when a
//! chunk's check in production fails, the row by row comparison that names what is wrong.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Params;

use super::sql::{canonical_key_sql, canonical_row_sql, column_list, key_columns, qualified, range_where};
use super::{unhashable, MysqlSession};
use crate::error::{Error, Result};
use crate::ports::{
    ChunkOutcome, ChunkProof, KeyRange, Merge, PendingCheck, Row, RowHash, Session, TableRef, TableSchema, Value,
};
use crate::rowcodec::encode_values;

impl MysqlSession {
    /// A chunk of restored rows with each one's canonical key and hash, in one statement: the
    /// rows as `read_chunk` reads them, then the key as production's locking read will name it,
    /// then `MD5(<canonical row>)`, the same hash `row_hashes` gives. One round trip and one
    /// pass over the rows.
    pub(super) async fn read_hashed(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Row>, ChunkProof)> {
        // As range_query writes a chunk's read, with the key and the hash after the columns; the
        // limit is a parameter, so every chunk size runs the same prepared statement.
        let (filter, mut params) = range_where(schema, range, filter);
        params.push(Value::UInt(limit as u64));
        let sql = format!(
            "SELECT {}, {}, MD5({}) FROM {}{filter} ORDER BY {} LIMIT ?",
            column_list(schema),
            canonical_key_sql(schema),
            canonical_row_sql(schema),
            qualified(table),
            key_columns(schema).join(", ")
        );
        let found: Vec<mysql_async::Row> = self
            .conn
            .exec(sql, Params::Positional(params))
            .await
            .map_err(|e| self.db_err(e))?;
        let mut rows = Vec::with_capacity(found.len());
        let mut proof = Vec::with_capacity(found.len());
        for row in found {
            let mut values = row.unwrap();
            let (Some(Value::Bytes(hash)), Some(Value::Bytes(ident))) = (values.pop(), values.pop()) else {
                return Err(unhashable(self.side, table, 1));
            };
            proof.push(RowHash {
                ident,
                hash: String::from_utf8_lossy(&hash).into_owned(),
            });
            rows.push(values);
        }
        Ok((rows, proof))
    }

    /// Names what is wrong in a chunk whose check failed, before it is rolled back: the server's
    /// hash of every row this chunk inserted or updated, read in the same transaction (the range
    /// is locked, so only this chunk's writes are in it), against the restored server's hash
    /// of that row, and every key it deleted. What the application does after the commit cannot
    /// make a check fail, and nothing the tool read, encoded or wrote wrong can pass it.
    pub(super) async fn explain_failed_check(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        pending: &PendingCheck,
        merge: Merge,
        outcome: &ChunkOutcome,
    ) -> Error {
        let range = KeyRange {
            after: pending.after.as_deref(),
            upto: pending.upto.as_deref(),
        };
        let written: HashMap<Vec<u8>, String> = match self.row_hashes(table, schema, range, None).await {
            Ok(found) => found
                .into_iter()
                .map(|(key, hash)| (encode_values(key.iter()), hash))
                .collect(),
            Err(e) => return e,
        };
        let inserted: std::collections::HashSet<usize> = outcome.missing.iter().copied().collect();
        let wrong = |key: &[&Value], what: &str| {
            Error::VerificationFailed(format!(
                "in {table}, the row with key {} {what}; the chunk was rolled back, nothing of it is in production",
                crate::rowcodec::display_key(key)
            ))
        };
        for (i, key) in pending.keys.iter().enumerate() {
            let key: Vec<&Value> = key.iter().collect();
            // Every restored key of the chunk is in production once it commits, whatever the mode.
            let Some(got) = written.get(&encode_values(key.iter().copied())) else {
                return wrong(&key, "is not in production at the end of its chunk's transaction");
            };
            // A row it wrote has the restored values; in missing-rows mode, a row that was
            // there already keeps production's own.
            if merge == Merge::MissingRows && !inserted.contains(&i) {
                continue;
            }
            if pending.hashes.get(i) != Some(got) {
                return wrong(
                    &key,
                    "reads back in production with other values than on the restored server",
                );
            }
        }
        for key in &outcome.extra {
            let refs: Vec<&Value> = key.iter().collect();
            if written.contains_key(&encode_values(refs.iter().copied())) {
                return wrong(&refs, "was deleted but production still shows it");
            }
        }
        Error::VerificationFailed(format!(
            "in {table}, the rows of a chunk do not read back as written (their checksum in production differs \
             from what the chunk's writes were to make, though no single row could be named); the chunk was \
             rolled back, nothing of it is in production"
        ))
    }
}
