//! Fault injection over the sandbox: the binary is crashed at every side effect of every step
//! (crash points, built in with `--features failpoints`), then resumed, or separately aborted;
//! connections are cut mid-copy by a proxy. Every cell is judged from outside: production's
//! rows in MariaDB and what moto holds. The matrix is written to docs/reliability.md.

// Without the feature only the guard test below is built; the rest is unused there.
#![cfg_attr(not(feature = "failpoints"), allow(dead_code, unused_imports))]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use common::proxy::CuttingProxy;
use common::{
    binary, check_partial, command, compare_rows, describe, expected_after, state_files, unique_table, Sandbox,
};

#[cfg(not(feature = "failpoints"))]
#[test]
fn fault_injection_needs_the_failpoints_feature() {
    panic!("the fault-injection tests need crash points: run them with `cargo test --features failpoints` (scripts/test does)");
}

const ROWS: u64 = 3000;
const CHUNK: &str = "500";

/// Where the process is crashed: the failpoint spec and what it interrupts.
const CRASHES: &[(&str, &str)] = &[
    ("validate-before=return", "validate: started, nothing checked"),
    ("validate-after-checkpoint=return", "validate: finished"),
    (
        "security-group-before=return",
        "security-group: started, nothing created",
    ),
    (
        "security-group-after-create=return",
        "security-group: created, not recorded",
    ),
    ("security-group-after-checkpoint=return", "security-group: recorded"),
    ("restore-before=return", "restore: started, not requested"),
    ("restore-after-call=return", "restore: requested, not recorded"),
    ("restore-after-checkpoint=return", "restore: recorded"),
    ("wait-before=return", "wait: started"),
    ("wait-after-checkpoint=return", "wait: available, recorded"),
    ("open-access-before=return", "open-access: started, no rule"),
    (
        "open-access-after-authorize=return",
        "open-access: rule added, step not finished",
    ),
    ("open-access-after-checkpoint=return", "open-access: recorded"),
    ("copy-before=return", "copy: started, no chunk"),
    (
        "copy-chunk-before-commit=return",
        "copy: first chunk inserted, not committed",
    ),
    (
        "copy-chunk-after-commit=return",
        "copy: first chunk committed, not checkpointed",
    ),
    ("copy-chunk-after-checkpoint=return", "copy: first chunk checkpointed"),
    (
        "copy-chunk-before-commit=2*off->return",
        "copy: third chunk inserted, not committed",
    ),
    (
        "copy-chunk-after-commit=3*off->return",
        "copy: fourth chunk committed, not checkpointed",
    ),
    (
        "copy-chunk-after-checkpoint=4*off->return",
        "copy: fifth chunk checkpointed",
    ),
    ("copy-after-checkpoint=return", "copy: finished"),
    ("verify-before=return", "verify: started"),
    ("verify-after-call=return", "verify: computed, not recorded"),
    ("verify-after-checkpoint=return", "verify: recorded"),
    ("revoke-before=return", "revoke: started"),
    ("revoke-after-rule=return", "revoke: rule removed, not recorded"),
    ("revoke-after-checkpoint=return", "revoke: recorded"),
    ("teardown-before=return", "teardown: started"),
    (
        "teardown-after-call=return",
        "teardown: instance deletion requested, not recorded",
    ),
    ("teardown-after-gone=return", "teardown: instance gone, not recorded"),
    ("teardown-after-group=return", "teardown: group deleted, not recorded"),
    ("teardown-after-checkpoint=return", "teardown: recorded"),
    ("report-before=return", "report: started"),
];

#[derive(Clone, Copy, PartialEq)]
enum Then {
    Resume,
    Abort,
}

