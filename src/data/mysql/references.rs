//! Setting back the references an `ON DELETE SET NULL` cleared: the accident on a parent
//! left the child's rows in place with NULL where they pointed at it. The restored copy holds
//! the values; production gets them back only where it still holds NULL (a row the application
//! re-pointed since keeps its new value) and only where the referenced row exists again, which
//! the server's own foreign key check decides (so its collation and its locks apply, not a
//! comparison of bytes here).

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Params;

use super::sql::{key_columns, key_equals, qualified, quote_ident, range_where, rows_of};
use super::{db_error, MysqlSession};
use crate::error::{Error, Result};
use crate::ports::{KeyRange, References, ReferencesOutcome, Row, TableRef, TableSchema, Value};
use crate::rowcodec::encode_values;

/// MySQL's error for a row whose foreign key finds no parent (ER_NO_REFERENCED_ROW_2).
const NO_REFERENCED_ROW: u16 = 1452;

/// `a IS NOT NULL AND b IS NOT NULL`: a reference with a value in every column.
fn all_set(refs: &References) -> String {
    refs.columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The key's columns, then the reference's.
fn key_and_refs(schema: &TableSchema, refs: &References) -> String {
    key_columns(schema)
        .into_iter()
        .chain(refs.columns.iter().map(|c| quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl MysqlSession {
    pub(super) async fn read_reference_chunk(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        refs: &References,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let range = KeyRange { after, upto: None };
        let (filter, params) = range_where(schema, range, Some(&all_set(refs)));
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY {} LIMIT {limit}",
            key_and_refs(schema, refs),
            qualified(table),
            key_columns(schema).join(", ")
        );
        let rows: Vec<mysql_async::Row> = self
            .conn
            .exec(sql, Params::Positional(params))
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows_of(rows))
    }

    /// The key and reference of every production row in `range`, locked (`FOR UPDATE`) when
    /// `lock`, by encoded key.
    async fn production_references(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        refs: &References,
        range: KeyRange<'_>,
        lock: bool,
    ) -> Result<HashMap<Vec<u8>, Vec<Value>>> {
        let (filter, params) = range_where(schema, range, None);
        let sql = format!(
            "SELECT {} FROM {}{filter}{}",
            key_and_refs(schema, refs),
            qualified(table),
            if lock { " FOR UPDATE" } else { "" }
        );
        let rows: Vec<mysql_async::Row> = self
            .conn
            .exec(sql, Params::Positional(params))
            .await
            .map_err(|e| self.db_err(e))?;
        let n = schema.key.len();
        Ok(rows_of(rows)
            .into_iter()
            .map(|mut row| {
                let values = row.split_off(n);
                (encode_values(row.iter()), values)
            })
            .collect())
    }

    pub(super) async fn restore_references_in_transaction(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        refs: &References,
        range: KeyRange<'_>,
        rows: &[Row],
    ) -> Result<ReferencesOutcome> {
        let n = schema.key.len();
        let now = self.production_references(table, schema, refs, range, true).await?;
        let mut outcome = ReferencesOutcome::default();
        let mut set = Vec::new();
        for row in rows {
            let (key, restored) = row.split_at(n);
            match now.get(&encode_values(key.iter())) {
                None => outcome.absent += 1,
                Some(held) if held.iter().all(|v| *v == Value::NULL) => set.push((key, restored)),
                Some(held) if encode_values(held.iter()) == encode_values(restored.iter()) => outcome.unchanged += 1,
                Some(_) => outcome.kept += 1,
            }
        }
        let assignments = refs
            .columns
            .iter()
            .map(|c| format!("{} = ?", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let still_null = refs
            .columns
            .iter()
            .map(|c| format!("{} IS NULL", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "UPDATE {} SET {assignments} WHERE {} AND {still_null}",
            qualified(table),
            key_equals(schema)
        );
        let side = self.side;
        let statement = self.conn.prep(&sql).await.map_err(|e| db_error(side, e))?;
        let mut written = Vec::new();
        for (key, restored) in set {
            let params: Vec<Value> = restored.iter().chain(key.iter()).cloned().collect();
            match self.conn.exec_drop(&statement, Params::Positional(params)).await {
                Ok(()) => {
                    let affected = self.conn.affected_rows();
                    self.check(table, "a reference set back changed", affected, 1)?;
                    outcome.restored += 1;
                    written.push((key, restored));
                }
                // The referenced row is not in production (the application deleted it since,
                // or it was never restored): the reference stays NULL. InnoDB rolls back the
                // statement only; the transaction goes on.
                Err(mysql_async::Error::Server(e)) if e.code == NO_REFERENCED_ROW => outcome.parent_gone += 1,
                Err(e) => return Err(db_error(side, e)),
            }
        }
        // Read-your-writes, before the commit: every reference set back holds its value.
        if !written.is_empty() {
            let after = self.production_references(table, schema, refs, range, false).await?;
            for (key, restored) in written {
                let held = after.get(&encode_values(key.iter()));
                if held.map(|h| encode_values(h.iter())) != Some(encode_values(restored.iter())) {
                    let key: Vec<&Value> = key.iter().collect();
                    return Err(Error::VerificationFailed(format!(
                        "in {table}, the reference ({}) of the row with key {} does not read back as its restored \
                         value; the chunk was rolled back, nothing of it is in production",
                        refs.columns.join(", "),
                        crate::rowcodec::display_key(&key)
                    )));
                }
            }
        }
        Ok(outcome)
    }

    pub(super) async fn count_dangling(&mut self, table: &TableRef, refs: &References) -> Result<u64> {
        let matches = refs
            .columns
            .iter()
            .zip(&refs.parent_columns)
            .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let set = refs
            .columns
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "SELECT COUNT(*) FROM {} c WHERE {set} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {matches})",
            qualified(table),
            qualified(&refs.parent)
        );
        let n: Option<u64> = self.conn.query_first(sql).await.map_err(|e| self.db_err(e))?;
        Ok(n.unwrap_or(0))
    }
}
