//! The MySQL/MariaDB adapter of the data-plane ports, on mysql_async.
//!
//! Rows travel in the binary protocol (prepared statements), so every value arrives typed and is
//! written back as the same typed parameter: no text formatting stands between the restored
//! bytes and the production bytes. Sessions pin `time_zone` to UTC so TIMESTAMP values do not
//! shift between servers configured differently.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Params, SslOpts, TxOpts};

use crate::error::{Error, Result, Side};
use crate::ports::{
    ChunkOutcome, ChunkProof, Column, Connector, Endpoint, ForeignKey, HeldChunk, KeyRange, Merge, Opened,
    RangeChecksum, References, ReferencesOutcome, Row, Session, TableRef, TableSchema, Value,
};

mod chunk;
mod connect;
mod proof;
mod references;
mod sql;
mod write;

pub use connect::*;
use sql::*;
pub use sql::{keys_in, qualified, quote_ident};

/// MySQL's limit on placeholders in one prepared statement.
const MAX_PLACEHOLDERS: usize = 65_535;

pub struct MysqlSession {
    conn: Conn,
    side: Side,
    /// Falls back from `Auto` to `Insert` for the session once the server refuses LOAD DATA.
    load_method: LoadMethod,
    fell_back: bool,
}

impl MysqlSession {
    fn db_err(&self, e: mysql_async::Error) -> Error {
        db_error(self.side, e)
    }

    /// The shortest of three empty round trips: what the link costs per statement.
    async fn round_trip(&mut self) -> Result<Duration> {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let started = std::time::Instant::now();
            self.conn.query_drop("DO 1").await.map_err(|e| self.db_err(e))?;
            best = best.min(started.elapsed());
        }
        Ok(best)
    }

    /// Opens an explicit transaction rather than mysql_async's wrapper: LOAD DATA LOCAL needs the
    /// connection itself for its data handler. [`MysqlSession::end`] closes it.
    async fn begin(&mut self) -> Result<()> {
        self.conn
            .query_drop("START TRANSACTION")
            .await
            .map_err(|e| self.db_err(e))
    }

    /// Closes the transaction [`MysqlSession::begin`] opened, with what its body gave: committed
    /// when it succeeded and `commit` says so, else rolled back. A body's error is the result.
    async fn end<T>(&mut self, done: Result<T>, commit: bool) -> Result<T> {
        match done {
            Ok(value) => {
                let sql = if commit { "COMMIT" } else { "ROLLBACK" };
                self.conn.query_drop(sql).await.map_err(|e| self.db_err(e))?;
                Ok(value)
            }
            Err(e) => {
                // A lost connection is rolled back by the server; otherwise roll back here.
                let _ = self.conn.query_drop("ROLLBACK").await;
                Err(e)
            }
        }
    }

    /// Fails a chunk whose statement did not do exactly what was expected.
    fn check(&self, table: &TableRef, what: &str, affected: u64, expected: u64) -> Result<()> {
        if affected == expected {
            return Ok(());
        }
        Err(Error::Db {
            side: self.side,
            detail: format!(
                "{what} {affected} rows of {table} where {expected} were expected (a concurrent change?); the chunk was rolled back"
            ),
        })
    }
}

/// A lost connection is told apart from every other error: only the first is worth a
/// reconnect (the server rolled back the chunk in flight). An error a reconnect cannot fix (a
/// statement larger than `max_allowed_packet`, access denied, an unknown column, a constraint)
/// fails the run at once with its own message, instead of minutes of reconnecting to the same
/// refusal.
/// A statement, row or packet over `max_allowed_packet`, and what to change.
fn packet_too_large(side: Side, detail: &str) -> Error {
    Error::Db {
        side,
        detail: format!(
            "{detail}: a statement or row is larger than max_allowed_packet; raise it in the parameter group \
             (both servers) or lower --chunk-bytes"
        ),
    }
}

/// Rows the server could not hash: their canonical form is past its max_allowed_packet.
fn unhashable(side: Side, table: &TableRef, rows: u64) -> Error {
    packet_too_large(side, &format!("{rows} row(s) of {table} could not be checksummed"))
}

