//! `--source binlog`: the table rewound through production's binlog, no instance restored.
//! Judged by the servers: production's rows against the restored server's (which holds the
//! table as it was before the accident, seeded identically), the as-of table gone afterwards,
//! and the AWS twin's own log of every request (none that writes).

mod common;

use common::{command, compare_rows, describe, env_var, expected_after, restore_args, unique_table, Sandbox, Twin};
use mysql_async::prelude::Queryable;

async fn asof_tables(sb: &Sandbox, table: &str) -> Vec<String> {
    let mut c = sb.production.get_conn().await.unwrap();
    c.exec(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'rds_table_restore' AND TABLE_NAME LIKE ?",
        (format!("{table}%"),),
    )
    .await
    .unwrap()
}

/// Resumes the one run in `state`, then checks production holds every restored row and the
/// rows written since, once, and the as-of table is gone; drops the test's table.
async fn resume_ends_exact(
    sb: &Sandbox,
    state: &std::path::Path,
    table: &str,
    before: &[Vec<mysql_async::Value>],
    restored: &[Vec<mysql_async::Value>],
) {
    let run = common::run_id_of(&common::state_files(state)[0]);
    let out = command(state).args(["resume", &run, "--yes"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    compare_rows(
        &Sandbox::rows(&sb.production, table).await,
        &expected_after(before, restored),
    )
    .unwrap();
    assert!(asof_tables(sb, table).await.is_empty(), "the as-of table is dropped");
    sb.drop_table(table).await;
}

/// AWS actions the twin saw that are not descriptions.
fn writes(twin: &Twin) -> Vec<String> {
    twin.requests()
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .filter(|a| !a.starts_with("Describe") && !a.starts_with("List"))
        .collect()
}

#[tokio::test]
async fn a_binlog_rewind_brings_the_rows_back_exactly_keeps_later_writes_and_writes_nothing_to_aws() {
    let sb = Sandbox::connect().await;
    let twin = Twin::start(&[]);
    let table = unique_table("rewind");
    let time = sb.seed_with_accident(&table, 3000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let mut args = restore_args(&table, &time);
    args.extend(["--source", "binlog", "--yes", "--output", "json"]);
    // Nothing is opened to any address, so none is needed.
    let out = command(state.path())
        .args(&args)
        .env("AWS_ENDPOINT_URL", twin.url())
        .env_remove("RDS_TABLE_RESTORE_CLIENT_CIDR")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &expected_after(&before, &restored),
    )
    .unwrap();
    assert_eq!(writes(&twin), Vec::<String>::new(), "no AWS call that writes");
    assert!(asof_tables(&sb, &table).await.is_empty(), "the as-of table is dropped");
    let summary = common::summary(&out.stdout);
    assert_eq!(summary["source"], "binlog", "{summary}");
    // `plan` shows both sources, the binlog's with the row changes since the point: the
    // accident's deletes, the update and the inserts after it.
    let mut plan_args = restore_args(&table, &time);
    plan_args[0] = "plan";
    let out = command(state.path())
        .args(&plan_args)
        .env("AWS_ENDPOINT_URL", twin.url())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains("--source pitr (this plan): an instance restored by RDS"),
        "{text}"
    );
    assert!(text.contains("--source binlog: no instance, nothing in AWS"), "{text}");
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn every_column_type_comes_back_through_the_binlog_rewind() {
    let sb = Sandbox::connect().await;
    let table = unique_table("rewind_types");
    let (ddl, rows) = common::all_types();
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &format!("CREATE TABLE `{table}` ({ddl}) DEFAULT CHARSET=utf8mb4")).await;
        for r in &rows {
            Sandbox::exec(pool, &format!("SET time_zone = '+00:00'; INSERT INTO `{table}` {r}")).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Changed, then deleted: the rewind must take the first before-image, not the last.
    Sandbox::exec(
        &sb.production,
        &format!("UPDATE `{table}` SET vc = 'changed', u64 = 7 WHERE id <> 3"),
    )
    .await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{table}`")).await;
    let state = tempfile::tempdir().unwrap();
    let mut args = restore_args(&table, &time);
    args.extend(["--source", "binlog", "--yes"]);
    let out = command(state.path()).args(&args).output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &Sandbox::rows(&sb.restored, &table).await,
    )
    .unwrap();
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn a_crash_in_the_merge_resumes_exactly_once() {
    let sb = Sandbox::connect().await;
    let table = unique_table("rewind_crash");
    let time = sb.seed_with_accident(&table, 3000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let mut args = restore_args(&table, &time);
    args.extend(["--source", "binlog", "--yes", "--chunk-size", "200"]);
    let out = command(state.path())
        .args(&args)
        .env("FAILPOINTS", "copy-chunk-before-commit=2*off->return")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(86), "crashed: {}", describe(&out));
    resume_ends_exact(&sb, state.path(), &table, &before, &restored).await;
}

/// Each condition a rewind needs refuses it before anything is written: production's rows
/// are as they were, and no as-of table was made.
async fn refused(sb: &Sandbox, table: &str, time: &str, expected: &str) {
    refused_as(sb, table, time, (expected, expected), &[]).await
}

/// `expected`: what the refusal says, and what `plan` of an instance restore says of the
/// binlog (the refusal's first half, without the fix).
async fn refused_as(sb: &Sandbox, table: &str, time: &str, expected: (&str, &str), env: &[(&str, &str)]) {
    let (expected, plan_says) = expected;
    let before = Sandbox::rows(&sb.production, table).await;
    let state = tempfile::tempdir().unwrap();
    let mut args = restore_args(table, time);
    args.extend(["--source", "binlog", "--yes"]);
    let mut cmd = command(state.path());
    cmd.args(&args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(expected) && err.contains("--source pitr"), "{err}");
    assert_eq!(
        Sandbox::rows(&sb.production, table).await,
        before,
        "production untouched"
    );
    assert!(asof_tables(sb, table).await.is_empty(), "no as-of table");
    // `plan` of an instance restore says the binlog cannot serve, and why.
    let mut plan_args = args.clone();
    plan_args[0] = "plan";
    plan_args.retain(|a| *a != "--source" && *a != "binlog" && *a != "--yes");
    let mut cmd = command(state.path());
    cmd.args(&plan_args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if expected.contains("purged") {
        // Older than the binlogs, and inside RDS's window: the instance restore is the way.
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    }
    if out.status.code() == Some(0) {
        assert!(
            text.contains("--source binlog: not possible:") && text.contains(plan_says),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_delete_logged_as_a_statement_or_without_full_images_or_ddl_refuses_the_rewind() {
    let sb = Sandbox::connect().await;
    for (name, accident, expected) in [
        (
            "rw_stmt",
            "SET SESSION binlog_format = 'STATEMENT'; DELETE FROM `{t}` WHERE id <= 10",
            "is a statement on the table after the point",
        ),
        (
            "rw_minimal",
            "SET SESSION binlog_row_image = 'MINIMAL'; DELETE FROM `{t}` WHERE id <= 10",
            "binlog_row_image is not FULL",
        ),
        (
            "rw_ddl",
            "DELETE FROM `{t}` WHERE id <= 10; ALTER TABLE `{t}` ADD COLUMN extra INT NULL",
            "is a statement on the table after the point",
        ),
    ] {
        let t = unique_table(name);
        Sandbox::exec(
            &sb.production,
            &format!("CREATE TABLE `{t}` (id BIGINT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB; INSERT INTO `{t}` SELECT seq, 'x' FROM seq_1_to_50"),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        Sandbox::exec(&sb.production, &accident.replace("{t}", &t)).await;
        refused(&sb, &t, &time, expected).await;
        Sandbox::exec(&sb.production, &format!("DROP TABLE `{t}`")).await;
    }
}

/// A user that may read the binlog and write its own database but not make temporary tables
/// there (where the rewind stages the changes) is refused in validation, with the grant named.
#[tokio::test]
async fn a_user_without_create_temporary_tables_is_refused_before_any_write() {
    let sb = Sandbox::connect().await;
    let t = unique_table("rw_notemp");
    let user = t.clone();
    let password = format!("pw-{}", rand::random::<u64>());
    Sandbox::exec(
        &sb.production,
        &format!(
            "CREATE TABLE `{t}` (id BIGINT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO `{t}` SELECT seq FROM seq_1_to_20; \
             CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}' REQUIRE SSL; \
             GRANT SELECT, INSERT, LOCK TABLES, CREATE, DROP, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'127.0.0.1'; \
             GRANT SELECT, INSERT, DELETE, CREATE, DROP ON rds_table_restore.* TO '{user}'@'127.0.0.1'"
        ),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{t}` WHERE id <= 5")).await;
    refused_as(
        &sb,
        &t,
        &time,
        (
            "CREATE TEMPORARY TABLES ON `rds_table_restore`.*",
            "the rewind cannot stage the changes in temporary tables",
        ),
        &[
            ("RDS_TABLE_RESTORE_DB_USER", user.as_str()),
            ("RDS_TABLE_RESTORE_DB_PASSWORD", password.as_str()),
        ],
    )
    .await;
    Sandbox::exec(
        &sb.production,
        &format!("DROP USER '{user}'@'127.0.0.1'; DROP TABLE `{t}`"),
    )
    .await;
}

#[tokio::test]
async fn a_time_older_than_the_binlogs_is_refused() {
    let sb = Sandbox::connect().await;
    let t = unique_table("rw_old");
    Sandbox::exec(
        &sb.production,
        &format!("CREATE TABLE `{t}` (id BIGINT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO `{t}` VALUES (1)"),
    )
    .await;
    // Inside RDS's window (the twin's instance is days old), before the oldest binlog file.
    let time = (chrono::Utc::now() - chrono::Duration::days(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    refused(&sb, &t, &time, "the binlogs of that time are purged").await;
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{t}`")).await;
}

/// A user who may not read the binlog (the sandbox's writer user: no REPLICATION SLAVE, no
/// BINLOG MONITOR) is refused in validation, before any write, with the grant to give.
#[tokio::test]
async fn a_user_who_may_not_read_the_binlog_is_refused_before_any_write() {
    let sb = Sandbox::connect().await;
    let t = unique_table("rw_nobinlog");
    Sandbox::exec(
        &sb.production,
        &format!(
            "CREATE TABLE `{t}` (id BIGINT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO `{t}` SELECT seq FROM seq_1_to_20"
        ),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{t}` WHERE id <= 5")).await;
    let (user, password) = (env_var("SANDBOX_WRITER_USER"), env_var("SANDBOX_WRITER_PASSWORD"));
    refused_as(
        &sb,
        &t,
        &time,
        ("may not read", "may not read"),
        &[
            ("RDS_TABLE_RESTORE_DB_USER", user.as_str()),
            ("RDS_TABLE_RESTORE_DB_PASSWORD", password.as_str()),
        ],
    )
    .await;
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{t}`")).await;
}

#[tokio::test]
async fn a_crash_after_the_as_of_table_is_built_rebuilds_it_on_resume_and_abort_names_what_it_leaves() {
    let sb = Sandbox::connect().await;
    // Resume: the rewind, cut short after its build, is begun again and the run ends exact.
    let table = unique_table("rewind_rebuild");
    let time = sb.seed_with_accident(&table, 2000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let mut args = restore_args(&table, &time);
    args.extend(["--source", "binlog", "--yes"]);
    let crash = |args: Vec<String>, dir: std::path::PathBuf| async move {
        command(&dir)
            .args(&args)
            .env("FAILPOINTS", "rewind-after-build=return")
            .output()
            .await
            .unwrap()
    };
    let owned = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let out = crash(owned(&args), state.path().to_path_buf()).await;
    assert_eq!(out.status.code(), Some(86), "{}", describe(&out));
    let built = asof_tables(&sb, &table).await;
    assert_eq!(built.len(), 1, "built before the crash");
    // It holds the keys the accident changed, each as it was (the restored server's row), and
    // no other: the rest of the table is in production as it was.
    let mut c = sb.production.get_conn().await.unwrap();
    c.query_drop("SET SESSION time_zone = '+00:00'").await.unwrap();
    let asof: Vec<mysql_async::Row> = c
        .exec(
            format!("SELECT * FROM rds_table_restore.`{}` ORDER BY id", built[0]),
            (),
        )
        .await
        .unwrap();
    drop(c);
    let asof: Vec<Vec<mysql_async::Value>> = asof.into_iter().map(|r| r.unwrap()).collect();
    let changed: Vec<Vec<mysql_async::Value>> = restored.iter().filter(|r| !before.contains(r)).cloned().collect();
    assert!(!changed.is_empty() && changed.len() < restored.len());
    assert_eq!(
        asof, changed,
        "the as-of table holds the changed keys as they were, alone"
    );
    resume_ends_exact(&sb, state.path(), &table, &before, &restored).await;

    // Abort: it connects to no database, so it says the as-of table is left, and where.
    let table = unique_table("rewind_abort");
    let time = sb.seed_with_accident(&table, 500).await;
    let state = tempfile::tempdir().unwrap();
    let mut args = restore_args(&table, &time);
    args.extend(["--source", "binlog", "--yes"]);
    let out = crash(owned(&args), state.path().to_path_buf()).await;
    assert_eq!(out.status.code(), Some(86), "{}", describe(&out));
    let run = common::run_id_of(&common::state_files(state.path())[0]);
    let out = command(state.path())
        .args(["abort", &run, "--yes"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("left in AWS; still in production: as-of table rds_table_restore."),
        "{}",
        describe(&out)
    );
    let left = asof_tables(&sb, &table).await;
    assert_eq!(left.len(), 1);
    Sandbox::exec(&sb.production, &format!("DROP TABLE rds_table_restore.`{}`", left[0])).await;
    sb.drop_table(&table).await;
}

/// Overwrite mode with the changed keys alone in the as-of table: every key the accident or a
/// later write changed is set back to its value at the point (the row changed after the
/// accident too, which overwrite does not keep), the rows inserted after stay, and no other
/// row is touched.
#[tokio::test]
async fn overwrite_through_the_binlog_sets_every_changed_key_back_and_keeps_rows_inserted_since() {
    let sb = Sandbox::connect().await;
    let table = unique_table("rewind_overwrite");
    let time = sb.seed_with_accident(&table, 2000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    // The tool's user reads the binlog; overwrite needs UPDATE too, on this table alone.
    let grant = |verb: &str, to: &str| format!("{verb} UPDATE ON shop.`{table}` {to} 'restore_tool'@'127.0.0.1'");
    Sandbox::exec(&sb.production, &grant("GRANT", "TO")).await;
    let state = tempfile::tempdir().unwrap();
    let mut args = restore_args(&table, &time);
    args.extend(["--source", "binlog", "--mode", "overwrite", "--yes"]);
    let out = command(state.path()).args(&args).output().await.unwrap();
    Sandbox::exec(&sb.production, &grant("REVOKE", "FROM")).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // The rows as they were at the point, over production's: the restored rows win, the rows
    // inserted since (absent from the restored server) stay.
    compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &expected_after(&restored, &before),
    )
    .unwrap();
    assert!(asof_tables(&sb, &table).await.is_empty(), "the as-of table is dropped");
    sb.drop_table(&table).await;
}

/// The second kind of accident: an UPDATE that overwrites a column on many rows. Around it, a
/// unique value moves from one row to another, which a put-back in batches would trip over (the
/// first row's value back while the second still holds it). The side table must hold exactly
/// the rows as they were, which the restored server keeps, seeded the same.
#[tokio::test]
async fn an_update_of_many_rows_and_a_unique_value_moved_between_rows_are_rewound_exactly() {
    let sb = Sandbox::connect().await;
    let table = unique_table("rewind_update");
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(
            pool,
            &format!(
                "CREATE TABLE `{table}` (id INT PRIMARY KEY, email VARCHAR(40) NOT NULL UNIQUE, \
                 note VARCHAR(40) NOT NULL, FULLTEXT (note)) ENGINE=InnoDB; \
                 INSERT INTO `{table}` SELECT seq, CONCAT('e', seq), CONCAT('n', seq) FROM seq_1_to_2000"
            ),
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for sql in [
        "UPDATE `{t}` SET email = 'gone' WHERE id = 1",
        "UPDATE `{t}` SET note = 'overwritten' WHERE id BETWEEN 2 AND 1201",
        "UPDATE `{t}` SET email = 'e1' WHERE id = 1500",
        "INSERT INTO `{t}` VALUES (5000, 'new', 'new')",
    ] {
        Sandbox::exec(&sb.production, &sql.replace("{t}", &table)).await;
    }
    let state = tempfile::tempdir().unwrap();
    let mut args = restore_args(&table, &time);
    args.extend(["--source", "binlog", "--mode", "side-table", "--yes"]);
    let out = command(state.path()).args(&args).output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut c = sb.production.get_conn().await.unwrap();
    let side: Vec<String> = c
        .query(format!("SHOW TABLES FROM shop LIKE '{table}\\_\\_restored\\_%'"))
        .await
        .unwrap();
    assert_eq!(side.len(), 1, "{side:?}");
    compare_rows(
        &Sandbox::rows(&sb.production, &side[0]).await,
        &Sandbox::rows(&sb.restored, &table).await,
    )
    .unwrap();
    assert!(asof_tables(&sb, &table).await.is_empty(), "the as-of table is dropped");
    Sandbox::exec(&sb.production, &format!("DROP TABLE shop.`{}`", side[0])).await;
    sb.drop_table(&table).await;
}

/// The transactions on `table` since `since`, as `find --output json` lists them.
async fn found(state: &std::path::Path, table: &str, since: &str) -> Vec<serde_json::Value> {
    let out = command(state)
        .args(["find", "--instance", "prod-db", "--database", "shop", "--table", table])
        .args(["--since", since, "--output", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    common::events(&out.stdout)
        .into_iter()
        .filter(|e| e["event"] == "binlog_transaction")
        .collect()
}

async fn ids(sb: &Sandbox, table: &str) -> Vec<i64> {
    let mut c = sb.production.get_conn().await.unwrap();
    c.query(format!("SELECT id FROM shop.`{table}` ORDER BY id"))
        .await
        .unwrap()
}

/// `--before` is exact to the transaction: two deletes in the same second, and a rewind to
/// just before the second one brings back its rows and not the first one's, named by its
/// position or by its GTID, as `find` lists them. A position where no transaction on the
/// table begins is refused with the next one's.
#[tokio::test]
async fn before_a_position_or_a_gtid_rewinds_to_just_before_that_transaction() {
    let sb = Sandbox::connect().await;
    let t = unique_table("rw_before");
    Sandbox::exec(
        &sb.production,
        &format!("CREATE TABLE `{t}` (id BIGINT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB; INSERT INTO `{t}` SELECT seq, 'x' FROM seq_1_to_50"),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let since = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{t}` WHERE id <= 10")).await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{t}` WHERE id BETWEEN 11 AND 20")).await;
    let state = tempfile::tempdir().unwrap();
    let txns = found(state.path(), &t, &since).await;
    assert_eq!(txns.len(), 2, "{txns:?}");
    let second = &txns[1];
    assert_eq!(second["deleted"], 10, "{second}");
    let at = format!(
        "{}:{}",
        second["start"]["file"].as_str().unwrap(),
        second["start"]["pos"]
    );

    let run = |before: String| {
        let mut args = vec![
            "restore",
            "--instance",
            "prod-db",
            "--database",
            "shop",
            "--table",
            &t,
            "--yes",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(["--before".to_string(), before]);
        let state = state.path().to_path_buf();
        async move { command(&state).args(&args).output().await.unwrap() }
    };
    let out = run(at.clone()).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        ids(&sb, &t).await,
        (11..=50).collect::<Vec<i64>>(),
        "only the second delete's rows"
    );

    // The same by GTID, after the rows are deleted again.
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{t}` WHERE id BETWEEN 11 AND 20")).await;
    let txns = found(state.path(), &t, &since).await;
    let last = txns.last().unwrap();
    let gtid = last["gtid"]
        .as_str()
        .expect("MariaDB gives every transaction a GTID")
        .to_string();
    let out = run(gtid).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(ids(&sb, &t).await, (11..=50).collect::<Vec<i64>>());

    // A file's first byte is where no transaction begins.
    let file_start = format!("{}:4", second["start"]["file"].as_str().unwrap());
    let out = run(file_start).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no transaction on") && err.contains("find"), "{err}");
    assert!(asof_tables(&sb, &t).await.is_empty(), "no as-of table left");
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{t}`")).await;
}