async fn tool(state: &Path, args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = command(state);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

/// One cell: crash at `spec` (or run with `env`), then resume or abort; judge from outside.
async fn cell(sb: &Sandbox, spec: Option<&str>, env: Vec<(&str, String)>, then: Then) -> Result<String, String> {
    let table = unique_table("fault");
    let time = sb.seed_with_accident(&table, ROWS).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let ingress = sb.all_ingress().await;
    let source = sb.source_description().await;
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
        CHUNK,
    ];
    let mut first_env = env.clone();
    if let Some(spec) = spec {
        first_env.push(("FAILPOINTS", spec.to_string()));
    }
    let first = tool(state.path(), &args, &first_env).await;
    let result = async {
        let mut note = String::new();
        match spec {
            Some(_) if first.status.code() != Some(rds_table_restore::CRASH_EXIT_CODE) => {
                return Err(format!("expected a crash, got {}", describe(&first)));
            }
            Some(_) => {
                let run = state_files(state.path())
                    .first()
                    .cloned()
                    .ok_or("no state file after the crash")?;
                let run_id = common::run_id_of(&run);
                let verb = if then == Then::Resume { "resume" } else { "abort" };
                let second = tool(state.path(), &[verb, &run_id, "--yes"], &env).await;
                if !second.status.success() {
                    return Err(format!("{verb} failed: {}", describe(&second)));
                }
            }
            None if !first.status.success() => return Err(format!("the run failed: {}", describe(&first))),
            None => {
                let stderr = String::from_utf8_lossy(&first.stderr);
                note = format!("{} reconnects", stderr.matches("reconnecting in").count());
            }
        }
        let after = Sandbox::rows(&sb.production, &table).await;
        match then {
            Then::Resume => compare_rows(&after, &expected_after(&before, &restored))?,
            Then::Abort => check_partial(&after, &before, &restored)?,
        }
        let left = sb.tool_resources(&table).await;
        if left != (vec![], vec![]) {
            return Err(format!("left in moto: {left:?}"));
        }
        if sb.source_description().await != source {
            return Err("the source instance or its security groups changed".into());
        }
        let now = sb.all_ingress().await;
        if now != ingress {
            let added: Vec<_> = now.iter().filter(|r| !ingress.contains(r)).collect();
            let removed: Vec<_> = ingress.iter().filter(|r| !now.contains(r)).collect();
            return Err(format!(
                "ingress rules of other groups changed: added {added:?}, removed {removed:?}"
            ));
        }
        Ok(note)
    }
    .await;
    sb.drop_table(&table).await;
    result
}

