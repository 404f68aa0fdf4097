//! The scan's state from event to event: the transactions on the table, put together out of
//! the binlog's events (GTID, BEGIN, row events, statements, XID or COMMIT), their positions,
//! and the decoded row images handed to a sink. `reader.rs` opens the stream and feeds it.

use chrono::{DateTime, Utc};
use mysql_async::binlog::events::{Event, EventData, GtidEvent, QueryEvent, RotateEvent, RowsEventData};
use mysql_async::BinlogStream;

use super::decode::decode_row;
use super::reader::{Images, StopAt};
use super::statement::{shown, StatementKind};
use super::{creates_table, mentions_table, Change, Position, Statement, TableTxn};
use crate::error::{Error, Result};
use crate::ports::TableRef;

/// MariaDB's event types that mysql_common does not name.
const MARIADB_ANNOTATE_ROWS: u8 = 160;
const MARIADB_GTID: u8 = 162;
/// MariaDB's compressed query and row events (165 to 171).
const MARIADB_COMPRESSED: std::ops::RangeInclusive<u8> = 165..=171;

/// How far past `--until` the read goes before it stops: a transaction's time is its first
/// statement's, so one that began before `--until` can be written a while after it.
const UNTIL_SLACK_SECS: i64 = 300;

/// The transaction being read.
struct Open {
    time: DateTime<Utc>,
    start: Position,
    gtid: Option<String>,
    /// Opened by a `BEGIN`: ends at its XID or COMMIT. Otherwise (a GTID followed by DDL) it
    /// is the one statement that follows.
    begun: bool,
    deleted: u64,
    updated: u64,
    inserted: u64,
    statements: Vec<Statement>,
    sql: Option<String>,
}

/// The scan's state from event to event.
pub(super) struct Reading<'t> {
    table: &'t TableRef,
    /// The files `SHOW BINARY LOGS` listed.
    known: &'t [(String, u64)],
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    pub(super) file: String,
    pub(super) files: Vec<String>,
    open: Option<Open>,
    pub(super) txns: Vec<TableTxn>,
    pub(super) other_txns: u64,
    pub(super) last_event: Option<DateTime<Utc>>,
    pub(super) end: Option<Position>,
    /// The start of the first transaction at or after `since`.
    pub(super) first_at: Option<Position>,
    pub(super) stop_at: Option<StopAt>,
    /// The transaction `stop_at` names is read.
    done: bool,
}

