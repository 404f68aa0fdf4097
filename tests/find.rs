//! `find`: the binary reads production's binlog and names the transactions that wrote a table.
//! Every expectation comes from the servers: the position `SHOW MASTER STATUS` gave just before
//! the sandbox's accident, the rows the restored server still has, the writes each test makes.

mod common;

use chrono::{DateTime, Utc};
use common::{command, describe, env_var, unique_table, Sandbox};
use mysql_async::prelude::Queryable;
use serde_json::Value;

fn find_args(table: &str, since: &str) -> Vec<String> {
    [
        "find",
        "--instance",
        "prod-db",
        "--database",
        "shop",
        "--table",
        table,
        "--since",
        since,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `find --output json`: the transactions and the summary.
async fn find_json(table: &str, since: &str) -> (Vec<Value>, Value) {
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(find_args(table, since))
        .args(["--output", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut events = common::events(&out.stdout);
    let summary = events.pop().unwrap();
    assert!(events.iter().all(|e| e["event"] == "binlog_transaction"), "{events:?}");
    (events, summary)
}

fn time_of(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

async fn count(pool: &mysql_async::Pool, sql: &str) -> u64 {
    let mut c = pool.get_conn().await.unwrap();
    c.query_first(sql).await.unwrap().unwrap()
}

#[tokio::test]
async fn find_names_the_sandbox_accident_at_its_second_and_its_position() {
    let sb = Sandbox::connect().await;
    let position = env_var("SANDBOX_ACCIDENT_POSITION");
    assert!(
        position.contains(':'),
        "SANDBOX_ACCIDENT_POSITION is `{position}`: run scripts/sandbox reseed to record it"
    );
    let (file, pos) = position.split_once(':').unwrap();
    let accident_time = env_var("SANDBOX_ACCIDENT_TIME");
    let eur: u64 = count(&sb.restored, "SELECT COUNT(*) FROM shop.billing WHERE currency = 'EUR'").await;
    assert!(eur > 0);

    let (txns, summary) = find_json("billing", &accident_time).await;
    let damage = &summary["damage"];
    assert_eq!(damage["start"]["file"], file, "{summary}");
    assert_eq!(damage["start"]["pos"].as_u64(), Some(pos.parse().unwrap()), "{summary}");
    assert_eq!(
        damage["deleted"].as_u64(),
        Some(eur),
        "every EUR row of the seed: {summary}"
    );
    assert_eq!(summary["before_position"], damage["start"]);
    // The accident ran about a second after the recorded restore time.
    let at = time_of(&damage["time"]);
    let recorded = time_of(&Value::String(accident_time.clone()));
    assert!(
        at > recorded && at <= recorded + chrono::Duration::seconds(30),
        "{at} vs {recorded}"
    );
    assert_eq!(time_of(&summary["restore_time"]), at - chrono::Duration::seconds(1));
    assert!(
        summary["restore_command"]
            .as_str()
            .unwrap()
            .contains("--table billing --time "),
        "{summary}"
    );
    // The writes after it are listed too: the UPDATE of id 2 and the five inserts.
    let later: Vec<&Value> = txns
        .iter()
        .filter(|t| time_of(&t["time"]) >= at && t["damage"] == false)
        .collect();
    assert!(later.iter().any(|t| t["updated"] == 1), "{later:?}");
    assert!(later.iter().any(|t| t["inserted"] == 5), "{later:?}");
    // The second accident (scripts/sql/billing-second-accident.sql): every fifth USD row
    // overwritten, listed with its count, the DELETE still the damage.
    let overwritten: u64 = count(
        &sb.production,
        "SELECT COUNT(*) FROM shop.billing WHERE description = 'overwritten by the second accident'",
    )
    .await;
    assert!(
        overwritten > 1000,
        "the second accident is in the sandbox: {overwritten}"
    );
    assert!(
        later.iter().any(|t| t["updated"].as_u64() == Some(overwritten)),
        "no transaction updated the {overwritten} rows of the second accident: {later:?}"
    );

    // The text says the same, with the position to copy.
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(find_args("billing", &accident_time))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("beginning at {position}")), "{text}");
    assert!(text.contains(&format!("{eur} rows deleted")), "{text}");
}

#[tokio::test]
async fn find_warns_of_other_writes_to_the_table_in_the_second_of_the_damage() {
    let sb = Sandbox::connect().await;
    let t = unique_table("find_same");
    let since = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Sandbox::exec(
        &sb.production,
        &format!(
            "CREATE TABLE `{t}` (id BIGINT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB; \
             INSERT INTO `{t}` SELECT seq, seq FROM seq_1_to_200"
        ),
    )
    .await;
    // Both at the start of one second.
    loop {
        let ms = Utc::now().timestamp_subsec_millis();
        if ms < 50 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(u64::from(1000 - ms))).await;
    }
    let mut c = sb.production.get_conn().await.unwrap();
    c.query_drop(format!("INSERT INTO shop.`{t}` VALUES (1000, 1)"))
        .await
        .unwrap();
    c.query_drop(format!("DELETE FROM shop.`{t}` WHERE id <= 50"))
        .await
        .unwrap();
    drop(c);

    let (txns, summary) = find_json(&t, &since).await;
    assert_eq!(summary["damage"]["deleted"], 50, "{summary}");
    let same: &Vec<Value> = summary["same_second"].as_array().unwrap();
    assert!(
        same.iter()
            .any(|s| s["inserted"] == 1 && s["time"] == summary["damage"]["time"]),
        "the insert of the same second is named: {summary}"
    );
    assert!(
        txns.iter().any(|x| x["inserted"] == 200),
        "the seed is listed too: {txns:?}"
    );
    assert!(
        txns.iter().any(|x| x["statements"][0]["kind"] == "create"),
        "and the CREATE TABLE: {txns:?}"
    );

    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(find_args(&t, &since))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("in the second of the damage or the one before"),
        "{}",
        describe(&out)
    );
    // And the command that is exact to the transaction: --before where the damage begins.
    let damage_at = format!(
        "--before {}:{}",
        summary["damage"]["start"]["file"].as_str().unwrap(),
        summary["damage"]["start"]["pos"]
    );
    assert!(text.contains(&damage_at), "{}", describe(&out));
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{t}`")).await;
}

#[tokio::test]
async fn find_lists_updates_statements_and_a_truncate_which_it_takes_for_the_damage() {
    let sb = Sandbox::connect().await;
    let t = unique_table("find_kinds");
    Sandbox::exec(
        &sb.production,
        &format!(
            "CREATE TABLE `{t}` (id BIGINT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB; \
             INSERT INTO `{t}` SELECT seq, seq FROM seq_1_to_100"
        ),
    )
    .await;
    // --since keeps transactions of its second and later: the seed is a second older.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let since = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Sandbox::exec(&sb.production, &format!("UPDATE `{t}` SET v = 0 WHERE id <= 80")).await;
    // Logged as a statement, as a server in STATEMENT or MIXED format would.
    Sandbox::exec(
        &sb.production,
        &format!("SET SESSION binlog_format = 'STATEMENT'; DELETE FROM `{t}` WHERE id > 90"),
    )
    .await;
    // Another table's truncate is not this one's.
    let other = unique_table("find_other");
    Sandbox::exec(
        &sb.production,
        &format!("CREATE TABLE `{other}` (id INT PRIMARY KEY); TRUNCATE TABLE `{other}`; DROP TABLE `{other}`"),
    )
    .await;
    Sandbox::exec(&sb.production, &format!("TRUNCATE TABLE `{t}`")).await;

    let (txns, summary) = find_json(&t, &since).await;
    assert!(
        txns.iter().any(|x| x["updated"] == 80 && x["flagged"] == true),
        "{txns:?}"
    );
    let statement = txns
        .iter()
        .find(|x| x["statements"][0]["kind"] == "delete")
        .unwrap_or_else(|| panic!("the DELETE logged as a statement is listed: {txns:?}"));
    assert_eq!(statement["flagged"], true);
    assert_eq!(summary["damage"]["statements"][0]["kind"], "truncate", "{summary}");
    assert!(
        !txns.iter().any(|x| x.to_string().contains(&other)),
        "the other table's statements are not listed: {txns:?}"
    );
    assert_eq!(
        txns.len(),
        3,
        "the update, the statement delete, the truncate: {txns:?}"
    );
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{t}`")).await;
}

#[tokio::test]
async fn find_reads_across_rotated_binlog_files_from_the_right_one() {
    let sb = Sandbox::connect().await;
    let t = unique_table("find_rot");
    Sandbox::exec(
        &sb.production,
        &format!(
            "CREATE TABLE `{t}` (id BIGINT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO `{t}` SELECT seq FROM seq_1_to_30; \
             DELETE FROM `{t}` WHERE id <= 5; FLUSH BINARY LOGS"
        ),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let since = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(
        &sb.production,
        &format!("DELETE FROM `{t}` WHERE id <= 12; FLUSH BINARY LOGS"),
    )
    .await;
    Sandbox::exec(&sb.production, &format!("INSERT INTO `{t}` VALUES (100), (101), (102)")).await;

    let (txns, summary) = find_json(&t, &since).await;
    assert_eq!(txns.len(), 2, "only what came after --since: {txns:?}");
    assert_eq!(txns[0]["deleted"], 7);
    assert_eq!(txns[1]["inserted"], 3);
    assert_ne!(txns[0]["start"]["file"], txns[1]["start"]["file"], "{txns:?}");
    assert!(summary["files"].as_array().unwrap().len() >= 2, "{summary}");

    // --until: nothing after it counts; the deletes came a second and more after `since`.
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(find_args(&t, &since))
        .args(["--until", &since, "--output", "json"])
        .output()
        .await
        .unwrap();
    let summary = common::summary(&out.stdout);
    assert_eq!(summary["transactions"], 0, "{}", describe(&out));
    assert_eq!(summary["outcome"], "no-damage");
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{t}`")).await;
}

#[tokio::test]
async fn find_refuses_a_user_who_may_not_read_the_binlog_and_says_what_to_grant() {
    let _sb = Sandbox::connect().await;
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(find_args("billing", "10 minutes ago"))
        .env("RDS_TABLE_RESTORE_DB_USER", env_var("SANDBOX_WRITER_USER"))
        .env("RDS_TABLE_RESTORE_DB_PASSWORD", env_var("SANDBOX_WRITER_PASSWORD"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("may not read it") && err.contains("GRANT REPLICATION SLAVE, REPLICATION CLIENT"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "one line: {err}"
    );
}

#[tokio::test]
async fn find_refuses_bad_input_before_connecting() {
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(find_args("billing", "yesterday-ish"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since `yesterday-ish` is not a time"));
}

#[tokio::test]
async fn find_says_what_a_cascade_changed_that_the_binlog_does_not_hold() {
    let sb = Sandbox::connect().await;
    let p = unique_table("find_parent");
    Sandbox::exec(
        &sb.production,
        &format!(
            "CREATE TABLE `{p}` (id BIGINT PRIMARY KEY) ENGINE=InnoDB; \
             CREATE TABLE `{p}_orders` (id BIGINT PRIMARY KEY, parent_id BIGINT NOT NULL, \
               FOREIGN KEY (parent_id) REFERENCES `{p}` (id) ON DELETE CASCADE) ENGINE=InnoDB; \
             INSERT INTO `{p}` SELECT seq FROM seq_1_to_20; \
             INSERT INTO `{p}_orders` SELECT seq, 1 + seq % 20 FROM seq_1_to_100"
        ),
    )
    .await;
    let since = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{p}` WHERE id <= 10")).await;
    let orders_left = count(&sb.production, &format!("SELECT COUNT(*) FROM shop.`{p}_orders`")).await;
    assert_eq!(orders_left, 50, "the cascade took half the orders");

    let (txns, summary) = find_json(&p, &since).await;
    assert_eq!(summary["damage"]["deleted"], 10, "{summary}");
    assert!(
        !txns.iter().any(|t| t["deleted"] == 60),
        "the binlog holds the parent's rows only: {txns:?}"
    );
    let cascades = summary["cascades"].as_array().unwrap();
    assert_eq!(cascades.len(), 1, "{summary}");
    assert_eq!(cascades[0]["table"], format!("shop.{p}_orders"));
    assert_eq!(cascades[0]["on_delete"], "CASCADE");

    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(find_args(&p, &since))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Not in the binlog") && text.contains(&format!("`shop`.`{p}_orders` ON DELETE CASCADE")),
        "{}",
        describe(&out)
    );
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{p}_orders`; DROP TABLE `{p}`")).await;
}

/// The reader the tool uses, with the sandbox's login, for what no command prints yet.
async fn reader_parts(
    sb: &Sandbox,
) -> (
    rds_table_restore::mysql::MysqlConnector,
    rds_table_restore::ports::Endpoint,
) {
    use rds_table_restore::mysql::{Compress, Credential, LoadMethod, MysqlConnector, Secret, TlsMode};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let described = sb
        .rds
        .describe_db_instances()
        .db_instance_identifier("prod-db")
        .send()
        .await
        .unwrap();
    let e = described.db_instances()[0].endpoint().unwrap();
    let endpoint = rds_table_restore::ports::Endpoint {
        host: e.address().unwrap().to_string(),
        port: e.port().unwrap() as u16,
    };
    let dial = rds_table_restore::cli::parse_endpoint(&env_var("RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT")).unwrap();
    let connector = MysqlConnector {
        disable_foreign_key_checks: false,
        user: env_var("RDS_TABLE_RESTORE_DB_USER"),
        credential: Credential::Password(Secret::new(env_var("RDS_TABLE_RESTORE_DB_PASSWORD"))),
        tls: TlsMode::VerifyIdentity,
        ssl_ca: Some(env_var("RDS_TABLE_RESTORE_SSL_CA").into()),
        production_override: Some(dial),
        restored_override: None,
        connect_timeout: std::time::Duration::from_secs(10),
        load_method: LoadMethod::Auto,
        compress: Compress::Off,
        compress_chosen: Default::default(),
    };
    (connector, endpoint)
}

/// What a binlog rewind needs first: the before-image of every row a statement changed or
/// deleted, decoded from the binlog, equal value by value to what a SELECT of that row returned
/// just before, for every column type at its edges.
#[tokio::test]
async fn every_column_type_comes_back_from_the_binlog_exactly_as_a_select_returns_it() {
    use rds_table_restore::binlog::reader::{BinlogReader, Images};
    use rds_table_restore::binlog::Change;
    use rds_table_restore::ports::TableRef;

    let sb = Sandbox::connect().await;
    let t = unique_table("find_types");
    let (ddl, rows) = common::all_types();
    Sandbox::exec(
        &sb.production,
        &format!("CREATE TABLE `{t}` ({ddl}) DEFAULT CHARSET=utf8mb4"),
    )
    .await;
    for r in &rows {
        Sandbox::exec(
            &sb.production,
            &format!("SET time_zone = '+00:00'; INSERT INTO `{t}` {r}"),
        )
        .await;
    }
    let select = |pool: mysql_async::Pool, t: String| async move {
        let mut c = pool.get_conn().await.unwrap();
        c.query_drop("SET SESSION time_zone = '+00:00'").await.unwrap();
        let rows: Vec<mysql_async::Row> = c
            .exec(
                format!("SELECT {} FROM shop.`{t}` ORDER BY id", common::ALL_TYPES_WRITTEN),
                (),
            )
            .await
            .unwrap();
        rows.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>()
    };
    let original = select(sb.production.clone(), t.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let since = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(
        &sb.production,
        &format!("UPDATE `{t}` SET vc = 'changed' WHERE id <> 3"),
    )
    .await;
    let updated = select(sb.production.clone(), t.clone()).await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{t}`")).await;

    let (connector, endpoint) = reader_parts(&sb).await;
    let reader = BinlogReader {
        connector: &connector,
        endpoint,
    };
    let table = TableRef {
        database: "shop".into(),
        table: t.clone(),
    };
    let log = reader.probe().await.unwrap();
    let columns = reader.column_defs(&table).await.unwrap();
    let mut changes = Vec::new();
    let mut sink = |_at: chrono::DateTime<Utc>, c: Change| {
        changes.push(c);
        Ok(())
    };
    reader
        .scan_with(
            &log,
            &table,
            since,
            None,
            &|_, _, _| {},
            Some(Images {
                columns: &columns,
                sink: &mut sink,
            }),
        )
        .await
        .unwrap();
    let before_update: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Update { before, .. } => Some(before.clone()),
            _ => None,
        })
        .collect();
    let after_update: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Update { after, .. } => Some(after.clone()),
            _ => None,
        })
        .collect();
    let deleted: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Delete { before } => Some(before.clone()),
            _ => None,
        })
        .collect();
    let without_3 = |rows: &[Vec<mysql_async::Value>]| -> Vec<Vec<mysql_async::Value>> {
        rows.iter()
            .filter(|r| r[0] != mysql_async::Value::Int(3))
            .cloned()
            .collect()
    };
    assert_eq!(before_update.len(), 3, "{changes:?}");
    for (got, want) in before_update.iter().zip(without_3(&original)) {
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "row {:?}, column {i}", want[0]);
        }
    }
    assert_eq!(after_update, without_3(&updated));
    assert_eq!(deleted, updated, "every deleted row's before-image");
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{t}`")).await;
}

/// One binlog event can be larger than max_allowed_packet: an UPDATE of a 9 MiB value logs it
/// twice (before and after) in one row event of about 18 MiB, which production's 16 MiB limit
/// let through. `find` reads past it, as a replica does.
#[tokio::test]
async fn find_reads_an_event_larger_than_max_allowed_packet() {
    let sb = Sandbox::connect().await;
    let t = unique_table("find_wide");
    Sandbox::exec(
        &sb.production,
        &format!(
            "CREATE TABLE `{t}` (id INT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB; \
             INSERT INTO `{t}` VALUES (1, REPEAT('x', 9 * 1024 * 1024))"
        ),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let since = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Sandbox::exec(
        &sb.production,
        &format!("UPDATE `{t}` SET b = REPEAT('y', 9 * 1024 * 1024) WHERE id = 1; DELETE FROM `{t}`"),
    )
    .await;
    let (txns, _) = find_json(&t, &since).await;
    assert_eq!(txns.len(), 2, "{txns:?}");
    assert_eq!(txns[0]["updated"], 1);
    assert_eq!(txns[1]["deleted"], 1);
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{t}`")).await;
}
