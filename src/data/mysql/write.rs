//! Writing the rows a chunk lacks into production: LOAD DATA LOCAL fed from memory where the
//! server and the column types allow it, multi-row prepared INSERT otherwise. Each write is
//! counted, and anything but every row written fails the chunk.

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
                Err(Error::Db { detail, .. }) if method == LoadMethod::Auto && detail.starts_with(LOAD_REFUSED) => {
                    tracing::warn!(%detail, "LOAD DATA LOCAL refused; inserting with INSERT from now on");
                    self.load_method = LoadMethod::Insert;
                    self.fell_back = true;
                }
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
        use futures_util::StreamExt;
        let side = self.side;
        let bits: Vec<bool> = schema
            .columns
            .iter()
            .map(|c| crate::rowcodec::is_bit(&c.column_type))
            .collect();
        let mut data = Vec::with_capacity(rows.len() * 128);
        for row in rows {
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
        }
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
        // Sent as packets of at most `LOAD_PIECE` bytes, as the mysql client sends a file: the
        // server reads a row across packets, so no packet comes near max_allowed_packet.
        let data = bytes::Bytes::from(data);
        let pieces: Vec<std::io::Result<bytes::Bytes>> = (0..data.len())
            .step_by(LOAD_PIECE)
            .map(|at| Ok(data.slice(at..(at + LOAD_PIECE).min(data.len()))))
            .collect();
        self.conn
            .set_infile_handler(async move { Ok(futures_util::stream::iter(pieces).boxed()) });
        let sql = format!(
            "LOAD DATA LOCAL INFILE 'rds-table-restore-chunk' INTO TABLE {} CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({}){set}",
            qualified(table),
            targets.join(", ")
        );
        match self.conn.query_drop(sql).await {
            Ok(()) => {}
            // 1148: not allowed with this server's settings; 3948 (MySQL 8) and 4166 (MariaDB):
            // local_infile is off.
            Err(mysql_async::Error::Server(e)) if matches!(e.code, 1148 | 3948 | 4166) => {
                return Err(Error::Db {
                    side,
                    detail: format!("{LOAD_REFUSED}: {}", e.message),
                })
            }
            Err(e) => return Err(db_error(side, e)),
        }
        let (loaded, warnings) = (self.conn.affected_rows(), self.conn.get_warnings());
        if warnings > 0 {
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
        self.check(table, "loaded", loaded, rows.len() as u64)
    }
}
