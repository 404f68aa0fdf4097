//! A chunk's transaction in production, in as few round trips as the protocol allows: over a
//! VPN or a tunnel each one is tens of milliseconds, paid by every chunk of the run, with the
//! range locked for most of them.
//!
//! In missing-rows mode (the default) a chunk waits on three:
//! 1. `START TRANSACTION; SELECT <key>, MD5(<row>) ... FOR UPDATE; LOAD DATA LOCAL ...`, sent
//!    as one batch. The server answers the locking read (the canonical key and hash of each row
//!    in the range, not the rows) and asks for the LOAD's file.
//! 2. The tool, which by then knows which restored keys the range lacks, sends their lines.
//! 3. `SELECT <check>; COMMIT`: the check raises an error unless the range holds what the
//!    writes were to make of it (its count and checksum, [`CHECKSUM_COLUMNS`], equal to those the
//!    tool computes from the restored rows' hashes and the locking read's), and a server runs
//!    nothing of a batch after an error, so the COMMIT happens only after a check that passed.
//!    When it fails, the rows are compared one by one to name the wrong one, and the chunk is
//!    rolled back.
//!
//! Overwrite and replace-all write their deletes and updates after the locking read and before
//! the inserts (a restored row may need a unique value that a row about to be overwritten or
//! deleted still holds), so their LOAD goes on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Params;

use super::sql::*;
use super::write::{load_statement, LoadLines};
use super::{db_error, unhashable, MysqlSession, MAX_PLACEHOLDERS};
use crate::error::{Error, Result};
use crate::ports::{
    ChunkOutcome, ChunkProof, HeldChunk, KeyRange, Merge, Opened, PendingCheck, Row, TableRef, TableSchema, Value,
};

/// A production row of the chunk's range as the locking read found it.
struct Present {
    ident: Vec<u8>,
    hash: String,
}

/// What the locking read found, matched against the chunk's restored rows.
struct Found {
    outcome: ChunkOutcome,
    /// The production rows in the range no restored row matched (their canonical keys).
    unmatched: Vec<usize>,
    present: Vec<Present>,
}

