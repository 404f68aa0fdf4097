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

/// Restores the table with `env` set, checks it ends exact, and returns the tool's stderr.
async fn restore(sb: &Sandbox, table: &str, time: &str, env: &[(&str, String)]) -> String {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = command(state.path());
    cmd.args(restore_args(table, time))
        .args(["--yes", "--chunk-size", "500"]);
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
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn parallel_auto_runs_two_writers_on_loopback_and_more_over_a_slow_link() {
    let sb = Sandbox::connect().await;
    let (table, time) = deleted_table(&sb, 6000).await;
    let err = restore(&sb, &table, &time, &[]).await;
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
    let err = restore(&sb, &table, &time, &env).await;
    assert!(err.contains("--parallel auto: 4 writers"), "{err}");
    sb.drop_table(&table).await;
}
