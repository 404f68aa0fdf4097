//! The proof of a chunk's writes, read in its own transaction before the commit.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Params;

use super::sql::{canonical_row_sql, column_list, key_columns, qualified, range_where};
use super::{unhashable, MysqlSession};
use crate::error::{Error, Result};
use crate::ports::{ChunkOutcome, ChunkProof, KeyRange, Merge, Row, Session, TableRef, TableSchema, Value};
use crate::rowcodec::encode_values;

impl MysqlSession {
    /// A chunk of restored rows and each one's hash, in one statement: the rows as `read_chunk`
    /// reads them, with `MD5(<canonical row>)` after the last column, the same hash
    /// `row_hashes` gives. One round trip and one pass over the rows instead of two.
    pub(super) async fn read_hashed(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Row>, Vec<(Row, String)>)> {
        // As range_query writes a chunk's read, with the hash after the columns.
        let (filter, params) = range_where(schema, range, filter);
        let sql = format!(
            "SELECT {}, MD5({}) FROM {}{filter} ORDER BY {} LIMIT {limit}",
            column_list(schema),
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
        let mut hashes = Vec::with_capacity(found.len());
        for row in found {
            let mut values = row.unwrap();
            let Some(Value::Bytes(hash)) = values.pop() else {
                return Err(unhashable(self.side, table, 1));
            };
            let key: Row = schema.key_of(&values).into_iter().cloned().collect();
            hashes.push((key, String::from_utf8_lossy(&hash).into_owned()));
            rows.push(values);
        }
        Ok((rows, hashes))
    }

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
