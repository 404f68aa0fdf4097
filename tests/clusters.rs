//! DB clusters (Aurora MySQL and Multi-AZ DB clusters) against the AWS twin, each test on a
//! twin of its own seeded with `prod-aurora` (a writer `prod-aurora-writer`) and `prod-maz`
//! (three instances RDS makes). The table comes back from the restored MariaDB; what the tool
//! asked AWS is read from the twin's request log, and what is left from the AWS API once the
//! twin's pending deletions are over.

mod common;

use std::time::Duration;

use common::{compare_rows, describe, expected_after, unique_table, Sandbox, Twin, TAG_TABLE};
use serde_json::Value as Json;

fn of<'a>(log: &'a [Json], action: &str) -> Vec<&'a Json> {
    log.iter()
        .filter(|r| r["action"] == action && r["status"] == 200)
        .collect()
}

fn position(log: &[Json], action: &str) -> usize {
    log.iter()
        .position(|r| r["action"] == action && r["status"] == 200)
        .unwrap_or_else(|| panic!("no successful {action} in the request log"))
}

fn param<'a>(request: &'a Json, name: &str) -> Option<&'a str> {
    let params = request["params"].as_object()?;
    params
        .get(name)
        .or_else(|| params.iter().find(|(k, _)| k.starts_with(name)).map(|(_, v)| v))
        .and_then(|v| v.as_str().or_else(|| v.as_array()?.first()?.as_str()))
}

async fn run(twin: &Twin, state: &std::path::Path, args: &[&str]) -> std::process::Output {
    common::command(state)
        .args(args)
        .env("AWS_ENDPOINT_URL", twin.url())
        .output()
        .await
        .unwrap()
}

fn restore<'a>(source: [&'a str; 2], table: &'a str, time: &'a str) -> Vec<&'a str> {
    vec![
        "restore",
        source[0],
        source[1],
        "--database",
        "shop",
        "--table",
        table,
        "--time",
        time,
        "--yes",
    ]
}

