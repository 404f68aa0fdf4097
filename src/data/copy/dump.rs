//! `--dump-file` and `--dump-only`: the SQL of what the copy applied (or would apply).

use crate::error::{Error, Result};
use crate::ports::Merge;
use crate::ports::{ChunkOutcome, TableRef, TableSchema, Value};

/// `--dump-file` / `--dump-only`: the SQL the copy applies (or would apply), per chunk in the
/// order it runs: a DELETE per row removed (replace-all), an UPDATE per row overwritten, one
/// multi-row INSERT; written after the chunk commits, synced, readable by the owner only.
/// Loading it with the `mysql` client gives the same rows, bit for bit (literals from
/// `rowcodec::sql_literal`).
pub struct DumpFile {
    file: std::fs::File,
    path: std::path::PathBuf,
    insert: String,
    /// `UPDATE ... SET` and `DELETE FROM ...`, before their columns and WHERE.
    update: String,
    delete: String,
    schema: TableSchema,
    kinds: Vec<crate::rowcodec::LiteralKind>,
    pub rows: u64,
}

impl DumpFile {
    /// Opens `path` for appending (a resumed run), or creates it with a header.
    pub fn open(path: &std::path::Path, table: &TableRef, schema: &TableSchema, header: &str) -> Result<DumpFile> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |e: std::io::Error| Error::State {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        let existed = path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        if !existed {
            writeln!(file, "-- {header}").map_err(err)?;
            writeln!(file, "SET time_zone = '+00:00';\nSET NAMES utf8mb4;").map_err(err)?;
        }
        let q = crate::mysql::quote_ident;
        let cols: Vec<String> = schema.columns.iter().map(|c| q(&c.name)).collect();
        Ok(DumpFile {
            file,
            path: path.to_path_buf(),
            insert: format!(
                "INSERT INTO {}.{} ({}) VALUES",
                q(&table.database),
                q(&table.table),
                cols.join(", ")
            ),
            update: format!("UPDATE {}.{} SET ", q(&table.database), q(&table.table)),
            delete: format!("DELETE FROM {}.{} WHERE ", q(&table.database), q(&table.table)),
            schema: schema.clone(),
            kinds: schema
                .columns
                .iter()
                .map(|c| crate::rowcodec::LiteralKind::of(&c.column_type))
                .collect(),
            rows: 0,
        })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn literal(&self, column: usize, v: &Value) -> String {
        crate::rowcodec::sql_literal(v, self.kinds[column])
    }

    /// `a = 1 AND b = 'x'` for a row's key.
    fn key_condition(&self, key: &[&Value]) -> String {
        let q = crate::mysql::quote_ident;
        self.schema
            .key
            .iter()
            .zip(key)
            .map(|(&c, v)| format!("{} = {}", q(&self.schema.columns[c].name), self.literal(c, v)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The statements of one chunk, in the order the merge ran them.
    pub(super) fn write(&mut self, rows: &[crate::ports::Row], outcome: &ChunkOutcome, merge: Merge) -> Result<()> {
        use std::io::Write;
        let q = crate::mysql::quote_ident;
        let mut text = String::new();
        for key in &outcome.extra {
            let key: Vec<&Value> = key.iter().collect();
            text.push_str(&format!("{}{};\n", self.delete, self.key_condition(&key)));
        }
        if merge != Merge::MissingRows {
            for &i in &outcome.differing {
                let set: Vec<String> = (0..self.schema.columns.len())
                    .filter(|c| !self.schema.key.contains(c))
                    .map(|c| format!("{} = {}", q(&self.schema.columns[c].name), self.literal(c, &rows[i][c])))
                    .collect();
                let key = self.schema.key_of(&rows[i]);
                text.push_str(&format!(
                    "{}{} WHERE {};\n",
                    self.update,
                    set.join(", "),
                    self.key_condition(&key)
                ));
            }
        }
        if !outcome.missing.is_empty() {
            text.push_str(&self.insert);
            for (n, &i) in outcome.missing.iter().enumerate() {
                let values: Vec<String> = rows[i].iter().enumerate().map(|(c, v)| self.literal(c, v)).collect();
                text.push_str(if n == 0 { "\n(" } else { ",\n(" });
                text.push_str(&values.join(", "));
                text.push(')');
            }
            text.push_str(";\n");
        }
        if text.is_empty() {
            return Ok(());
        }
        let err = |e: std::io::Error| Error::State {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        };
        self.file.write_all(text.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.rows += outcome.missing.len() as u64;
        Ok(())
    }
}
