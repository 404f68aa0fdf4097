//! Exactness over the sandbox: every column type MariaDB/MySQL has, at its edges, survives the
//! copy bit for bit. Judged twice, independently: value by value through the binary protocol,
//! and by the server's own `CHECKSUM TABLE` on production against the restored server.

mod common;

use common::{all_types, command, describe, unique_table, Sandbox};
use mysql_async::prelude::Queryable;

async fn all_rows(pool: &mysql_async::Pool, table: &str, order: &str) -> Vec<Vec<mysql_async::Value>> {
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("SET SESSION time_zone = '+00:00'").await.unwrap();
    let rows: Vec<mysql_async::Row> = c
        .exec(format!("SELECT * FROM shop.`{table}` ORDER BY {order}"), ())
        .await
        .unwrap();
    rows.into_iter().map(|r| r.unwrap()).collect()
}

async fn checksum(pool: &mysql_async::Pool, table: &str) -> Option<i64> {
    let mut c = pool.get_conn().await.unwrap();
    let row: Option<(String, Option<i64>)> = c.query_first(format!("CHECKSUM TABLE shop.`{table}`")).await.unwrap();
    row.and_then(|r| r.1)
}

/// Creates `table` on both servers with `ddl` and `rows`, deletes `accident` on production
/// after the restore time, restores, and checks production equals the restored server.
/// With `dump_only`, the run must leave production alone and write the SQL instead, which is
/// then loaded with the mariadb command-line client, as an operator would. The rows go in
/// through `flags` (`--load-method auto` takes LOAD DATA LOCAL on the sandbox).
#[allow(clippy::too_many_arguments)]
async fn round_trip(
    sb: &Sandbox,
    table: &str,
    ddl: &str,
    rows: &[&str],
    accident: &str,
    order: &str,
    dump_only: bool,
    flags: &[&str],
) {
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &format!("DROP TABLE IF EXISTS `{table}`")).await;
        Sandbox::exec(pool, &format!("CREATE TABLE `{table}` ({ddl}) DEFAULT CHARSET=utf8mb4")).await;
        for r in rows {
            Sandbox::exec(pool, &format!("SET time_zone = '+00:00'; INSERT INTO `{table}` {r}")).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{table}` WHERE {accident}")).await;
    let restored = all_rows(&sb.restored, table, order).await;
    assert_ne!(
        all_rows(&sb.production, table, order).await,
        restored,
        "the accident deleted something"
    );

    let state = tempfile::tempdir().unwrap();
    let dump = state.path().join("restore.sql");
    let out = command(state.path())
        .args([
            "restore",
            "--instance",
            "prod-db",
            "--database",
            "shop",
            "--table",
            table,
            "--time",
            &time,
            "--yes",
        ])
        .args(["--chunk-size", "2"])
        .args(flags)
        .args(if dump_only {
            vec!["--dump-only".to_string(), dump.display().to_string()]
        } else {
            vec![]
        })
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    if dump_only {
        assert_ne!(
            all_rows(&sb.production, table, order).await,
            restored,
            "--dump-only wrote production"
        );
        common::load_sql_into_production(&dump);
    }
    let after = all_rows(&sb.production, table, order).await;
    assert_eq!(after.len(), restored.len());
    for (a, r) in after.iter().zip(&restored) {
        assert_eq!(a, r, "a row changed on the way");
    }
    let (p, r) = (
        checksum(&sb.production, table).await,
        checksum(&sb.restored, table).await,
    );
    assert!(
        p.is_some() && p == r,
        "CHECKSUM TABLE differs: production {p:?}, restored {r:?}"
    );
    assert_eq!(sb.tool_resources(table).await, (vec![], vec![]));
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &format!("DROP TABLE `{table}`")).await;
    }
}

#[tokio::test]
async fn every_column_type_round_trips_bit_for_bit() {
    let sb = Sandbox::connect().await;
    let table = unique_table("types");
    let (ddl, rows) = all_types();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let load_data = ["--load-method", "load-data"];
    round_trip(&sb, &table, ddl, &rows, "id IN (1, 2, 3, 4)", "id", false, &load_data).await;
    let table = unique_table("types_insert");
    let insert = ["--load-method", "insert"];
    round_trip(&sb, &table, ddl, &rows, "id IN (1, 2, 4)", "id", false, &insert).await;
}

/// The same bits through the compressed protocol, both ways of writing.
#[tokio::test]
async fn every_column_type_round_trips_bit_for_bit_compressed() {
    let sb = Sandbox::connect().await;
    let (ddl, rows) = all_types();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    for method in ["load-data", "insert"] {
        let table = unique_table("types_zlib");
        let flags = ["--compress", "on", "--load-method", method];
        round_trip(&sb, &table, ddl, &rows, "id IN (1, 2, 3, 4)", "id", false, &flags).await;
    }
}

#[tokio::test]
async fn dump_only_writes_sql_that_loads_to_the_same_bits_and_leaves_production_alone() {
    let sb = Sandbox::connect().await;
    let table = unique_table("dumponly");
    let (ddl, rows) = all_types();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let auto = ["--load-method", "auto"];
    round_trip(&sb, &table, ddl, &rows, "id IN (1, 2, 3, 4)", "id", true, &auto).await;
}

#[tokio::test]
async fn composite_and_non_integer_primary_keys_work() {
    let sb = Sandbox::connect().await;
    let table = unique_table("ckey");
    let ddl = "region VARCHAR(10) NOT NULL, day DATE NOT NULL, seq INT NOT NULL, amount DECIMAL(10,2), \
               PRIMARY KEY (region, day, seq)";
    let values: Vec<String> = ["eu", "us", "ap"]
        .iter()
        .flat_map(|r| {
            (1..=3).flat_map(move |d| (1..=3).map(move |s| format!("('{r}', '2024-01-0{d}', {s}, {s}.{d}0)")))
        })
        .collect();
    let rows = [format!("VALUES {}", values.join(", "))];
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    round_trip(
        &sb,
        &table,
        ddl,
        &rows,
        "region = 'us' OR (region = 'ap' AND seq = 2)",
        "region, day, seq",
        false,
        &["--load-method", "auto"],
    )
    .await;
}

#[tokio::test]
async fn foreign_keys_stay_checked_unless_the_flag_turns_them_off_for_the_tool_alone() {
    let sb = Sandbox::connect().await;
    let parent = unique_table("parent");
    let child = unique_table("child");
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(
            pool,
            &format!("CREATE TABLE `{parent}` (id INT PRIMARY KEY) ENGINE=InnoDB"),
        )
        .await;
        Sandbox::exec(
            pool,
            &format!(
                "CREATE TABLE `{child}` (id INT PRIMARY KEY, parent_id INT NOT NULL, \
                 FOREIGN KEY (parent_id) REFERENCES `{parent}` (id) ON DELETE CASCADE) ENGINE=InnoDB"
            ),
        )
        .await;
        Sandbox::exec(pool, &format!("INSERT INTO `{parent}` SELECT seq FROM seq_1_to_10")).await;
        Sandbox::exec(
            pool,
            &format!("INSERT INTO `{child}` SELECT seq, 1 + seq % 10 FROM seq_1_to_100"),
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // The accident: a parent deleted, its children cascading away with it.
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{parent}` WHERE id = 3")).await;
    let before = all_rows(&sb.production, &child, "id").await;
    let run = |extra: &'static [&'static str]| {
        let state = tempfile::tempdir().unwrap();
        let child = child.clone();
        let time = time.clone();
        async move {
            command(state.path())
                .args([
                    "restore",
                    "--instance",
                    "prod-db",
                    "--database",
                    "shop",
                    "--table",
                    &child,
                    "--time",
                    &time,
                    "--yes",
                ])
                .args(["--on-failure", "teardown"])
                .args(extra)
                .output()
                .await
                .unwrap()
        }
    };
    let checked = run(&[]).await;
    assert!(
        !checked.status.success(),
        "children of a missing parent went in with checks on"
    );
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains("foreign key constraint fails"),
        "{}",
        describe(&checked)
    );
    assert_eq!(
        all_rows(&sb.production, &child, "id").await,
        before,
        "the failed chunk was rolled back"
    );
    let unchecked = run(&["--disable-foreign-key-checks"]).await;
    assert!(unchecked.status.success(), "{}", describe(&unchecked));
    assert_eq!(
        all_rows(&sb.production, &child, "id").await,
        all_rows(&sb.restored, &child, "id").await
    );
    let mut c = sb.production.get_conn().await.unwrap();
    let global: Option<i64> = c.query_first("SELECT @@GLOBAL.foreign_key_checks").await.unwrap();
    assert_eq!(global, Some(1), "the server's setting is untouched");
    assert_eq!(sb.tool_resources(&child).await, (vec![], vec![]));
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &format!("DROP TABLE `{child}`")).await;
        Sandbox::exec(pool, &format!("DROP TABLE `{parent}`")).await;
    }
}
