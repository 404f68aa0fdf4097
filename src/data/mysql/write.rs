//! Writing the rows a chunk lacks into production: LOAD DATA LOCAL fed from memory where the
//! server and the column types allow it, multi-row prepared INSERT otherwise. Each write is
//! counted, and anything but every row written fails the chunk.

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Params;

use super::sql::*;
use super::{db_error, LoadMethod, MysqlSession, MAX_PLACEHOLDERS};
use crate::error::{Error, Result};
use crate::ports::{Row, TableRef, TableSchema, Value};

/// The largest packet of LOAD DATA LOCAL data sent at once.
const LOAD_PIECE: usize = 1 << 20;

/// How a refused LOAD DATA LOCAL is told apart from other database errors.
const LOAD_REFUSED: &str = "LOAD DATA LOCAL refused by the server";

impl MysqlSession {
    /// Whether this session's chunks go in by LOAD DATA LOCAL: the method allows it and every
    /// column type travels through it exactly.
    pub(super) fn loads(&self, schema: &TableSchema) -> bool {
        self.load_method != LoadMethod::Insert
            && schema.columns.iter().all(|c| crate::rowcodec::loadable(&c.column_type))
    }

    /// The server refused LOAD DATA LOCAL under `--load-method auto`: INSERT from now on.
    pub(super) fn fall_back(&mut self, refusal: &Error) {
        tracing::warn!(%refusal, "LOAD DATA LOCAL refused; inserting with INSERT from now on");
        self.load_method = LoadMethod::Insert;
        self.fell_back = true;
    }

    /// Inserts `rows`, each counted: by LOAD DATA LOCAL when the method and the column types
    /// allow it, by multi-row INSERT otherwise.
    pub(super) async fn insert_rows(&mut self, table: &TableRef, schema: &TableSchema, rows: &[&Row]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let loadable = schema.columns.iter().all(|c| crate::rowcodec::loadable(&c.column_type));
        match (self.load_method, loadable) {
            (LoadMethod::Insert, _) | (LoadMethod::Auto, false) => {}
            (LoadMethod::LoadData, false) => {
                return Err(Error::InvalidInput(format!(
                    "--load-method load-data cannot carry every column of {table} exactly (spatial types): \
                     use --load-method auto"
                )))
            }
            (method, true) => match self.load_rows(table, schema, rows).await {
                Err(e) if method == LoadMethod::Auto && Self::is_load_refused(&e) => self.fall_back(&e),
                other => return other,
            },
        }
        let side = self.side;
        let per_statement = (MAX_PLACEHOLDERS / schema.columns.len().max(1)).max(1);
        let placeholders = format!("({})", vec!["?"; schema.columns.len()].join(", "));
        for batch in rows.chunks(per_statement) {
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {}",
                qualified(table),
                column_list(schema),
                vec![placeholders.as_str(); batch.len()].join(", ")
            );
            let params: Vec<Value> = batch.iter().flat_map(|r| r.iter().cloned()).collect();
            self.conn
                .exec_drop(sql, Params::Positional(params))
                .await
                .map_err(|e| db_error(side, e))?;
            self.check(table, "inserted", self.conn.affected_rows(), batch.len() as u64)?;
        }
        Ok(())
    }

    /// `LOAD DATA LOCAL INFILE`, the file being the rows encoded in memory. LOCAL makes the
    /// server skip a bad row with a warning instead of failing, so the count of rows loaded and
    /// of warnings are both checked: anything but all rows and no warning fails the chunk.
    async fn load_rows(&mut self, table: &TableRef, schema: &TableSchema, rows: &[&Row]) -> Result<()> {
        let lines = LoadLines::encode(schema, rows.iter().copied());
        let pieces = lines.pieces(|_| true);
        self.conn
            .set_infile_handler(async move { Ok(futures_util::stream::iter(pieces.into_iter().map(Ok)).boxed()) });
        match self.conn.query_drop(load_statement(table, schema)).await {
            Ok(()) => {}
            Err(e) => return Err(self.load_error(e)),
        }
        let (loaded, warnings) = (self.conn.affected_rows(), self.conn.get_warnings());
        self.loaded(table, loaded, warnings, rows.len() as u64).await
    }

    /// A LOAD DATA LOCAL's error: a refusal of LOCAL told apart (auto falls back to INSERT on it).
    pub(super) fn load_error(&self, e: mysql_async::Error) -> Error {
        match e {
            // 1148: not allowed with this server's settings; 3948 (MySQL 8) and 4166 (MariaDB):
            // local_infile is off.
            mysql_async::Error::Server(e) if matches!(e.code, 1148 | 3948 | 4166) => Error::Db {
                side: self.side,
                detail: format!("{LOAD_REFUSED}: {}", e.message),
            },
            e => self.db_err(e),
        }
    }

    /// Whether an error is the server refusing LOAD DATA LOCAL.
    pub(super) fn is_load_refused(e: &Error) -> bool {
        matches!(e, Error::Db { detail, .. } if detail.starts_with(LOAD_REFUSED))
    }

    /// Checks what a LOAD DATA LOCAL reported: every row loaded, and no warning (a row LOCAL
    /// skipped or cut short shows only as one).
    pub(super) async fn loaded(&mut self, table: &TableRef, loaded: u64, warnings: u16, expected: u64) -> Result<()> {
        if warnings > 0 {
            let side = self.side;
            let shown: Vec<(String, u32, String)> = self
                .conn
                .query("SHOW WARNINGS LIMIT 3")
                .await
                .map_err(|e| db_error(side, e))?;
            let shown: Vec<String> = shown.into_iter().map(|(_, code, m)| format!("{code}: {m}")).collect();
            return Err(Error::Db {
                side,
                detail: format!(
                    "LOAD DATA into {table} gave {warnings} warnings ({}); the chunk was rolled back",
                    shown.join("; ")
                ),
            });
        }
        self.check(table, "loaded", loaded, expected)
    }
}

