//! The binlog rewind: the table as it was at a second, built in production beside it, from its
//! rows now and the before-images of the changes since, with no instance restored.
//!
//! For every key a transaction after the point touched, its value at the point is the
//! before-image of the first change that touched it; a key first inserted after the point did
//! not exist then; every other row is as it is now. So: copy the table as it is (one
//! `INSERT ... SELECT` in READ COMMITTED, a consistent read that locks no row the application
//! writes), then read the binlog from the point to its end, which is past that copy, and put
//! back each first-touched key's value. A key changed after the copy was taken is put back from
//! its before-image too, which is its value at the point as long as nothing touched it before.
//!
//! Every check that can refuse is made first, read-only ([`check`]): ROW format, FULL images,
//! no compressed events, the binlog reaching back to the point, a primary key, and no statement
//! on the table (DDL, or DML logged as a statement) after it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};

use super::decode::ColumnDef;
use super::reader::{db_err, BinlogReader, ImageSink, Images, ServerLog, StopAt};
use super::{Before, Change, Position, Scan, TableTxn};
use crate::error::{Error, Result};
use crate::mysql::{qualified, quote_ident};
use crate::ports::{RewindOutcome, RewindRequest, Row, TableRef};

/// Rows per statement when putting values back.
const BATCH_ROWS: usize = 500;
/// Bytes of values per statement at most (well under any max_allowed_packet).
const BATCH_BYTES: usize = 4 << 20;

/// What the tool's user needs on its own database (its name is [`crate::plan::SCRATCH_DATABASE`]).
const GRANT_FIX: &str = "as an admin: GRANT SELECT, INSERT, DELETE, CREATE, DROP, CREATE TEMPORARY TABLES ON \
                         `rds_table_restore`.* TO '<the tool's user>'@'%' (the tool deletes rows only there)";

fn refuse(what: String) -> Error {
    Error::BinlogUnusable {
        what,
        fix: "use the instance restore (`--source pitr`, the default)".into(),
    }
}

/// What the checks found: the server's log, the table's columns and key, the read.
pub struct Checked {
    pub log: ServerLog,
    pub columns: Vec<ColumnDef>,
    /// Positions of the primary key's columns among the written columns.
    pub key: Vec<usize>,
    pub scan: Scan,
}

/// Every check a rewind of `table` to `to` makes before it writes anything, read-only.
pub async fn check(
    reader: &BinlogReader<'_>,
    table: &TableRef,
    asof: &TableRef,
    to: DateTime<Utc>,
    before: Option<&Position>,
) -> Result<Checked> {
    let (mut log, columns, key) = prepare(reader, table, asof, to, before).await.map_err(or_pitr)?;
    let after = read_from(&mut log, to, before);
    // The staging tables once, created and dropped: a missing privilege or a key they cannot
    // hold refuses here, not after the copy.
    let mut conn = reader.conn_for_writes().await?;
    let staging = Staging::new(asof, &columns, &key);
    let staged = match staging.create(&mut conn, table).await {
        Ok(()) => staging.drop(&mut conn).await,
        Err(e) => Err(e),
    };
    let _ = conn.disconnect().await;
    staged.map_err(|e| match e {
        Error::Db { detail, .. } => Error::BinlogUnusable {
            what: format!(
                "the rewind cannot stage the changes in temporary tables in `{}` ({detail})",
                asof.database
            ),
            fix: format!("{GRANT_FIX}; or use the instance restore (`--source pitr`, the default)"),
        },
        other => other,
    })?;
    // One read: every change after the point decoded and thrown away (a partial image or a
    // value that cannot be read refuses before anything is written), and every statement.
    let mut discard = |_: DateTime<Utc>, _: Change| Ok(());
    let read = reader
        .scan_with(
            &log,
            table,
            after,
            None,
            &|_, _, _| {},
            Some(Images {
                columns: &columns,
                sink: &mut discard,
            }),
        )
        .await;
    let scan = match read {
        Ok(scan) => scan,
        // Rows that cannot be read against the table's definition now are most often the
        // rows after a DDL on it: then the statement is the thing to name.
        Err(e) => {
            let statements = reader.scan(&log, table, after, None, &|_, _, _| {}).await?;
            return Err(foreign_statement(&statements, asof).map(crossing).unwrap_or(e));
        }
    };
    if let Some(t) = foreign_statement(&scan, asof) {
        return Err(crossing(t));
    }
    Ok(Checked {
        log,
        columns,
        key,
        scan,
    })
}

