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

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};

use super::decode::ColumnDef;
use super::reader::{db_err, BinlogReader, Images, ServerLog};
use super::{Change, Scan};
use crate::error::{Error, Result};
use crate::mysql::quote_ident;
use crate::ports::{RewindOutcome, Row, TableRef};
use crate::rowcodec::encode_values;

/// Rows per statement when putting values back.
const BATCH_ROWS: usize = 500;
/// Bytes of values per statement at most (well under any max_allowed_packet).
const BATCH_BYTES: usize = 4 << 20;

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
pub async fn check(reader: &BinlogReader<'_>, table: &TableRef, asof: &TableRef, to: DateTime<Utc>) -> Result<Checked> {
    let (mut log, columns, key) = prepare(reader, table, asof, to).await?;
    // A statement on the table first (a DDL also makes the rows after it undecodable against
    // the table's definition now, and the statement is the thing to name).
    let after = to + chrono::Duration::seconds(1);
    let statements = reader.scan(&log, table, after, None, &|_, _, _| {}).await?;
    if let Some(t) = foreign_statement(&statements, asof) {
        return Err(crossing(t));
    }
    // The second read starts where the first found the point, not at its file's start.
    log.resume_at = statements.first_at.clone().map(|p| (after, p));
    // Every change after the point, decoded and thrown away: a partial image or a value that
    // cannot be read refuses here, before anything is written.
    let mut discard = |_: DateTime<Utc>, _: Change| Ok(());
    let scan = reader
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
        .await?;
    Ok(Checked {
        log,
        columns,
        key,
        scan,
    })
}

