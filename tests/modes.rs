//! The merge modes that change rows production already has: `overwrite` and `replace-all`,
//! run by the real binary against the sandbox. Rows are read back from MariaDB and resources
//! from moto; the tool's report is only compared with them.

mod common;

use assert_cmd::Command;
use common::{unique_table, Sandbox};
use mysql_async::Value;

/// The tool, as the writer user: the one with UPDATE and DELETE, which these modes need.
fn writer(state_dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("rds-table-restore").unwrap();
    cmd.env("RDS_TABLE_RESTORE_STATE_DIR", state_dir)
        .env_remove("RDS_TABLE_RESTORE_YES")
        .env("RDS_TABLE_RESTORE_DB_USER", common::env_var("SANDBOX_WRITER_USER"))
        .env(
            "RDS_TABLE_RESTORE_DB_PASSWORD",
            common::env_var("SANDBOX_WRITER_PASSWORD"),
        );
    cmd
}

/// Runs the tool as the writer user, checks that it succeeded, and returns what it printed (the
/// JSON summary on stdout with `--output json`).
fn succeed(state: &std::path::Path, args: &[&str], extra: &[&str]) -> std::process::Output {
    let out = writer(state).args(args).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    out
}

/// The same, for a run that prints its JSON summary: returns the summary.
fn succeed_json(state: &std::path::Path, args: &[&str], extra: &[&str]) -> serde_json::Value {
    common::summary(&succeed(state, args, extra).stdout)
}

fn args<'a>(table: &'a str, time: &'a str, mode: &'a str) -> Vec<&'a str> {
    let mut args = common::restore_args(table, time);
    args.extend(["--mode", mode, "--chunk-size", "700"]);
    args
}

/// Runs the tool with a crash point armed, checks it crashed there, and returns the run's state
/// file with what it holds.
fn crash(
    state: &std::path::Path,
    args: &[&str],
    extra: &[&str],
    failpoint: &str,
) -> (std::path::PathBuf, serde_json::Value) {
    let crashed = writer(state)
        .args(args)
        .args(extra)
        .env("FAILPOINTS", failpoint)
        .output()
        .unwrap();
    assert_eq!(
        crashed.status.code(),
        Some(rds_table_restore::CRASH_EXIT_CODE),
        "{}",
        common::describe(&crashed)
    );
    let run = common::state_files(state)[0].clone();
    let saved = serde_json::from_str(&std::fs::read_to_string(&run).unwrap()).unwrap();
    (run, saved)
}

/// Resumes the run of a state file to its end and returns its JSON summary.
fn resume(state: &std::path::Path, run: &std::path::Path) -> serde_json::Value {
    succeed_json(
        state,
        &["resume", &common::run_id_of(run), "--yes", "--output", "json"],
        &[],
    )
}

/// Runs the tool with a crash point armed, checks it crashed there, resumes the run and
/// returns the resumed run's JSON summary.
fn crash_then_resume(state: &std::path::Path, args: &[&str], extra: &[&str], failpoint: &str) -> serde_json::Value {
    let (run, _) = crash(state, args, extra, failpoint);
    resume(state, &run)
}

fn id_of(row: &[Value]) -> i64 {
    match row[0] {
        Value::Int(i) => i,
        ref v => panic!("unexpected id {v:?}"),
    }
}

async fn assert_nothing_left_in_aws(sb: &Sandbox, table: &str) {
    let (instances, groups) = sb.tool_resources(table).await;
    assert!(
        instances.is_empty() && groups.is_empty(),
        "left in moto: {instances:?} {groups:?}"
    );
}

#[tokio::test]
async fn overwrite_sets_changed_rows_back_and_keeps_rows_written_since() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_overwrite");
    let time = sb.seed_with_accident(&table, 5_000).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let state = tempfile::tempdir().unwrap();
    let summary = succeed_json(
        state.path(),
        &args(&table, &time, "overwrite"),
        &["--yes", "--output", "json"],
    );

    let after = Sandbox::rows(&sb.production, &table).await;
    let written_since: Vec<&Vec<Value>> = before.iter().filter(|r| id_of(r) > 5_000).collect();
    assert_eq!(written_since.len(), 5);
    assert_eq!(
        after.len(),
        restored.len() + 5,
        "every restored row, plus the rows written since"
    );
    assert_eq!(
        &after[..restored.len()],
        &restored[..],
        "every restored row has its restored values"
    );
    for (got, want) in after[restored.len()..].iter().zip(written_since) {
        assert_eq!(got, want, "rows written since are kept");
    }
    assert_eq!(summary["mode"], "overwrite");
    assert_eq!(
        summary["rows_updated"], 1,
        "row 2, changed after the accident, is set back"
    );
    assert_eq!(summary["rows_deleted"], 0);
    assert_eq!(summary["rows_inserted"], (restored.len() - (before.len() - 5)) as u64);
    assert_eq!(summary["verification"]["passed"], true);
    assert_nothing_left_in_aws(&sb, &table).await;
    sb.drop_table(&table).await;
}