impl<'t> Reading<'t> {
    pub(super) fn new(
        table: &'t TableRef,
        known: &'t [(String, u64)],
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Self {
        Reading {
            table,
            known,
            since,
            until,
            file: String::new(),
            files: Vec::new(),
            open: None,
            txns: Vec::new(),
            other_txns: 0,
            last_event: None,
            end: None,
            first_at: None,
            stop_at: None,
            done: false,
        }
    }

    fn here(&self, pos: u64) -> Position {
        Position {
            file: self.file.clone(),
            pos,
        }
    }

    fn begin(&mut self, time: DateTime<Utc>, start: u64, gtid: Option<String>, begun: bool) {
        if self.first_at.is_none() && time >= self.since {
            self.first_at = Some(self.here(start));
        }
        self.open = Some(Open {
            time,
            start: self.here(start),
            gtid,
            begun,
            deleted: 0,
            updated: 0,
            inserted: 0,
            statements: Vec::new(),
            sql: None,
        });
    }

    fn commit(&mut self, end: u64) {
        let Some(t) = self.open.take() else { return };
        let touched = t.deleted + t.updated + t.inserted > 0 || !t.statements.is_empty();
        let in_range = t.time >= self.since && self.until.is_none_or(|u| t.time <= u);
        if !in_range {
            return;
        }
        if !touched {
            self.other_txns += 1;
            return;
        }
        self.txns.push(TableTxn {
            time: t.time,
            start: t.start,
            end: self.here(end),
            gtid: t.gtid,
            deleted: t.deleted,
            updated: t.updated,
            inserted: t.inserted,
            statements: t.statements,
            sql: t.sql,
        });
        self.done = match (&self.stop_at, self.txns.last()) {
            (Some(StopAt::First), _) => true,
            (Some(StopAt::Gtid(g)), Some(t)) => t.gtid.as_deref() == Some(g.as_str()),
            _ => false,
        };
    }

    /// Takes one event; false once the read has gone far enough past `--until`.
    pub(super) fn take(
        &mut self,
        event: &Event,
        stream: &BinlogStream,
        images: &mut Option<Images<'_>>,
    ) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let header = event.header();
        let kind = header.event_type_raw();
        let time = DateTime::from_timestamp(i64::from(header.timestamp()), 0).unwrap_or_default();
        let end = u64::from(header.log_pos());
        // Events inside a MySQL transaction payload carry no position of their own.
        let start = end.saturating_sub(u64::from(header.event_size()));
        if header.timestamp() != 0 {
            self.last_event = Some(time);
            if self.open.is_none() {
                if let Some(u) = self.until {
                    if time > u + chrono::Duration::seconds(UNTIL_SLACK_SECS) {
                        return Ok(false);
                    }
                }
            }
        }
        if end != 0 {
            self.end = Some(self.here(end));
        }
        if MARIADB_COMPRESSED.contains(&kind) {
            return Err(Error::BinlogUnusable {
                what: format!(
                    "it holds compressed events (log_bin_compress = ON) from {}:{start}, which this tool cannot read",
                    self.file
                ),
                fix: "set log_bin_compress = OFF in the parameter group for the next time; for this one use the \
                      instance restore (`restore --time`): a skipped event would be a lost row"
                    .into(),
            });
        }
        match kind {
            MARIADB_GTID => {
                let d = event.data();
                if d.len() >= 13 {
                    let seq = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
                    let domain = u32::from_le_bytes(d[8..12].try_into().unwrap_or_default());
                    // FL_STANDALONE: one statement (DDL) with no BEGIN.
                    let standalone = d[12] & 1 != 0;
                    self.commit(start);
                    let gtid = format!("{domain}-{}-{seq}", header.server_id());
                    self.begin(time, start, Some(gtid), !standalone);
                }
                return Ok(true);
            }
            MARIADB_ANNOTATE_ROWS => {
                if let Some(t) = self.open.as_mut() {
                    t.sql
                        .get_or_insert_with(|| shown(&String::from_utf8_lossy(event.data())));
                }
                return Ok(true);
            }
            _ => {}
        }
        let data = match event.read_data() {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(true),
            Err(e) => {
                return Err(Error::BinlogUnusable {
                    what: format!("an event at {}:{start} cannot be read ({e})", self.file),
                    fix: "use the instance restore (`restore --time`, `--source pitr`)".into(),
                })
            }
        };
        match data {
            EventData::RotateEvent(r) => self.rotate(&r),
            EventData::GtidEvent(g) => self.gtid(&g, time, start),
            EventData::AnonymousGtidEvent(_) => {
                self.commit(start);
                self.begin(time, start, None, false);
            }
            EventData::QueryEvent(q) => self.query(&q, time, start, end),
            EventData::XidEvent(_) => self.commit(end),
            EventData::RowsQueryEvent(q) => {
                if let Some(t) = self.open.as_mut() {
                    t.sql.get_or_insert_with(|| shown(&q.query()));
                }
            }
            EventData::RowsEvent(rows) => self.rows(&rows, stream, time, start, images)?,
            _ => {}
        }
        Ok(true)
    }

    fn rotate(&mut self, r: &RotateEvent<'_>) {
        let name = file_name(r.name_raw(), self.known);
        if self.files.last() != Some(&name) {
            self.files.push(name.clone());
        }
        self.file = name;
    }