/// The checks that need no read of the binlog's events: the server's settings, how far back
/// its files go, the scratch database, the table's columns and primary key.
async fn prepare(
    reader: &BinlogReader<'_>,
    table: &TableRef,
    asof: &TableRef,
    to: DateTime<Utc>,
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
                "create it once, as an admin: CREATE DATABASE `{0}`; GRANT SELECT, INSERT, DELETE, CREATE, DROP ON \
                 `{0}`.* TO '<the tool's user>'@'%' (the tool deletes rows only there); or use the instance \
                 restore (`--source pitr`, the default)",
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

/// What the build reads of the checks.
struct Prepared {
    log: ServerLog,
    columns: Vec<ColumnDef>,
    key: Vec<usize>,
}

/// One key's value at the point: a row to put back, or nothing (it did not exist).
enum AtPoint {
    Row(Row),
    Absent(Vec<Value>),
}

/// Builds `asof` (new) as `table` was at `to`. Runs the checks again first.
pub async fn rewind(
    reader: &BinlogReader<'_>,
    table: &TableRef,
    asof: &TableRef,
    to: DateTime<Utc>,
) -> Result<RewindOutcome> {
    // Validation made every check just before (on every resume too): what the build needs of
    // them is read again, the events are read once, below, and still refuse a statement.
    let (log, columns, key) = prepare(reader, table, asof, to).await?;
    let checked = Prepared { log, columns, key };
    let written: Vec<&ColumnDef> = checked.columns.iter().filter(|c| !c.generated).collect();
    let names: Vec<String> = written.iter().map(|c| quote_ident(&c.name)).collect();
    let key_names: Vec<String> = checked.key.iter().map(|&i| names[i].clone()).collect();
    let (t, a) = (qualified(table), qualified(asof));

    let mut conn = reader.conn_for_writes().await?;
    exec(&mut conn, &format!("DROP TABLE IF EXISTS {a}")).await?;
    exec(&mut conn, &format!("CREATE TABLE {a} LIKE {t}")).await?;
    exec(&mut conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
    let cols = names.join(", ");
    exec(&mut conn, &format!("INSERT INTO {a} ({cols}) SELECT {cols} FROM {t}")).await?;
    exec(&mut conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;

    // The first change of each key after the point, read from the binlog to its end (past the
    // copy just taken).
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut at_point: Vec<AtPoint> = Vec::new();
    let key_of = |row: &Row| -> Vec<Value> { checked.key.iter().map(|&i| row[i].clone()).collect() };
    let mut sink = |_: DateTime<Utc>, change: Change| {
        let mut first = |k: Vec<Value>| seen.insert(encode_values(&k));
        match change {
            Change::Delete { before } => {
                if first(key_of(&before)) {
                    at_point.push(AtPoint::Row(before));
                }
            }
            Change::Insert { after } => {
                let k = key_of(&after);
                if first(k.clone()) {
                    at_point.push(AtPoint::Absent(k));
                }
            }
            Change::Update { before, after } => {
                let (kb, ka) = (key_of(&before), key_of(&after));
                let moved = kb != ka;
                if first(kb) {
                    at_point.push(AtPoint::Row(before));
                }
                if moved && first(ka.clone()) {
                    at_point.push(AtPoint::Absent(ka));
                }
            }
        }
        Ok(())
    };
    let scan = reader
        .scan_with(
            &checked.log,
            table,
            to + chrono::Duration::seconds(1),
            None,
            &|_, _, _| {},
            Some(Images {
                columns: &checked.columns,
                sink: &mut sink,
            }),
        )
        .await?;
    if let Some(t) = foreign_statement(&scan, asof) {
        return Err(crossing(t));
    }
    let keys_rewound = at_point.len() as u64;
    let target = Target {
        table: &a,
        cols: &cols,
        ncols: names.len(),
        key_names: &key_names,
        key: &checked.key,
    };
    put_back(&mut conn, &target, at_point).await?;
    let rows: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {a}"))
        .await
        .map_err(db_err)?;
    let _ = conn.disconnect().await;
    Ok(RewindOutcome {
        transactions: scan.txns.len() as u64,
        keys_rewound,
        rows: rows.unwrap_or(0),
        end: scan.end.map(|p| p.to_string()).unwrap_or_default(),
    })
}

/// The first transaction with a statement on the table, other than this run's own on its
/// as-of table (`CREATE TABLE <as-of> LIKE <table>` names the table too).
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

fn qualified(t: &TableRef) -> String {
    format!("{}.{}", quote_ident(&t.database), quote_ident(&t.table))
}

async fn exec(conn: &mut Conn, sql: &str) -> Result<()> {
    conn.query_drop(sql).await.map_err(db_err)
}

/// Where the rewound values go: the as-of table, its written columns, its key (names, and
/// positions among the columns).
struct Target<'a> {
    table: &'a str,
    cols: &'a str,
    ncols: usize,
    key_names: &'a [String],
    key: &'a [usize],
}

/// Deletes every rewound key from the copy and inserts the rows that existed at the point, in
/// batches, each one transaction. Each key comes once (its first change), so the order of the
/// batches does not matter.
async fn put_back(conn: &mut Conn, target: &Target<'_>, at_point: Vec<AtPoint>) -> Result<()> {
    let mut batch: Vec<AtPoint> = Vec::new();
    let mut bytes = 0usize;
    // MySQL's limit of 65,535 placeholders in one statement.
    let max_rows = BATCH_ROWS.min(60_000 / target.ncols.max(1)).max(1);
    for item in at_point {
        bytes += match &item {
            AtPoint::Row(r) => r.iter().map(value_size).sum::<usize>(),
            AtPoint::Absent(k) => k.iter().map(value_size).sum::<usize>(),
        };
        batch.push(item);
        if batch.len() >= max_rows || bytes >= BATCH_BYTES {
            apply(conn, target, std::mem::take(&mut batch)).await?;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        apply(conn, target, batch).await?;
    }
    Ok(())
}

fn value_size(v: &Value) -> usize {
    match v {
        Value::Bytes(b) => b.len() + 8,
        _ => 16,
    }
}

async fn apply(conn: &mut Conn, target: &Target<'_>, batch: Vec<AtPoint>) -> Result<()> {
    let width = target.key_names.len();
    let mut delete_keys: Vec<Value> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    for item in batch {
        match item {
            AtPoint::Absent(k) => delete_keys.extend(k),
            AtPoint::Row(r) => {
                delete_keys.extend(target.key.iter().map(|&i| r[i].clone()));
                rows.push(r);
            }
        }
    }
    let (one_key, key_list) = if width == 1 {
        ("?".to_string(), target.key_names[0].clone())
    } else {
        (
            format!("({})", vec!["?"; width].join(", ")),
            format!("({})", target.key_names.join(", ")),
        )
    };
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .map_err(db_err)?;
    let n_keys = delete_keys.len() / width.max(1);
    if n_keys > 0 {
        let sql = format!(
            "DELETE FROM {} WHERE {key_list} IN ({})",
            target.table,
            vec![one_key.as_str(); n_keys].join(", ")
        );
        tx.exec_drop(sql, Params::Positional(delete_keys))
            .await
            .map_err(db_err)?;
    }
    if !rows.is_empty() {
        let one_row = format!("({})", vec!["?"; target.ncols].join(", "));
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            target.table,
            target.cols,
            vec![one_row.as_str(); rows.len()].join(", ")
        );
        let params: Vec<Value> = rows.into_iter().flatten().collect();
        tx.exec_drop(sql, Params::Positional(params)).await.map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}
