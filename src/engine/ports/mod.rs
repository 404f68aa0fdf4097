//! The ports through which the state machine reaches AWS and MySQL. The real adapters live in
//! `aws` and `mysql`; the unit tests drive the same machine through in-memory fakes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
pub use mysql_async::Value;

use crate::error::Result;

mod cloud;
pub use cloud::*;

/// One row, in the column order of [`TableSchema::columns`].
pub type Row = Vec<Value>;

/// A host and port to reach a database at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A column as the copy needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The full type as `information_schema.COLUMNS.COLUMN_TYPE` spells it, e.g. `decimal(14,4)`.
    pub column_type: String,
    pub nullable: bool,
}

impl Column {
    /// The most bytes a value of `column_type` holds (utf8mb4: 4 bytes a character).
    pub fn widest(column_type: &str) -> u64 {
        let t = column_type.to_ascii_lowercase();
        let base = t.split(['(', ' ']).next().unwrap_or("");
        let length = || -> u64 {
            t.split_once('(')
                .and_then(|(_, rest)| rest.split([')', ',']).next())
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(255)
        };
        match base {
            "char" | "varchar" => 4 * length() + 2,
            "binary" | "varbinary" => length() + 2,
            "tinyblob" | "tinytext" => 255,
            "blob" | "text" => 65_535,
            "mediumblob" | "mediumtext" => 16 << 20,
            "longblob" | "longtext" | "json" => 4 << 30,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
            | "geometrycollection" | "geomcollection" => 4 << 30,
            "enum" | "set" => t.len() as u64,
            _ => 32,
        }
    }
}

/// The copyable columns of a table (generated columns are left out: the server computes them)
/// and the positions of its primary key columns among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub columns: Vec<Column>,
    pub key: Vec<usize>,
}

impl TableSchema {
    /// The most bytes a row can hold, from the column types alone: whether a table can hold a
    /// row too large for a packet limit at all (most tables cannot, and need no scan).
    pub fn widest_possible_row(&self) -> u64 {
        self.columns.iter().map(|c| Column::widest(&c.column_type)).sum()
    }

    pub fn key_of<'r>(&self, row: &'r [Value]) -> Vec<&'r Value> {
        self.key.iter().map(|&i| &row[i]).collect()
    }
}

/// A foreign key that references a table: its own table, name, columns, and what a delete of
/// the referenced row does to the rows that point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub child: TableRef,
    pub constraint: String,
    pub columns: Vec<String>,
    /// The referenced table's columns, in the order of `columns`.
    pub referenced: Vec<String>,
    /// `ON DELETE`: CASCADE, SET NULL, RESTRICT, NO ACTION or SET DEFAULT.
    pub on_delete: String,
}

/// A foreign key whose references a run sets back: the columns of the child table, the
/// table they reference and its columns, in the same order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct References {
    pub constraint: String,
    pub columns: Vec<String>,
    pub parent: TableRef,
    pub parent_columns: Vec<String>,
}

/// What setting references back did in one chunk of production rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReferencesOutcome {
    /// Rows whose reference was NULL in production and is set back to its restored value.
    pub restored: u64,
    /// Rows whose reference production holds with another value (the application re-pointed
    /// them since): kept.
    pub kept: u64,
    /// Rows already holding the restored reference.
    pub unchanged: u64,
    /// Rows whose restored reference points at a row production no longer has: left NULL.
    pub parent_gone: u64,
    /// Rows of the restored copy that production no longer has at all.
    pub absent: u64,
}

/// Database and table names, as given by the operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableRef {
    pub database: String,
    pub table: String,
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// How restored rows are merged into the table written, chunk by chunk (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Insert the restored rows whose key is absent; rows already there stay as they are.
    MissingRows,
    /// Also set the rows present on both sides with other values to the restored values.
    Overwrite,
    /// Also delete the rows the restored table lacks: the table ends equal to the restored one.
    ReplaceAll,
}

/// A range of primary keys: after `after` (exclusive; `None` from the first key) up to `upto`
/// (inclusive; `None` to the last). Successive chunks' ranges tile the key space, which is what
/// lets replace-all find every row the restored table lacks.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyRange<'a> {
    pub after: Option<&'a [Value]>,
    pub upto: Option<&'a [Value]>,
}

