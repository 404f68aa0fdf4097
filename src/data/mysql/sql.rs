//! The SQL the adapter writes: quoted identifiers, key-range predicates, the canonical row
//! form the checksums hash.

use super::*;

/// Quotes an identifier with backticks, doubling any backtick inside it.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub fn qualified(t: &TableRef) -> String {
    format!("{}.{}", quote_ident(&t.database), quote_ident(&t.table))
}

pub(super) fn column_list(schema: &TableSchema) -> String {
    schema
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn key_columns(schema: &TableSchema) -> Vec<String> {
    schema
        .key
        .iter()
        .map(|&i| quote_ident(&schema.columns[i].name))
        .collect()
}

/// The predicate on a table that keeps the rows whose key `other` (a table of the same
/// server with the same key columns) also holds: a semi-join the server runs by the key.
pub fn keys_in(schema: &TableSchema, other: &TableRef) -> String {
    let cols = key_columns(schema).join(", ");
    format!("({cols}) IN (SELECT {cols} FROM {})", qualified(other))
}

#[derive(Clone, Copy)]
pub(super) enum Bound {
    After,
    AtMost,
}

/// A lexicographic comparison of the key with a bound, as a predicate and the positions of
/// the bound's values to bind in order. Written out as `a > ? OR (a = ? AND b > ?)` rather
/// than a row comparison, which not every server turns into a range scan.
pub(super) fn key_predicate(cols: &[String], bound: Bound) -> (String, Vec<usize>) {
    let (strict, inclusive) = match bound {
        Bound::After => (">", None),
        Bound::AtMost => ("<", Some("<=")),
    };
    let mut terms = Vec::new();
    let mut binds = Vec::new();
    for i in 0..cols.len() {
        let last = i + 1 == cols.len();
        let op = if last { inclusive.unwrap_or(strict) } else { strict };
        let mut parts: Vec<String> = (0..i).map(|j| format!("{} = ?", cols[j])).collect();
        parts.push(format!("{} {op} ?", cols[i]));
        binds.extend(0..=i);
        terms.push(if parts.len() == 1 {
            parts.remove(0)
        } else {
            format!("({})", parts.join(" AND "))
        });
    }
    (format!("({})", terms.join(" OR ")), binds)
}

pub(super) fn bind(values: &[Value], positions: &[usize]) -> Vec<Value> {
    positions.iter().map(|&i| values[i].clone()).collect()
}

/// ` WHERE ...` for a key range and an optional (checked) `--where` predicate, with its
/// parameters; empty when nothing restricts the rows.
pub(super) fn range_where(schema: &TableSchema, range: KeyRange<'_>, filter: Option<&str>) -> (String, Vec<Value>) {
    let cols = key_columns(schema);
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    for (bound, key) in [(Bound::After, range.after), (Bound::AtMost, range.upto)] {
        if let Some(key) = key {
            let (pred, binds) = key_predicate(&cols, bound);
            conditions.push(pred);
            params.extend(bind(key, &binds));
        }
    }
    if let Some(f) = filter {
        // Checked by plan::check_predicate: one predicate, balanced, no comment.
        conditions.push(format!("({f})"));
    }
    if conditions.is_empty() {
        (String::new(), params)
    } else {
        (format!(" WHERE {}", conditions.join(" AND ")), params)
    }
}

pub(super) fn range_query(
    table: &TableRef,
    schema: &TableSchema,
    range: KeyRange<'_>,
    filter: Option<&str>,
) -> (String, Vec<Value>) {
    let (filter, params) = range_where(schema, range, filter);
    let sql = format!(
        "SELECT {} FROM {}{filter} ORDER BY {}",
        column_list(schema),
        qualified(table),
        key_columns(schema).join(", ")
    );
    (sql, params)
}

/// One row's canonical form in SQL, the same on any server for the same values: each column as
/// its length and bytes (so no separator can be ambiguous), NULL as `-`. `CAST(.. AS BINARY)`
/// gives the bytes of strings in their own character set and the text of numbers and times
/// (in the session's UTC).
pub(super) fn canonical_row_sql(schema: &TableSchema) -> String {
    let parts: Vec<String> = schema
        .columns
        .iter()
        .map(|c| {
            let b = format!("CAST({} AS BINARY)", quote_ident(&c.name));
            format!("COALESCE(CONCAT(LENGTH({b}), ':', {b}), '-')")
        })
        .collect();
    format!("CONCAT({})", parts.join(", "))
}

/// A key as `a = ? AND b = ?` with its values.
pub(super) fn key_equals(schema: &TableSchema) -> String {
    key_columns(schema)
        .iter()
        .map(|c| format!("{c} = ?"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

pub(super) fn rows_of(rows: Vec<mysql_async::Row>) -> Vec<Row> {
    rows.into_iter().map(|r| r.unwrap()).collect()
}
