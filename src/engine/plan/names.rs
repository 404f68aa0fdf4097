//! The names and tags of what a run creates (the copy, its group, side and as-of tables), the
//! run's id, and how the tables an operator names are read: each within the limits of RDS,
//! MySQL and AWS tags.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::ports::TableRef;

/// RDS instance identifiers: 1 to 63 letters, digits or hyphens, starting with a letter.
const RDS_ID_MAX: usize = 63;

/// The identifier of the writer instance the tool adds to a restored Aurora cluster `target`,
/// within RDS's 63 characters.
pub fn writer_name(target: &str) -> String {
    let keep: String = target.chars().take(RDS_ID_MAX - 7).collect();
    format!("{}-writer", keep.trim_end_matches('-'))
}

/// A table named by a further `--table`: `name` in `database`, or `db.name` in another
/// database (a name that holds a dot is given in backticks: `` `odd.name` ``).
pub fn table_ref(database: &str, given: &str) -> TableRef {
    let given = given.trim();
    if let Some(quoted) = given.strip_prefix('`').and_then(|g| g.strip_suffix('`')) {
        return TableRef {
            database: database.into(),
            table: quoted.replace("``", "`"),
        };
    }
    match given.split_once('.') {
        Some((db, table)) if !db.is_empty() && !table.is_empty() => TableRef {
            database: db.into(),
            table: table.into(),
        },
        _ => TableRef {
            database: database.into(),
            table: given.into(),
        },
    }
}

/// A tag value AWS accepts: letters, digits, spaces and `_ . : / = + - @`, at most 256
/// characters; anything else becomes `_` (table names may hold backticks, quotes, `;`...).
pub fn tag_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

/// `<table>__drill_<yyyymmddhhmmss>`, within MySQL's 64 characters.
pub fn side_table_name(table: &str, now: DateTime<Utc>) -> String {
    suffixed(table, "drill", now)
}

/// The database of the tool's own in production where a binlog rewind builds its as-of table:
/// the tool may delete rows there (putting values back needs it) without any privilege to
/// delete rows of a production table.
pub const SCRATCH_DATABASE: &str = "rds_table_restore";

/// `<table>__asof_<run id>` (`--source binlog`), within MySQL's 64 characters: the run's id,
/// so that no other run's rewind (which drops its as-of table before building it) can take it.
pub fn asof_table_name(table: &str, run_id: &str) -> String {
    let suffix = format!("__asof_{}", run_id.replace('-', "_"));
    let keep: String = table.chars().take(64 - suffix.len()).collect();
    format!("{keep}{suffix}")
}

/// `<table>__restored_<yyyymmddhhmmss>` (`--mode side-table`), within MySQL's 64 characters.
pub fn restored_table_name(table: &str, now: DateTime<Utc>) -> String {
    suffixed(table, "restored", now)
}

fn suffixed(table: &str, what: &str, now: DateTime<Utc>) -> String {
    let suffix = format!("__{what}_{}", now.format("%Y%m%d%H%M%S"));
    let keep: String = table.chars().take(64 - suffix.len()).collect();
    format!("{keep}{suffix}")
}

/// A new run id: UTC start time and 4 random hex digits, lowercase so it fits in RDS names.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    format!("{}-{:04x}", now.format("%Y%m%dt%H%M%S"), rand::random::<u16>())
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `restore-<source>-<table>-<yyyymmdd>-<hhmmss>-<4 hex of the run id>`, within RDS's 63
/// characters: letters, digits and single hyphens, starting with a letter.
pub fn target_name(source: &str, table: &str, time: DateTime<Utc>, run_id: &str) -> String {
    named_target("restore", source, table, time, run_id)
}

/// The same name with `drill` in front: a rehearsal's instance must not look like an incident.
pub fn drill_target_name(source: &str, table: &str, time: DateTime<Utc>, run_id: &str) -> String {
    named_target("drill", source, table, time, run_id)
}

fn named_target(kind: &str, source: &str, table: &str, time: DateTime<Utc>, run_id: &str) -> String {
    let suffix = run_id.rsplit('-').next().unwrap_or("0000");
    let fixed = format!("{}-{}", time.format("%Y%m%d-%H%M%S"), suffix);
    let budget = RDS_ID_MAX - kind.len() - 3 - fixed.len();
    let (src, tbl) = (sanitize(source), sanitize(table));
    let tbl_len = tbl.len().min(budget.saturating_sub(src.len().min(budget / 2)));
    let src_len = src.len().min(budget - tbl_len);
    let mut parts = vec![kind.to_string()];
    for p in [&src[..src_len], &tbl[..tbl_len]] {
        let p = p.trim_matches('-');
        if !p.is_empty() {
            parts.push(p.to_string());
        }
    }
    parts.push(fixed);
    parts.join("-")
}

/// Lowercase ASCII letters and digits, everything else one hyphen: how names appear in the
/// identifiers the tool gives AWS resources.
pub fn sanitize(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}