/// What one chunk's merge into production found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkOutcome {
    /// The positions, in the chunk, of the rows production lacked (inserted, unless dry).
    pub missing: Vec<usize>,
    /// The positions of the rows present in production with other values (overwritten in
    /// overwrite and replace-all modes, unless dry; kept as they are in missing-rows mode).
    pub differing: Vec<usize>,
    /// The keys of the production rows in the range that the restored table lacks (found in
    /// replace-all mode only, and deleted unless dry).
    pub extra: Vec<Row>,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub already_present: u64,
    /// Rows whose written values were proven inside the chunk's own transaction, before its
    /// commit: the server's hash of each inserted or updated row equals the restored server's
    /// hash of the same row (and each deleted key is gone).
    pub proven: u64,
}

/// The restored server's word on one row of a chunk: the row's key in the server's canonical
/// form (which production's locking read gives for the same key, so the two are matched by
/// bytes both servers wrote, not by the tool's reading of values) and the server's hash of the
/// whole row, what the chunk's writes must produce in production.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowHash {
    pub ident: Vec<u8>,
    pub hash: String,
}

/// A chunk's [`RowHash`]es, one per row, in the chunk's order. The hash is the server's own
/// over a canonical form of the row, so neither the tool's reading nor its writing of values is
/// trusted. Empty for a table without a key.
pub type ChunkProof = Vec<RowHash>;

/// A chunk written in its own transaction whose check and commit have not been sent yet
/// ([`Session::open_chunk`]): they go out with the next chunk's first statements, or alone
/// ([`Session::close_chunk`]).
#[derive(Debug)]
pub struct HeldChunk {
    pub outcome: ChunkOutcome,
    /// What the session sends to check and commit it; `None` when the session committed the
    /// chunk already (one that cannot hold a chunk open, or a chunk not to be held).
    pub pending: Option<PendingCheck>,
    /// When the locking read's answer came: the chunk's locks are held from about half a round
    /// trip before, until about half a round trip before its commit is answered, so the time
    /// between the two is the server's. `None` where the session cannot tell.
    pub locked_at: Option<std::time::Instant>,
}

impl HeldChunk {
    /// A chunk its session has already committed: nothing left to send for it.
    pub fn committed(outcome: ChunkOutcome) -> HeldChunk {
        HeldChunk {
            outcome,
            pending: None,
            locked_at: None,
        }
    }
}

/// [`Session::open_chunk`] for a chunk that is not held: `close` checked and committed first,
/// then `rows` merged and committed whole in their own transaction. The default of every
/// session, and a session's own way for the merges it cannot hold open.
#[allow(clippy::too_many_arguments)]
pub async fn open_unheld<S: Session + ?Sized>(
    session: &mut S,
    table: &TableRef,
    schema: &TableSchema,
    rows: &[Row],
    range: KeyRange<'_>,
    merge: Merge,
    proof: &ChunkProof,
    close: Option<HeldChunk>,
) -> Result<Opened> {
    let closed = match close {
        Some(held) => {
            session.close_chunk(table, schema, held).await?;
            Some(std::time::Instant::now())
        }
        None => None,
    };
    let chunk = session
        .merge_chunk(table, schema, rows, range, merge, false, proof)
        .await
        .map(HeldChunk::committed);
    Ok(Opened { closed, chunk })
}

/// What a held chunk's check needs, and what names the wrong row when it fails.
#[derive(Debug, Clone)]
pub struct PendingCheck {
    /// The session's own statement that fails unless the range holds what the writes made.
    pub statement: String,
    /// Each restored row's key (values) and the restored server's hash of the row, in order.
    pub keys: Vec<Row>,
    pub hashes: Vec<String>,
    /// The key range the chunk locked.
    pub after: Option<Row>,
    pub upto: Option<Row>,
}

/// What [`Session::open_chunk`] did.
#[derive(Debug)]
pub struct Opened {
    /// When the chunk given to close was committed (the server's answer to its COMMIT);
    /// `None` when none was given.
    pub closed: Option<std::time::Instant>,
    /// This chunk, held open or committed; or what stopped it (rolled back: nothing of it is in
    /// production), after the one given to close was committed.
    pub chunk: Result<HeldChunk>,
}

/// A checksum of the rows in a key range, computed by the server over a canonical form of each
/// row (the pt-table-checksum idea): equal on both sides means the same rows, without moving
/// them over the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeChecksum {
    pub rows: u64,
    pub hash: String,
}

