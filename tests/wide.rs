//! Wide rows: chunks bounded by bytes as well as rows, so memory stays flat whatever the row
//! width. 40 rows of 2 MB each (80 MB), all deleted in production, restored with the default
//! chunk size (5,000 rows, which would be one 80 MB chunk, held twice over while it is read,
//! encoded and sent); peak memory is read from outside, in /proc.

mod common;

use std::time::Duration;

use common::{command, describe, unique_table, Sandbox};
use mysql_async::prelude::Queryable;

const ROWS: u64 = 40;
/// 32 hex characters repeated: 2 MiB per row.
const REPEAT: u64 = 65_536;

async fn fingerprint(pool: &mysql_async::Pool, table: &str) -> (u64, String) {
    let mut c = pool.get_conn().await.unwrap();
    let row: Option<(u64, String)> = c
        .query_first(format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CRC32(CONCAT(id, ':', doc))), 0) AS CHAR) FROM shop.`{table}`"
        ))
        .await
        .unwrap();
    row.unwrap()
}

/// The peak resident set of a process (VmHWM), read until it exits.
async fn peak_rss_kb(pid: u32) -> u64 {
    let mut peak = 0;
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/status")) {
            Ok(status) => {
                if let Some(kb) = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    peak = peak.max(kb);
                }
            }
            Err(_) => return peak,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn wide_rows_restore_exactly_with_memory_bounded_by_bytes_not_rows() {
    let sb = Sandbox::connect().await;
    let table = unique_table("wide");
    let create = format!(
        "CREATE TABLE shop.`{table}` (id BIGINT NOT NULL PRIMARY KEY, doc LONGBLOB NOT NULL) ENGINE=InnoDB; \
         INSERT INTO shop.`{table}` SELECT seq, REPEAT(MD5(seq), {REPEAT}) FROM seq_1_to_{ROWS}"
    );
    Sandbox::exec(&sb.production, &create).await;
    Sandbox::exec(&sb.restored, &create).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM shop.`{table}`")).await;
    let state = tempfile::tempdir().unwrap();
    let child = command(state.path())
        .args([
            "restore",
            "--instance",
            "prod-db",
            "--database",
            "shop",
            "--table",
            &table,
            "--time",
            &time,
        ])
        .args(["--yes", "--parallel", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let peak = tokio::spawn(peak_rss_kb(child.id().unwrap()));
    let out = child.wait_with_output().await.unwrap();
    let peak_mb = peak.await.unwrap() / 1024;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        fingerprint(&sb.production, &table).await,
        fingerprint(&sb.restored, &table).await,
        "production holds exactly the restored rows"
    );
    // 8 MiB chunks, held a few times (read ahead, encoded, the one being written), on top
    // of what the process needs anyway; an 80 MB chunk, held a few times, would be far past this.
    assert!(
        peak_mb < 64 + 32 * 2,
        "peak resident memory {peak_mb} MB for 2 MB rows: past 64 MiB plus 32 times the widest row"
    );
    eprintln!("wide rows: peak resident memory {peak_mb} MB");
    sb.drop_table(&table).await;
}
