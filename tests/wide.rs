//! Wide rows: chunks bounded by bytes as well as rows, so memory stays flat whatever the row
//! width. 40 rows of 2 MB each (80 MB), all deleted in production, restored with the default
//! chunk size (1,000 rows, which would be one 80 MB chunk, held twice over while it is read,
//! encoded and sent); peak memory is read from outside, in /proc. A single 64 MiB row; a row
//! past production's `max_allowed_packet`, refused before any write, then restored by `resume`
//! once the limit is raised as the message says.
//!
//! The tests change the servers' `max_allowed_packet` (global, for new sessions), so they run
//! one at a time, and each puts the sandbox's value back.

mod common;

use std::time::Duration;

use common::{command, describe, restore_args, unique_table, Sandbox};
use mysql_async::prelude::Queryable;

/// One test at a time: they change the servers' global packet limit.
static SERVERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// MariaDB 10.11's default, which the sandbox keeps.
const SANDBOX_PACKET: u64 = 16 << 20;

/// Sets `max_allowed_packet` on both servers, for the sessions opened after it.
async fn set_packet_limits(sb: &Sandbox, production: u64, restored: u64) {
    Sandbox::exec(&sb.production, &format!("SET GLOBAL max_allowed_packet = {production}")).await;
    Sandbox::exec(&sb.restored, &format!("SET GLOBAL max_allowed_packet = {restored}")).await;
}

/// Puts the sandbox's packet limit back when a test ends, passed or not.
struct PacketLimitsBack;

impl Drop for PacketLimitsBack {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be unwinding: a runtime of its own, on
        // a thread of its own.
        std::thread::spawn(|| {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let sb = Sandbox::connect().await;
                set_packet_limits(&sb, SANDBOX_PACKET, SANDBOX_PACKET).await;
            })
        })
        .join()
        .unwrap();
    }
}

const ROWS: u64 = 40;
/// 32 hex characters repeated: 2 MiB per row.
const REPEAT: u64 = 65_536;

