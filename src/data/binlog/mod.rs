//! Production's binary log, read over the replication protocol: which transactions wrote the
//! table, when, and where each begins, so the operator does not have to know the second of the
//! damage by heart (`rds-table-restore find`).
//!
//! This module holds what is read and what it means ([`TableTxn`], [`analyse`]); the reading
//! itself is in [`reader`]. Nothing here writes anything, anywhere.

pub mod decode;
mod events;
pub mod reader;
pub mod rewind;
mod statement;

use chrono::{DateTime, Utc};

pub use statement::{creates_table, mentions_table, StatementKind};

/// One row change on the table, its images decoded as the table's rows are.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Insert {
        after: crate::ports::Row,
    },
    Update {
        before: crate::ports::Row,
        after: crate::ports::Row,
    },
    Delete {
        before: crate::ports::Row,
    },
}

/// A place in the binary log: a file and a byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub file: String,
    pub pos: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl Position {
    /// `FILE:POS`, as `find` prints it: a file name (never a UUID, which would be a MySQL
    /// GTID) and a byte offset.
    pub fn parse(s: &str) -> Option<Position> {
        let (file, pos) = s.rsplit_once(':')?;
        let pos = pos.parse().ok()?;
        (!file.is_empty() && !looks_like_uuid(file) && !file.contains(char::is_whitespace)).then(|| Position {
            file: file.to_string(),
            pos,
        })
    }
}

/// `--before`: just before one transaction, named by where it begins or by its GTID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Before {
    Position(Position),
    Gtid(String),
}

impl Before {
    /// `binlog.000022:748247897`, MariaDB's `0-1-12345`, or MySQL's `<server uuid>:12345`.
    pub fn parse(s: &str) -> Option<Before> {
        let s = s.trim();
        let mariadb_gtid = {
            let parts: Vec<&str> = s.split('-').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        let mysql_gtid = s
            .rsplit_once(':')
            .is_some_and(|(uuid, n)| looks_like_uuid(uuid) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if mariadb_gtid || mysql_gtid {
            return Some(Before::Gtid(s.to_string()));
        }
        Position::parse(s).map(Before::Position)
    }
}

impl std::fmt::Display for Before {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Before::Position(p) => write!(f, "{p}"),
            Before::Gtid(g) => write!(f, "GTID {g}"),
        }
    }
}

fn looks_like_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A statement on the table that the binlog holds as text rather than as rows: DDL always,
/// and DML when the server logged it as a statement (STATEMENT or MIXED format).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Statement {
    pub kind: StatementKind,
    /// The statement, cut to [`statement::SHOWN`] characters.
    pub text: String,
}

/// One committed transaction that wrote the table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableTxn {
    /// When it ran, to the second (the binlog keeps seconds).
    pub time: DateTime<Utc>,
    /// Where the transaction begins: a rewind "before" it stops here.
    pub start: Position,
    /// Where the next one begins.
    pub end: Position,
    /// `domain-server-sequence` on MariaDB, `uuid:number` on MySQL; none without GTIDs.
    pub gtid: Option<String>,
    pub deleted: u64,
    pub updated: u64,
    pub inserted: u64,
    pub statements: Vec<Statement>,
    /// The SQL that made the row events, where the server logs it (MySQL's
    /// `binlog_rows_query_log_events`, MariaDB's annotate events).
    pub sql: Option<String>,
}

impl TableTxn {
    /// Rows it removed or changed: what a restore would bring back.
    pub fn destructive_rows(&self) -> u64 {
        self.deleted + self.updated
    }

    /// A statement that empties or removes the whole table (TRUNCATE, DROP), or a DELETE or
    /// UPDATE logged as a statement, whose rows the binlog does not count.
    pub fn destructive_statement(&self) -> bool {
        self.statements.iter().any(|s| s.kind.destructive())
    }

    pub fn destructive(&self) -> bool {
        self.destructive_rows() > 0 || self.destructive_statement()
    }
}