/// A connection to one server, restored or production.
#[async_trait]
pub trait Session: Send {
    /// `None` when the table does not exist.
    async fn table_schema(&mut self, table: &TableRef) -> Result<Option<TableSchema>>;
    /// How this session writes missing rows, for the copy's summary (a fallback shows there).
    fn write_method(&self) -> &'static str {
        "INSERT"
    }
    /// Takes the named advisory lock (`GET_LOCK`) for as long as this session lives; false when
    /// another session holds it.
    async fn try_advisory_lock(&mut self, name: &str) -> Result<bool>;
    /// The server's row estimate (information_schema), for progress only.
    async fn estimate_rows(&mut self, table: &TableRef) -> Result<Option<u64>>;
    /// The foreign keys of other tables (or of `table` itself) that reference `table`, as
    /// information_schema shows them to this user.
    async fn referencing(&mut self, table: &TableRef) -> Result<Vec<ForeignKey>>;
    /// The rows of `table`; with `null_in`, only those where each of these columns is NULL.
    async fn count_rows(&mut self, table: &TableRef, null_in: &[String]) -> Result<u64>;
    /// The server's `max_allowed_packet`: the largest statement, row or packet it takes.
    async fn max_allowed_packet(&mut self) -> Result<u64>;
    /// The key and size in bytes of the widest row (matching `filter`): one scan of the table,
    /// run only when its column types allow rows past a packet limit.
    async fn widest_row(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        filter: Option<&str>,
    ) -> Result<Option<(Row, u64)>>;
    /// Up to `limit` rows of the key range (that match `filter`, a checked `--where`
    /// predicate), in key order.
    async fn read_chunk(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>>;
    /// The privileges `merge` needs on `table` beyond reading and inserting (UPDATE, DELETE)
    /// that this session's user lacks, found by statements that match no row, rolled back.
    async fn missing_privileges(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        merge: Merge,
    ) -> Result<Vec<&'static str>>;
    /// The triggers that fire on inserts into `table`, as `BEFORE INSERT name`.
    async fn insert_triggers(&mut self, table: &TableRef) -> Result<Vec<String>>;
    /// The databases a user could mean (system schemas left out), for the wizard.
    async fn list_databases(&mut self) -> Result<Vec<String>>;
    /// The base tables of a database with the server's row estimates, for the wizard.
    async fn list_tables(&mut self, database: &str) -> Result<Vec<(String, Option<u64>)>>;
    /// `SHOW CREATE TABLE`: the table's definition, `None` when it does not exist.
    async fn show_create_table(&mut self, table: &TableRef) -> Result<Option<String>>;
    /// Creates `table` from a `CREATE TABLE` statement that `show_create_table` gave for a table
    /// named `named` (on the restored server): the recreated production table, or a side table
    /// with the restored schema.
    async fn create_table_from(&mut self, table: &TableRef, named: &str, definition: &str) -> Result<()>;
    /// Drops `table` (only ever a drill's side table).
    async fn drop_table(&mut self, table: &TableRef) -> Result<()>;
    /// How many rows match a `--where` predicate; the server's error when it is not valid SQL
    /// for this table.
    async fn count_where(&mut self, table: &TableRef, predicate: &str) -> Result<u64>;
    /// In one transaction: locks `range` in production (rows and gaps, `FOR UPDATE`), compares
    /// it with `rows` (the restored rows of that range, in key order, with `proof`, their
    /// hashes), applies `merge` and commits. A table without a key (only ever a new side table)
    /// takes every row as missing, and its `proof` is empty.
    /// With `dry`, only finds what it would do (no lock, no write), for counts and `--dump-only`.
    /// Otherwise, before the commit and in the same transaction, the range must hold what the
    /// writes were to make of it: every row inserted or updated with the restored server's
    /// hash, every deleted key gone, every other row as the locking read found it; else the
    /// chunk is rolled back with `VerificationFailed`, naming the row.
    #[allow(clippy::too_many_arguments)]
    async fn merge_chunk(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        range: KeyRange<'_>,
        merge: Merge,
        dry: bool,
        proof: &ChunkProof,
    ) -> Result<ChunkOutcome>;
    /// `merge_chunk` in two halves, so that a chunk's check and commit go out in one batch with
    /// the next chunk's first statements: one round trip less per chunk over a slow link. First
    /// checks and commits `close` (a chunk an earlier call held open; an error then means it was
    /// not committed, and nothing of this call was done), then writes `rows` in a new
    /// transaction, and with `hold` leaves its check and commit to the next call or to
    /// [`Session::close_chunk`]. A session or a merge that cannot hold a chunk commits it here;
    /// this default always does.
    #[allow(clippy::too_many_arguments)]
    async fn open_chunk(
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
        let _ = hold;
        open_unheld(self, table, schema, rows, range, merge, proof, close).await
    }
    /// Checks and commits a chunk [`Session::open_chunk`] held open (rolled back, with
    /// `VerificationFailed` naming the row, when its check fails).
    async fn close_chunk(&mut self, _table: &TableRef, _schema: &TableSchema, held: HeldChunk) -> Result<()> {
        match held.pending {
            None => Ok(()),
            Some(_) => Err(crate::error::Error::InvalidInput(
                "this connection cannot hold a chunk open".into(),
            )),
        }
    }
    /// `read_chunk` and, for the rows it returns, their [`RowHash`]es: the chunk and what its
    /// transaction in production must prove it wrote. A server does both in one statement (one
    /// round trip, one pass over the rows); this default asks twice, and names a key by its
    /// encoded values.
    async fn read_chunk_hashed(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Row>, ChunkProof)> {
        let rows = self.read_chunk(table, schema, range, filter, limit).await?;
        let Some(last) = rows.last() else {
            return Ok((rows, Vec::new()));
        };
        let last: Vec<Value> = schema.key_of(last).into_iter().cloned().collect();
        let chunk = KeyRange {
            after: range.after,
            upto: Some(&last),
        };
        let hashes: std::collections::HashMap<Vec<u8>, String> = self
            .row_hashes(table, schema, chunk, filter)
            .await?
            .into_iter()
            .map(|(key, hash)| (crate::rowcodec::encode_values(key.iter()), hash))
            .collect();
        let proof = rows
            .iter()
            .map(|row| {
                let ident = crate::rowcodec::encode_values(schema.key_of(row));
                let hash = hashes.get(&ident).cloned().unwrap_or_default();
                RowHash { ident, hash }
            })
            .collect();
        Ok((rows, proof))
    }
    /// The server's hash of each row in `range` (matching `filter`), with its key: the same
    /// canonical form as [`Session::range_checksum`], one row at a time.
    async fn row_hashes(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
    ) -> Result<Vec<(Row, String)>>;
    /// Streams every row matching `filter` (in no particular order) to `out` in batches of
    /// `batch` rows or `batch_bytes` bytes, whichever is reached first, with memory bounded by
    /// the channel: the copy of a table without a primary key,
    /// which keyset chunks cannot walk. Stops early, without error, if `out` is closed.
    async fn scan(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        filter: Option<&str>,
        batch: usize,
        batch_bytes: usize,
        out: tokio::sync::mpsc::Sender<Vec<Row>>,
    ) -> Result<()>;
    /// The link's round trip to this server, the shortest of a few empty statements: what each
    /// statement costs in waiting (`--parallel auto`). Zero where it cannot be measured.
    async fn link_round_trip(&mut self) -> Result<std::time::Duration> {
        Ok(std::time::Duration::ZERO)
    }
    /// Turns the foreign key checks of this session (not the server's) on or off: off while
    /// the rows of a table that references itself, or a later table of the run, are written
    /// in key order (a row may come before the row it references).
    async fn set_foreign_key_checks(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
    /// Up to `limit` rows of `table` after `after` in key order whose `refs` columns all hold a
    /// value, as the key's columns followed by those columns.
    async fn reference_chunk(
        &mut self,
        _table: &TableRef,
        _schema: &TableSchema,
        _refs: &References,
        _after: Option<&[Value]>,
        _limit: usize,
    ) -> Result<Vec<Row>> {
        Err(crate::error::Error::InvalidInput(
            "this connection cannot set references back".into(),
        ))
    }
    /// In one transaction: locks the key range of `rows` (as `reference_chunk` gave them, from
    /// the restored copy), sets each row's `refs` columns to the restored values where
    /// production holds NULL in all of them and the referenced row exists, reads the rows back,
    /// and commits only if each holds what was set.
    async fn restore_references(
        &mut self,
        _table: &TableRef,
        _schema: &TableSchema,
        _refs: &References,
        _range: KeyRange<'_>,
        _rows: &[Row],
    ) -> Result<ReferencesOutcome> {
        Err(crate::error::Error::InvalidInput(
            "this connection cannot set references back".into(),
        ))
    }
    /// The rows of `table` whose `refs` columns hold a value that no row of the referenced
    /// table has: what writing with foreign key checks off may have left.
    async fn dangling_references(&mut self, _table: &TableRef, _refs: &References) -> Result<u64> {
        Ok(0)
    }
    /// The server-side checksum of the rows in `range` that match `filter`.
    async fn range_checksum(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
    ) -> Result<RangeChecksum>;
    /// The key of the `size`-th row of `range` (matching `filter`), with `true`; or, when fewer
    /// rows are left in it, the key of the last one with `false`; `None` when none is left.
    /// The verification's chunk boundaries, found without reading the rows.
    async fn chunk_end(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
        size: usize,
    ) -> Result<Option<(Row, bool)>>;
}

/// Opens sessions. `rds_endpoint` is the address RDS reports; the connector may dial elsewhere
/// (an endpoint override) but verifies TLS against that name.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, side: crate::error::Side, rds_endpoint: &Endpoint) -> Result<Box<dyn Session>>;

    /// The binlog rewind (`--source binlog`): builds the request's `asof`, a new table in
    /// production, from production's rows and binlog. With `check_only`, only the read-only
    /// checks that can refuse it. A connector that reads no binlog refuses.
    async fn rewind(
        &self,
        _production: &Endpoint,
        _request: &RewindRequest<'_>,
        _check_only: bool,
    ) -> Result<RewindOutcome> {
        Err(crate::error::Error::BinlogUnusable {
            what: "this connection reads no binlog".into(),
            fix: "use the instance restore (`--source pitr`, the default)".into(),
        })
    }
}