impl MysqlSession {
    /// `Session::merge_chunk`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn merge(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        range: KeyRange<'_>,
        merge: Merge,
        dry: bool,
        proof: &ChunkProof,
    ) -> Result<ChunkOutcome> {
        if schema.key.is_empty() {
            return self.merge_keyless(table, schema, rows, dry).await;
        }
        if proof.len() != rows.len() {
            return Err(Error::Db {
                side: self.side,
                detail: format!(
                    "a chunk of {table} came with {} row hashes for {} rows; nothing was written",
                    proof.len(),
                    rows.len()
                ),
            });
        }
        if dry {
            // What it would do, without a lock: for the counts shown before a destructive
            // merge, and for --dump-only.
            let side = self.side;
            let present: Vec<(Vec<u8>, Option<String>)> = self
                .conn
                .query(present_query(table, schema, range, false))
                .await
                .map_err(|e| db_error(side, e))?;
            let present = self.hashed(table, present)?;
            let mut found = matched(rows, proof, present, merge);
            if merge == Merge::ReplaceAll {
                found.outcome.extra = self.extra_keys(table, schema, range, &found, false).await?;
            }
            return Ok(found.outcome);
        }
        if merge == Merge::MissingRows && self.loads(schema) {
            // The transaction `open_chunk` writes, committed at once.
            return self
                .open_loaded(table, schema, rows, range, proof, None, false)
                .await?
                .chunk
                .map(|chunk| chunk.outcome);
        }
        let done = self.merge_locked(table, schema, rows, range, merge, proof).await;
        if done.is_err() {
            // Whatever the chunk wrote goes (a lost connection was rolled back by the server;
            // after a commit this changes nothing).
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        done
    }

    /// A table without a key, only ever loaded into a new side table: every row goes in.
    async fn merge_keyless(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        dry: bool,
    ) -> Result<ChunkOutcome> {
        let outcome = ChunkOutcome {
            missing: (0..rows.len()).collect(),
            inserted: if dry { 0 } else { rows.len() as u64 },
            ..Default::default()
        };
        if dry {
            return Ok(outcome);
        }
        self.begin().await?;
        let all: Vec<&Row> = rows.iter().collect();
        let done = self.insert_rows(table, schema, &all).await.map(|()| outcome);
        self.end(done, true).await
    }

    /// The chunk's transaction, from its first statement to its commit, where its rows are not
    /// loaded in the locking read's batch (the other modes, and INSERT); on an error the caller
    /// rolls back.
    async fn merge_locked(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        range: KeyRange<'_>,
        merge: Merge,
        proof: &ChunkProof,
    ) -> Result<ChunkOutcome> {
        let started = std::time::Instant::now();
        let (_, locked) = self
            .lock_and_load(table, schema, rows, range, proof, merge, None, false)
            .await?;
        let (mut found, _, _) = locked?;
        let missing: Vec<&Row> = found.outcome.missing.iter().map(|&i| &rows[i]).collect();
        if merge == Merge::ReplaceAll {
            found.outcome.extra = self.extra_keys(table, schema, range, &found, true).await?;
            found.outcome.deleted = found.outcome.extra.len() as u64;
        }
        if merge != Merge::MissingRows {
            self.overwrite(table, schema, rows, &found.outcome.differing).await?;
            found.outcome.updated = found.outcome.differing.len() as u64;
        }
        self.insert_rows(table, schema, &missing).await?;
        let written = started.elapsed();
        let (outcome, pending) = finish(table, schema, rows, range, merge, proof, found);
        crate::crash_point!("copy-chunk-before-commit");
        self.check_and_commit(table, schema, &pending, &outcome, merge).await?;
        // Where a chunk's time goes, for `-v`: over a slow link each part is a round trip or
        // two (the locking read with the LOAD in missing-rows mode, the writes of the other
        // modes, the check with the commit).
        tracing::debug!(
            table = %table, rows = rows.len(), inserted = outcome.inserted,
            updated = outcome.updated, deleted = outcome.deleted,
            write_ms = written.as_millis() as u64,
            proof_ms = (started.elapsed() - written).as_millis() as u64,
            "chunk merged"
        );
        Ok(outcome)
    }

    /// `Session::open_chunk`: a chunk held open where it can be (missing-rows, written by LOAD
    /// DATA); otherwise `close` is closed and the chunk merged and committed whole.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn open(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        range: KeyRange<'_>,
        merge: Merge,
        proof: &ChunkProof,
        close: Option<HeldChunk>,
        hold: bool,
    ) -> Result<Opened> {
        if merge == Merge::MissingRows && !schema.key.is_empty() && self.loads(schema) && proof.len() == rows.len() {
            return self.open_loaded(table, schema, rows, range, proof, close, hold).await;
        }
        crate::ports::open_unheld(self, table, schema, rows, range, merge, proof, close).await
    }

    /// `Session::close_chunk`: a held chunk's check and commit, or its rollback.
    pub(super) async fn close(&mut self, table: &TableRef, schema: &TableSchema, held: HeldChunk) -> Result<()> {
        let Some(pending) = held.pending else {
            return Ok(());
        };
        crate::crash_point!("copy-chunk-before-commit");
        let done = self
            .check_and_commit(table, schema, &pending, &held.outcome, Merge::MissingRows)
            .await;
        if done.is_err() {
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        done
    }

    /// `Session::open_chunk` in missing-rows mode with LOAD DATA: one batch checks and commits
    /// `close` (when given), then begins this chunk's transaction, locks its range and loads the
    /// rows the range lacks; the chunk's own check goes with the next call, or alone now unless
    /// `hold`.
    #[allow(clippy::too_many_arguments)]
    async fn open_loaded(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        range: KeyRange<'_>,
        proof: &ChunkProof,
        close: Option<HeldChunk>,
        hold: bool,
    ) -> Result<Opened> {
        let started = std::time::Instant::now();
        let closing = match &close {
            Some(HeldChunk {
                outcome,
                pending: Some(pending),
                ..
            }) => Some((pending, outcome)),
            _ => None,
        };
        if closing.is_some() {
            crate::crash_point!("copy-chunk-before-commit");
        }
        let batch = self
            .lock_and_load(table, schema, rows, range, proof, Merge::MissingRows, closing, true)
            .await;
        let (closed, locked) = match batch {
            Ok(batch) => batch,
            Err(e) => {
                // Neither chunk is in production: the held one's check or commit failed, or the
                // connection broke before its commit was answered.
                let _ = self.conn.query_drop("ROLLBACK").await;
                return Err(e);
            }
        };
        let chunk = async {
            let (found, loaded, locked_at) = locked?;
            let missing: Vec<&Row> = found.outcome.missing.iter().map(|&i| &rows[i]).collect();
            if let Some(loaded) = loaded {
                self.after_load(table, schema, &missing, loaded).await?;
            }
            let (outcome, pending) = finish(table, schema, rows, range, Merge::MissingRows, proof, found);
            if hold {
                return Ok(HeldChunk {
                    outcome,
                    pending: Some(pending),
                    locked_at: Some(locked_at),
                });
            }
            crate::crash_point!("copy-chunk-before-commit");
            self.check_and_commit(table, schema, &pending, &outcome, Merge::MissingRows)
                .await?;
            Ok(HeldChunk {
                outcome,
                pending: None,
                locked_at: Some(locked_at),
            })
        }
        .await;
        if chunk.is_err() {
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        tracing::debug!(
            table = %table, rows = rows.len(), closed = closed.is_some(), held = hold,
            ms = started.elapsed().as_millis() as u64,
            "chunk written"
        );
        Ok(Opened { closed, chunk })
    }

    /// One batch: `closing`'s check and commit (a held chunk), then START TRANSACTION, the
    /// locking read and, with `load`, the LOAD DATA LOCAL of the rows the read does not find.
    /// An error of the closing part is the call's; once its commit is answered (when), this
    /// chunk's own error comes inside.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    async fn lock_and_load(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        range: KeyRange<'_>,
        proof: &ChunkProof,
        merge: Merge,
        closing: Option<(&PendingCheck, &ChunkOutcome)>,
        load: bool,
    ) -> Result<(
        Option<std::time::Instant>,
        Result<(Found, Option<LoadResult>, std::time::Instant)>,
    )> {
        let side = self.side;
        // Which restored row each canonical key names, and which of them the locking read finds:
        // the LOAD's data, sent when the server asks for it, is the lines of the others.
        let index: HashMap<&[u8], usize> = proof.iter().enumerate().map(|(i, p)| (p.ident.as_slice(), i)).collect();
        let taken = Arc::new(Mutex::new(vec![false; rows.len()]));
        let mut batch = String::new();
        if let Some((pending, _)) = closing {
            batch.push_str(&pending.statement);
            batch.push_str("; COMMIT; ");
        }
        batch.push_str("START TRANSACTION; ");
        batch.push_str(&present_query(table, schema, range, true));
        if load {
            batch.push_str("; ");
            batch.push_str(&load_statement(table, schema));
            let lines = LoadLines::encode(schema, rows.iter());
            let taken = taken.clone();
            self.conn.set_infile_handler(async move {
                let taken = taken.lock().unwrap_or_else(|e| e.into_inner());
                let pieces = lines.pieces(|i| !taken[i]);
                Ok(futures_util::stream::iter(pieces.into_iter().map(Ok)).boxed())
            });
        }
        let mut result = match self.conn.query_iter(batch).await {
            Ok(result) => result,
            Err(e) => {
                return Err(match closing {
                    Some((pending, outcome)) => self.check_failed(table, schema, pending, outcome, merge, e).await,
                    None => db_error(side, e),
                })
            }
        };
        let mut closed = None;
        if let Some((pending, outcome)) = closing {
            // The check's one row (its error comes in the row's place), then the COMMIT's answer.
            let checked = match next_set(&mut result).await {
                Ok(()) => next_set(&mut result).await,
                Err(e) => Err(e),
            };
            if let Err(e) = checked {
                drop(result);
                return Err(self.check_failed(table, schema, pending, outcome, merge, e).await);
            }
            closed = Some(std::time::Instant::now());
        }
        let locked = async {
            let mut present = Vec::new();
            // START TRANSACTION's empty answer; then the locking read's rows. Reading past its
            // last row takes the result on to the LOAD, whose handler runs then, with every
            // row the read found marked.
            next_set(&mut result).await.map_err(|e| db_error(side, e))?;
            // The locking read's header is in: it came with the read's rows, about half a round
            // trip after the server took the locks.
            let locked_at = std::time::Instant::now();
            while let Some(row) = result.next().await.map_err(|e| db_error(side, e))? {
                let (ident, hash): (Vec<u8>, Option<String>) =
                    mysql_async::from_row_opt(row).map_err(|e| Error::Db {
                        side,
                        detail: format!("the locking read of {table} gave an unexpected row: {e}"),
                    })?;
                if let Some(&i) = index.get(ident.as_slice()) {
                    taken.lock().unwrap_or_else(|e| e.into_inner())[i] = true;
                }
                present.push((ident, hash));
            }
            let loaded = if load {
                let counts = (result.affected_rows(), result.warnings());
                // The LOAD's own answer: nothing more, or its error.
                Some(next_set(&mut result).await.map(|()| counts))
            } else {
                None
            };
            Ok::<_, Error>((present, loaded, locked_at))
        }
        .await;
        drop(result);
        let locked = locked.and_then(|(present, loaded, locked_at)| {
            let present = self.hashed(table, present)?;
            Ok((matched(rows, proof, present, merge), loaded, locked_at))
        });
        Ok((closed, locked))
    }

    /// What the batch's LOAD answered: every missing row loaded and no warning; or, refused by
    /// the server's settings under `--load-method auto`, the rows inserted by INSERT in the same
    /// transaction.
    async fn after_load(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        missing: &[&Row],
        loaded: LoadResult,
    ) -> Result<()> {
        match loaded {
            Ok((count, warnings)) => self.loaded(table, count, warnings, missing.len() as u64).await,
            Err(e) => {
                let e = self.load_error(e);
                if !(self.load_method == super::LoadMethod::Auto && Self::is_load_refused(&e)) {
                    return Err(e);
                }
                self.fall_back(&e);
                self.insert_rows(table, schema, missing).await
            }
        }
    }

    /// Sends a chunk's check with the COMMIT, which runs only if the check passed.
    pub(super) async fn check_and_commit(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        pending: &PendingCheck,
        outcome: &ChunkOutcome,
        merge: Merge,
    ) -> Result<()> {
        let batch = format!("{}; COMMIT", pending.statement);
        // The check's one row (its error comes in the row's place, after the columns), then the
        // COMMIT's answer or its error.
        let checked = match self.conn.query_iter(batch).await {
            Ok(result) => result.drop_result().await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => Ok(()),
            Err(e) => Err(self.check_failed(table, schema, pending, outcome, merge, e).await),
        }
    }

    /// The error of a chunk whose check or commit failed: a failed check explained row by row
    /// (the transaction is still open, so its writes can be read), anything else as it came.
    async fn check_failed(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        pending: &PendingCheck,
        outcome: &ChunkOutcome,
        merge: Merge,
        e: mysql_async::Error,
    ) -> Error {
        match e {
            mysql_async::Error::Server(e) if e.code == CHECK_FAILED => {
                self.explain_failed_check(table, schema, pending, merge, outcome).await
            }
            e => db_error(self.side, e),
        }
    }

    /// The locking read's rows with their hashes; a row the server could not hash (its
    /// canonical form is past max_allowed_packet) stops the chunk.
    fn hashed(&self, table: &TableRef, rows: Vec<(Vec<u8>, Option<String>)>) -> Result<Vec<Present>> {
        let unhashed = rows.iter().filter(|(_, h)| h.is_none()).count();
        if unhashed > 0 {
            return Err(unhashable(self.side, table, unhashed as u64));
        }
        Ok(rows
            .into_iter()
            .map(|(ident, hash)| Present {
                ident,
                hash: hash.unwrap_or_default(),
            })
            .collect())
    }

    /// The keys, as values, of the production rows of the range no restored row matched (what
    /// replace-all deletes, and `--dump-file` writes as DELETEs); with `delete`, deleted too,
    /// each statement checked to remove exactly the rows it named.
    async fn extra_keys(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        found: &Found,
        delete: bool,
    ) -> Result<Vec<Row>> {
        let side = self.side;
        let mut keys = Vec::new();
        let per_statement = (MAX_PLACEHOLDERS / 2).min(1000);
        for batch in found.unmatched.chunks(per_statement) {
            let (filter, mut params) = range_where(schema, range, None);
            let named = format!(
                "{} IN ({})",
                canonical_key_sql(schema),
                vec!["UNHEX(?)"; batch.len()].join(", ")
            );
            params.extend(
                batch
                    .iter()
                    .map(|&j| Value::Bytes(hex::encode(&found.present[j].ident).into_bytes())),
            );
            let and = if filter.is_empty() { " WHERE " } else { " AND " };
            let select = format!(
                "SELECT {} FROM {}{filter}{and}{named}",
                key_columns(schema).join(", "),
                qualified(table)
            );
            let got: Vec<mysql_async::Row> = self
                .conn
                .exec(select, Params::Positional(params.clone()))
                .await
                .map_err(|e| db_error(side, e))?;
            self.check(table, "found", got.len() as u64, batch.len() as u64)?;
            keys.extend(rows_of(got));
            if delete {
                let sql = format!("DELETE FROM {}{filter}{and}{named}", qualified(table));
                self.conn
                    .exec_drop(sql, Params::Positional(params))
                    .await
                    .map_err(|e| db_error(side, e))?;
                self.check(table, "deleted", self.conn.affected_rows(), batch.len() as u64)?;
            }
        }
        Ok(keys)
    }

    /// Sets the rows at `differing` to their restored values, one UPDATE each, each checked to
    /// change exactly one row.
    async fn overwrite(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        differing: &[usize],
    ) -> Result<()> {
        if differing.is_empty() {
            return Ok(());
        }
        let side = self.side;
        let values: Vec<usize> = (0..schema.columns.len()).filter(|i| !schema.key.contains(i)).collect();
        let set: Vec<String> = values
            .iter()
            .map(|&i| format!("{} = ?", quote_ident(&schema.columns[i].name)))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE {}",
            qualified(table),
            set.join(", "),
            key_equals(schema)
        );
        for &i in differing {
            let mut params = bind(&rows[i], &values);
            params.extend(schema.key_of(&rows[i]).into_iter().cloned());
            self.conn
                .exec_drop(sql.as_str(), Params::Positional(params))
                .await
                .map_err(|e| db_error(side, e))?;
            self.check(table, "updated", self.conn.affected_rows(), 1)?;
        }
        Ok(())
    }
}