async fn fingerprint(pool: &mysql_async::Pool, table: &str) -> (u64, u64) {
    fingerprint_where(pool, table, "TRUE").await
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
    let _one = SERVERS.lock().await;
    let sb = Sandbox::connect().await;
    let table = unique_table("wide");
    let time = seed_documents(&sb, &table, ROWS, REPEAT, None).await;
    let state = tempfile::tempdir().unwrap();
    let mut cmd = command(state.path());
    cmd.args(restore_args(&table, &time)).args(["--yes", "--parallel", "1"]);
    let (out, peak_mb) = run_measured(cmd).await;
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

/// Creates `shop.<table>` (id, doc LONGBLOB) on both servers with `rows` rows of `repeat` times
/// 32 bytes each, returns a restore time after it, then runs `accident` on production (every
/// row deleted when it is `None`).
async fn seed_documents(sb: &Sandbox, table: &str, rows: u64, repeat: u64, accident: Option<&str>) -> String {
    let create = format!(
        "CREATE TABLE shop.`{table}` (id BIGINT NOT NULL PRIMARY KEY, doc LONGBLOB NOT NULL) ENGINE=InnoDB; \
         INSERT INTO shop.`{table}` SELECT seq, REPEAT(MD5(seq), {repeat}) FROM seq_1_to_{rows}"
    );
    Sandbox::exec(&sb.production, &create).await;
    Sandbox::exec(&sb.restored, &create).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let delete_all = format!("DELETE FROM shop.`{table}`");
    Sandbox::exec(&sb.production, accident.unwrap_or(&delete_all)).await;
    time
}

/// Runs `cmd` (the binary), returning its output and its peak resident memory in MB.
async fn run_measured(mut cmd: tokio::process::Command) -> (std::process::Output, u64) {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let peak = tokio::spawn(peak_rss_kb(child.id().unwrap()));
    let out = child.wait_with_output().await.unwrap();
    (out, peak.await.unwrap() / 1024)
}

#[tokio::test]
async fn a_single_64_mib_row_restores_exactly() {
    let _one = SERVERS.lock().await;
    let _back = PacketLimitsBack;
    let sb = Sandbox::connect().await;
    set_packet_limits(&sb, 256 << 20, 256 << 20).await;
    // Sessions opened after the change, for the seed's 64 MiB REPEAT().
    let sb = Sandbox::connect().await;
    let table = unique_table("huge");
    // 2 Mi times 32 bytes: 64 MiB, one row, between two small ones (restored only).
    let time = seed_documents(&sb, &table, 1, 2 << 20, None).await;
    for id in [0, 2] {
        Sandbox::exec(
            &sb.restored,
            &format!("INSERT INTO shop.`{table}` VALUES ({id}, 'small')"),
        )
        .await;
    }
    let state = tempfile::tempdir().unwrap();
    let mut cmd = command(state.path());
    cmd.args(restore_args(&table, &time)).arg("--yes");
    let (out, peak_mb) = run_measured(cmd).await;
    assert!(out.status.success(), "{}", describe(&out));
    let restored = fingerprint(&sb.restored, &table).await;
    assert_eq!(restored.0, 3, "the seed made three restored rows");
    assert_eq!(
        fingerprint(&sb.production, &table).await,
        restored,
        "production holds exactly the restored rows, the 64 MiB one among them"
    );
    // The row is held a few times (read, encoded, sent, and the one read ahead).
    assert!(
        peak_mb < 64 + 8 * 64,
        "peak resident memory {peak_mb} MB for a 64 MiB row: past 64 MiB plus 8 times the row"
    );
    eprintln!("a 64 MiB row: peak resident memory {peak_mb} MB");
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn a_row_past_production_max_allowed_packet_is_refused_before_any_write_then_resumed() {
    let _one = SERVERS.lock().await;
    let _back = PacketLimitsBack;
    let sb = Sandbox::connect().await;
    let table = unique_table("toolarge");
    // Four rows of 6 MiB (192 Ki times 32 bytes), made under the sandbox's 16 MiB limit.
    let time = seed_documents(&sb, &table, 4, 192 << 10, None).await;
    set_packet_limits(&sb, 4 << 20, SANDBOX_PACKET).await;
    let state = tempfile::tempdir().unwrap();
    let mut cmd = command(state.path());
    cmd.args(restore_args(&table, &time)).arg("--yes");
    let (out, _) = run_measured(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "the restored copy is kept for resume: {}",
        describe(&out)
    );
    for part in [
        format!("`shop.{table}`"),
        "6.0 MiB".to_string(),
        "max_allowed_packet on production (4.0 MiB)".to_string(),
        "parameter group".to_string(),
        "nothing was written".to_string(),
        "resume".to_string(),
    ] {
        assert!(stderr.contains(&part), "the refusal names {part}: {stderr}");
    }
    eprintln!(
        "refusal: {}",
        stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default()
    );
    let reconnects = stderr.matches("reconnecting in").count();
    assert_eq!(reconnects, 0, "a row too large is not a lost connection: {stderr}");
    assert_eq!(
        fingerprint(&sb.production, &table).await.0,
        0,
        "nothing was written to production"
    );
    // The fix the message gives: raise the limit, then resume.
    set_packet_limits(&sb, SANDBOX_PACKET, SANDBOX_PACKET).await;
    let run = common::state_files(state.path())
        .first()
        .cloned()
        .expect("a state file kept for resume");
    let run_id = common::run_id_of(&run);
    let mut cmd = command(state.path());
    cmd.args(["resume", &run_id, "--yes"]);
    let (out, _) = run_measured(cmd).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        fingerprint(&sb.production, &table).await,
        fingerprint(&sb.restored, &table).await,
        "after resume production holds exactly the restored rows"
    );
    assert_eq!(
        sb.tool_resources(&table).await,
        (vec![], vec![]),
        "resume deleted the restored copy and its group"
    );
    sb.drop_table(&table).await;
}

/// `(rows, sum of CRC32(id:doc))` of the rows of `shop.<table>` matching `predicate`: additive,
/// so the expected content of a merge is the sum of its parts on each server.
async fn fingerprint_where(pool: &mysql_async::Pool, table: &str, predicate: &str) -> (u64, u64) {
    let mut c = pool.get_conn().await.unwrap();
    let row: Option<(u64, String)> = c
        .query_first(format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CRC32(CONCAT(id, ':', doc))), 0) AS CHAR) \
             FROM shop.`{table}` WHERE {predicate}"
        ))
        .await
        .unwrap();
    let (n, sum) = row.unwrap();
    (n, sum.parse().unwrap())
}