/// What a scan of the binlog found for one table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scan {
    /// The binlog files read, in order.
    pub files: Vec<String>,
    /// Where the first transaction at or after `since` begins: a later read from the same
    /// moment can start there ([`reader::ServerLog::resume_at`]).
    pub first_at: Option<Position>,
    /// From when transactions were kept (`--since`).
    pub since: DateTime<Utc>,
    /// The time of the last event read: the binlog's end when no `--until` stopped it.
    pub last_event: Option<DateTime<Utc>>,
    /// Where the read ended.
    pub end: Option<Position>,
    pub txns: Vec<TableTxn>,
    /// Transactions in the range that did not write the table.
    pub other_txns: u64,
    /// What the server's settings mean for what was read (MIXED format, ...).
    pub warnings: Vec<String>,
}

/// What the transactions say about the damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The transactions worth a look, most destructive first (indexes into the scan's list).
    pub flagged: Vec<usize>,
    /// The one taken to be the damage: a TRUNCATE or DROP if any, else the one that removed or
    /// changed the most rows (the earliest of equals).
    pub damage: Option<usize>,
    /// The second to give `restore --time`: the one before the damage, so a restore to it
    /// holds none of it whether RDS counts that second in or out.
    pub restore_time: Option<DateTime<Utc>>,
    /// Other transactions on the table in the second of the damage or the one before: a
    /// restore to a second cannot tell them from it.
    pub same_second: Vec<usize>,
}

/// How many destructive transactions are flagged besides statements (which are all flagged).
const FLAGGED: usize = 3;

/// The damage among the table's current life: what came after its last CREATE TABLE (a test's
/// or a migration's `DROP TABLE IF EXISTS` before its CREATE belongs to an earlier life). In
/// that life, a TRUNCATE or DROP first, else the most rows removed or changed, else the first
/// destructive statement. A life with none of these was begun by re-creating the table after
/// the damage: then the DROP or TRUNCATE just before that CREATE is the damage.
fn damage_in(txns: &[TableTxn], by_rows: &[usize], statements: &[usize]) -> Option<usize> {
    let whole_table = |i: usize| {
        txns[i]
            .statements
            .iter()
            .any(|s| matches!(s.kind, StatementKind::Truncate | StatementKind::Drop))
    };
    let created = txns
        .iter()
        .rposition(|t| t.statements.iter().any(|s| s.kind == StatementKind::Create));
    let in_life = |i: &usize| created.is_none_or(|c| *i > c);
    statements
        .iter()
        .copied()
        .filter(in_life)
        .find(|&i| whole_table(i))
        .or_else(|| by_rows.iter().copied().find(in_life))
        .or_else(|| statements.iter().copied().find(in_life))
        .or_else(|| {
            let c = created?;
            statements.iter().copied().filter(|&i| i < c).rfind(|&i| whole_table(i))
        })
}

