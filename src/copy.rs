//! The copy: walks the restored table in primary-key order, one chunk at a time, and merges each
//! chunk into production in its own transaction. After each commit the caller's checkpoint
//! records the chunk's last key, so a resumed copy starts after it. Re-running a chunk is
//! harmless in `missing-rows` mode: rows inserted the first time are found present the second.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::ports::{Session, TableRef, TableSchema, Value};
use crate::progress::Progress;
use crate::rowcodec::StoredValue;
use crate::state::CopyProgress;

pub struct CopyJob<'a> {
    /// The table on the restored instance.
    pub source: &'a TableRef,
    /// The table written in production: the real one, or a drill's side table.
    pub target: &'a TableRef,
    pub schema: &'a TableSchema,
    pub chunk_size: usize,
    /// `--where`, applied to the restored rows.
    pub filter: Option<&'a str>,
    /// `--dump-only`: find the missing rows and write them to the dump file, never to production.
    pub dry: bool,
}

/// `--dump-file` / `--dump-only`: the SQL of the rows the copy inserts (or would insert), one
/// multi-row INSERT per chunk, written after the chunk commits, synced, readable by the owner only.
/// Loading it with the `mysql` client gives the same rows, bit for bit (literals from
/// `rowcodec::sql_literal`).
pub struct DumpFile {
    file: std::fs::File,
    path: std::path::PathBuf,
    insert: String,
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

    fn write(&mut self, rows: &[crate::ports::Row], which: &[usize]) -> Result<()> {
        use std::io::Write;
        if which.is_empty() {
            return Ok(());
        }
        let mut text = self.insert.clone();
        for (n, &i) in which.iter().enumerate() {
            let values: Vec<String> = rows[i]
                .iter()
                .zip(&self.kinds)
                .map(|(v, k)| crate::rowcodec::sql_literal(v, *k))
                .collect();
            text.push_str(if n == 0 { "\n(" } else { ",\n(" });
            text.push_str(&values.join(", "));
            text.push(')');
        }
        text.push_str(";\n");
        let err = |e: std::io::Error| Error::State {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        };
        self.file.write_all(text.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.rows += which.len() as u64;
        Ok(())
    }
}

/// Decodes the checkpointed key.
pub fn decode_key(stored: &[StoredValue]) -> Result<Vec<Value>> {
    stored
        .iter()
        .map(Value::try_from)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::State {
            path: "(copy checkpoint)".into(),
            detail: format!("bad key: {e}"),
        })
}

/// Copies the restored rows missing in production, continuing from `progress`.
#[allow(clippy::too_many_arguments)]
pub async fn copy_missing_rows(
    restored: &mut dyn Session,
    production: &mut dyn Session,
    job: &CopyJob<'_>,
    mut progress: CopyProgress,
    checkpoint: &mut (dyn FnMut(&CopyProgress) -> Result<()> + Send),
    mut dump: Option<&mut DumpFile>,
    ui: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<CopyProgress> {
    let after = progress.last_key.as_deref().map(decode_key).transpose()?;
    if progress.done {
        return Ok(progress);
    }
    // Reading the next chunk from the restored server overlaps writing this one into
    // production: the two sessions are independent, and the checkpoint still follows each
    // commit in order.
    let mut rows = restored
        .read_chunk(job.source, job.schema, after.as_deref(), job.filter, job.chunk_size)
        .await?;
    while !progress.done {
        if cancel.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        // A short chunk is the last one: keyset reads return fewer rows only at the end.
        let last_chunk = rows.len() < job.chunk_size;
        let key: Option<Vec<Value>> = rows
            .last()
            .map(|last| job.schema.key_of(last).into_iter().cloned().collect());
        let write = async {
            match rows.is_empty() {
                true => Ok(None),
                false => production
                    .insert_missing(job.target, job.schema, &rows, job.dry)
                    .await
                    .map(Some),
            }
        };
        let read = async {
            match (&key, last_chunk) {
                (Some(k), false) => restored
                    .read_chunk(job.source, job.schema, Some(k), job.filter, job.chunk_size)
                    .await
                    .map(Some),
                _ => Ok(None),
            }
        };
        let (written, next) = tokio::join!(write, read);
        // What was committed is checkpointed before any read error is raised.
        if let Some(outcome) = written? {
            if let Some(d) = dump.as_deref_mut() {
                d.write(&rows, &outcome.missing)?;
            }
            crate::crash_point!("copy-chunk-after-commit");
            progress.last_key = key.as_ref().map(|k| k.iter().map(StoredValue::from).collect());
            progress.chunks += 1;
            progress.rows_read += rows.len() as u64;
            progress.inserted += outcome.inserted;
            progress.already_present += outcome.already_present;
            progress.present_differing += outcome.present_differing;
        }
        progress.done = last_chunk;
        checkpoint(&progress)?;
        crate::crash_point!("copy-chunk-after-checkpoint");
        ui.copy_progress(progress.rows_read, progress.inserted);
        rows = next?.unwrap_or_default();
    }
    Ok(progress)
}