/// The clusters, instances and groups tagged with runs on `shop.<table>`, read once no cluster
/// or instance of them is `deleting` any more.
async fn left(aws: &Sandbox, table: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let wanted = rds_table_restore::plan::tag_value(&format!("shop.{table}"));
    let tagged = |tags: Vec<(Option<String>, Option<String>)>| {
        tags.iter()
            .any(|(k, v)| k.as_deref() == Some(TAG_TABLE) && v.as_deref() == Some(wanted.as_str()))
    };
    let started = std::time::Instant::now();
    loop {
        let mut deleting = false;
        let mut clusters = Vec::new();
        for c in aws.rds.describe_db_clusters().send().await.unwrap().db_clusters() {
            let tags = c
                .tag_list()
                .iter()
                .map(|t| (t.key().map(Into::into), t.value().map(Into::into)));
            if tagged(tags.collect()) {
                deleting |= c.status() == Some("deleting");
                clusters.push(c.db_cluster_identifier().unwrap_or_default().to_string());
            }
        }
        let mut instances = Vec::new();
        for d in aws.rds.describe_db_instances().send().await.unwrap().db_instances() {
            let tags = d
                .tag_list()
                .iter()
                .map(|t| (t.key().map(Into::into), t.value().map(Into::into)));
            if tagged(tags.collect()) {
                deleting |= d.db_instance_status() == Some("deleting");
                instances.push(d.db_instance_identifier().unwrap_or_default().to_string());
            }
        }
        let mut groups = Vec::new();
        for g in aws
            .ec2
            .describe_security_groups()
            .send()
            .await
            .unwrap()
            .security_groups()
        {
            let tags = g
                .tags()
                .iter()
                .map(|t| (t.key().map(Into::into), t.value().map(Into::into)));
            if tagged(tags.collect()) {
                groups.push(g.group_id().unwrap_or_default().to_string());
            }
        }
        if !deleting || started.elapsed() > Duration::from_secs(90) {
            return (clusters, instances, groups);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn nothing() -> (Vec<String>, Vec<String>, Vec<String>) {
    (vec![], vec![], vec![])
}

#[tokio::test]
async fn a_member_of_an_aurora_cluster_is_restored_through_a_new_cluster_and_nothing_is_left() {
    let sb = Sandbox::connect().await;
    let twin = Twin::start(&[]);
    let aws = twin.sandbox(&sb).await;
    let table = unique_table("aurora");
    let time = sb.seed_with_accident(&table, 2000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let out = run(
        &twin,
        state.path(),
        &restore(["--instance", "prod-aurora-writer"], &table, &time),
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("member of the DB cluster `prod-aurora`"), "{stderr}");
    compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &expected_after(&before, &restored),
    )
    .unwrap();

    let log = twin.requests();
    let restore = of(&log, "RestoreDBClusterToPointInTime");
    assert_eq!(restore.len(), 1, "one cluster restore");
    let r = restore[0];
    assert_eq!(param(r, "SourceDBClusterIdentifier"), Some("prod-aurora"));
    assert_eq!(
        param(r, "RestoreType"),
        Some("full-copy"),
        "a clone cannot take a RestoreToTime"
    );
    assert!(param(r, "RestoreToTime").is_some());
    assert_eq!(
        param(r, "DBClusterParameterGroupName"),
        Some("prod-aurora-cluster-params")
    );
    assert_eq!(param(r, "DBSubnetGroupName"), Some("prod-db-subnets"));
    assert_eq!(param(r, "DeletionProtection"), Some("false"));
    assert!(param(r, "BacktrackWindow").is_none(), "no backtrack on the copy");
    let group = of(&log, "CreateSecurityGroup");
    assert_eq!(group.len(), 1);
    let own = param(r, "VpcSecurityGroupIds").expect("the restore names the copy's group");
    assert!(own.starts_with("sg-"), "{own}");
    assert!(
        of(&log, "RestoreDBInstanceToPointInTime").is_empty(),
        "no instance restore"
    );
    let create = of(&log, "CreateDBInstance");
    assert_eq!(create.len(), 1, "one writer");
    let c = create[0];
    let cluster = param(r, "DBClusterIdentifier").unwrap();
    assert_eq!(param(c, "DBClusterIdentifier"), Some(cluster));
    assert_eq!(
        param(c, "DBInstanceClass"),
        Some("db.r6g.large"),
        "the source writer's class"
    );
    assert_eq!(param(c, "PubliclyAccessible"), Some("false"));
    // Released in the order RDS allows: the writer, then the cluster, then the group.
    assert!(position(&log, "CreateSecurityGroup") < position(&log, "RestoreDBClusterToPointInTime"));
    assert!(position(&log, "DeleteDBInstance") < position(&log, "DeleteDBCluster"));
    assert!(position(&log, "DeleteDBCluster") < position(&log, "DeleteSecurityGroup"));
    assert_eq!(left(&aws, &table).await, nothing());
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn a_multi_az_db_cluster_is_restored_with_its_class_and_storage_and_nothing_is_left() {
    let sb = Sandbox::connect().await;
    let twin = Twin::start(&[]);
    let aws = twin.sandbox(&sb).await;
    let table = unique_table("maz");
    let time = sb.seed_with_accident(&table, 1500).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let mut args = restore(["--cluster", "prod-maz"], &table, &time);
    args.extend(["--output", "json"]);
    let out = run(&twin, state.path(), &args).await;
    assert!(out.status.success(), "{}", describe(&out));
    compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &expected_after(&before, &restored),
    )
    .unwrap();
    let summary = common::summary(&out.stdout);
    assert_eq!(summary["outcome"], "succeeded", "{summary}");

    let log = twin.requests();
    let restore = of(&log, "RestoreDBClusterToPointInTime");
    assert_eq!(restore.len(), 1);
    let r = restore[0];
    assert_eq!(param(r, "SourceDBClusterIdentifier"), Some("prod-maz"));
    assert_eq!(param(r, "DBClusterInstanceClass"), Some("db.m6gd.large"));
    assert_eq!(param(r, "StorageType"), Some("io1"));
    assert_eq!(param(r, "Iops"), Some("1000"));
    assert_eq!(param(r, "PubliclyAccessible"), Some("false"));
    assert!(
        of(&log, "CreateDBInstance").is_empty(),
        "RDS makes a Multi-AZ DB cluster's instances"
    );
    assert!(of(&log, "DeleteDBInstance").is_empty(), "they go with the cluster");
    assert!(position(&log, "DeleteDBCluster") < position(&log, "DeleteSecurityGroup"));
    assert_eq!(left(&aws, &table).await, nothing());
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn bad_cluster_input_is_refused_with_one_line_before_anything_is_created() {
    let sb = Sandbox::connect().await;
    let twin = Twin::start(&[]);
    let aws = twin.sandbox(&sb).await;
    for (ident, engine, mode) in [
        ("prod-pg", "aurora-postgresql", "provisioned"),
        ("prod-v1", "aurora-mysql", "serverless"),
    ] {
        aws.rds
            .create_db_cluster()
            .db_cluster_identifier(ident)
            .engine(engine)
            .engine_mode(mode)
            .master_username("admin")
            .master_user_password("not-used-by-the-test")
            .backup_retention_period(7)
            .send()
            .await
            .unwrap();
    }
    let table = unique_table("badcl");
    let time = sb.seed_with_accident(&table, 10).await;
    let long_ago = (chrono::Utc::now() - chrono::Duration::days(12)).to_rfc3339();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            restore(["--cluster", "no-such-cluster"], &table, &time),
            "no DB cluster named `no-such-cluster`",
        ),
        (
            restore(["--cluster", "prod-pg"], &table, &time),
            "PostgreSQL is not supported yet",
        ),
        (restore(["--cluster", "prod-v1"], &table, &time), "Aurora Serverless v1"),
        (
            restore(["--cluster", "prod-aurora"], &table, &long_ago),
            "before the earliest restorable time",
        ),
        (
            {
                let mut a = restore(["--cluster", "prod-aurora"], &table, &time);
                a.extend(["--instance", "prod-maz-instance-1"]);
                a
            },
            "name different things",
        ),
    ];
    for (args, expected) in cases {
        let state = tempfile::tempdir().unwrap();
        let out = run(&twin, state.path(), &args).await;
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
        assert!(
            errors[0].contains(expected),
            "{args:?}: `{expected}` missing from {stderr}"
        );
    }
    let log = twin.requests();
    for create in [
        "CreateSecurityGroup",
        "RestoreDBClusterToPointInTime",
        "RestoreDBInstanceToPointInTime",
        "CreateDBInstance",
    ] {
        assert!(log.iter().all(|r| r["action"] != create), "{create} was called");
    }
    assert_eq!(left(&aws, &table).await, nothing());
    sb.drop_table(&table).await;
}

/// Crashed where a cluster's life differs from an instance's (the cluster requested, its writer
/// requested, the writer's deletion requested, the cluster's), then resumed or aborted: one
/// cluster, one writer, the table exact (resume) or untouched beyond committed chunks (abort),
/// and nothing left.
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_cluster_restore_crashed_at_its_own_side_effects_resumes_or_aborts_with_nothing_left() {
    let sb = Sandbox::connect().await;
    let twin = Twin::start(&[]);
    let aws = twin.sandbox(&sb).await;
    for (spec, verb) in [
        ("restore-after-call=return", "resume"),
        ("wait-after-advance=return", "resume"),
        ("wait-after-advance=return", "abort"),
        ("teardown-after-call=return", "resume"),
    ] {
        let table = unique_table("clcrash");
        let time = sb.seed_with_accident(&table, 1200).await;
        let before = Sandbox::rows(&sb.production, &table).await;
        let restored = Sandbox::rows(&sb.restored, &table).await;
        let state = tempfile::tempdir().unwrap();
        let args = restore(["--cluster", "prod-aurora"], &table, &time);
        let first = common::command(state.path())
            .args(&args)
            .env("AWS_ENDPOINT_URL", twin.url())
            .env("FAILPOINTS", spec)
            .output()
            .await
            .unwrap();
        assert_eq!(
            first.status.code(),
            Some(rds_table_restore::CRASH_EXIT_CODE),
            "{spec}: {}",
            describe(&first)
        );
        let run_id = common::run_id_of(&common::state_files(state.path())[0]);
        let second = run(&twin, state.path(), &[verb, &run_id, "--yes"]).await;
        assert!(second.status.success(), "{spec} then {verb}: {}", describe(&second));
        let after = Sandbox::rows(&sb.production, &table).await;
        match verb {
            "resume" => compare_rows(&after, &expected_after(&before, &restored)).unwrap(),
            _ => common::check_partial(&after, &before, &restored).unwrap(),
        }
        assert_eq!(left(&aws, &table).await, nothing(), "{spec} then {verb}");
        sb.drop_table(&table).await;
    }
    let log = twin.requests();
    let writers: Vec<_> = of(&log, "CreateDBInstance");
    assert_eq!(writers.len(), 4, "one writer per run, never two");
}

/// A cluster left by a run whose state is lost (the laptop died with it): `runs` knows nothing,
/// `cleanup` finds the cluster and its writer by their tags and removes them with the group.
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn cleanup_finds_a_tagged_cluster_and_its_writer_and_removes_them_with_the_group() {
    let sb = Sandbox::connect().await;
    let twin = Twin::start(&[]);
    let aws = twin.sandbox(&sb).await;
    let table = unique_table("clclean");
    let time = sb.seed_with_accident(&table, 100).await;
    let lost = tempfile::tempdir().unwrap();
    let first = common::command(lost.path())
        .args(restore(["--cluster", "prod-aurora"], &table, &time))
        .env("AWS_ENDPOINT_URL", twin.url())
        .env("FAILPOINTS", "wait-after-checkpoint=return")
        .output()
        .await
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(rds_table_restore::CRASH_EXIT_CODE),
        "{}",
        describe(&first)
    );
    let (clusters, instances, groups) = left(&aws, &table).await;
    assert_eq!(
        (clusters.len(), instances.len(), groups.len()),
        (1, 1, 1),
        "the crash leaves a cluster, its writer, a group"
    );
    let fresh = tempfile::tempdir().unwrap();
    let out = run(&twin, fresh.path(), &["cleanup", "--yes"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("DB cluster {}", clusters[0])), "{stdout}");
    assert_eq!(left(&aws, &table).await, nothing());
    let log = twin.requests();
    assert!(position(&log, "DeleteDBInstance") < position(&log, "DeleteDBCluster"));
    // The source cluster and its writer are untouched.
    let source = aws
        .rds
        .describe_db_clusters()
        .db_cluster_identifier("prod-aurora")
        .send()
        .await
        .unwrap();
    assert_eq!(source.db_clusters()[0].status(), Some("available"));
    assert!(aws
        .rds
        .describe_db_instances()
        .db_instance_identifier("prod-aurora-writer")
        .send()
        .await
        .is_ok());
    sb.drop_table(&table).await;
}