/// What a binlog rewind is asked to build.
#[derive(Debug, Clone, Copy)]
pub struct RewindRequest<'a> {
    pub table: &'a TableRef,
    /// The new table in production that receives the rows as they were.
    pub asof: &'a TableRef,
    /// The second the table is rewound to; with `before` (a `FILE:POS` where a transaction
    /// begins), to just before that transaction instead.
    pub to: DateTime<Utc>,
    pub before: Option<&'a str>,
    /// Where the first transaction after the point begins, as an earlier read of the same
    /// point found it ([`RewindOutcome::first_at`]): the read starts there instead of at the
    /// start of its binlog file, which can hold a gigabyte of older events.
    pub from: Option<&'a str>,
    /// Only the keys changed after the point, each as it was then (or left out: it did not
    /// exist). Enough for a merge that keeps the rows it is not given (missing-rows and
    /// overwrite): every other row is in production as it was at the point. A merge that
    /// removes rows (replace-all) or a side table needs the whole table.
    pub changed_keys_only: bool,
}

/// What a binlog rewind did (or, checking only, would undo).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewindOutcome {
    /// Transactions on the table after the point.
    pub transactions: u64,
    /// Keys whose value was put back to the point (or removed: inserted after it).
    pub keys_rewound: u64,
    /// Row changes on the table after the point (a key's first is the one put back).
    pub changes: u64,
    /// Rows of the as-of table.
    pub rows: u64,
    /// Where the binlog read ended.
    pub end: String,
    /// Where the first transaction after the point begins (none after it: `None`).
    pub first_at: Option<String>,
    /// The as-of table holds the changed keys alone ([`RewindRequest::changed_keys_only`]).
    pub changed_keys_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(types: &[&str]) -> TableSchema {
        TableSchema {
            columns: types
                .iter()
                .enumerate()
                .map(|(i, t)| Column {
                    name: format!("c{i}"),
                    column_type: t.to_string(),
                    nullable: true,
                })
                .collect(),
            key: vec![0],
        }
    }

    #[test]
    fn the_widest_possible_row_comes_from_the_column_types() {
        assert_eq!(
            Column::widest("varchar(255)"),
            4 * 255 + 2,
            "utf8mb4: 4 bytes a character"
        );
        assert_eq!(Column::widest("varbinary(64)"), 66);
        assert_eq!(Column::widest("mediumblob"), 16 << 20);
        assert_eq!(Column::widest("LONGTEXT"), 4 << 30);
        assert_eq!(Column::widest("json"), 4 << 30);
        assert_eq!(Column::widest("decimal(14,4)"), 32);
        // The sandbox's billing table cannot hold a row near a 16 MiB packet: no scan for it.
        let billing = schema(&[
            "bigint",
            "bigint unsigned",
            "char(3)",
            "decimal(14,4)",
            "varchar(255)",
            "datetime(6)",
            "datetime(6)",
            "varbinary(64)",
            "blob",
        ]);
        assert!(billing.widest_possible_row() < 1 << 20);
        assert!(schema(&["bigint", "longblob"]).widest_possible_row() > 1 << 30);
    }
}