    fn gtid(&mut self, g: &GtidEvent, time: DateTime<Utc>, start: u64) {
        self.commit(start);
        let sid = g.sid();
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            hex::encode(&sid[0..4]),
            hex::encode(&sid[4..6]),
            hex::encode(&sid[6..8]),
            hex::encode(&sid[8..10]),
            hex::encode(&sid[10..16])
        );
        // MySQL: a DML transaction follows with BEGIN, which marks it begun.
        self.begin(time, start, Some(format!("{uuid}:{}", g.gno())), false);
    }

    fn query(&mut self, q: &QueryEvent<'_>, time: DateTime<Utc>, start: u64, end: u64) {
        let sql = q.query();
        let word = sql.trim().to_ascii_uppercase();
        if word == "BEGIN" || word.starts_with("XA START") {
            match self.open.as_mut() {
                Some(t) => t.begun = true,
                None => self.begin(time, start, None, true),
            }
            return;
        }
        if word == "COMMIT" || word == "ROLLBACK" || word.starts_with("XA END") || word.starts_with("XA COMMIT") {
            self.commit(end);
            return;
        }
        if self.open.is_none() {
            // A statement with no GTID before it (a server without GTIDs): its own transaction.
            self.begin(time, start, None, false);
        }
        let (schema, db, table) = (q.schema(), &self.table.database, &self.table.table);
        let kind = StatementKind::of(&sql);
        let on_table = match kind {
            StatementKind::Create => creates_table(&sql, &schema, db, table),
            _ => mentions_table(&sql, &schema, db, table),
        };
        if on_table && kind != StatementKind::Other {
            if let Some(t) = self.open.as_mut() {
                t.statements.push(Statement {
                    kind,
                    text: shown(&sql),
                });
            }
        }
        if self.open.as_ref().is_some_and(|t| !t.begun) {
            self.commit(end);
        }
    }

    fn rows(
        &mut self,
        rows: &RowsEventData<'_>,
        stream: &BinlogStream,
        time: DateTime<Utc>,
        start: u64,
        images: &mut Option<Images<'_>>,
    ) -> Result<()> {
        let Some(tme) = stream.get_tme(rows.table_id()) else {
            return Err(Error::BinlogUnusable {
                what: format!("a row event at {}:{start} names a table it never mapped", self.file),
                fix: "use the instance restore (`restore --time`, `--source pitr`)".into(),
            });
        };
        if tme.database_name() != self.table.database.as_str() || tme.table_name() != self.table.table.as_str() {
            return Ok(());
        }
        if self.open.is_none() {
            self.begin(time, start, None, true);
        }
        let txn_time = self.open.as_ref().map(|t| t.time).unwrap_or(time);
        if txn_time < self.since || self.until.is_some_and(|u| txn_time > u) {
            // Its transaction is out of the range and will not be kept: its rows are not
            // parsed, which is most of the read when the table was busy before the point.
            return Ok(());
        }
        let mut n = 0u64;
        for row in rows.rows(tme) {
            let (before, after) = row.map_err(|e| Error::BinlogUnusable {
                what: format!(
                    "a row event on the table at {}:{start} cannot be decoded ({e})",
                    self.file
                ),
                fix: "use the instance restore (`restore --time`, `--source pitr`)".into(),
            })?;
            n += 1;
            if let Some(images) = images.as_mut() {
                let file = &self.file;
                let columns = images.columns;
                let decode = |r: Option<mysql_async::binlog::row::BinlogRow>| -> Result<Option<crate::ports::Row>> {
                    r.map(|r| {
                        let values = (0..r.len()).map(|i| r.as_ref(i).cloned()).collect();
                        decode_row(values, columns).map_err(|e| Error::BinlogUnusable {
                            what: format!("a row of the table at {file}:{start} cannot be read: {e}"),
                            fix: "use the instance restore (`restore --time`, `--source pitr`)".into(),
                        })
                    })
                    .transpose()
                };
                let change = match (decode(before)?, decode(after)?) {
                    (Some(before), Some(after)) => Change::Update { before, after },
                    (Some(before), None) => Change::Delete { before },
                    (None, Some(after)) => Change::Insert { after },
                    (None, None) => continue,
                };
                images.sink.change(txn_time, change)?;
            }
        }
        if let Some(t) = self.open.as_mut() {
            match rows {
                RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => t.deleted += n,
                RowsEventData::UpdateRowsEventV1(_)
                | RowsEventData::UpdateRowsEvent(_)
                | RowsEventData::PartialUpdateRowsEvent(_) => t.updated += n,
                RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => t.inserted += n,
            }
        }
        Ok(())
    }
}

/// The file a rotate event names. The server's first, fake rotate comes before the format
/// description that says events carry a checksum, so its name arrives with the checksum's four
/// bytes still on: the known file it begins with is taken, else its printable start.
fn file_name(raw: &[u8], known: &[(String, u64)]) -> String {
    known
        .iter()
        .map(|(f, _)| f)
        .filter(|f| raw.starts_with(f.as_bytes()))
        .max_by_key(|f| f.len())
        .cloned()
        .unwrap_or_else(|| {
            let printable: Vec<u8> = raw.iter().copied().take_while(|b| b.is_ascii_graphic()).collect();
            String::from_utf8_lossy(&printable).into_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn a_rotate_name_loses_the_checksum_bytes_of_the_first_fake_rotate() {
        let known = vec![("binlog.000001".to_string(), 4), ("binlog.000002".to_string(), 4)];
        assert_eq!(file_name(b"binlog.000001\xa3\x8fn\x01", &known), "binlog.000001");
        assert_eq!(file_name(b"binlog.000002", &known), "binlog.000002");
        // A file created after SHOW BINARY LOGS ran.
        assert_eq!(file_name(b"binlog.000003\x00\xff", &known), "binlog.000003");
    }
}
