//! Choices the tool makes from the link it measures: `--parallel auto` (the default) runs two
//! writers over loopback and more when the round trip is longer, through a proxy that holds
//! what each server sends for a few milliseconds, as a VPN or a tunnel does. The rows end exact
//! either way.

mod common;

use common::proxy::CuttingProxy;
use common::{command, describe, restore_args, unique_table, Sandbox};

/// Seeds a table of `rows` rows on both servers, deletes them all in production, and returns
/// the table and the restore time.
async fn deleted_table(sb: &Sandbox, rows: u32) -> (String, String) {
    let table = unique_table("link");
    let create = format!(
        "CREATE TABLE shop.`{table}` (id BIGINT NOT NULL PRIMARY KEY, note VARCHAR(40) NOT NULL) ENGINE=InnoDB; \
         INSERT INTO shop.`{table}` SELECT seq, CONCAT('row ', seq) FROM seq_1_to_{rows}"
    );
    Sandbox::exec(&sb.production, &create).await;
    Sandbox::exec(&sb.restored, &create).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM shop.`{table}`")).await;
    (table, time)
}

fn port_of(var: &str) -> u16 {
    common::env_var(var)
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{var} is HOST:PORT"))
}

/// Restores the table with `args` and `env` set, checks it ends exact, and returns the tool's
/// stderr and the run's saved state.
async fn restore(
    sb: &Sandbox,
    table: &str,
    time: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> (String, serde_json::Value) {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = command(state.path());
    cmd.args(restore_args(table, time)).arg("--yes").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        Sandbox::rows(&sb.production, table).await,
        Sandbox::rows(&sb.restored, table).await,
        "production holds exactly the restored rows"
    );
    let run = common::state_files(state.path())[0].clone();
    let saved = serde_json::from_str(&std::fs::read_to_string(&run).unwrap()).unwrap();
    (String::from_utf8_lossy(&out.stderr).into_owned(), saved)
}

#[tokio::test]
async fn parallel_auto_runs_two_writers_on_loopback_and_more_over_a_slow_link() {
    let sb = Sandbox::connect().await;
    let (table, time) = deleted_table(&sb, 6000).await;
    let (err, _) = restore(&sb, &table, &time, &["--chunk-size", "500"], &[]).await;
    assert!(err.contains("--parallel auto: 2 writers"), "{err}");
    sb.drop_table(&table).await;

    // Both servers 4 ms away: a slow link, where each writer waits on round trips.
    let delay = std::time::Duration::from_millis(4);
    let production = CuttingProxy::delayed(port_of("RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT"), delay).await;
    let restored = CuttingProxy::delayed(port_of("RDS_TABLE_RESTORE_RESTORED_ENDPOINT"), delay).await;
    let (table, time) = deleted_table(&sb, 6000).await;
    let env = [
        (
            "RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT",
            format!("127.0.0.1:{}", production.port),
        ),
        (
            "RDS_TABLE_RESTORE_RESTORED_ENDPOINT",
            format!("127.0.0.1:{}", restored.port),
        ),
    ];
    let (err, _) = restore(&sb, &table, &time, &["--chunk-size", "500"], &env).await;
    assert!(err.contains("--parallel auto: 4 writers"), "{err}");
    sb.drop_table(&table).await;
}

