//! Reading production's binlog over the replication protocol (mysql_async's binlog stream),
//! non-blocking: the server sends what it has and ends the stream at the current end, so a
//! read never waits for new writes.
//!
//! The tool registers as a replica with a random server id in the upper half of the range, so
//! it never takes the id of a real replica (a primary drops the older of two connections with
//! one id). It asks MariaDB for its own GTID events (`@mariadb_slave_capability = 4`), which
//! are otherwise rewritten as `BEGIN`. MariaDB's compressed events (`log_bin_compress`) cannot
//! be read here: they end the read with an error, never a skip, since a skipped event would be
//! a row unaccounted for.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};

use super::decode::ColumnDef;
use super::{Change, Position, Scan};
use crate::error::{Error, Result, Side};
use crate::mysql::MysqlConnector;
use crate::ports::{Endpoint, TableRef};

/// MariaDB's Gtid_list event, which mysql_common does not name (the others are in `events.rs`).
const MARIADB_GTID_LIST: u8 = 163;

/// How often a long read says where it is.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Hears where a long read is: the position, the time of the last event read, and how many
/// transactions on the table were found so far.
pub type ScanProgress<'a> = dyn Fn(&Position, Option<DateTime<Utc>>, usize) + Sync + 'a;

/// Where decoded row changes go: the table's columns (generated ones included, in order),
/// and what takes each change with its transaction's time.
pub struct Images<'a> {
    pub columns: &'a [ColumnDef],
    pub sink: &'a mut dyn ImageSink,
}

/// Takes each decoded change, in binlog order. A change is taken without waiting; between
/// events the read gives the sink a chance to write out what it holds ([`ImageSink::drain`]),
/// so a sink that stages changes in a database keeps a bounded buffer, not every row of a
/// long read.
#[async_trait]
pub trait ImageSink: Send {
    fn change(&mut self, time: DateTime<Utc>, change: Change) -> Result<()>;

    /// Called after every event; writes out the buffer when it is worth a round trip.
    async fn drain(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A closure is a sink that holds nothing back.
impl<F> ImageSink for F
where
    F: FnMut(DateTime<Utc>, Change) -> Result<()> + Send,
{
    fn change(&mut self, time: DateTime<Utc>, change: Change) -> Result<()> {
        self(time, change)
    }
}

/// What the server's binary logging is.
#[derive(Debug, Clone)]
pub struct ServerLog {
    pub version: String,
    pub mariadb: bool,
    pub format: String,
    pub row_image: String,
    /// MariaDB's `log_bin_compress`.
    pub compressed: bool,
    /// `SHOW BINARY LOGS`: each file and its size, oldest first.
    pub files: Vec<(String, u64)>,
    /// Where a read from a moment can begin, as an earlier read from it found: the start of
    /// the first transaction at or after it, rather than the start of its file.
    pub resume_at: Option<(DateTime<Utc>, Position)>,
    /// A read hint: stop once this transaction on the table is read (the look-up of a
    /// `--before` position or GTID reads no further than the transaction it names).
    pub stop_at: Option<StopAt>,
}

/// Where a look-up read stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopAt {
    /// After the first transaction on the table.
    First,
    /// After the transaction on the table with this GTID.
    Gtid(String),
}

/// Reads production's binlog for one table.
pub struct BinlogReader<'a> {
    pub connector: &'a MysqlConnector,
    /// Production's RDS endpoint (`--production-endpoint` is applied by the connector).
    pub endpoint: Endpoint,
}

