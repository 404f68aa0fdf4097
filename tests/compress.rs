//! `--compress`: the MySQL protocol's compression, measured on the wire. The restored server
//! is reached through a counting proxy; the same restore with compression on reads far fewer
//! bytes off the wire than with it off, and `auto` on loopback (a round trip far under 2 ms)
//! leaves it off. The rows end exact each time.

mod common;

use std::sync::atomic::Ordering;

use common::proxy::CuttingProxy;
use common::{command, describe, restore_args, unique_table, Sandbox};

/// Restores a table of 2,000 compressible rows (deleted in production) through a proxy to the
/// restored server, with `--compress mode`; the bytes the restored server sent.
async fn bytes_read(sb: &Sandbox, mode: &str) -> u64 {
    let table = unique_table("zlib");
    let create = format!(
        "CREATE TABLE shop.`{table}` (id BIGINT NOT NULL PRIMARY KEY, note TEXT NOT NULL) ENGINE=InnoDB; \
         INSERT INTO shop.`{table}` SELECT seq, REPEAT(CONCAT('invoice line ', seq % 7, '; '), 40) FROM seq_1_to_2000"
    );
    Sandbox::exec(&sb.production, &create).await;
    Sandbox::exec(&sb.restored, &create).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM shop.`{table}`")).await;
    let upstream: u16 = common::env_var("RDS_TABLE_RESTORE_RESTORED_ENDPOINT")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("RDS_TABLE_RESTORE_RESTORED_ENDPOINT is HOST:PORT");
    let proxy = CuttingProxy::start(upstream, u64::MAX, 0).await;
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(restore_args(&table, &time))
        .args(["--yes", "--compress", mode])
        .env(
            "RDS_TABLE_RESTORE_RESTORED_ENDPOINT",
            format!("127.0.0.1:{}", proxy.port),
        )
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "--compress {mode}: {}", describe(&out));
    assert_eq!(
        Sandbox::rows(&sb.production, &table).await,
        Sandbox::rows(&sb.restored, &table).await,
        "--compress {mode}: production holds exactly the restored rows"
    );
    sb.drop_table(&table).await;
    proxy.bytes_down.load(Ordering::SeqCst)
}

#[tokio::test]
async fn compression_cuts_the_bytes_on_the_wire_and_auto_leaves_it_off_on_loopback() {
    let sb = Sandbox::connect().await;
    let off = bytes_read(&sb, "off").await;
    let on = bytes_read(&sb, "on").await;
    let auto = bytes_read(&sb, "auto").await;
    eprintln!("bytes from the restored server: off {off}, on {on}, auto {auto}");
    assert!(on * 3 < off, "compression on read {on} bytes, off {off}: not a third");
    assert!(
        auto * 10 > off * 9,
        "auto on loopback read {auto} bytes, off {off}: it compressed"
    );
}