/// The client's turns on production per chunk: two runs of a table of 3,000 rows in chunks of
/// 100 and of 40 rows, one writer, through a proxy in front of production that counts the tool's
/// turns (sends that follow an answer: round trips it waited on); the difference in turns over
/// the difference in chunks, so whatever a run does besides its chunks (validation, locks,
/// verification) cancels out. `restored_delay` holds each answer of the restored server.
async fn production_turns_per_chunk(sb: &Sandbox, restored_delay: std::time::Duration) -> f64 {
    use std::sync::atomic::Ordering;
    let mut runs = Vec::new();
    for size in ["100", "40"] {
        let proxy = CuttingProxy::start(port_of("RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT"), u64::MAX, 0).await;
        let restored = CuttingProxy::delayed(port_of("RDS_TABLE_RESTORE_RESTORED_ENDPOINT"), restored_delay).await;
        let (table, time) = deleted_table(sb, 3000).await;
        let env = [
            (
                "RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT",
                format!("127.0.0.1:{}", proxy.port),
            ),
            (
                "RDS_TABLE_RESTORE_RESTORED_ENDPOINT",
                format!("127.0.0.1:{}", restored.port),
            ),
        ];
        let (_, saved) = restore(sb, &table, &time, &["--parallel", "1", "--chunk-size", size], &env).await;
        let chunks = saved["copy"]["chunks"]
            .as_u64()
            .expect("the copy's chunks in the state file");
        runs.push((chunks, proxy.turns.load(Ordering::SeqCst)));
        sb.drop_table(&table).await;
    }
    let ((few, few_turns), (many, many_turns)) = (runs[0], runs[1]);
    assert!(
        many >= few + 30,
        "chunks of 40 rows make more chunks than of 100: {runs:?}"
    );
    let per_chunk = (many_turns - few_turns) as f64 / (many - few) as f64;
    eprintln!(
        "round trips per chunk: {per_chunk:.3} ({few} chunks: {few_turns} turns; {many} chunks: {many_turns} turns)"
    );
    per_chunk
}

/// A chunk waits on two round trips to production: the previous chunk's check and commit, this
/// chunk's locking read and the LOAD's request for its file go in one batch; the file's lines
/// are the second.
#[tokio::test]
async fn a_chunk_waits_on_two_round_trips_to_production() {
    let sb = Sandbox::connect().await;
    let per_chunk = production_turns_per_chunk(&sb, std::time::Duration::ZERO).await;
    assert!((1.9..=2.3).contains(&per_chunk), "{per_chunk:.2} round trips per chunk");
}

/// A chunk is not held open while the next one is still being read: with the restored server
/// slow to answer, each chunk's check and commit go alone (three round trips), so no lock in
/// production waits on the restored server.
#[tokio::test]
async fn a_chunk_holds_no_lock_while_the_restored_server_is_slow() {
    let sb = Sandbox::connect().await;
    let per_chunk = production_turns_per_chunk(&sb, std::time::Duration::from_millis(25)).await;
    assert!((2.8..=3.2).contains(&per_chunk), "{per_chunk:.2} round trips per chunk");
}

/// Verification takes the copy's writers' sessions for its parts instead of opening new ones
/// (over a slow link each costs several round trips): a run of three writers opens two pairs of
/// sessions more than a run of one, counted at a proxy in front of production. Each run walks
/// the same table, so whatever else a run opens (validation, locks) cancels out.
#[tokio::test]
async fn verification_reuses_the_writers_sessions() {
    use std::sync::atomic::Ordering;
    let sb = Sandbox::connect().await;
    let mut opened = Vec::new();
    for writers in ["1", "3"] {
        let proxy = CuttingProxy::start(port_of("RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT"), u64::MAX, 0).await;
        let (table, time) = deleted_table(&sb, 3000).await;
        let env = [(
            "RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT",
            format!("127.0.0.1:{}", proxy.port),
        )];
        let (_, saved) = restore(
            &sb,
            &table,
            &time,
            &["--parallel", writers, "--chunk-size", "500"],
            &env,
        )
        .await;
        let verification = &saved["verification"];
        assert_eq!(verification["passed"], true, "{verification}");
        assert_eq!(verification["restored_rows"], 3000, "{verification}");
        opened.push(proxy.connections.load(Ordering::SeqCst));
        sb.drop_table(&table).await;
    }
    assert_eq!(
        opened[1],
        opened[0] + 2,
        "sessions to production with one writer, then three: {opened:?} (the verification's parts \
         open their own when it is 4 more)"
    );
}
