//! Production is live during an incident: an application keeps writing the table while the
//! tool merges and verifies (new rows, updates, re-created deleted keys, deletes, including of
//! rows the tool has just brought back). Every run must end with exit 0, keep every write of
//! the application in the modes that keep them, bring back every missing row the application
//! did not touch, and report the application's changes as its own, not as a failure. A value
//! written wrong on purpose (a broken encoder, in test builds) must still end with exit 5.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{command, describe, id, unique_table, Sandbox};
use mysql_async::prelude::Queryable;
use mysql_async::Value;

const ROWS: u64 = 6000;

/// What the application did, in order: for each key, its last successful write (`None`: deleted).
type AppLog = Arc<std::sync::Mutex<BTreeMap<i64, Option<String>>>>;

/// Writes production until `stop`: every few milliseconds a new row, an update of a row that
/// exists, the re-creation of a key the accident deleted, or the deletion of a row (sometimes one
/// the tool has just restored). Only writes that took effect are logged.
fn application(
    sb: &Sandbox,
    table: &str,
    deleted: Vec<i64>,
    stop: Arc<AtomicBool>,
    log: AppLog,
) -> tokio::task::JoinHandle<(u64, Vec<Duration>)> {
    let pool = sb.production.clone();
    let table = table.to_string();
    tokio::spawn(async move {
        let mut c = pool.get_conn().await.unwrap();
        c.query_drop("SET SESSION time_zone = '+00:00'").await.unwrap();
        let mut n: u64 = 0;
        let mut latencies = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let pick = |m: usize| (rand::random::<u32>() as usize) % m;
            let (key, sql, value): (i64, String, Option<String>) = match n % 4 {
                0 => {
                    let k = (ROWS as i64) + 1000 + n as i64;
                    let v = format!("app new {n}");
                    (k, format!("INSERT INTO shop.`{table}` (id, customer_id, currency, amount, description, created_at) VALUES ({k}, 7, 'USD', 1.5, '{v}', NOW(6))"), Some(v))
                }
                1 => {
                    let k = 1 + pick(ROWS as usize) as i64;
                    let v = format!("app update {n}");
                    (
                        k,
                        format!("UPDATE shop.`{table}` SET description = '{v}' WHERE id = {k}"),
                        Some(v),
                    )
                }
                2 => {
                    let k = deleted[pick(deleted.len())];
                    let v = format!("app re-created {n}");
                    (k, format!("INSERT INTO shop.`{table}` (id, customer_id, currency, amount, description, created_at) VALUES ({k}, 7, 'EUR', 2.5, '{v}', NOW(6))"), Some(v))
                }
                _ => {
                    // Often a key the accident deleted, which the tool may have just restored.
                    let k = if n % 8 == 3 {
                        deleted[pick(deleted.len())]
                    } else {
                        1 + pick(ROWS as usize) as i64
                    };
                    (k, format!("DELETE FROM shop.`{table}` WHERE id = {k}"), None)
                }
            };
            // A duplicate key (the tool restored it first) is the application's own error.
            let started = std::time::Instant::now();
            let done = c.query_drop(&sql).await;
            latencies.push(started.elapsed());
            if done.is_ok() && c.affected_rows() == 1 {
                log.lock().unwrap().insert(key, value);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (n, latencies)
    })
}

struct Live {
    out: std::process::Output,
    before: Vec<Vec<Value>>,
    restored: Vec<Vec<Value>>,
    after: Vec<Vec<Value>>,
    log: BTreeMap<i64, Option<String>>,
}

async fn run_live(sb: &Sandbox, table: &str, extra: &[&str], env: &[(&str, &str)]) -> Live {
    let mut writing = Writing::start(sb, table).await;
    let time = writing.time.clone();
    let state = tempfile::tempdir().unwrap();
    let mut cmd = command(state.path());
    cmd.args([
        "restore",
        "--instance",
        "prod-db",
        "--database",
        "shop",
        "--table",
        table,
        "--time",
        &time,
    ])
    .args(["--yes", "--chunk-size", "200", "--output", "json"])
    .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    let (writes, mut latencies) = writing.stop().await;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    let (p50, p99) = (at(0.5), at(0.99));
    eprintln!(
        "application: {writes} writes, latency p50 {p50:?} p99 {p99:?}, max {:?}",
        latencies.last()
    );
    assert!(
        writes > 50 || !out.status.success(),
        "the application wrote only {writes} times (p50 {p50:?}, p99 {p99:?})"
    );
    let log = writing.log.lock().unwrap().clone();
    Live {
        out,
        after: Sandbox::rows(&sb.production, table).await,
        log,
        before: writing.before,
        restored: writing.restored,
    }
}

/// A table just after the accident, with the application writing it.
struct Writing {
    time: String,
    before: Vec<Vec<Value>>,
    restored: Vec<Vec<Value>>,
    log: AppLog,
    stop: Arc<AtomicBool>,
    app: Option<tokio::task::JoinHandle<(u64, Vec<Duration>)>>,
}

impl Writing {
    /// Seeds `table` with its accident and starts the application on it.
    async fn start(sb: &Sandbox, table: &str) -> Writing {
        let time = sb.seed_with_accident(table, ROWS).await;
        let before = Sandbox::rows(&sb.production, table).await;
        let restored = Sandbox::rows(&sb.restored, table).await;
        let present: std::collections::HashSet<i64> = before.iter().map(|r| id(&r[0])).collect();
        let deleted: Vec<i64> = restored
            .iter()
            .map(|r| id(&r[0]))
            .filter(|k| !present.contains(k))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let log: AppLog = Arc::default();
        let app = application(sb, table, deleted, stop.clone(), log.clone());
        Writing {
            time,
            before,
            restored,
            log,
            stop,
            app: Some(app),
        }
    }

    /// Stops the application: how many writes it made, and the latency of each.
    async fn stop(&mut self) -> (u64, Vec<Duration>) {
        self.stop.store(true, Ordering::SeqCst);
        match self.app.take() {
            Some(app) => app.await.unwrap(),
            None => (0, Vec::new()),
        }
    }
}

impl Live {
    fn description(row: &[Value]) -> Option<String> {
        match &row[4] {
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// Keys the application never wrote hold what the mode says; keys it wrote hold its last
    /// write, or (where the mode lets the tool win) the restored row, or nothing.
    fn check(&self, keeps_application: bool) {
        let after: HashMap<i64, &Vec<Value>> = self.after.iter().map(|r| (id(&r[0]), r)).collect();
        let restored: HashMap<i64, &Vec<Value>> = self.restored.iter().map(|r| (id(&r[0]), r)).collect();
        let before: HashMap<i64, &Vec<Value>> = self.before.iter().map(|r| (id(&r[0]), r)).collect();
        for (k, r) in &restored {
            if self.log.contains_key(k) {
                continue;
            }
            let expected = if keeps_application {
                before.get(k).unwrap_or(r)
            } else {
                r
            };
            assert_eq!(after.get(k), Some(expected), "row {k}, untouched by the application");
        }
        for (k, last) in &self.log {
            let now = after.get(k).copied();
            match last {
                Some(v) if keeps_application => {
                    let ok = now.is_some_and(|r| Live::description(r).as_deref() == Some(v.as_str()));
                    assert!(ok, "the application's last write of {k} ({v}) is lost: {now:?}");
                }
                // Deleted by the application: gone, or restored by a chunk that ran after the delete.
                None => assert!(
                    now.is_none() || now == restored.get(k).copied(),
                    "row {k}, deleted by the application, is {now:?}"
                ),
                Some(v) => {
                    let app = now.is_some_and(|r| Live::description(r).as_deref() == Some(v.as_str()));
                    assert!(
                        app || now == restored.get(k).copied() || now.is_none(),
                        "row {k} is {now:?}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn every_mode_ends_exact_and_quiet_while_the_application_keeps_writing() {
    let sb = Sandbox::connect().await;
    for (mode, parallel) in [
        ("missing-rows", "1"),
        ("missing-rows", "2"),
        ("overwrite", "2"),
        ("replace-all", "1"),
        ("side-table", "1"),
    ] {
        let table = unique_table("live");
        let mut extra = vec!["--mode", mode, "--parallel", parallel];
        if mode == "replace-all" {
            extra.extend(["--confirm-table", table.as_str()]);
        }
        // The modes that change rows production has run as the user with UPDATE and DELETE.
        let (user, password) = (
            common::env_var("SANDBOX_WRITER_USER"),
            common::env_var("SANDBOX_WRITER_PASSWORD"),
        );
        let env: Vec<(&str, &str)> = match mode {
            "overwrite" | "replace-all" => vec![
                ("RDS_TABLE_RESTORE_DB_USER", user.as_str()),
                ("RDS_TABLE_RESTORE_DB_PASSWORD", password.as_str()),
            ],
            _ => vec![],
        };
        let live = run_live(&sb, &table, &extra, &env).await;
        assert!(live.out.status.success(), "{mode} x{parallel}: {}", describe(&live.out));
        let summary = common::summary(&live.out.stdout);
        let v = &summary["verification"];
        assert_eq!(v["passed"], true, "{mode}: {summary}");
        assert!(v["proven_at_write"].as_u64().unwrap_or(0) > 0, "{mode}: {summary}");
        match mode {
            "side-table" => {
                // The side table holds exactly the restored rows, whatever the application does
                // to the real one.
                let mut c = sb.production.get_conn().await.unwrap();
                let side: Vec<String> = c
                    .query(format!("SHOW TABLES FROM shop LIKE '{table}\\_\\_restored\\_%'"))
                    .await
                    .unwrap();
                assert_eq!(side.len(), 1, "{side:?}");
                assert_eq!(Sandbox::rows(&sb.production, &side[0]).await, live.restored, "{mode}");
                Sandbox::exec(&sb.production, &format!("DROP TABLE shop.`{}`", side[0])).await;
            }
            "missing-rows" => live.check(true),
            _ => live.check(false),
        }
        // The application's changes after a chunk committed are counted as its own.
        let touched_restored = live
            .log
            .keys()
            .filter(|k| live.restored.iter().any(|r| id(&r[0]) == **k))
            .count();
        if mode != "side-table" && touched_restored > 0 {
            assert!(v["changed_by_others"].as_u64().is_some(), "{mode}: {summary}");
        }
        sb.drop_table(&table).await;
    }
}

/// A broken encoder (test builds: every DATETIME written one microsecond off) is caught inside
/// the first chunk's transaction: exit 5, the chunk rolled back, production as it was.
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_value_written_wrong_fails_the_run_with_exit_5_and_writes_nothing() {
    let sb = Sandbox::connect().await;
    let table = unique_table("broken");
    let time = sb.seed_with_accident(&table, 500).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
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
        .args(["--yes", "--on-failure", "teardown"])
        .env("FAILPOINTS", "rowcodec-break-datetime=return")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reads back in production with other values than on the restored server")
            && stderr.contains("rolled back"),
        "{stderr}"
    );
    assert_eq!(
        Sandbox::rows(&sb.production, &table).await,
        before,
        "nothing of the chunk is in production"
    );
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    sb.drop_table(&table).await;
}

/// Crashed after a chunk committed and before its checkpoint, with the application writing
/// throughout, then resumed: the re-run chunk finds its rows in place, and the run ends exact.
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_crash_mid_copy_under_live_writes_resumes_exact() {
    let sb = Sandbox::connect().await;
    let table = unique_table("liveres");
    let mut writing = Writing::start(&sb, &table).await;
    let time = writing.time.clone();
    let state = tempfile::tempdir().unwrap();
    let args = [
        "restore",
        "--instance",
        "prod-db",
        "--database",
        "shop",
        "--table",
        &table,
        "--time",
        &time,
        "--yes",
        "--chunk-size",
        "200",
    ];
    let first = command(state.path())
        .args(args)
        .env("FAILPOINTS", "copy-chunk-after-commit=5*off->return")
        .output()
        .await
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(rds_table_restore::CRASH_EXIT_CODE),
        "{}",
        describe(&first)
    );
    let run_id = common::run_id_of(&common::state_files(state.path())[0]);
    let second = command(state.path())
        .args(["resume", &run_id, "--yes", "--output", "json"])
        .output()
        .await
        .unwrap();
    writing.stop().await;
    assert!(second.status.success(), "{}", describe(&second));
    let log = writing.log.lock().unwrap().clone();
    let live = Live {
        out: second,
        after: Sandbox::rows(&sb.production, &table).await,
        log,
        before: writing.before,
        restored: writing.restored,
    };
    live.check(true);
    assert_eq!(common::summary(&live.out.stdout)["verification"]["passed"], true);
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    sb.drop_table(&table).await;
}

/// `--max-lock-ms`: a chunk whose transaction held its locks longer makes the chunks after it
/// smaller, so the application waits less; the rows still end exact. With a 1 ms bound (no
/// debug build's chunk of 1,000 rows commits that fast) the copy ends in many small chunks
/// where 1,000-row chunks would take about seven.
#[tokio::test]
async fn a_chunk_that_holds_its_locks_too_long_makes_the_next_ones_smaller() {
    let sb = Sandbox::connect().await;
    let table = unique_table("livelock");
    let mut writing = Writing::start(&sb, &table).await;
    let time = writing.time.clone();
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(common::restore_args(&table, &time))
        .args([
            "--yes",
            "--chunk-size",
            "1000",
            "--max-lock-ms",
            "1",
            "--output",
            "json",
        ])
        .output()
        .await
        .unwrap();
    writing.stop().await;
    assert!(out.status.success(), "{}", describe(&out));
    let summary = common::summary(&out.stdout);
    let chunks = summary["chunks"].as_u64().unwrap_or(0);
    assert!(
        chunks > 20,
        "{chunks} chunks of at most 1,000 rows for {ROWS} rows: the chunks did not shrink: {summary}"
    );
    let log = writing.log.lock().unwrap().clone();
    let live = Live {
        out,
        after: Sandbox::rows(&sb.production, &table).await,
        log,
        before: writing.before,
        restored: writing.restored,
    };
    live.check(true);
    assert_eq!(common::summary(&live.out.stdout)["verification"]["passed"], true);
    sb.drop_table(&table).await;
}