/// A FLOAT's own text keeps six digits, so 1.0000001 and 1 read the same in it: overwrite must
/// still find the row changed since the point, set it back bit for bit, and its chunk's check
/// must see the value it wrote.
#[tokio::test]
async fn overwrite_sets_back_a_float_changed_past_its_sixth_digit() {
    let sb = Sandbox::connect().await;
    let table = unique_table("float_overwrite");
    let create = format!(
        "CREATE TABLE shop.`{table}` (id INT PRIMARY KEY, f FLOAT NOT NULL, g FLOAT) ENGINE=InnoDB; \
         INSERT INTO shop.`{table}` VALUES (1, 1, 2.5), (2, 3.25, NULL), (3, 7, 0.001)"
    );
    Sandbox::exec(&sb.production, &create).await;
    Sandbox::exec(&sb.restored, &create).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(
        &sb.production,
        &format!("UPDATE shop.`{table}` SET f = 1.0000001 WHERE id = 1"),
    )
    .await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    assert_ne!(
        Sandbox::rows(&sb.production, &table).await,
        restored,
        "the change is real"
    );
    let state = tempfile::tempdir().unwrap();
    let summary = succeed_json(
        state.path(),
        &args(&table, &time, "overwrite"),
        &["--yes", "--output", "json"],
    );
    assert_eq!(Sandbox::rows(&sb.production, &table).await, restored);
    assert_eq!(summary["rows_updated"], 1, "{summary}");
    assert_eq!(summary["verification"]["passed"], true);
    assert_nothing_left_in_aws(&sb, &table).await;
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn replace_all_needs_the_table_named_then_makes_production_equal_to_the_restored_table() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_replace");
    let time = sb.seed_with_accident(&table, 5_000).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let state = tempfile::tempdir().unwrap();

    // --yes alone is not enough, and a wrong name is refused: before anything is created.
    // Without the name, the run refuses it at consent (3); a mistyped name is a usage error (2).
    for (extra, code) in [(vec![], 3), (vec!["--confirm-table", "billing"], 2)] {
        let out = writer(state.path())
            .args(args(&table, &time, "replace-all"))
            .arg("--yes")
            .args(&extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", common::describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--confirm-table"), "{stderr}");
        assert_nothing_left_in_aws(&sb, &table).await;
        assert_eq!(
            Sandbox::rows(&sb.production, &table).await,
            before,
            "production untouched"
        );
    }

    let summary = succeed_json(
        state.path(),
        &args(&table, &time, "replace-all"),
        &["--yes", "--confirm-table", &table, "--output", "json"],
    );
    assert_eq!(
        Sandbox::rows(&sb.production, &table).await,
        restored,
        "production equals the restored table, bit for bit"
    );
    assert_eq!(summary["rows_deleted"], 5, "the rows written since are gone");
    assert_eq!(summary["rows_updated"], 1);
    assert_eq!(summary["verification"]["passed"], true);
    assert_nothing_left_in_aws(&sb, &table).await;
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn replace_all_dump_only_writes_the_deletes_updates_and_inserts_it_would_run() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_replace_dump");
    let time = sb.seed_with_accident(&table, 3_000).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let state = tempfile::tempdir().unwrap();
    let dump = state.path().join("replace.sql");
    succeed(
        state.path(),
        &args(&table, &time, "replace-all"),
        &[
            "--yes",
            "--confirm-table",
            &table,
            "--dump-only",
            dump.to_str().unwrap(),
        ],
    );
    assert_eq!(
        Sandbox::rows(&sb.production, &table).await,
        before,
        "--dump-only wrote production"
    );
    let sql = std::fs::read_to_string(&dump).unwrap();
    assert_eq!(sql.matches("DELETE FROM").count(), 5, "{sql:.2000}");
    assert_eq!(sql.matches("UPDATE ").count(), 1);

    // Applied by hand, as the runbook does, it gives the restored table.
    common::load_sql_into_production(&dump);
    assert_eq!(Sandbox::rows(&sb.production, &table).await, restored);
    assert_nothing_left_in_aws(&sb, &table).await;
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn modes_that_change_rows_check_the_privileges_they_need_before_creating_anything() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_privileges");
    let time = sb.seed_with_accident(&table, 1_000).await;
    let state = tempfile::tempdir().unwrap();
    // The default sandbox user has SELECT, INSERT, LOCK TABLES, CREATE, DROP only.
    let out = Command::cargo_bin("rds-table-restore")
        .unwrap()
        .env("RDS_TABLE_RESTORE_STATE_DIR", state.path())
        .args(args(&table, &time, "overwrite"))
        .arg("--yes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", common::describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--mode overwrite needs UPDATE") && stderr.contains("--mode missing-rows"),
        "{stderr}"
    );
    assert_nothing_left_in_aws(&sb, &table).await;
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn a_dropped_table_is_recreated_from_the_restored_definition_only_when_asked() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_dropped");
    let time = sb.seed_with_accident(&table, 2_000).await;
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{table}`")).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let base = args(&table, &time, "missing-rows");

    // In a script, --yes alone does not create a production table: it may be a typo.
    let out = writer(state.path()).args(&base).arg("--yes").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", common::describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--recreate-table"));
    assert_nothing_left_in_aws(&sb, &table).await;

    succeed(state.path(), &base, &["--yes", "--recreate-table", "--output", "json"]);
    assert_eq!(Sandbox::rows(&sb.production, &table).await, restored);
    let definition = |pool: mysql_async::Pool| {
        let table = table.clone();
        async move {
            use mysql_async::prelude::Queryable;
            let mut c = pool.get_conn().await.unwrap();
            let (_, ddl): (String, String) = c
                .query_first(format!("SHOW CREATE TABLE shop.`{table}`"))
                .await
                .unwrap()
                .unwrap();
            // AUTO_INCREMENT's next value follows the rows, not the definition.
            ddl.split(" AUTO_INCREMENT=").next().unwrap().to_string()
        }
    };
    assert_eq!(
        definition(sb.production.clone()).await,
        definition(sb.restored.clone()).await,
        "the same definition as the restored table"
    );
    assert_nothing_left_in_aws(&sb, &table).await;
    sb.drop_table(&table).await;
}

/// Every row of a table without a key, sorted on every column (duplicates kept).
async fn multiset(pool: &mysql_async::Pool, table: &str) -> Vec<Vec<Value>> {
    use mysql_async::prelude::Queryable;
    let mut c = pool.get_conn().await.unwrap();
    let rows: Vec<mysql_async::Row> = c
        .query(format!("SELECT * FROM shop.`{table}` ORDER BY 1, 2, 3"))
        .await
        .unwrap();
    rows.into_iter().map(|r| r.unwrap()).collect()
}

#[tokio::test]
async fn a_table_without_a_primary_key_is_refused_in_merge_modes_and_loaded_whole_in_side_table_mode() {
    let sb = Sandbox::connect().await;
    let table = unique_table("nokey");
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(
            pool,
            &format!(
                "CREATE TABLE `{table}` (account INT, note VARCHAR(40), amount DECIMAL(12,2)) DEFAULT CHARSET=utf8mb4"
            ),
        )
        .await;
        // Duplicates, NULLs, emoji: 3,000 rows, each of the first 1,000 twice.
        Sandbox::exec(
            pool,
            &format!(
                "INSERT INTO `{table}` SELECT seq % 1000, IF(seq % 7 = 0, NULL, CONCAT('n', seq % 1000, ' 🧾')), \
                 (seq % 1000) * 1.25 FROM seq_1_to_2000; \
                 INSERT INTO `{table}` SELECT seq, 'only once', NULL FROM seq_2001_to_3000"
            ),
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM `{table}` WHERE account < 500")).await;
    let before = multiset(&sb.production, &table).await;
    let restored = multiset(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();

    let out = writer(state.path())
        .args(args(&table, &time, "missing-rows"))
        .arg("--yes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", common::describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no primary key") && stderr.contains("--mode side-table"),
        "{stderr}"
    );
    assert_nothing_left_in_aws(&sb, &table).await;

    // A crash after two of five batches; the resume empties the side table and loads it again.
    let state = tempfile::tempdir().unwrap();
    let summary = crash_then_resume(
        state.path(),
        &args(&table, &time, "side-table"),
        &["--yes"],
        "copy-chunk-after-checkpoint=2*off->return",
    );
    let side = summary["target_table"]
        .as_str()
        .unwrap()
        .trim_start_matches("shop.")
        .to_string();
    assert_eq!(
        multiset(&sb.production, &side).await,
        restored,
        "every restored row, duplicates included"
    );
    assert_eq!(
        multiset(&sb.production, &table).await,
        before,
        "the real table is untouched"
    );
    assert_eq!(summary["verification"]["passed"], true);
    assert_nothing_left_in_aws(&sb, &table).await;
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{side}`")).await;
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn replace_all_resumed_after_a_crash_mid_copy_ends_equal_to_the_restored_table() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_replace_crash");
    let time = sb.seed_with_accident(&table, 5_000).await;
    // Rows written since, spread over the key space: some fall in ranges the crashed run had
    // already merged, some in ranges still ahead, some past the restored table's last key.
    Sandbox::exec(
        &sb.production,
        &format!("UPDATE `{table}` SET description = 'later' WHERE id IN (10, 2500, 4999)"),
    )
    .await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let summary = crash_then_resume(
        state.path(),
        &args(&table, &time, "replace-all"),
        // One writer: the counts below are exact across a crash only when no other writer can
        // have committed a chunk it had not yet checkpointed (its rows are then found present).
        &["--yes", "--confirm-table", &table, "--parallel", "1"],
        "copy-chunk-after-checkpoint=3*off->return",
    );
    assert_eq!(Sandbox::rows(&sb.production, &table).await, restored);
    assert_eq!(summary["rows_deleted"], 5);
    assert_eq!(summary["rows_updated"], 4, "row 2 and the three changed above");
    assert_nothing_left_in_aws(&sb, &table).await;
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn parallel_writers_crashed_mid_copy_resume_each_from_their_own_checkpoint() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_parallel");
    let time = sb.seed_with_accident(&table, 9_000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let (run, saved) = crash(
        state.path(),
        &args(&table, &time, "missing-rows"),
        &["--yes", "--parallel", "3"],
        "copy-chunk-after-checkpoint=4*off->return",
    );
    let workers = saved["copy"]["workers"].as_array().expect("writers in the state file");
    assert_eq!(workers.len(), 3);
    assert!(
        workers.iter().all(|w| w["copy"]["done"] == false),
        "the crash came mid-copy"
    );
    let summary = resume(state.path(), &run);
    common::compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &common::expected_after(&before, &restored),
    )
    .unwrap();
    assert_eq!(summary["rows_read"], restored.len() as u64);
    assert_eq!(summary["verification"]["passed"], true);
    assert_nothing_left_in_aws(&sb, &table).await;
    sb.drop_table(&table).await;
}