/// Sends `signals` (kill names) to a run slowed down mid-copy, then resumes or aborts it.
async fn signal_cell(sb: &Sandbox, signals: &[&str], then: Then) -> Result<String, String> {
    let table = unique_table("signal");
    let time = sb.seed_with_accident(&table, ROWS).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let ingress = sb.all_ingress().await;
    let state = tempfile::tempdir().unwrap();
    let result = async {
        let child = tokio::process::Command::new(binary())
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
            .args(["--yes", "--chunk-size", CHUNK])
            .env("RDS_TABLE_RESTORE_STATE_DIR", state.path())
            // Every chunk boundary takes 400 ms, so the copy is under way when the signal lands.
            .env("FAILPOINTS", "copy-chunk-after-checkpoint=sleep(400)")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id().unwrap().to_string();
        wait_for_copy(state.path()).await?;
        for sig in signals {
            std::process::Command::new("kill")
                .args([&format!("-{sig}"), &pid])
                .status()
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let out = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if out.status.code() != Some(130) {
            return Err(format!("expected exit 130, got {}", describe(&out)));
        }
        let run = state_files(state.path()).first().cloned().ok_or("no state file")?;
        let run_id = common::run_id_of(&run);
        if signals.len() == 1 {
            if !stderr.contains(&format!("rds-table-restore resume {run_id}")) || !stderr.contains("abort") {
                return Err(format!("the resume and abort commands are not printed: {stderr}"));
            }
            // The copy and its own group are kept for resume; the door is closed: no rule left.
            let (instances, groups) = sb.tool_resources(&table).await;
            if groups.len() != 1 || instances.len() != 1 {
                return Err(format!(
                    "after the interrupt: instances {instances:?}, groups {groups:?} (want 1, 1)"
                ));
            }
            let rules = sb.ingress_of(&groups[0]).await;
            if !rules.is_empty() {
                return Err(format!("after the interrupt the copy's group still admits {rules:?}"));
            }
        }
        let verb = if then == Then::Resume { "resume" } else { "abort" };
        let second = tool(state.path(), &[verb, &run_id, "--yes"], &[]).await;
        if !second.status.success() {
            return Err(format!("{verb} failed: {}", describe(&second)));
        }
        let after = Sandbox::rows(&sb.production, &table).await;
        match then {
            Then::Resume => compare_rows(&after, &expected_after(&before, &restored))?,
            Then::Abort => check_partial(&after, &before, &restored)?,
        }
        if sb.tool_resources(&table).await != (vec![], vec![]) || sb.all_ingress().await != ingress {
            return Err("resources left in moto".into());
        }
        Ok(String::new())
    }
    .await;
    sb.drop_table(&table).await;
    result
}

/// Waits until the run in `dir` has started its copy.
async fn wait_for_copy(dir: &Path) -> Result<(), String> {
    for _ in 0..200 {
        if let Some(f) = state_files(dir).first() {
            if std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("\"step\": \"copy\"")
            {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                return Ok(());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err("the copy never started".into())
}

fn restore_args<'a>(table: &'a str, time: &'a str) -> Vec<&'a str> {
    let mut args = common::restore_args(table, time);
    args.extend(["--yes", "--chunk-size", CHUNK]);
    args
}

/// Two runs of one table at once: refused by the state directory's lock, or by the production
/// advisory lock from another state directory; a new run is refused while a crashed one is open.
async fn concurrency_cell(sb: &Sandbox) -> Result<String, String> {
    let table = unique_table("lock");
    let time = sb.seed_with_accident(&table, ROWS).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let (s1, s2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let result = async {
        let first = tokio::process::Command::new(binary())
            .args(restore_args(&table, &time))
            .env("RDS_TABLE_RESTORE_STATE_DIR", s1.path())
            .env("FAILPOINTS", "copy-chunk-after-checkpoint=sleep(400)")
            .output();
        let first = tokio::spawn(first);
        wait_for_copy(s1.path()).await?;
        let same_dir = tool(s1.path(), &restore_args(&table, &time), &[]).await;
        if same_dir.status.code() != Some(3) || !String::from_utf8_lossy(&same_dir.stderr).contains("is working on") {
            return Err(format!(
                "a second run in the same state directory: {}",
                describe(&same_dir)
            ));
        }
        let other_dir = tool(s2.path(), &restore_args(&table, &time), &[]).await;
        if other_dir.status.code() != Some(3) || !String::from_utf8_lossy(&other_dir.stderr).contains("holds the lock")
        {
            return Err(format!(
                "a second run from another state directory: {}",
                describe(&other_dir)
            ));
        }
        let (instances, _) = sb.tool_resources(&table).await;
        if instances.len() != 1 {
            return Err(format!("the refused runs created instances: {instances:?}"));
        }
        let first = first.await.unwrap().unwrap();
        if !first.status.success() {
            return Err(format!("the first run failed: {}", describe(&first)));
        }
        compare_rows(
            &Sandbox::rows(&sb.production, &table).await,
            &expected_after(&before, &restored),
        )?;
        let crashed = tool(
            s1.path(),
            &restore_args(&table, &time),
            &[("FAILPOINTS", "copy-before=return".into())],
        )
        .await;
        if crashed.status.code() != Some(rds_table_restore::CRASH_EXIT_CODE) {
            return Err(format!("expected a crash: {}", describe(&crashed)));
        }
        let refused = tool(s1.path(), &restore_args(&table, &time), &[]).await;
        let text = String::from_utf8_lossy(&refused.stderr).to_string();
        if refused.status.code() != Some(3) || !text.contains("is unfinished") || !text.contains("resume") {
            return Err(format!("a new run beside an unfinished one: {}", describe(&refused)));
        }
        let open_run = state_files(s1.path())
            .into_iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .find(|t| t.contains("\"outcome\": \"running\""))
            .ok_or("no unfinished run recorded")?;
        let run_id = serde_json::from_str::<serde_json::Value>(&open_run).unwrap()["run_id"]
            .as_str()
            .unwrap()
            .to_string();
        let aborted = tool(s1.path(), &["abort", &run_id, "--yes"], &[]).await;
        if !aborted.status.success() {
            return Err(format!("abort: {}", describe(&aborted)));
        }
        if sb.tool_resources(&table).await != (vec![], vec![]) {
            return Err("resources left in moto".into());
        }
        Ok(String::new())
    }
    .await;
    sb.drop_table(&table).await;
    result
}

/// `runs`, `status` and `cleanup` over a crashed run, with untagged look-alikes planted in
/// moto that cleanup must leave alone. Runs alone: cleanup sees the whole account.
async fn cleanup_phase(sb: &Sandbox) -> Result<String, String> {
    let table = unique_table("leftover");
    let time = sb.seed_with_accident(&table, 100).await;
    let (s1, empty) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let token = table.replace('_', "-");
    let lookalike = format!("restore-prod-db-lookalike-{token}");
    let source = sb.source_description().await;
    let result = async {
        let crash = [("FAILPOINTS", "open-access-after-checkpoint=return".to_string())];
        let crashed = tool(s1.path(), &restore_args(&table, &time), &crash).await;
        if crashed.status.code() != Some(rds_table_restore::CRASH_EXIT_CODE) {
            return Err(format!("expected a crash: {}", describe(&crashed)));
        }
        let run_id = state_files(s1.path())[0]
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        sb.rds
            .restore_db_instance_to_point_in_time()
            .source_db_instance_identifier("prod-db")
            .target_db_instance_identifier(&lookalike)
            .use_latest_restorable_time(true)
            .tags(
                aws_sdk_rds::types::Tag::builder()
                    .key("team")
                    .value("someone-else")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| format!("planting the look-alike instance: {e:?}"))?;
        let vpc = sb.ec2.describe_vpcs().send().await.unwrap().vpcs()[0]
            .vpc_id()
            .unwrap()
            .to_string();
        let lookalike_sg = sb
            .ec2
            .create_security_group()
            .group_name(format!("{lookalike}-access"))
            .description("not the tool's")
            .vpc_id(vpc)
            .send()
            .await
            .map_err(|e| format!("planting the look-alike group: {e:?}"))?
            .group_id()
            .unwrap()
            .to_string();

        let runs = tool(s1.path(), &["runs"], &[]).await;
        let listed = String::from_utf8_lossy(&runs.stdout).to_string();
        if !listed.contains(&run_id) || !listed.contains("running") {
            return Err(format!("runs does not list the crashed run: {listed}"));
        }
        let status = tool(s1.path(), &["status", &run_id], &[]).await;
        let shown = String::from_utf8_lossy(&status.stdout).to_string();
        if !shown.contains(&format!("rds-table-restore resume {run_id}")) || !shown.contains("security group") {
            return Err(format!("status does not say how to go on: {shown}"));
        }
        let kept = tool(s1.path(), &["cleanup", "--yes"], &[]).await;
        if !kept.status.success() || !String::from_utf8_lossy(&kept.stdout).contains("keeping RDS instance") {
            return Err(format!("cleanup beside the open run: {}", describe(&kept)));
        }
        if sb.tool_resources(&table).await.0.len() != 1 {
            return Err("cleanup deleted the instance of an unfinished run".into());
        }
        let cleaned = tool(empty.path(), &["cleanup", "--yes"], &[]).await;
        if !cleaned.status.success() {
            return Err(format!("cleanup: {}", describe(&cleaned)));
        }
        if sb.tool_resources(&table).await != (vec![], vec![]) {
            return Err(format!(
                "cleanup left the run's resources: {:?}",
                sb.tool_resources(&table).await
            ));
        }
        let still = sb
            .rds
            .describe_db_instances()
            .db_instance_identifier(&lookalike)
            .send()
            .await;
        if still.is_err() {
            return Err("cleanup deleted an instance the tool did not create".into());
        }
        let groups = sb.ec2.describe_security_groups().group_ids(&lookalike_sg).send().await;
        if groups.map(|g| g.security_groups().len()).unwrap_or(0) != 1 {
            return Err("cleanup deleted a security group the tool did not create".into());
        }
        if sb.source_description().await != source {
            return Err("cleanup changed the source instance or its security groups".into());
        }
        sb.ec2
            .delete_security_group()
            .group_id(&lookalike_sg)
            .send()
            .await
            .unwrap();
        Ok(String::new())
    }
    .await;
    let _ = sb
        .rds
        .delete_db_instance()
        .db_instance_identifier(&lookalike)
        .skip_final_snapshot(true)
        .send()
        .await;
    sb.drop_table(&table).await;
    result
}

/// A whole run against a moto that throttles or fails with 503 and keeps the restore
/// `creating` for a while: the SDK's retries and the wait's polling must carry it through.
async fn aws_fault_cell(sb: &Sandbox, args: &[&str], counter: &str) -> Result<String, String> {
    let moto = common::FaultyMoto::start(args);
    let faulty = moto.sandbox(sb).await;
    let table = unique_table("awsfault");
    let time = sb.seed_with_accident(&table, ROWS).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let result = async {
        let out = tool(
            state.path(),
            &restore_args(&table, &time),
            &[("AWS_ENDPOINT_URL", moto.url())],
        )
        .await;
        if !out.status.success() {
            return Err(format!("the run failed: {}", describe(&out)));
        }
        compare_rows(
            &Sandbox::rows(&sb.production, &table).await,
            &expected_after(&before, &restored),
        )?;
        let left = faulty.tool_resources(&table).await;
        if left != (vec![], vec![]) {
            return Err(format!("left in moto: {left:?}"));
        }
        let counters = moto.counters();
        let faults = counters["counters"][counter]
            .as_u64()
            .or_else(|| counters[counter].as_u64())
            .unwrap_or(0);
        if faults == 0 {
            return Err(format!(
                "no `{counter}` fault was injected: the cell proved nothing ({counters})"
            ));
        }
        Ok(format!("{faults} {counter}"))
    }
    .await;
    sb.drop_table(&table).await;
    result
}

struct Outcome {
    row: String,
    failure: Option<String>,
}

fn mark(r: &Result<String, String>) -> String {
    match r {
        Ok(note) if note.is_empty() => "pass".into(),
        Ok(note) => format!("pass ({note})"),
        Err(e) => format!(
            "FAIL: {}",
            e.replace('|', "/")
                .replace('\n', " ")
                .chars()
                .take(300)
                .collect::<String>()
        ),
    }
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_anywhere_then_resume_or_abort() {
    let sb = Arc::new(Sandbox::connect().await);
    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(6));
    let mut tasks = Vec::new();
    // FAULT_CELLS=substring runs only the matching cells (and leaves the document alone).
    let only = std::env::var("FAULT_CELLS").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    for (spec, what) in CRASHES.iter().filter(|(spec, _)| wanted(spec)) {
        let (sb, limit) = (sb.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let resumed = cell(&sb, Some(spec), vec![], Then::Resume).await;
            let aborted = cell(&sb, Some(spec), vec![], Then::Abort).await;
            let failure = match (&resumed, &aborted) {
                (Err(e), _) => Some(format!("{spec} then resume: {e}")),
                (_, Err(e)) => Some(format!("{spec} then abort: {e}")),
                _ => None,
            };
            let point = spec.trim_end_matches("=return");
            Outcome {
                row: format!("| `{point}` | {what} | {} | {} |", mark(&resumed), mark(&aborted)),
                failure,
            }
        }));
    }
    // Connections cut mid-copy by a proxy, on either side; the run itself must recover.
    let ports = |name: &str| {
        let v = std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/sandbox env"));
        v.rsplit(':').next().unwrap().parse::<u16>().unwrap()
    };
    let prod_port = ports("RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT");
    let rest_port = ports("RDS_TABLE_RESTORE_RESTORED_ENDPOINT");
    for (side, upstream, var, bytes) in [
        ("restored", rest_port, "RDS_TABLE_RESTORE_RESTORED_ENDPOINT", 60_000u64),
        (
            "production",
            prod_port,
            "RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT",
            40_000u64,
        ),
    ] {
        if !wanted(&format!("proxy-{side}")) {
            continue;
        }
        let (sb, limit) = (sb.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let proxy = CuttingProxy::start(upstream, bytes, 3).await;
            let env = vec![(var, format!("127.0.0.1:{}", proxy.port))];
            let mut r = cell(&sb, None, env, Then::Resume).await;
            let cuts = proxy.cuts_done.load(std::sync::atomic::Ordering::SeqCst);
            if r.is_ok() && cuts == 0 {
                r = Err("the proxy never cut a connection: the cell proved nothing".into());
            }
            let failure = r.as_ref().err().map(|e| format!("{side} connection cuts: {e}"));
            Outcome {
                row: format!(
                    "| proxy on {side} | {cuts} connections cut after {bytes} bytes from the server, mid-copy | {} | n/a |",
                    mark(&r)
                ),
                failure,
            }
        }));
    }
    for (name, signals, then) in [
        ("SIGINT mid-copy", &["INT"][..], Then::Resume),
        ("SIGTERM mid-copy", &["TERM"][..], Then::Abort),
        ("two SIGINTs mid-copy", &["INT", "INT"][..], Then::Resume),
    ] {
        if !wanted(name) {
            continue;
        }
        let (sb, limit) = (sb.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let r = signal_cell(&sb, signals, then).await;
            let failure = r.as_ref().err().map(|e| format!("{name}: {e}"));
            let (resumed, aborted) = match then {
                Then::Resume => (mark(&r), "n/a".to_string()),
                Then::Abort => ("n/a".to_string(), mark(&r)),
            };
            let what = if signals.len() == 1 {
                "exit 130 at a chunk boundary, access revoked, instance kept, resume/abort printed"
            } else {
                "the second signal exits at once (exit 130)"
            };
            Outcome {
                row: format!("| {name} | {what} | {resumed} | {aborted} |"),
                failure,
            }
        }));
    }
    for (name, args, counter, what) in [
        (
            "AWS throttling",
            &["--throttle-every", "3", "--creating-seconds", "8"][..],
            "throttled",
            "every 3rd AWS call throttled, the restore `creating` for 8 s",
        ),
        (
            "AWS 503s",
            &["--server-error-every", "4"][..],
            "errored",
            "every 4th AWS call answered 503",
        ),
        (
            "AWS slow restore",
            &["--creating-seconds", "12"][..],
            "rewritten",
            "the restore `creating` for 12 s",
        ),
    ] {
        if !wanted(name) {
            continue;
        }
        let (sb, limit) = (sb.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let r = aws_fault_cell(&sb, args, counter).await;
            let failure = r.as_ref().err().map(|e| format!("{name}: {e}"));
            Outcome {
                row: format!(
                    "| {name} | {what}; the run must finish on its own | {} | n/a |",
                    mark(&r)
                ),
                failure,
            }
        }));
    }
    if wanted("lock") {
        let (sb, limit) = (sb.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let r = concurrency_cell(&sb).await;
            let failure = r.as_ref().err().map(|e| format!("one run per table: {e}"));
            let row = format!(
                "| second run, same table | refused (exit 3, nothing created) by the state directory's lock, by \
                 GET_LOCK on production from another directory, and beside an unfinished run | {} | n/a |",
                mark(&r)
            );
            Outcome { row, failure }
        }));
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        let o = t.await.unwrap();
        rows.push(o.row);
        failures.extend(o.failure);
    }
    // Last and alone: cleanup looks at every resource in the account.
    if wanted("cleanup") {
        let r = cleanup_phase(&sb).await;
        rows.push(format!(
            "| cleanup | crashed run's instance and group: kept while the run is open here, deleted from a \
             directory that does not know it; untagged look-alikes never touched | n/a | {} |",
            mark(&r)
        ));
        failures.extend(r.err().map(|e| format!("cleanup: {e}")));
    }
    println!("{}", rows.join("\n"));
    if only.is_none() {
        write_matrix(&rows, started.elapsed().as_secs());
    }
    assert!(
        failures.is_empty(),
        "{} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn write_matrix(rows: &[String], seconds: u64) {
    let doc = format!(
        "# Reliability: the fault matrix\n\n\
         Written by `tests/faults.rs` (`crash_anywhere_then_resume_or_abort`) each time it runs; do not edit by hand.\n\n\
         Each cell seeds a table of its own ({ROWS} rows, chunks of {CHUNK}), deletes its EUR rows on production,\n\
         and runs `rds-table-restore restore` with a crash point set, so the process exits on the spot (code 86)\n\
         at that place. Then `rds-table-restore resume RUN_ID` (or, in a separate cell, `abort RUN_ID`) runs with\n\
         no crash point. A cell passes when, read from outside the tool:\n\n\
         - after **resume**: production holds exactly its own rows plus every restored row it lacked, each once\n\
           and equal to the restored row value for value;\n\
         - after **abort**: none of production's rows is lost or changed, and every other row is an exact\n\
           restored row (chunks committed before the crash);\n\
         - the AWS twin (moto behind real AWS's rules: scripts/aws_twin.py) describes no RDS instance and no\n\
           security group the run created, once its pending deletions are over; no other group's ingress\n\
           rules changed, and the source instance and its security groups are described exactly as before.\n\n\
         The order of side effects is real AWS's: the copy's own group (no rule) before the restore, passed to\n\
         it; the rule once the copy is available; the rule revoked after the data work; the instance deleted\n\
         and waited for until AWS no longer describes it; then the group.\n\n\
         | crash point | the process dies | then resume | then abort |\n|---|---|---|---|\n{}\n\n\
         Proxy rows: a TCP proxy between the tool and one MariaDB server resets connections mid-stream (TLS\n\
         runs through it); the run must reconnect, continue from its last committed chunk and finish exact.\n\n\
         {} cells, {seconds} s.\n",
        rows.join("\n"),
        rows.len()
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reliability.md");
    std::fs::write(&path, doc).unwrap();
}