/// A refusal shared with `find` (a missing privilege) names its own fix; for a rewind, the
/// instance restore is the other way, and the message says so.
fn or_pitr(e: Error) -> Error {
    match e {
        Error::BinlogUnusable { what, fix } if !fix.contains("--source pitr") => Error::BinlogUnusable {
            what,
            fix: format!("{fix}; or use the instance restore (`--source pitr`, the default)"),
        },
        other => other,
    }
}

/// The checks that need no read of the binlog's events: the server's settings, how far back
/// its files go, the scratch database, the table's columns and primary key.
async fn prepare(
    reader: &BinlogReader<'_>,
    table: &TableRef,
    asof: &TableRef,
    to: DateTime<Utc>,
    before: Option<&Position>,
) -> Result<(ServerLog, Vec<ColumnDef>, Vec<usize>)> {
    let log = reader.probe().await?;
    if !log.format.eq_ignore_ascii_case("ROW") {
        return Err(refuse(format!(
            "binlog_format is {}: a rewind needs every change as row images (ROW)",
            log.format
        )));
    }
    if !log.row_image.eq_ignore_ascii_case("FULL") {
        return Err(refuse(format!(
            "binlog_row_image is {}: a rewind needs whole before-images (FULL)",
            log.row_image
        )));
    }
    if log.compressed {
        return Err(refuse(
            "log_bin_compress is ON: compressed events cannot be read, and a skipped event is a lost row".into(),
        ));
    }
    if let Some(p) = before {
        if !log.files.iter().any(|(f, _)| f == &p.file) {
            return Err(Error::BinlogUnusable {
                what: format!("SHOW BINARY LOGS does not list {}, where --before {p} is", p.file),
                fix: "the file is purged (or the name is mistyped): use the instance restore with --time \
                      (`--source pitr`, the default)"
                    .into(),
            });
        }
    }
    let oldest = reader.oldest_event(&log).await?;
    if oldest.is_none_or(|t| t > to) {
        return Err(Error::BinlogUnusable {
            what: format!(
                "the oldest binlog file begins at {}, after {}: the binlogs of that time are purged",
                oldest.map(|t| t.to_rfc3339()).unwrap_or_else(|| "?".into()),
                to.to_rfc3339()
            ),
            fix: "keep them longer next time (on RDS: CALL mysql.rds_set_configuration('binlog retention hours', \
                  24)); now use the instance restore (`--source pitr`, the default)"
                .into(),
        });
    }
    if !reader.database_exists(&asof.database).await? {
        return Err(Error::BinlogUnusable {
            what: format!(
                "production has no database `{}`, where the rewind builds the table as it was",
                asof.database
            ),
            fix: format!(
                "create it once, as an admin: CREATE DATABASE `{}`; {GRANT_FIX}; or use the instance restore \
                 (`--source pitr`, the default)",
                asof.database
            ),
        });
    }
    let columns = reader.column_defs(table).await?;
    let written: Vec<&ColumnDef> = columns.iter().filter(|c| !c.generated).collect();
    let key_names = reader.primary_key(table).await?;
    let key: Vec<usize> = key_names
        .iter()
        .filter_map(|k| written.iter().position(|c| &c.name == k))
        .collect();
    if key.is_empty() || key.len() != key_names.len() {
        return Err(refuse(format!(
            "`{}`.`{}` has no primary key: the binlog's rows cannot be matched to the table's",
            table.database, table.table
        )));
    }
    Ok((log, columns, key))
}