fn db_error(side: Side, e: mysql_async::Error) -> Error {
    use mysql_async::{DriverError, Error as E};
    let detail = crate::error::one_line(&e.to_string());
    match &e {
        // 1213: deadlock, the transaction was rolled back; 1205: lock wait timeout. Both are
        // worth running the chunk again, as InnoDB's manual says of any transaction.
        E::Server(s) if s.code == 1213 || s.code == 1205 => Error::DbConflict { side, detail },
        // 1153 (ER_NET_PACKET_TOO_LARGE), 1301 (a result over max_allowed_packet) and the
        // driver's own check: the same statement would fail again after a reconnect.
        E::Server(s) if s.code == 1153 || s.code == 1301 => packet_too_large(side, &detail),
        E::Driver(DriverError::PacketTooLarge) => packet_too_large(side, &detail),
        // The driver reports a packet over its own limit as an I/O error: the same chunk would
        // be refused again after a reconnect.
        E::Io(_) if detail.contains("max_allowed_packet") => packet_too_large(side, &detail),
        E::Server(_) => Error::Db { side, detail },
        // What a cut connection looks like: worth a reconnect.
        E::Io(_)
        | E::Driver(
            DriverError::ConnectionClosed
            | DriverError::PoolDisconnected
            | DriverError::PacketOutOfOrder
            | DriverError::UnexpectedPacket { .. }
            | DriverError::BadCompressedPacketHeader,
        ) => Error::DbConnectionLost { side, detail },
        // The driver refusing what the tool asked (parameters, conversions, local infile...):
        // a reconnect changes nothing.
        E::Driver(_) | E::Url(_) | E::Other(_) => Error::Db { side, detail },
    }
}