/// Reads the damage out of the transactions of a scan.
pub fn analyse(txns: &[TableTxn]) -> Finding {
    let mut by_rows: Vec<usize> = (0..txns.len()).filter(|&i| txns[i].destructive_rows() > 0).collect();
    // Most rows first; the earliest first among equals (the sort is stable).
    by_rows.sort_by_key(|&i| std::cmp::Reverse(txns[i].destructive_rows()));
    let statements: Vec<usize> = (0..txns.len()).filter(|&i| txns[i].destructive_statement()).collect();
    let mut flagged: Vec<usize> = statements.clone();
    for i in by_rows.iter().copied().take(FLAGGED) {
        if !flagged.contains(&i) {
            flagged.push(i);
        }
    }
    let damage = damage_in(txns, &by_rows, &statements);
    let restore_time = damage.map(|d| txns[d].time - chrono::Duration::seconds(1));
    let same_second = match damage {
        Some(d) => (0..txns.len())
            .filter(|&i| i != d)
            .filter(|&i| {
                let gap = txns[d].time - txns[i].time;
                gap >= chrono::Duration::zero() && gap <= chrono::Duration::seconds(1)
            })
            .collect(),
        None => Vec::new(),
    };
    Finding {
        flagged,
        damage,
        restore_time,
        same_second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_reads_a_position_and_both_kinds_of_gtid() {
        assert_eq!(
            Before::parse("mysql-bin-changelog.000123:4567"),
            Some(Before::Position(Position {
                file: "mysql-bin-changelog.000123".into(),
                pos: 4567
            }))
        );
        assert_eq!(Before::parse("0-1-42"), Some(Before::Gtid("0-1-42".into())));
        let mysql = "3e11fa47-71ca-11e1-9e33-c80aa9429562:23";
        assert_eq!(Before::parse(mysql), Some(Before::Gtid(mysql.into())));
        for bad in ["binlog.000001", "binlog.000001:x", ":12", "0-1", "yesterday"] {
            assert_eq!(Before::parse(bad), None, "{bad}");
        }
    }

    fn txn(second: i64, deleted: u64, updated: u64, inserted: u64) -> TableTxn {
        TableTxn {
            time: DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap(),
            start: Position {
                file: "binlog.000001".into(),
                pos: 4 + second as u64 * 100,
            },
            end: Position {
                file: "binlog.000001".into(),
                pos: 104 + second as u64 * 100,
            },
            gtid: None,
            deleted,
            updated,
            inserted,
            statements: Vec::new(),
            sql: None,
        }
    }

    #[test]
    fn the_damage_is_the_largest_destructive_transaction_and_the_time_the_second_before() {
        let txns = vec![
            txn(0, 0, 0, 5),
            txn(10, 3, 0, 0),
            txn(20, 25_000, 0, 0),
            txn(30, 0, 700, 0),
            txn(40, 0, 0, 9),
        ];
        let f = analyse(&txns);
        assert_eq!(f.damage, Some(2));
        assert_eq!(f.flagged, vec![2, 3, 1]);
        assert_eq!(f.restore_time, Some(txns[2].time - chrono::Duration::seconds(1)));
        assert!(f.same_second.is_empty());
    }

    #[test]
    fn a_truncate_is_the_damage_even_with_larger_row_deletes() {
        let mut t = txn(50, 0, 0, 0);
        t.statements.push(Statement {
            kind: StatementKind::Truncate,
            text: "TRUNCATE billing".into(),
        });
        let txns = vec![txn(20, 25_000, 0, 0), t];
        let f = analyse(&txns);
        assert_eq!(f.damage, Some(1));
        assert_eq!(f.flagged, vec![1, 0]);
    }

    #[test]
    fn transactions_in_the_second_of_the_damage_or_the_one_before_are_named() {
        let txns = vec![
            txn(8, 0, 0, 1),
            txn(9, 0, 0, 1),
            txn(10, 500, 0, 0),
            txn(10, 0, 0, 1),
            txn(11, 0, 0, 1),
        ];
        let f = analyse(&txns);
        assert_eq!(f.damage, Some(2));
        assert_eq!(f.same_second, vec![1, 3]);
    }

    fn with(mut t: TableTxn, kind: StatementKind) -> TableTxn {
        t.statements.push(Statement {
            kind,
            text: format!("{kind:?} TABLE billing"),
        });
        t
    }

    #[test]
    fn a_drop_before_the_table_was_created_is_an_earlier_life_not_the_damage() {
        // A seed script: DROP TABLE IF EXISTS, CREATE, INSERT; then the accident.
        let txns = vec![
            with(txn(0, 0, 0, 0), StatementKind::Drop),
            with(txn(0, 0, 0, 0), StatementKind::Create),
            txn(0, 0, 0, 2000),
            txn(3, 500, 0, 0),
        ];
        let f = analyse(&txns);
        assert_eq!(f.damage, Some(3));
        assert!(f.flagged.contains(&0), "the drop is still flagged");
    }

    #[test]
    fn a_drop_then_a_re_created_empty_table_is_the_damage() {
        let txns = vec![
            txn(0, 0, 0, 10),
            with(txn(5, 0, 0, 0), StatementKind::Drop),
            with(txn(9, 0, 0, 0), StatementKind::Create),
            txn(12, 0, 0, 3),
        ];
        assert_eq!(analyse(&txns).damage, Some(1));
    }

    #[test]
    fn inserts_alone_are_no_damage() {
        let f = analyse(&[txn(0, 0, 0, 5), txn(1, 0, 0, 7)]);
        assert_eq!(f.damage, None);
        assert_eq!(f.restore_time, None);
        assert!(f.flagged.is_empty());
    }
}
