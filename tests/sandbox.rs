//! End-to-end tests: the real binary against the sandbox (moto + two MariaDB servers).
//! Start the sandbox with `scripts/sandbox up && eval "$(scripts/sandbox env)"`, or run
//! `scripts/test`, which does both.

mod common;

use std::collections::BTreeMap;

use assert_cmd::Command;
use common::{restore_args, unique_table, Sandbox};
use mysql_async::Value;
use predicates::str::contains;

fn tool(state_dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("rds-table-restore").unwrap();
    cmd.env("RDS_TABLE_RESTORE_STATE_DIR", state_dir)
        .env_remove("RDS_TABLE_RESTORE_YES");
    cmd
}

fn id_of(row: &[Value]) -> i64 {
    match row[0] {
        Value::Int(i) => i,
        ref v => panic!("unexpected id {v:?}"),
    }
}

#[tokio::test]
async fn restores_the_deleted_rows_keeps_later_writes_and_leaves_nothing_in_aws() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_e2e");
    let time = sb.seed_with_accident(&table, 30_000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let source_before = sb.source_description().await;
    let ingress_before = sb.all_ingress().await;
    assert!(before.len() < restored.len(), "the accident deleted rows");

    let state = tempfile::tempdir().unwrap();
    let out = tool(state.path())
        .args(restore_args(&table, &time))
        .args(["--yes", "--output", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let events = common::events(&out);
    let report = events.last().unwrap().clone();
    assert_eq!(report["exit_code"], 0);
    let steps: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["event"] == "step_started" || e["event"] == "step_finished")
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["step"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let names = [
        "validate",
        "security-group",
        "restore",
        "wait",
        "open-access",
        "copy",
        "verify",
        "revoke",
        "teardown",
        "report",
    ];
    let expected: Vec<(String, String)> = names
        .iter()
        .flat_map(|n| {
            [
                ("step_started".to_string(), n.to_string()),
                ("step_finished".to_string(), n.to_string()),
            ]
        })
        .collect();
    assert_eq!(steps, expected, "every step starts and finishes, in order");

    // Production holds the pre-accident rows plus everything written since, each exactly once.
    let after = Sandbox::rows(&sb.production, &table).await;
    let mut expected: BTreeMap<i64, Vec<Value>> = restored.iter().map(|r| (id_of(r), r.clone())).collect();
    for r in &before {
        expected.insert(id_of(r), r.clone()); // production's own version wins in missing-rows mode
    }
    assert_eq!(after.len(), expected.len(), "row count");
    for (row, (id, want)) in after.iter().zip(&expected) {
        assert_eq!(id_of(row), *id);
        assert_eq!(row, want, "row {id} differs");
    }
    let two = after.iter().find(|r| id_of(r) == 2).unwrap();
    assert_eq!(
        two[4],
        Value::Bytes(b"changed after the accident".to_vec()),
        "a later update survives"
    );
    assert!(
        after.iter().any(|r| id_of(r) == 30_002),
        "rows written after the accident survive"
    );
    let inserted = (restored.len() + 5 - before.len()) as u64;
    assert_eq!(report["rows_inserted"], inserted);

    // Nothing the tool made is left in moto, the source is as it was, no rule was added.
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    let target = report["restored_instance"].as_str().unwrap();
    assert!(target.starts_with("restore-prod-db-billing-e2e"), "{target}");
    let gone = sb
        .rds
        .describe_db_instances()
        .db_instance_identifier(target)
        .send()
        .await;
    assert!(gone.is_err(), "{target} still exists");
    assert_eq!(sb.source_description().await, source_before);
    assert_eq!(sb.all_ingress().await, ingress_before);

    // The state file records every step finished, and no secret.
    let files = common::state_files(state.path());
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let password = std::env::var("RDS_TABLE_RESTORE_DB_PASSWORD").unwrap();
    assert!(!text.contains(&password) && !String::from_utf8_lossy(&out).contains(&password));
    let st: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(st["outcome"], "succeeded");
    assert_eq!(st["steps"].as_array().unwrap().len(), 10);
    assert!(st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "finished"));
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn a_failed_copy_revokes_access_and_keeps_a_correctly_placed_instance_on_request() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_nocopy");
    let time = sb.seed_with_accident(&table, 100).await;
    // The restored server lacks the table: the copy step fails after restore and open-access.
    Sandbox::exec(&sb.restored, &format!("DROP TABLE `{table}`")).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let ingress_before = sb.all_ingress().await;
    let state = tempfile::tempdir().unwrap();
    tool(state.path())
        .args(restore_args(&table, &time))
        .args(["--yes", "--on-failure", "keep"])
        .assert()
        .code(4)
        .stderr(contains("does not exist on the restored instance"))
        .stderr(contains("still held in AWS: security group sg-"))
        .stderr(contains("RDS instance restore-prod-db-billing-nocopy"));

    assert_eq!(
        Sandbox::rows(&sb.production, &table).await,
        before,
        "production untouched"
    );
    assert_eq!(sb.all_ingress().await, ingress_before, "no other group changed");
    let (instances, groups) = sb.tool_resources(&table).await;
    assert_eq!(groups.len(), 1, "the copy keeps its own group, for resume: {groups:?}");
    assert!(
        sb.ingress_of(&groups[0]).await.is_empty(),
        "the ingress rule is revoked"
    );
    assert_eq!(instances.len(), 1, "{instances:?}");

    // The kept instance is what the issue asks for: tagged, in the source's subnet and
    // parameter groups, same class, not public, no deletion protection.
    let out = sb
        .rds
        .describe_db_instances()
        .db_instance_identifier(&instances[0])
        .send()
        .await
        .unwrap();
    let db = &out.db_instances()[0];
    let tag = |k: &str| {
        db.tag_list()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert!(tag(common::TAG_RUN_ID).is_some());
    assert_eq!(tag("rds-table-restore:tool").as_deref(), Some("rds-table-restore"));
    assert_eq!(
        db.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some("prod-db-subnets")
    );
    assert_eq!(
        db.db_parameter_groups()[0].db_parameter_group_name(),
        Some("prod-db-params")
    );
    assert_eq!(db.db_instance_class(), Some("db.t3.medium"));
    assert_eq!(db.publicly_accessible(), Some(false));
    assert_eq!(db.deletion_protection(), Some(false));
    assert_eq!(db.backup_retention_period(), Some(0), "no backups of the copy");
    let member_of: Vec<_> = db
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    assert_eq!(
        member_of,
        [groups[0].as_str()],
        "in its own group only, never the default one"
    );
    assert!(tag("rds-table-restore:expires-at").is_some());
    assert!(instances[0].len() <= 63);

    // `abort` removes the copy, waits for it to be gone, then deletes its group.
    let run_id = common::run_id_of(&common::state_files(state.path())[0]);
    tool(state.path()).args(["abort", &run_id, "--yes"]).assert().success();
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    sb.drop_table(&table).await;
}

/// Bad input: exit 3 (validation against AWS and the databases) or 2 (a value the plan itself
/// refuses: see `refused_usage`), a message naming the problem, nothing created, production
/// untouched. Returns stderr.
async fn refused(
    instance: &str,
    table: &str,
    time: Option<&str>,
    extra: &[&str],
    env: &[(&str, &str)],
    expected: &str,
) -> String {
    refused_with(3, instance, table, time, extra, env, expected).await
}

async fn refused_with(
    code: i32,
    instance: &str,
    table: &str,
    time: Option<&str>,
    extra: &[&str],
    env: &[(&str, &str)],
    expected: &str,
) -> String {
    let sb = Sandbox::connect().await;
    let before = Sandbox::rows(&sb.production, "billing").await;
    let ingress_before = sb.all_ingress().await;
    let state = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now() - chrono::Duration::seconds(2);
    let time = time
        .map(str::to_string)
        .unwrap_or_else(|| now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let mut cmd = tool(state.path());
    cmd.args([
        "restore",
        "--instance",
        instance,
        "--database",
        "shop",
        "--table",
        table,
        "--time",
        &time,
        "--yes",
    ]);
    cmd.args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .assert()
        .code(code)
        .stderr(contains(expected))
        .get_output()
        .stderr
        .clone();
    assert_eq!(sb.tool_resources(table).await, (vec![], vec![]), "nothing created");
    assert_eq!(sb.all_ingress().await, ingress_before, "no rule added");
    assert_eq!(
        Sandbox::rows(&sb.production, "billing").await,
        before,
        "production untouched"
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_unknown_instance_is_refused() {
    refused(
        "no-such-db",
        "billing",
        None,
        &[],
        &[],
        "no RDS instance named `no-such-db`",
    )
    .await;
}

#[tokio::test]
async fn a_time_outside_the_restorable_window_is_refused() {
    refused(
        "prod-db",
        "billing",
        Some("2001-01-01T00:00:00Z"),
        &[],
        &[],
        "before the earliest restorable time",
    )
    .await;
    // A time in the future needs no AWS to be refused: a usage error.
    refused_with(
        2,
        "prod-db",
        "billing",
        Some("2999-01-01T00:00:00Z"),
        &[],
        &[],
        "is in the future",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_table_is_refused() {
    refused(
        "prod-db",
        "no_such_table",
        None,
        &[],
        &[],
        "`shop`.`no_such_table` does not exist on production",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_echoing_it() {
    let stderr = refused(
        "prod-db",
        "billing",
        None,
        &[],
        &[("RDS_TABLE_RESTORE_DB_PASSWORD", "hunter2-wrong")],
        "refused the login of user `restore_tool`",
    )
    .await;
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test]
async fn the_whole_internet_is_refused_without_the_explicit_flag() {
    // A usage error: found in the value itself, before the password or any call (exit 2).
    refused_with(
        2,
        "prod-db",
        "billing",
        None,
        &["--client-cidr", "0.0.0.0/0"],
        &[],
        "--allow-any-source",
    )
    .await;
}

#[tokio::test]
async fn without_yes_and_without_a_terminal_nothing_is_done() {
    let sb = Sandbox::connect().await;
    let state = tempfile::tempdir().unwrap();
    let now = (chrono::Utc::now() - chrono::Duration::seconds(2))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    tool(state.path())
        .args(restore_args("billing", &now))
        .assert()
        .code(3)
        .stderr(contains("pass --yes"));
    assert_eq!(sb.tool_resources("billing").await, (vec![], vec![]));
}