/// The error a chunk's check raises: "Subquery returns more than 1 row" (ER_SUBQUERY_NO_1_ROW,
/// the same code on MySQL and MariaDB).
const CHECK_FAILED: u16 = 1242;

/// What a batch's LOAD answered: the rows it loaded and its warnings, or its error.
type LoadResult = std::result::Result<(u64, u16), mysql_async::Error>;

/// Reads one result set of a batch to its end (which reads the next one's header, and runs a
/// LOAD's file handler when the next is a LOAD): its rows are dropped.
async fn next_set(
    result: &mut mysql_async::QueryResult<'_, 'static, mysql_async::TextProtocol>,
) -> std::result::Result<(), mysql_async::Error> {
    while result.next().await?.is_some() {}
    Ok(())
}

/// A chunk's outcome once its writes are done, and the check that must pass before its commit.
fn finish(
    table: &TableRef,
    schema: &TableSchema,
    rows: &[Row],
    range: KeyRange<'_>,
    merge: Merge,
    proof: &ChunkProof,
    found: Found,
) -> (ChunkOutcome, PendingCheck) {
    let expected = expected_checksum(proof, &found, merge);
    let mut outcome = found.outcome;
    outcome.inserted = outcome.missing.len() as u64;
    outcome.proven = match merge {
        Merge::MissingRows => outcome.inserted,
        _ => (rows.len() + outcome.extra.len()) as u64,
    };
    let pending = PendingCheck {
        statement: check_statement(table, schema, range, &expected),
        keys: rows
            .iter()
            .map(|r| schema.key_of(r).into_iter().cloned().collect())
            .collect(),
        hashes: proof.iter().map(|p| p.hash.clone()).collect(),
        after: range.after.map(<[Value]>::to_vec),
        upto: range.upto.map(<[Value]>::to_vec),
    };
    (outcome, pending)
}