fn plus(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0 + b.0, a.1 + b.1)
}

/// 24 rows of 4 MiB; in production, after the restore time: 1-8 deleted, 9-16 rewritten,
/// 25-26 written since. Each mode (missing-rows with 2 writers) ends with exactly what it
/// promises, and peak memory stays within 64 MiB plus 32 times the widest row.
#[tokio::test]
async fn wide_rows_end_exact_in_every_mode_and_with_two_writers() {
    let _one = SERVERS.lock().await;
    let sb = Sandbox::connect().await;
    let (user, password) = (
        common::env_var("SANDBOX_WRITER_USER"),
        common::env_var("SANDBOX_WRITER_PASSWORD"),
    );
    for (mode, parallel) in [
        ("missing-rows", "2"),
        ("overwrite", "1"),
        ("replace-all", "1"),
        ("side-table", "1"),
    ] {
        let table = unique_table("widemode");
        // 128 Ki times 32 bytes: 4 MiB a row.
        let accident = format!(
            "DELETE FROM shop.`{table}` WHERE id <= 8; \
             UPDATE shop.`{table}` SET doc = REPEAT(SHA1(id), 100000) WHERE id BETWEEN 9 AND 16; \
             INSERT INTO shop.`{table}` SELECT seq, REPEAT(MD5(-seq), 131072) FROM seq_25_to_26"
        );
        let time = seed_documents(&sb, &table, 24, 128 << 10, Some(&accident)).await;
        let (restored_all, restored_deleted) = (
            fingerprint(&sb.restored, &table).await,
            fingerprint_where(&sb.restored, &table, "id <= 8").await,
        );
        let production_before = fingerprint(&sb.production, &table).await;
        let since = fingerprint_where(&sb.production, &table, "id > 24").await;
        let state = tempfile::tempdir().unwrap();
        let mut cmd = command(state.path());
        cmd.args(restore_args(&table, &time))
            .args(["--yes", "--mode", mode, "--parallel", parallel]);
        if mode == "replace-all" {
            cmd.args(["--confirm-table", table.as_str()]);
        }
        if matches!(mode, "overwrite" | "replace-all") {
            cmd.env("RDS_TABLE_RESTORE_DB_USER", &user)
                .env("RDS_TABLE_RESTORE_DB_PASSWORD", &password);
        }
        let (out, peak_mb) = run_measured(cmd).await;
        assert!(out.status.success(), "{mode}: {}", describe(&out));
        let now = fingerprint(&sb.production, &table).await;
        match mode {
            // The deleted rows back; production's rewritten and new rows kept.
            "missing-rows" => assert_eq!(now, plus(production_before, restored_deleted), "{mode}"),
            // Every restored row as restored; the rows written since kept.
            "overwrite" => assert_eq!(now, plus(restored_all, since), "{mode}"),
            "replace-all" => assert_eq!(now, restored_all, "{mode}"),
            _ => {
                assert_eq!(now, production_before, "{mode}: the real table is not touched");
                let mut c = sb.production.get_conn().await.unwrap();
                let side: Vec<String> = c
                    .query(format!("SHOW TABLES FROM shop LIKE '{table}\\_\\_restored\\_%'"))
                    .await
                    .unwrap();
                assert_eq!(side.len(), 1, "{side:?}");
                assert_eq!(fingerprint(&sb.production, &side[0]).await, restored_all, "{mode}");
                Sandbox::exec(&sb.production, &format!("DROP TABLE shop.`{}`", side[0])).await;
            }
        }
        assert!(
            peak_mb < 64 + 32 * 4,
            "{mode}: peak resident memory {peak_mb} MB for 4 MiB rows: past 64 MiB plus 32 times the widest row"
        );
        eprintln!("wide rows, {mode} x{parallel}: peak resident memory {peak_mb} MB");
        sb.drop_table(&table).await;
    }
}