/// A server error while reading the binlog or its tables, as the operator needs it: a missing
/// privilege or a purged file named as such, anything else as production's one-line error.
pub(super) fn db_err(e: mysql_async::Error) -> Error {
    let detail = crate::error::one_line(&e.to_string());
    if let mysql_async::Error::Server(s) = &e {
        // 1227: access denied, a privilege is missing; 1236: the primary cannot send from
        // there (the file was purged, or the position is not an event's start).
        if s.code == 1227 {
            return privilege_error(&detail);
        }
        if s.code == 1236 {
            return Error::BinlogUnusable {
                what: format!("the server cannot send that part of the binlog ({detail})"),
                fix: "the binlog files of that time may be purged already (see binlog retention in docs/runbook.md); \
                      use the instance restore (`restore --time`, which needs no binlog file)"
                    .into(),
            };
        }
    }
    Error::Db {
        side: Side::Production,
        detail,
    }
}

fn privilege_error(detail: &str) -> Error {
    Error::BinlogUnusable {
        what: format!("the database user may not read it ({detail})"),
        fix: "grant it REPLICATION SLAVE and REPLICATION CLIENT (on MariaDB 10.5 and later, BINLOG MONITOR \
              for the second): GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'user'@'%'; the RDS master \
              user has both"
            .into(),
    }
}