/// The chunk's restored rows matched, by canonical key, with what production holds in the range.
fn matched(rows: &[Row], proof: &ChunkProof, present: Vec<Present>, merge: Merge) -> Found {
    let by_ident: HashMap<&[u8], usize> = present
        .iter()
        .enumerate()
        .map(|(j, p)| (p.ident.as_slice(), j))
        .collect();
    let mut taken = vec![false; present.len()];
    let mut outcome = ChunkOutcome::default();
    for (i, restored) in proof.iter().enumerate().take(rows.len()) {
        match by_ident.get(restored.ident.as_slice()) {
            Some(&j) => {
                taken[j] = true;
                outcome.already_present += 1;
                if present[j].hash != restored.hash {
                    outcome.differing.push(i);
                }
            }
            None => outcome.missing.push(i),
        }
    }
    let unmatched = match merge {
        Merge::ReplaceAll => (0..present.len()).filter(|&j| !taken[j]).collect(),
        _ => Vec::new(),
    };
    Found {
        outcome,
        unmatched,
        present,
    }
}

/// The locking read: each production row of the range as its canonical key and its hash, in
/// key order, its bounds written as literals (it goes in a text batch).
fn present_query(table: &TableRef, schema: &TableSchema, range: KeyRange<'_>, lock: bool) -> String {
    format!(
        "SELECT {}, MD5({}) FROM {}{} ORDER BY {}{}",
        canonical_key_sql(schema),
        canonical_row_sql(schema),
        qualified(table),
        range_where_literal(schema, range),
        key_columns(schema).join(", "),
        if lock { " FOR UPDATE" } else { "" }
    )
}