/// Parallel writers share `--chunk-bytes`: four writers under 256 KiB take 64 KiB each, so their
/// chunks are a quarter of what one writer's would be (with a budget each: 23 chunks in all).
#[tokio::test]
async fn parallel_writers_share_the_chunk_byte_budget() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_budget");
    let time = sb.seed_with_accident(&table, 9_000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let mut args = common::restore_args(&table, &time);
    args.extend([
        "--chunk-size",
        "1000",
        "--chunk-bytes",
        "256KiB",
        "--parallel",
        "4",
        "--yes",
    ]);
    succeed(state.path(), &args, &[]);
    common::compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &common::expected_after(&before, &restored),
    )
    .unwrap();
    let run = common::state_files(state.path())[0].clone();
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&run).unwrap()).unwrap();
    let workers = saved["copy"]["workers"].as_array().expect("writers in the state file");
    assert_eq!(workers.len(), 4);
    let chunks: u64 = workers.iter().map(|w| w["copy"]["chunks"].as_u64().unwrap()).sum();
    // 9,000 rows of about 440 bytes in memory: 64 KiB holds about 150 of them.
    assert!(chunks >= 50, "{chunks} chunks: the writers did not share the budget");
    assert_nothing_left_in_aws(&sb, &table).await;
    sb.drop_table(&table).await;
}