/// Builds the request's as-of table (new): the table as it was at the point, or, with
/// `changed_keys_only`, the keys changed after it alone. Runs the checks again first.
///
/// The first change of each key after the point is staged in two temporary tables of the
/// rewind's session (in ROW format they are not written to the binlog): the keys, each with
/// whether it existed at the point, and the before-images. Both keep the first row of a key
/// (`ON DUPLICATE KEY` does nothing), and changes arrive in binlog order, so the first change
/// wins without the tool holding a set of every key: its memory is one batch, however many rows
/// the accident took. Keys compare as the table compares them (the staging columns are the
/// table's), so a case-insensitive key changed only in case is one key, as in the table.
/// The as-of table is then set right in two statements, all rewound keys at once, so a unique
/// secondary key that moved between rows after the point never sees two holders.
///
/// The whole table is first copied as it is now, and the rewound keys replace their rows in the
/// copy; with `changed_keys_only` there is no copy, and the as-of table receives the staged
/// before-images alone: the rewind then costs what the accident changed, not the table's size.
pub async fn rewind(
    reader: &BinlogReader<'_>,
    request: &RewindRequest<'_>,
    before: Option<&Position>,
    from: Option<Position>,
) -> Result<RewindOutcome> {
    let (table, asof, to) = (request.table, request.asof, request.to);
    // Validation made every check just before (on every resume too): what the build needs of
    // them is read again, the events are read once, below, and still refuse a statement.
    let (mut log, columns, key) = prepare(reader, table, asof, to, before).await?;
    let since = read_from(&mut log, to, before);
    if let (None, Some(at)) = (before, from) {
        // Validation's read found where the first transaction after the point begins.
        log.resume_at = Some((since, at));
    }
    let staging = Staging::new(asof, &columns, &key);
    let (t, a) = (qualified(table), qualified(asof));

    let mut conn = reader.conn_for_writes().await?;
    exec(&mut conn, &format!("DROP TABLE IF EXISTS {a}")).await?;
    exec(&mut conn, &format!("CREATE TABLE {a} LIKE {t}")).await?;
    staging.create(&mut conn, table).await?;
    let cols = staging.cols.join(", ");
    if !request.changed_keys_only {
        exec(&mut conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
        exec(&mut conn, &format!("INSERT INTO {a} ({cols}) SELECT {cols} FROM {t}")).await?;
        exec(&mut conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
    }

    // The first change of each key after the point, read from the binlog to its end (past the
    // copy just taken), staged as it comes.
    let mut stager = Stager {
        conn: &mut conn,
        staging: &staging,
        rows: Vec::new(),
        keys: Vec::new(),
        bytes: 0,
    };
    let scan = reader
        .scan_with(
            &log,
            table,
            since,
            None,
            &|_, _, _| {},
            Some(Images {
                columns: &columns,
                sink: &mut stager,
            }),
        )
        .await?;
    stager.flush().await?;
    if let Some(t) = foreign_statement(&scan, asof) {
        return Err(crossing(t));
    }
    let keys_rewound: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {}", staging.keys))
        .await
        .map_err(db_err)?;
    // Names in full, not aliases: MariaDB resolves a multi-table DELETE's alias in the
    // session's default database, which this session has none of.
    if !request.changed_keys_only {
        let on = staging.join_on(&a, &staging.keys);
        exec(&mut conn, &format!("DELETE {a} FROM {a} JOIN {} ON {on}", staging.keys)).await?;
    }
    let picked: Vec<String> = staging.cols.iter().map(|c| format!("r.{c}")).collect();
    exec(
        &mut conn,
        &format!(
            "INSERT INTO {a} ({cols}) SELECT {} FROM {} AS r JOIN {} AS k ON {} WHERE k.{ABSENT} = 0",
            picked.join(", "),
            staging.rows,
            staging.keys,
            staging.join_on("r", "k"),
        ),
    )
    .await?;
    staging.drop(&mut conn).await?;
    let rows: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {a}"))
        .await
        .map_err(db_err)?;
    let _ = conn.disconnect().await;
    Ok(RewindOutcome {
        transactions: scan.txns.len() as u64,
        keys_rewound: keys_rewound.unwrap_or(0),
        changes: scan.txns.iter().map(|t| t.deleted + t.updated + t.inserted).sum(),
        rows: rows.unwrap_or(0),
        end: scan.end.map(|p| p.to_string()).unwrap_or_default(),
        first_at: scan.first_at.map(|p| p.to_string()),
        changed_keys_only: request.changed_keys_only,
    })
}

/// Where the read of the changes after the point begins: the second after `to`, or exactly at
/// the `--before` transaction's start (every transaction from there on, whatever its second).
/// Returns the `since` to read with.
fn read_from(log: &mut ServerLog, to: DateTime<Utc>, before: Option<&Position>) -> DateTime<Utc> {
    match before {
        None => to + chrono::Duration::seconds(1),
        Some(p) => {
            log.resume_at = Some((DateTime::<Utc>::MIN_UTC, p.clone()));
            DateTime::<Utc>::MIN_UTC
        }
    }
}

/// The transaction `--before` names, read from the binlog: the one on the table that begins
/// at the position (read from there, up to it), or the one with the GTID (read from `hint`,
/// `--time`, or else from the oldest file, up to it). Its time becomes the plan's.
pub async fn locate(
    reader: &BinlogReader<'_>,
    table: &TableRef,
    before: &Before,
    hint: Option<DateTime<Utc>>,
) -> Result<TableTxn> {
    let mut log = reader.probe().await?;
    let name = format!("`{}`.`{}`", table.database, table.table);
    let since = match before {
        Before::Position(p) => {
            if !log.files.iter().any(|(f, _)| f == &p.file) {
                return Err(Error::InvalidInput(format!(
                    "--before {p}: SHOW BINARY LOGS lists no file {} (purged, or mistyped): take a position from \
                     `rds-table-restore find`",
                    p.file
                )));
            }
            log.stop_at = Some(StopAt::First);
            read_from(&mut log, DateTime::<Utc>::MIN_UTC, Some(p))
        }
        Before::Gtid(g) => {
            log.stop_at = Some(StopAt::Gtid(g.clone()));
            match hint {
                Some(t) => t,
                None => {
                    // MariaDB says in each file's first events which GTIDs came before it.
                    let first = reader.first_file_for_gtid(&log, g).await?;
                    let Some((file, _)) = log.files.get(first) else {
                        return Err(refuse("SHOW BINARY LOGS lists no file".into()));
                    };
                    let at = Position {
                        file: file.clone(),
                        pos: 4,
                    };
                    read_from(&mut log, DateTime::<Utc>::MIN_UTC, Some(&at))
                }
            }
        }
    };
    let scan = reader.scan(&log, table, since, None, &|_, _, _| {}).await?;
    match before {
        Before::Position(p) => match scan.txns.into_iter().next() {
            Some(t) if t.start == *p => Ok(t),
            Some(t) => Err(Error::InvalidInput(format!(
                "--before {p}: no transaction on {name} begins there; the next one begins at {} ({}): take a \
                 position from `rds-table-restore find`",
                t.start,
                t.time.to_rfc3339()
            ))),
            None => Err(Error::InvalidInput(format!(
                "--before {p}: no transaction on {name} begins there or after it: take a position from \
                 `rds-table-restore find`"
            ))),
        },
        Before::Gtid(g) => scan
            .txns
            .into_iter()
            .find(|t| t.gtid.as_deref() == Some(g.as_str()))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "--before GTID {g}: no transaction on {name} has it in the binlogs read (from {}): take one \
                     from `rds-table-restore find`, or give --time near it",
                    hint.map(|t| t.to_rfc3339()).unwrap_or_else(|| "the oldest file".into())
                ))
            }),
    }
}