#[async_trait]
impl Session for MysqlSession {
    fn write_method(&self) -> &'static str {
        match (self.load_method, self.fell_back) {
            (LoadMethod::Insert, true) => "INSERT, as the server refused LOAD DATA LOCAL (local_infile)",
            (LoadMethod::Insert, false) => "INSERT",
            _ => "LOAD DATA LOCAL",
        }
    }

    async fn table_schema(&mut self, table: &TableRef) -> Result<Option<TableSchema>> {
        let cols: Vec<(String, String, String, String)> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, EXTRA FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&table.database, &table.table),
            )
            .await
            .map_err(|e| self.db_err(e))?;
        if cols.is_empty() {
            return Ok(None);
        }
        let key_names: Vec<String> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                (&table.database, &table.table),
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let columns: Vec<Column> = cols
            .into_iter()
            .filter(|(_, _, _, extra)| {
                let e = extra.to_ascii_uppercase();
                !(e.contains("GENERATED") || e.contains("VIRTUAL") || e.contains("PERSISTENT"))
            })
            .map(|(name, column_type, nullable, _)| Column {
                name,
                column_type,
                nullable: nullable == "YES",
            })
            .collect();
        let position: HashMap<&str, usize> = columns.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
        let key = key_names
            .iter()
            .filter_map(|k| position.get(k.as_str()).copied())
            .collect();
        Ok(Some(TableSchema { columns, key }))
    }

    async fn try_advisory_lock(&mut self, name: &str) -> Result<bool> {
        let got: Option<Option<i64>> = self
            .conn
            .exec_first("SELECT GET_LOCK(?, 0)", (name,))
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(got.flatten() == Some(1))
    }

    async fn missing_privileges(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        merge: Merge,
    ) -> Result<Vec<&'static str>> {
        let Some(column) = schema.columns.first().map(|c| quote_ident(&c.name)) else {
            return Ok(vec![]);
        };
        let mut probes = Vec::new();
        if merge != Merge::MissingRows {
            probes.push((
                "UPDATE",
                format!("UPDATE {} SET {column} = {column} WHERE 1 = 0", qualified(table)),
            ));
        }
        if merge == Merge::ReplaceAll {
            probes.push(("DELETE", format!("DELETE FROM {} WHERE 1 = 0", qualified(table))));
        }
        let side = self.side;
        let mut missing = Vec::new();
        let mut tx = self
            .conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(|e| db_error(side, e))?;
        for (privilege, sql) in probes {
            match tx.query_drop(sql).await {
                Ok(()) => {}
                // 1142: command denied on the table; 1143: on a column.
                Err(mysql_async::Error::Server(e)) if e.code == 1142 || e.code == 1143 => missing.push(privilege),
                Err(e) => return Err(db_error(side, e)),
            }
        }
        tx.rollback().await.map_err(|e| db_error(side, e))?;
        Ok(missing)
    }

    async fn insert_triggers(&mut self, table: &TableRef) -> Result<Vec<String>> {
        let rows: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT ACTION_TIMING, TRIGGER_NAME FROM information_schema.TRIGGERS \
                 WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? AND EVENT_MANIPULATION = 'INSERT' \
                 ORDER BY ACTION_TIMING, ACTION_ORDER",
                (&table.database, &table.table),
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows
            .into_iter()
            .map(|(timing, name)| format!("{timing} INSERT {name}"))
            .collect())
    }

    async fn list_databases(&mut self) -> Result<Vec<String>> {
        self.conn
            .query(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN \
                 ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY SCHEMA_NAME",
            )
            .await
            .map_err(|e| self.db_err(e))
    }

    async fn list_tables(&mut self, database: &str) -> Result<Vec<(String, Option<u64>)>> {
        self.conn
            .exec(
                "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                (database,),
            )
            .await
            .map_err(|e| self.db_err(e))
    }

    async fn show_create_table(&mut self, table: &TableRef) -> Result<Option<String>> {
        match self
            .conn
            .query_first::<(String, String), _>(format!("SHOW CREATE TABLE {}", qualified(table)))
            .await
        {
            Ok(found) => Ok(found.map(|(_, ddl)| ddl)),
            // 1146: no such table.
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => Ok(None),
            Err(e) => Err(self.db_err(e)),
        }
    }

    async fn create_table_from(&mut self, table: &TableRef, named: &str, definition: &str) -> Result<()> {
        // The server writes `CREATE TABLE `name` (`; the name is replaced by the qualified target
        // so the table lands in the right database whatever the session's default.
        let prefix = format!("CREATE TABLE {} ", quote_ident(named));
        let Some(rest) = definition.strip_prefix(&prefix) else {
            return Err(Error::SchemaMismatch(format!(
                "the restored definition of {table} does not start with `{prefix}`; create the table by hand"
            )));
        };
        let sql = format!("CREATE TABLE {} {rest}", qualified(table));
        self.conn.query_drop(sql).await.map_err(|e| self.db_err(e))
    }

    async fn drop_table(&mut self, table: &TableRef) -> Result<()> {
        let sql = format!("DROP TABLE IF EXISTS {}", qualified(table));
        self.conn.query_drop(sql).await.map_err(|e| self.db_err(e))
    }

    async fn count_where(&mut self, table: &TableRef, predicate: &str) -> Result<u64> {
        let n: Option<u64> = self
            .conn
            .query_first(format!("SELECT COUNT(*) FROM {} WHERE ({predicate})", qualified(table)))
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(n.unwrap_or(0))
    }

    async fn estimate_rows(&mut self, table: &TableRef) -> Result<Option<u64>> {
        let n: Option<Option<u64>> = self
            .conn
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&table.database, &table.table),
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(n.flatten())
    }

    async fn referencing(&mut self, table: &TableRef) -> Result<Vec<ForeignKey>> {
        self.foreign_keys_referencing(table).await
    }

    async fn count_rows(&mut self, table: &TableRef, null_in: &[String]) -> Result<u64> {
        let predicate = match null_in.is_empty() {
            true => "TRUE".to_string(),
            false => null_in
                .iter()
                .map(|c| format!("{} IS NULL", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(" AND "),
        };
        self.count_where(table, &predicate).await
    }

    async fn max_allowed_packet(&mut self) -> Result<u64> {
        let n: Option<u64> = self
            .conn
            .query_first("SELECT @@max_allowed_packet")
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(n.unwrap_or(0))
    }

    async fn widest_row(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        filter: Option<&str>,
    ) -> Result<Option<(Row, u64)>> {
        // Fixed-width columns count as their widest; the others as their length.
        let (mut fixed, mut lengths) = (0, Vec::new());
        for c in &schema.columns {
            match crate::ports::Column::widest(&c.column_type) {
                w if w > 255 => lengths.push(format!("COALESCE(LENGTH({}), 0)", quote_ident(&c.name))),
                w => fixed += w,
            }
        }
        if lengths.is_empty() {
            return Ok(None);
        }
        let mut select = key_columns(schema);
        select.push(format!("CAST({fixed} + {} AS UNSIGNED) AS w", lengths.join(" + ")));
        let (filter, params) = range_where(schema, KeyRange::default(), filter);
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY w DESC LIMIT 1",
            select.join(", "),
            qualified(table)
        );
        let row: Option<mysql_async::Row> = self
            .conn
            .exec_first(sql, Params::Positional(params))
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(row.map(|row| {
            let mut values = row.unwrap();
            let width = match values.pop() {
                Some(Value::UInt(n)) => n,
                Some(Value::Int(n)) => n.max(0) as u64,
                Some(Value::Bytes(b)) => String::from_utf8_lossy(&b).parse().unwrap_or(0),
                _ => 0,
            };
            (values, width)
        }))
    }

    async fn read_chunk(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let (sql, params) = range_query(table, schema, range, filter);
        let sql = format!("{sql} LIMIT {limit}");
        let rows: Vec<mysql_async::Row> = self
            .conn
            .exec(sql, Params::Positional(params))
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows_of(rows))
    }

    async fn merge_chunk(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        range: KeyRange<'_>,
        merge: Merge,
        dry: bool,
        proof: &ChunkProof,
    ) -> Result<ChunkOutcome> {
        self.merge(table, schema, rows, range, merge, dry, proof).await
    }

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
        self.open(table, schema, rows, range, merge, proof, close, hold).await
    }

    async fn close_chunk(&mut self, table: &TableRef, schema: &TableSchema, held: HeldChunk) -> Result<()> {
        self.close(table, schema, held).await
    }

    async fn link_round_trip(&mut self) -> Result<Duration> {
        self.round_trip().await
    }

    async fn set_foreign_key_checks(&mut self, on: bool) -> Result<()> {
        let sql = format!("SET SESSION foreign_key_checks = {}", u8::from(on));
        self.conn.query_drop(sql).await.map_err(|e| self.db_err(e))
    }

    async fn reference_chunk(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        refs: &References,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        self.read_reference_chunk(table, schema, refs, after, limit).await
    }

    async fn restore_references(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        refs: &References,
        range: KeyRange<'_>,
        rows: &[Row],
    ) -> Result<ReferencesOutcome> {
        self.restore_references_chunk(table, schema, refs, range, rows).await
    }

    async fn dangling_references(&mut self, table: &TableRef, refs: &References) -> Result<u64> {
        self.count_dangling(table, refs).await
    }

    async fn scan(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        filter: Option<&str>,
        batch: usize,
        batch_bytes: usize,
        out: tokio::sync::mpsc::Sender<Vec<Row>>,
    ) -> Result<()> {
        let (filter, params) = range_where(schema, KeyRange::default(), filter);
        let sql = format!("SELECT {} FROM {}{filter}", column_list(schema), qualified(table));
        let side = self.side;
        let mut result = self
            .conn
            .exec_iter(sql, Params::Positional(params))
            .await
            .map_err(|e| db_error(side, e))?;
        let (mut rows, mut bytes) = (Vec::new(), 0);
        while let Some(row) = result.next().await.map_err(|e| db_error(side, e))? {
            let row = row.unwrap();
            bytes += crate::copy::row_bytes(&row);
            rows.push(row);
            // A batch ends at `batch` rows or at the byte budget, whichever comes first.
            let full = rows.len() >= batch || bytes >= batch_bytes;
            if full && out.send(std::mem::take(&mut rows)).await.is_err() {
                // The writer stopped (an error, or Ctrl-C): drain what the server still sends.
                result.drop_result().await.map_err(|e| db_error(side, e))?;
                return Ok(());
            }
            if full {
                bytes = 0;
            }
        }
        if !rows.is_empty() {
            let _ = out.send(rows).await;
        }
        Ok(())
    }

    async fn range_checksum(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
    ) -> Result<RangeChecksum> {
        let (filter, params) = range_where(schema, range, filter);
        // Two 60-bit slices of each row's MD5, summed exactly (DECIMAL) over the range (MD5 for
        // speed: this guards against mistakes, not against an adversary):
        // a sum does not depend on row order and, unlike XOR, two equal rows (possible in a
        // table without a key) do not cancel out. The count is compared as well.
        let sql = format!(
            "SELECT {CHECKSUM_COLUMNS} FROM {}",
            hashed_rows(schema, &format!("{}{filter}", qualified(table)), range.upto.is_some())
        );
        let got: Option<(u64, String, String, u64)> = self
            .conn
            .exec_first(sql, Params::Positional(params))
            .await
            .map_err(|e| self.db_err(e))?;
        let (rows, a, b, unhashed) = got.unwrap_or_default();
        // The server gives NULL for a row whose canonical form exceeds its max_allowed_packet:
        // such rows would count as equal on both sides, so they stop the check instead.
        if unhashed > 0 {
            return Err(unhashable(self.side, table, unhashed));
        }
        Ok(RangeChecksum {
            rows,
            hash: format!("{a}/{b}"),
        })
    }

    async fn read_chunk_hashed(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Row>, ChunkProof)> {
        self.read_hashed(table, schema, range, filter, limit).await
    }

    async fn row_hashes(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
    ) -> Result<Vec<(Row, String)>> {
        let (filter, params) = range_where(schema, range, filter);
        let keys = key_columns(schema);
        let sql = format!(
            "SELECT {}, MD5({}) FROM {}{filter}",
            keys.join(", "),
            canonical_row_sql(schema),
            qualified(table)
        );
        let rows: Vec<mysql_async::Row> = self
            .conn
            .exec(sql, Params::Positional(params))
            .await
            .map_err(|e| self.db_err(e))?;
        rows.into_iter()
            .map(|row| {
                let mut values = row.unwrap();
                match values.pop() {
                    Some(Value::Bytes(b)) => Ok((values, String::from_utf8_lossy(&b).into_owned())),
                    _ => Err(unhashable(self.side, table, 1)),
                }
            })
            .collect()
    }

    async fn chunk_end(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        range: KeyRange<'_>,
        filter: Option<&str>,
        size: usize,
    ) -> Result<Option<(Row, bool)>> {
        let cols = key_columns(schema);
        let (filter, params) = range_where(schema, range, filter);
        let base = format!("SELECT {} FROM {}{filter} ORDER BY ", cols.join(", "), qualified(table));
        let asc = format!("{base}{} LIMIT 1 OFFSET {}", cols.join(", "), size.max(1) - 1);
        let found: Option<mysql_async::Row> = self
            .conn
            .exec_first(asc, Params::Positional(params.clone()))
            .await
            .map_err(|e| self.db_err(e))?;
        if let Some(row) = found {
            return Ok(Some((row.unwrap(), true)));
        }
        let desc: Vec<String> = cols.iter().map(|c| format!("{c} DESC")).collect();
        let last: Option<mysql_async::Row> = self
            .conn
            .exec_first(format!("{base}{} LIMIT 1", desc.join(", ")), Params::Positional(params))
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(last.map(|row| (row.unwrap(), false)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cut_connection_is_worth_a_reconnect() {
        use mysql_async::{DriverError, Error as E, ServerError};
        let server = |code| {
            E::Server(ServerError {
                code,
                message: "refused".into(),
                state: "HY000".into(),
            })
        };
        let lost = |e| matches!(db_error(Side::Production, e), Error::DbConnectionLost { .. });
        assert!(lost(E::Driver(DriverError::ConnectionClosed)));
        assert!(lost(E::Io(mysql_async::IoError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        )))));
        assert!(
            !lost(E::Driver(DriverError::PacketTooLarge)),
            "a reconnect sends the same packet"
        );
        assert!(!lost(server(1153)));
        assert!(!lost(server(1045)), "access denied stays denied");
        assert!(!lost(server(1054)), "an unknown column stays unknown");
        assert!(matches!(
            db_error(Side::Production, server(1213)),
            Error::DbConflict { .. }
        ));
        let text = db_error(Side::Restored, E::Driver(DriverError::PacketTooLarge)).to_string();
        assert!(
            text.contains("max_allowed_packet") && text.contains("parameter group"),
            "{text}"
        );
    }

    #[test]
    fn identifiers_are_quoted_even_when_hostile() {
        assert_eq!(quote_ident("billing"), "`billing`");
        assert_eq!(quote_ident("a`b; DROP TABLE x"), "`a``b; DROP TABLE x`");
    }

    #[test]
    fn composite_keys_compare_lexicographically() {
        let cols = vec!["`a`".to_string(), "`b`".to_string()];
        let (sql, binds) = key_predicate(&cols, Bound::After);
        assert_eq!(sql, "(`a` > ? OR (`a` = ? AND `b` > ?))");
        assert_eq!(binds, vec![0, 0, 1]);
        let (sql, _) = key_predicate(&cols, Bound::AtMost);
        assert_eq!(sql, "(`a` < ? OR (`a` = ? AND `b` <= ?))");
        let (sql, binds) = key_predicate(&cols[..1], Bound::AtMost);
        assert_eq!((sql.as_str(), binds), ("(`a` <= ?)", vec![0]));
    }
}