/// Verification takes the writers' key ranges side by side, each on its own sessions: a row the
/// application deletes in each range after the copy is found in each, and every restored row is
/// counted once (a range skipped or taken twice fails the count).
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn verification_takes_each_writers_range_and_finds_what_changed_in_every_one() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_verify_parts");
    let time = sb.seed_with_accident(&table, 9_000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    // The copy ends; the run stops just after verification computed, before it is recorded.
    let (run, saved) = crash(
        state.path(),
        &args(&table, &time, "missing-rows"),
        &["--yes", "--parallel", "3"],
        "verify-after-call=return",
    );
    assert_eq!(saved["copy"]["workers"].as_array().map(Vec::len), Some(3), "{saved}");
    // The application deletes one restored EUR row in each writer's third of the keys.
    let taken = [1_001, 4_501, 8_001];
    for id in taken {
        Sandbox::exec(&sb.production, &format!("DELETE FROM shop.`{table}` WHERE id = {id}")).await;
    }
    let summary = resume(state.path(), &run);
    let v = &summary["verification"];
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["restored_rows"], restored.len() as u64, "{v}");
    assert_eq!(v["missing"], 3, "{v}");
    assert_eq!(v["changed_by_others"], 3, "{v}");
    // One range per writer: the table is smaller than one verification range.
    assert_eq!(v["chunks"], 3, "{v}");
    let sampled: Vec<&str> = v["sample_changed_keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_str())
        .collect();
    for id in taken {
        assert!(sampled.contains(&id.to_string().as_str()), "{id} not in {sampled:?}");
    }
    let mut expected = common::expected_after(&before, &restored);
    expected.retain(|r| !taken.contains(&id_of(r)));
    common::compare_rows(&Sandbox::rows(&sb.production, &table).await, &expected).unwrap();
    assert_nothing_left_in_aws(&sb, &table).await;
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn a_table_altered_since_is_refused_by_the_merge_modes_and_taken_by_side_table_with_its_old_schema() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_altered");
    let time = sb.seed_with_accident(&table, 2_000).await;
    Sandbox::exec(
        &sb.production,
        &format!("ALTER TABLE `{table}` ADD COLUMN region VARCHAR(8) NULL AFTER currency"),
    )
    .await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();

    let out = writer(state.path())
        .args(args(&table, &time, "missing-rows"))
        .arg("--yes")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", common::describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("region"), "the difference is named: {stderr}");
    let run = common::state_files(state.path())[0].clone();
    let run_id = common::run_id_of(&run);
    succeed(state.path(), &["abort", &run_id, "--yes"], &[]);

    let summary = succeed_json(
        state.path(),
        &args(&table, &time, "side-table"),
        &["--yes", "--output", "json"],
    );
    let side = summary["target_table"]
        .as_str()
        .unwrap()
        .trim_start_matches("shop.")
        .to_string();
    assert_eq!(
        Sandbox::rows(&sb.production, &side).await,
        restored,
        "the side table has the restored schema and rows"
    );
    assert_nothing_left_in_aws(&sb, &table).await;
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{side}`")).await;
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn a_crash_just_before_or_after_recreating_a_dropped_table_resumes_to_the_restored_rows() {
    let sb = Sandbox::connect().await;
    for point in ["recreate-after-record", "recreate-after-create"] {
        let table = unique_table("billing_recreate_crash");
        let time = sb.seed_with_accident(&table, 1_500).await;
        Sandbox::exec(&sb.production, &format!("DROP TABLE `{table}`")).await;
        let restored = Sandbox::rows(&sb.restored, &table).await;
        let state = tempfile::tempdir().unwrap();
        let summary = crash_then_resume(
            state.path(),
            &args(&table, &time, "missing-rows"),
            // One writer, for exact counts across the crash (as above).
            &["--yes", "--recreate-table", "--parallel", "1"],
            &format!("{point}=return"),
        );
        assert_eq!(Sandbox::rows(&sb.production, &table).await, restored, "{point}");
        assert_eq!(summary["rows_inserted"], restored.len() as u64, "{point}");
        assert_nothing_left_in_aws(&sb, &table).await;
        sb.drop_table(&table).await;
    }
}