/// The first transaction with a statement on the table, other than this run's own on its
/// as-of table (`CREATE TABLE <as-of> LIKE <table>` names the table too, and so do the
/// staging tables' names, which begin with the as-of table's).
fn foreign_statement<'s>(scan: &'s Scan, asof: &TableRef) -> Option<&'s super::TableTxn> {
    scan.txns
        .iter()
        .find(|t| t.statements.iter().any(|s| !s.text.contains(&asof.table)))
}

/// The refusal for a statement on the table after the point.
fn crossing(t: &super::TableTxn) -> Error {
    refuse(format!(
        "`{}` at {} ({}) is a statement on the table after the point: a rewind cannot cross it",
        t.statements[0].text,
        t.start,
        t.time.to_rfc3339()
    ))
}

async fn exec(conn: &mut Conn, sql: &str) -> Result<()> {
    conn.query_drop(sql).await.map_err(db_err)
}

/// The staging column that says a key did not exist at the point.
const ABSENT: &str = "`rewind_absent`";

/// The two temporary tables of a rewind, named after its as-of table.
struct Staging {
    /// Every key changed after the point, with [`ABSENT`].
    keys: String,
    /// The before-image of each key's first change that had one.
    rows: String,
    /// The table's written columns, quoted.
    cols: Vec<String>,
    /// The key's columns, quoted.
    key_names: Vec<String>,
    /// Positions of the key's columns among `cols`.
    key: Vec<usize>,
}

impl Staging {
    fn new(asof: &TableRef, columns: &[ColumnDef], key: &[usize]) -> Staging {
        let cols: Vec<String> = columns
            .iter()
            .filter(|c| !c.generated)
            .map(|c| quote_ident(&c.name))
            .collect();
        let key_names = key.iter().map(|&i| cols[i].clone()).collect();
        let named = |suffix: &str| {
            format!(
                "{}.{}",
                quote_ident(&asof.database),
                quote_ident(&format!("{}__{suffix}", asof.table))
            )
        };
        Staging {
            keys: named("keys"),
            rows: named("rows"),
            cols,
            key_names,
            key: key.to_vec(),
        }
    }

    /// Creates both, empty, with the table's own column types (`CREATE ... SELECT` of no row
    /// copies them) and its primary key, and no other index: the staged rows need no other
    /// check, and an index a temporary table cannot have (FULLTEXT, in InnoDB) cannot refuse.
    async fn create(&self, conn: &mut Conn, table: &TableRef) -> Result<()> {
        self.drop(conn).await?;
        let t = qualified(table);
        let key = self.key_names.join(", ");
        exec(
            conn,
            &format!(
                "CREATE TEMPORARY TABLE {} (PRIMARY KEY ({key})) SELECT {key}, 0 AS {ABSENT} FROM {t} WHERE FALSE",
                self.keys
            ),
        )
        .await?;
        exec(
            conn,
            &format!(
                "CREATE TEMPORARY TABLE {} (PRIMARY KEY ({key})) SELECT {} FROM {t} WHERE FALSE",
                self.rows,
                self.cols.join(", ")
            ),
        )
        .await
    }