impl BinlogReader<'_> {
    async fn conn(&self) -> Result<Conn> {
        self.connector.open_conn(Side::Production, &self.endpoint).await
    }

    /// Binary logging's settings and files, and whether the user may read them: every check
    /// `find` makes before reading an event.
    pub async fn probe(&self) -> Result<ServerLog> {
        let mut conn = self.conn().await?;
        let (version, log_bin, format, row_image): (String, Option<i64>, Option<String>, Option<String>) = conn
            .query_first("SELECT @@version, @@log_bin, @@binlog_format, @@binlog_row_image")
            .await
            .map_err(db_err)?
            .unwrap_or_default();
        let mariadb = version.to_ascii_lowercase().contains("mariadb");
        if log_bin != Some(1) {
            return Err(Error::BinlogUnusable {
                what: "binary logging is off (log_bin = OFF)".into(),
                fix: "RDS turns it on when automated backups are kept (backup retention above 0 days); \
                      use the instance restore (`restore --time`, `--source pitr`)"
                    .into(),
            });
        }
        let compressed = if mariadb {
            let v: Option<(String, String)> = conn
                .query_first("SHOW GLOBAL VARIABLES LIKE 'log_bin_compress'")
                .await
                .map_err(db_err)?;
            v.is_some_and(|(_, v)| v.eq_ignore_ascii_case("ON"))
        } else {
            false
        };
        let logs: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.map_err(db_err)?;
        let files = logs
            .into_iter()
            .filter_map(|mut r| {
                let name: String = r.take(0)?;
                let size: u64 = r.take(1).unwrap_or(0);
                Some((name, size))
            })
            .collect();
        let _ = conn.disconnect().await;
        let log = ServerLog {
            version,
            mariadb,
            format: format.unwrap_or_default(),
            row_image: row_image.unwrap_or_default(),
            compressed,
            files,
            resume_at: None,
            stop_at: None,
        };
        // The privileges are probed by doing what needs them, read-only: SHOW BINARY LOGS
        // above (REPLICATION CLIENT), and here the start of a stream (REPLICATION SLAVE). A
        // look at USER_PRIVILEGES would miss privileges granted through roles.
        if let Some((last, _)) = log.files.last() {
            self.file_start(&log, last).await?;
        }
        Ok(log)
    }

    /// The table's columns as the binlog carries them: every one, generated ones included, in
    /// the table's order, with what decoding a row image needs.
    pub async fn column_defs(&self, table: &TableRef) -> Result<Vec<ColumnDef>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, String, Option<String>, String)> = conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, EXTRA FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&table.database, &table.table),
            )
            .await
            .map_err(db_err)?;
        let _ = conn.disconnect().await;
        Ok(rows
            .into_iter()
            .map(|(name, column_type, charset, extra)| {
                let e = extra.to_ascii_uppercase();
                ColumnDef {
                    name,
                    column_type,
                    charset,
                    generated: e.contains("GENERATED") || e.contains("VIRTUAL") || e.contains("PERSISTENT"),
                }
            })
            .collect())
    }

    /// Whether production has `database` (that the user can see).
    pub async fn database_exists(&self, database: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let found: Option<String> = conn
            .exec_first(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (database,),
            )
            .await
            .map_err(db_err)?;
        let _ = conn.disconnect().await;
        Ok(found.is_some())
    }

    /// The primary key's columns, in the key's order.
    pub async fn primary_key(&self, table: &TableRef) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let names: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                (&table.database, &table.table),
            )
            .await
            .map_err(db_err)?;
        let _ = conn.disconnect().await;
        Ok(names)
    }

    /// When the oldest binlog file the server keeps was begun: how far back a rewind can go.
    pub async fn oldest_event(&self, log: &ServerLog) -> Result<Option<DateTime<Utc>>> {
        match log.files.first() {
            Some((f, _)) => self.file_start(log, f).await,
            None => Ok(None),
        }
    }

    /// A production connection for the rewind's own table (never the real one).
    pub async fn conn_for_writes(&self) -> Result<Conn> {
        self.conn().await
    }

    /// A non-blocking stream from `file:pos`.
    async fn stream(&self, log: &ServerLog, file: &str, pos: u64) -> Result<BinlogStream> {
        let mut conn = self.conn().await?;
        if log.mariadb {
            // 4: MARIA_SLAVE_CAPABILITY_GTID, so GTID events come as they are.
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(db_err)?;
        }
        let server_id = rand::random_range(0x8000_0000u32..u32::MAX);
        conn.get_binlog_stream(
            BinlogStreamRequest::new(server_id)
                .with_non_blocking()
                .with_hostname(b"rds-table-restore")
                .with_filename(file.as_bytes())
                .with_pos(pos),
        )
        .await
        .map_err(db_err)
    }

    /// When a binlog file was begun: the time of its first event that has one (its format
    /// description; the rotate the server sends first has none).
    async fn file_start(&self, log: &ServerLog, file: &str) -> Result<Option<DateTime<Utc>>> {
        let mut stream = self.stream(log, file, 4).await?;
        let mut found = None;
        while let Some(event) = stream.next().await {
            let event = event.map_err(db_err)?;
            let t = event.header().timestamp();
            if t != 0 {
                found = DateTime::from_timestamp(i64::from(t), 0);
                break;
            }
        }
        let _ = stream.close().await;
        Ok(found)
    }

    /// MariaDB: the first file to read for a GTID `domain-server-seq`, by bisection on the
    /// Gtid_list event each file begins with (the last GTID of each domain before the file):
    /// the last file whose list has the domain at a lower sequence. Without MariaDB GTIDs, or
    /// for a GTID it cannot read, the oldest file.
    pub async fn first_file_for_gtid(&self, log: &ServerLog, gtid: &str) -> Result<usize> {
        let parts: Vec<u64> = gtid.split('-').filter_map(|p| p.parse().ok()).collect();
        let (true, [domain, _, seq]) = (log.mariadb, parts.as_slice()) else {
            return Ok(0);
        };
        let (mut lo, mut hi) = (0usize, log.files.len());
        // Invariant: the GTID is after the start of file `lo` (or lo == 0); not before `hi`'s.
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            let before = self.gtid_list(log, &log.files[mid].0).await?;
            match before.iter().find(|(d, _)| d == domain) {
                Some((_, s)) if s < seq => lo = mid,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// A MariaDB file's Gtid_list: each domain and its last sequence number before the file.
    async fn gtid_list(&self, log: &ServerLog, file: &str) -> Result<Vec<(u64, u64)>> {
        let mut stream = self.stream(log, file, 4).await?;
        let mut found = Vec::new();
        let mut seen = 0;
        while let Some(event) = stream.next().await {
            let event = event.map_err(db_err)?;
            seen += 1;
            if event.header().event_type_raw() == MARIADB_GTID_LIST {
                let d = event.data();
                let count = d
                    .get(0..4)
                    .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) & 0x0fff_ffff)
                    .unwrap_or(0) as usize;
                for i in 0..count {
                    let at = 4 + i * 16;
                    if let Some(e) = d.get(at..at + 16) {
                        let domain = u32::from_le_bytes(e[0..4].try_into().unwrap_or_default());
                        let seq = u64::from_le_bytes(e[8..16].try_into().unwrap_or_default());
                        found.push((u64::from(domain), seq));
                    }
                }
                break;
            }
            // It follows the format description; past a few events there is none.
            if seen > 4 {
                break;
            }
        }
        let _ = stream.close().await;
        Ok(found)
    }

    /// The last file begun strictly before `since`'s second (one begun in that second may follow one
    /// holding events of that second; the first holds older events than any), found
    /// by bisection: file start times only grow.
    async fn first_file(&self, log: &ServerLog, since: DateTime<Utc>) -> Result<usize> {
        let (mut lo, mut hi) = (0usize, log.files.len());
        // Invariant: files before `lo` began at or before `since`, or lo == 0; from `hi` on, after.
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            match self.file_start(log, &log.files[mid].0).await? {
                Some(t) if t < since => lo = mid,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// Every committed transaction from `since` (to `until`, or the binlog's current end) that
    /// wrote `table`, with its rows deleted, updated and inserted and its statements on it.
    /// `progress` hears, every few seconds of a long read, where it is: the position, the time
    /// of the last event read and how many transactions on the table were found.
    pub async fn scan(
        &self,
        log: &ServerLog,
        table: &TableRef,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        progress: &ScanProgress<'_>,
    ) -> Result<Scan> {
        self.scan_with(log, table, since, until, progress, None).await
    }

    /// [`BinlogReader::scan`], handing every row change on the table (of a transaction from
    /// `since` on) to `images`, decoded against the table's columns, in binlog order.
    pub async fn scan_with(
        &self,
        log: &ServerLog,
        table: &TableRef,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        progress: &ScanProgress<'_>,
        images: Option<Images<'_>>,
    ) -> Result<Scan> {
        let mut warnings = Vec::new();
        if !log.format.eq_ignore_ascii_case("ROW") {
            warnings.push(format!(
                "binlog_format is {}: changes the server logged as statements are listed as statements, \
                 without row counts",
                log.format
            ));
        }
        if log.files.is_empty() {
            return Err(Error::BinlogUnusable {
                what: "SHOW BINARY LOGS lists no file".into(),
                fix: "use the instance restore (`restore --time`, `--source pitr`)".into(),
            });
        }
        let mut state = super::events::Reading::new(table, &log.files, since, until);
        state.stop_at = log.stop_at.clone();
        let mut stream = match &log.resume_at {
            Some((t, at)) if *t == since => {
                state.file = at.file.clone();
                state.files.push(at.file.clone());
                self.stream(log, &at.file, at.pos).await?
            }
            _ => {
                let first = self.first_file(log, since).await?;
                self.stream(log, &log.files[first].0, 4).await?
            }
        };
        let mut images = images;
        let mut told = std::time::Instant::now();
        while let Some(event) = stream.next().await {
            let event = event.map_err(db_err)?;
            if !state.take(&event, &stream, &mut images)? {
                break;
            }
            if let Some(images) = images.as_mut() {
                images.sink.drain().await?;
            }
            if told.elapsed() >= PROGRESS_EVERY {
                told = std::time::Instant::now();
                if let Some(at) = &state.end {
                    progress(at, state.last_event, state.txns.len());
                }
            }
        }
        let _ = stream.close().await;
        Ok(Scan {
            files: state.files,
            first_at: state.first_at,
            since,
            last_event: state.last_event,
            end: state.end,
            txns: state.txns,
            other_txns: state.other_txns,
            warnings,
        })
    }
}