/// Rows encoded as LOAD DATA reads them (tab between fields, a line each), and where each
/// row's line lies: a chunk's lines are encoded before its locking read tells which of them
/// production lacks, and only those are sent.
pub(super) struct LoadLines {
    data: bytes::Bytes,
    spans: Vec<std::ops::Range<usize>>,
}

impl LoadLines {
    pub(super) fn encode<'r>(schema: &TableSchema, rows: impl Iterator<Item = &'r Row>) -> LoadLines {
        let bits: Vec<bool> = schema
            .columns
            .iter()
            .map(|c| crate::rowcodec::is_bit(&c.column_type))
            .collect();
        let mut data = Vec::new();
        let mut spans = Vec::new();
        for row in rows {
            let start = data.len();
            for (i, v) in row.iter().enumerate() {
                if i > 0 {
                    data.push(b'\t');
                }
                match v {
                    Value::Bytes(b) if bits[i] => data.extend_from_slice(hex::encode(b).as_bytes()),
                    v => crate::rowcodec::load_data_field(v, &mut data),
                }
            }
            data.push(b'\n');
            spans.push(start..data.len());
        }
        LoadLines {
            data: bytes::Bytes::from(data),
            spans,
        }
    }

    /// The lines of the rows `take` keeps, in order, as packets of at most `LOAD_PIECE` bytes,
    /// as the mysql client sends a file: the server reads a row across packets, so no packet
    /// comes near max_allowed_packet. Lines next to each other share packets (no copy is made).
    pub(super) fn pieces(&self, take: impl Fn(usize) -> bool) -> Vec<bytes::Bytes> {
        let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
        for (i, span) in self.spans.iter().enumerate().filter(|(i, _)| take(*i)) {
            match runs.last_mut() {
                Some(run) if run.end == span.start && i > 0 && take(i - 1) => run.end = span.end,
                _ => runs.push(span.clone()),
            }
        }
        runs.into_iter()
            .flat_map(|run| {
                (run.start..run.end)
                    .step_by(LOAD_PIECE)
                    .map(move |at| at..(at + LOAD_PIECE).min(run.end))
            })
            .map(|piece| self.data.slice(piece))
            .collect()
    }
}

/// The LOAD DATA LOCAL statement for a table's rows as [`LoadLines`] encodes them (BIT columns
/// as hex, unhexed by its SET clause).
pub(super) fn load_statement(table: &TableRef, schema: &TableSchema) -> String {
    let bits: Vec<bool> = schema
        .columns
        .iter()
        .map(|c| crate::rowcodec::is_bit(&c.column_type))
        .collect();
    let targets: Vec<String> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if bits[i] {
                format!("@bit{i}")
            } else {
                quote_ident(&c.name)
            }
        })
        .collect();
    let sets: Vec<String> = schema
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| bits[*i])
        .map(|(i, c)| format!("{} = UNHEX(@bit{i})", quote_ident(&c.name)))
        .collect();
    let set = if sets.is_empty() {
        String::new()
    } else {
        format!(" SET {}", sets.join(", "))
    };
    format!(
        "LOAD DATA LOCAL INFILE 'rds-table-restore-chunk' INTO TABLE {} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({}){set}",
        qualified(table),
        targets.join(", ")
    )
}