/// What the range must hold once the chunk's writes are done, as the check compares it: in
/// missing-rows mode every row production had plus the inserted ones; in overwrite the chunk's
/// rows as restored plus production's rows no restored row matched; in replace-all the
/// chunk's rows alone. None of them unhashable.
fn expected_checksum(proof: &ChunkProof, found: &Found, merge: Merge) -> String {
    let restored = |i: usize| proof[i].hash.as_str();
    let hashes: Vec<&str> = match merge {
        Merge::MissingRows => found
            .present
            .iter()
            .map(|p| p.hash.as_str())
            .chain(found.outcome.missing.iter().map(|&i| restored(i)))
            .collect(),
        Merge::Overwrite => {
            let matched: std::collections::HashSet<&[u8]> = proof.iter().map(|p| p.ident.as_slice()).collect();
            found
                .present
                .iter()
                .filter(|p| !matched.contains(p.ident.as_slice()))
                .map(|p| p.hash.as_str())
                .chain((0..proof.len()).map(restored))
                .collect()
        }
        Merge::ReplaceAll => (0..proof.len()).map(restored).collect(),
    };
    format!("{}:0", checksum_of(hashes))
}

/// A statement that fails with [`CHECK_FAILED`] unless the range's count and checksum, as the
/// server computes them now, inside the chunk's transaction, are `expected`: a scalar subquery
/// that returns two rows exactly when they differ.
fn check_statement(table: &TableRef, schema: &TableSchema, range: KeyRange<'_>, expected: &str) -> String {
    format!(
        "SELECT (SELECT 1 FROM (SELECT 1 AS n UNION ALL SELECT 2) AS two WHERE \
         (SELECT CONCAT(n, ':', a, ':', b, ':', u) FROM \
         (SELECT {CHECKSUM_COLUMNS} FROM {}) AS sums) <> '{expected}') AS chunk_check",
        hashed_rows(
            schema,
            &format!("{}{}", qualified(table), range_where_literal(schema, range)),
            range.upto.is_some()
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::RowHash;

    fn proof(pairs: &[(&str, &str)]) -> ChunkProof {
        pairs
            .iter()
            .map(|(ident, hash)| RowHash {
                ident: ident.as_bytes().to_vec(),
                hash: hash.to_string(),
            })
            .collect()
    }

    fn present(pairs: &[(&str, &str)]) -> Vec<Present> {
        pairs
            .iter()
            .map(|(ident, hash)| Present {
                ident: ident.as_bytes().to_vec(),
                hash: hash.to_string(),
            })
            .collect()
    }

    /// An MD5 in hex whose two 60-bit slices are `n` and `16 n`.
    const H1: &str = "00000000000000100000000000001000";
    const H2: &str = "00000000000000200000000000002000";
    const H3: &str = "00000000000000300000000000003000";
    const H9: &str = "00000000000000900000000000009000";

    #[test]
    fn a_chunk_is_matched_by_canonical_key_and_compared_by_hash() {
        let rows = vec![vec![Value::Int(1)], vec![Value::Int(2)], vec![Value::Int(3)]];
        let restored = proof(&[("1:1", H1), ("1:2", H2), ("1:3", H3)]);
        // Production holds key 2 as restored, key 3 changed, and key 7 the restored copy lacks.
        let found = matched(
            &rows,
            &restored,
            present(&[("1:2", H2), ("1:3", H9), ("1:7", H9)]),
            Merge::ReplaceAll,
        );
        assert_eq!(found.outcome.missing, vec![0]);
        assert_eq!(found.outcome.differing, vec![2]);
        assert_eq!(found.outcome.already_present, 2);
        assert_eq!(found.unmatched, vec![2], "key 7, the third production row");
        let only_missing = matched(&rows, &restored, present(&[("1:7", H9)]), Merge::MissingRows);
        assert!(only_missing.unmatched.is_empty(), "only replace-all deletes");
    }

    #[test]
    fn the_expected_checksum_is_what_each_mode_leaves_in_the_range() {
        let rows = vec![vec![Value::Int(1)], vec![Value::Int(3)]];
        let restored = proof(&[("1:1", H1), ("1:3", H3)]);
        let in_production = || present(&[("1:3", H9), ("1:7", H2)]);
        let sum = |hashes: &[&str]| format!("{}:0", checksum_of(hashes.iter().copied()));
        let found = |merge| matched(&rows, &restored, in_production(), merge);
        // Missing rows: production's own rows stay as they are, key 1 goes in.
        assert_eq!(
            expected_checksum(&restored, &found(Merge::MissingRows), Merge::MissingRows),
            sum(&[H9, H2, H1])
        );
        // Overwrite: key 3 takes its restored values; key 7 (written since) stays.
        assert_eq!(
            expected_checksum(&restored, &found(Merge::Overwrite), Merge::Overwrite),
            sum(&[H2, H1, H3])
        );
        // Replace-all: exactly the restored rows.
        assert_eq!(
            expected_checksum(&restored, &found(Merge::ReplaceAll), Merge::ReplaceAll),
            sum(&[H1, H3])
        );
        assert_eq!(sum(&[H1, H3]), format!("2:{}:{}:0", 1 + 3, 16 + 48));
    }
}
