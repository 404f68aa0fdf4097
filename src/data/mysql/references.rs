//! Foreign keys: which ones reference a table, and setting back the references an
//! `ON DELETE SET NULL` cleared. The accident on a parent left the child's rows in place with
//! NULL where they pointed at it. The restored copy holds the values; production gets them back
//! only where it still holds NULL (a row the application re-pointed since keeps its new value)
//! and only where the referenced row exists again, which the server's own foreign key check
//! decides (so its collation and its locks apply, not a comparison of bytes here).

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Params;

use super::sql::{key_columns, key_equals, qualified, quote_ident, range_where, rows_of};
use super::{db_error, MysqlSession};
use crate::error::{Error, Result};
use crate::ports::{ForeignKey, KeyRange, References, ReferencesOutcome, Row, TableRef, TableSchema, Value};
use crate::rowcodec::encode_values;

/// MySQL's error for a row whose foreign key finds no parent (ER_NO_REFERENCED_ROW_2).
const NO_REFERENCED_ROW: u16 = 1452;

/// Each of `columns`, quoted, put in `template` at `{}`, joined by `sep`: `a IS NULL AND b IS NULL`.
fn each(columns: &[String], template: &str, sep: &str) -> String {
    columns
        .iter()
        .map(|c| template.replace("{}", &quote_ident(c)))
        .collect::<Vec<_>>()
        .join(sep)
}

/// `a IS NOT NULL AND b IS NOT NULL`: a reference with a value in every column.
fn all_set(refs: &References) -> String {
    each(&refs.columns, "{} IS NOT NULL", " AND ")
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
    /// The foreign keys of other tables (or of `table` itself) that reference `table`, with
    /// their columns and the referenced ones in order (`Session::referencing`).
    pub(super) async fn foreign_keys_referencing(&mut self, table: &TableRef) -> Result<Vec<ForeignKey>> {
        // UNIQUE_CONSTRAINT_SCHEMA is the referenced table's database (MySQL 8 and MariaDB).
        type Found = (String, String, String, String, String, String);
        let rows: Vec<Found> = self
            .conn
            .exec(
                "SELECT rc.CONSTRAINT_SCHEMA, rc.TABLE_NAME, rc.CONSTRAINT_NAME, rc.DELETE_RULE, \
                 GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR '\\0'), \
                 GROUP_CONCAT(k.REFERENCED_COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR '\\0') \
                 FROM information_schema.REFERENTIAL_CONSTRAINTS rc \
                 JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA \
                 AND k.TABLE_NAME = rc.TABLE_NAME AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME \
                 WHERE rc.UNIQUE_CONSTRAINT_SCHEMA = ? AND rc.REFERENCED_TABLE_NAME = ? \
                 GROUP BY rc.CONSTRAINT_SCHEMA, rc.TABLE_NAME, rc.CONSTRAINT_NAME, rc.DELETE_RULE \
                 ORDER BY rc.CONSTRAINT_SCHEMA, rc.TABLE_NAME, rc.CONSTRAINT_NAME",
                (&table.database, &table.table),
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let split = |s: String| s.split('\0').map(str::to_string).collect();
        Ok(rows
            .into_iter()
            .map(
                |(database, child, constraint, on_delete, columns, referenced)| ForeignKey {
                    child: TableRef { database, table: child },
                    constraint,
                    columns: split(columns),
                    referenced: split(referenced),
                    on_delete,
                },
            )
            .collect())
    }

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

    /// One chunk of references set back, in a transaction of its own (`Session::restore_references`).
    pub(super) async fn restore_references_chunk(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        refs: &References,
        range: KeyRange<'_>,
        rows: &[Row],
    ) -> Result<ReferencesOutcome> {
        self.begin().await?;
        let done = self
            .restore_references_in_transaction(table, schema, refs, range, rows)
            .await;
        if done.is_ok() {
            crate::crash_point!("references-chunk-before-commit");
        }
        self.end(done, true).await
    }

    async fn restore_references_in_transaction(
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
        let assignments = each(&refs.columns, "{} = ?", ", ");
        let still_null = each(&refs.columns, "{} IS NULL", " AND ");
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
        let set = each(&refs.columns, "c.{} IS NOT NULL", " AND ");
        let sql = format!(
            "SELECT COUNT(*) FROM {} c WHERE {set} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {matches})",
            qualified(table),
            qualified(&refs.parent)
        );
        let n: Option<u64> = self.conn.query_first(sql).await.map_err(|e| self.db_err(e))?;
        Ok(n.unwrap_or(0))
    }
}