    async fn drop(&self, conn: &mut Conn) -> Result<()> {
        exec(
            conn,
            &format!("DROP TEMPORARY TABLE IF EXISTS {}, {}", self.keys, self.rows),
        )
        .await
    }

    /// `x.k1 = y.k1 AND ...` over the key's columns.
    fn join_on(&self, x: &str, y: &str) -> String {
        self.key_names
            .iter()
            .map(|k| format!("{x}.{k} = {y}.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `INSERT INTO <into> (<cols>) VALUES (...), ... ON DUPLICATE KEY UPDATE k = k`: the row
    /// already staged for a key stays.
    fn insert(&self, into: &str, cols: &[String], rows: usize) -> String {
        let one = format!("({})", vec!["?"; cols.len()].join(", "));
        format!(
            "INSERT INTO {into} ({}) VALUES {} ON DUPLICATE KEY UPDATE {k} = {k}",
            cols.join(", "),
            vec![one.as_str(); rows].join(", "),
            k = self.key_names[0]
        )
    }
}

/// Stages changes as the read hands them over, a batch at a time.
struct Stager<'a> {
    conn: &'a mut Conn,
    staging: &'a Staging,
    /// Before-images not yet staged.
    rows: Vec<Row>,
    /// Keys not yet staged, with whether they were absent at the point.
    keys: Vec<(Vec<Value>, bool)>,
    bytes: usize,
}

impl Stager<'_> {
    fn key_of(&self, row: &Row) -> Vec<Value> {
        self.staging.key.iter().map(|&i| row[i].clone()).collect()
    }

    fn before(&mut self, row: Row) {
        let key = self.key_of(&row);
        self.bytes += row.iter().map(value_size).sum::<usize>();
        self.keys.push((key, false));
        self.rows.push(row);
    }

    fn absent(&mut self, key: Vec<Value>) {
        self.bytes += key.iter().map(value_size).sum::<usize>();
        self.keys.push((key, true));
    }

    fn full(&self) -> bool {
        // MySQL's limit of 65,535 placeholders in one statement.
        let max_rows = BATCH_ROWS.min(60_000 / (self.staging.cols.len() + 1)).max(1);
        self.rows.len() >= max_rows || self.keys.len() >= max_rows || self.bytes >= BATCH_BYTES
    }

    /// Writes out both buffers: keys and rows each in their order, which is all the first-wins
    /// rule needs (each table decides on its own rows).
    async fn flush(&mut self) -> Result<()> {
        if !self.keys.is_empty() {
            let keys = std::mem::take(&mut self.keys);
            let mut cols = self.staging.key_names.clone();
            cols.push(ABSENT.to_string());
            let sql = self.staging.insert(&self.staging.keys, &cols, keys.len());
            let params: Vec<Value> = keys
                .into_iter()
                .flat_map(|(k, absent)| k.into_iter().chain(std::iter::once(Value::Int(absent as i64))))
                .collect();
            self.conn
                .exec_drop(sql, Params::Positional(params))
                .await
                .map_err(db_err)?;
        }
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            let sql = self.staging.insert(&self.staging.rows, &self.staging.cols, rows.len());
            let params: Vec<Value> = rows.into_iter().flatten().collect();
            self.conn
                .exec_drop(sql, Params::Positional(params))
                .await
                .map_err(db_err)?;
        }
        self.bytes = 0;
        Ok(())
    }
}

#[async_trait]
impl ImageSink for Stager<'_> {
    fn change(&mut self, _: DateTime<Utc>, change: Change) -> Result<()> {
        match change {
            Change::Delete { before } => self.before(before),
            Change::Insert { after } => {
                let key = self.key_of(&after);
                self.absent(key);
            }
            Change::Update { before, after } => {
                let (kb, ka) = (self.key_of(&before), self.key_of(&after));
                self.before(before);
                if kb != ka {
                    self.absent(ka);
                }
            }
        }
        Ok(())
    }

    async fn drain(&mut self) -> Result<()> {
        if self.full() {
            self.flush().await?;
        }
        Ok(())
    }
}

fn value_size(v: &Value) -> usize {
    match v {
        Value::Bytes(b) => b.len() + 8,
        _ => 16,
    }
}
