//! The three ways the tool is used, over the sandbox: the guided wizard in a real terminal
//! (tmux), the scripted mode (no prompt without a terminal, exit codes, flag > env > config),
//! and rehearsals (`plan` changes nothing, `drill` never writes the real table).

mod common;

use std::time::{Duration, Instant};

use common::{binary, command, compare_rows, describe, expected_after, unique_table, Sandbox};

/// A terminal of its own: the binary runs in a tmux session on a private socket.
struct Terminal {
    socket: String,
    _script: tempfile::TempDir,
}

impl Terminal {
    fn start(args: &[&str], unset: &[&str]) -> Terminal {
        let socket = format!("rtr-test-{}", rand::random::<u32>());
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        let mut text = String::from("#!/bin/bash\n");
        for (k, v) in std::env::vars() {
            if k.starts_with("RDS_TABLE_RESTORE_") || k.starts_with("AWS_") || k.starts_with("SANDBOX_") {
                text.push_str(&format!("export {k}='{}'\n", v.replace('\'', "'\\''")));
            }
        }
        for u in unset {
            text.push_str(&format!("unset {u}\n"));
        }
        let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))).collect();
        text.push_str(&format!(
            "'{}' {}\necho \"EXIT=$?\"\nsleep 600\n",
            binary().display(),
            quoted.join(" ")
        ));
        std::fs::write(&script, text).unwrap();
        let ok = std::process::Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "220",
                "-y",
                "60",
                "bash",
            ])
            .arg(&script)
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux runs the wizard in a real terminal: apt-get install tmux");
        assert!(ok.success());
        Terminal { socket, _script: dir }
    }

    fn screen(&self) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "t", "-S", "-200"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Waits until the screen shows `text`.
    async fn expect(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "waited for {text:?}; the screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn send(&self, keys: &[&str]) {
        let ok = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t"])
            .args(keys)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[tokio::test]
async fn the_wizard_leads_a_full_restore_in_a_real_terminal() {
    let sb = Sandbox::connect().await;
    let table = unique_table("wizard");
    let time = sb.seed_with_accident(&table, 2000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_string_lossy().to_string();
    // Only the database is given; the wizard asks for the rest.
    let term = Terminal::start(
        &["restore", "--database", "shop", "--state-dir", &dir],
        &["RDS_TABLE_RESTORE_CLIENT_CIDR", "RDS_TABLE_RESTORE_YES"],
    );
    let screen = term.expect("RDS instance or DB cluster the table lived in").await;
    assert!(
        screen.contains("prod-aurora (DB cluster)") && screen.contains("prod-maz (DB cluster)"),
        "clusters are listed beside instances, with their windows: {screen}"
    );
    term.send(&["prod-db", "Enter"]);
    let screen = term.expect("Restore to (just before the damage").await;
    assert!(
        screen.contains("can be restored to any second from") && screen.contains("local"),
        "{screen}"
    );
    term.send(&["ten past nine", "Enter"]);
    term.expect("with its zone").await;
    term.send(&[&time, "Enter"]);
    term.expect(&format!("Restoring to {time} UTC.")).await;
    term.expect("Table to bring back").await;
    term.send(&[&table, "Enter"]);
    let screen = term.expect("How to bring the rows back").await;
    assert!(
        screen.contains("missing-rows: insert into the table only"),
        "each mode is explained:\n{screen}"
    );
    term.send(&["missing-rows", "Enter"]);
    term.expect("Your address as seen by AWS").await;
    term.send(&["0.0.0.0/0", "Enter"]);
    term.expect("--allow-any-source").await;
    term.send(&["127.0.0.1", "Enter"]);
    let screen = term.expect("Proceed?").await;
    for shown in [
        "Plan for run",
        "restore-prod-db-wizard",
        "from 127.0.0.1/32 only",
        "burstable",
        "missing-rows",
    ] {
        assert!(screen.contains(shown), "the plan screen lacks {shown:?}:\n{screen}");
    }
    term.send(&["y"]);
    let screen = term.expect("EXIT=").await;
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("✔ [10/10] report"),
        "the step list ticks every step off:\n{screen}"
    );
    compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &expected_after(&before, &restored),
    )
    .unwrap();
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn the_wizard_finds_the_second_in_the_binlog_for_an_operator_who_does_not_know_it() {
    let sb = Sandbox::connect().await;
    let table = unique_table("wizbin");
    let time = sb.seed_with_accident(&table, 2000).await;
    let deleted: u64 = {
        use mysql_async::prelude::Queryable;
        let mut c = sb.restored.get_conn().await.unwrap();
        c.query_first(format!("SELECT COUNT(*) FROM shop.`{table}` WHERE currency = 'EUR'"))
            .await
            .unwrap()
            .unwrap()
    };
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_string_lossy().to_string();
    let term = Terminal::start(
        &[
            "plan",
            "--instance",
            "prod-db",
            "--database",
            "shop",
            "--state-dir",
            &dir,
        ],
        &["RDS_TABLE_RESTORE_YES"],
    );
    term.expect("Answer `binlog`").await;
    term.send(&["binlog", "Enter"]);
    term.expect("Table to bring back").await;
    term.send(&[&table, "Enter"]);
    let screen = term.expect("the second before the damage)").await;
    assert!(screen.contains(&format!("{deleted} rows deleted")), "{screen}");
    // The proposal: the second before the DELETE, which ran after the recorded time.
    let proposed = screen
        .split("Enter for ")
        .nth(1)
        .and_then(|rest| rest.split(" UTC").next())
        .unwrap_or_else(|| panic!("no proposal on screen:\n{screen}"))
        .to_string();
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    assert!(
        at(&proposed) >= at(&time) && at(&proposed) <= at(&time) + chrono::Duration::seconds(5),
        "proposed {proposed}, restore time recorded before the accident {time}"
    );
    term.send(&["Enter"]);
    term.expect(&format!("Restoring to {proposed} UTC.")).await;
    term.expect("How to bring the rows back").await;
    term.send(&["missing-rows", "Enter"]);
    let screen = term.expect("EXIT=").await;
    assert!(
        screen.contains("EXIT=0") && screen.contains("Nothing was created"),
        "{screen}"
    );
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn without_a_terminal_a_missing_choice_is_a_usage_error_naming_the_flag() {
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(["restore", "--instance", "prod-db", "--database", "shop", "--yes"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--time, --table are required: there is no terminal to ask on"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(state.path()).map(|d| d.count()).unwrap_or(0) == 0,
        "nothing was written"
    );
}

#[tokio::test]
async fn plan_checks_everything_and_changes_nothing() {
    let sb = Sandbox::connect().await;
    let table = unique_table("plan");
    let time = sb.seed_with_accident(&table, 300).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let source = sb.source_description().await;
    let ingress = sb.all_ingress().await;
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args([
            "plan",
            "--instance",
            "prod-db",
            "--database",
            "shop",
            "--table",
            &table,
            "--time",
            &time,
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for shown in [
        "Plan for run",
        "restore-prod-db-plan",
        "tcp/3306 from 127.0.0.1/32 only",
        "Nothing was created",
    ] {
        assert!(text.contains(shown), "{shown:?} missing:\n{text}");
    }
    assert_eq!(Sandbox::rows(&sb.production, &table).await, before);
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    assert_eq!(sb.source_description().await, source);
    assert_eq!(sb.all_ingress().await, ingress);
    assert_eq!(
        std::fs::read_dir(state.path()).map(|d| d.count()).unwrap_or(0),
        0,
        "no state file"
    );

    let bad = command(state.path())
        .args([
            "plan",
            "--instance",
            "prod-db",
            "--database",
            "shop",
            "--table",
            "nope",
            "--time",
            &time,
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(3), "{}", describe(&bad));
    sb.drop_table(&table).await;
}

async fn table_exists(sb: &Sandbox, db: &str, table: &str) -> bool {
    use mysql_async::prelude::Queryable;
    let mut c = sb.production.get_conn().await.unwrap();
    let n: Option<u64> = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await
        .unwrap();
    n == Some(1)
}

#[tokio::test]
async fn a_drill_rehearses_end_to_end_and_never_writes_the_real_table() {
    let sb = Sandbox::connect().await;
    let table = unique_table("drill");
    let time = sb.seed_with_accident(&table, 2000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let source = sb.source_description().await;
    let base = [
        "drill",
        "--instance",
        "prod-db",
        "--database",
        "shop",
        "--table",
        &table,
        "--time",
        &time,
        "--yes",
    ];

    let out = command(state.path())
        .args(base)
        .arg("--report-dir")
        .arg(reports.path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        Sandbox::rows(&sb.production, &table).await,
        before,
        "the real table is untouched"
    );
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    let files: Vec<_> = std::fs::read_dir(reports.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let md = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".drill.md"))
        .expect("a Markdown report");
    let json = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".drill.json"))
        .expect("a JSON report");
    let text = std::fs::read_to_string(md).unwrap();
    assert!(
        text.contains(": PASS") && text.contains("Time to recover") && text.contains("Latest restorable time"),
        "{text}"
    );
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["kind"], "drill");
    let side = report["target_table"]
        .as_str()
        .unwrap()
        .trim_start_matches("shop.")
        .to_string();
    assert!(side.starts_with(&format!("{table}__drill_")), "{side}");
    assert!(
        !table_exists(&sb, "shop", &side).await,
        "the side table is dropped without --keep"
    );
    for p in [md, json] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let timeline = common::state_files(state.path())[0].with_extension("timeline.md");
    assert!(std::fs::read_to_string(timeline).unwrap().contains("teardown finished"));

    // --keep leaves the side table holding exactly the restored rows.
    let kept = command(state.path())
        .args(base)
        .args(["--keep", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert!(kept.status.success(), "{}", describe(&kept));
    let summary = common::summary(&kept.stdout);
    let instance = summary["restored_instance"].as_str().unwrap();
    assert!(
        instance.starts_with("drill-prod-db-"),
        "a rehearsal's instance says so: {instance}"
    );
    let side = summary["target_table"]
        .as_str()
        .unwrap()
        .trim_start_matches("shop.")
        .to_string();
    assert_eq!(
        Sandbox::rows(&sb.production, &side).await,
        restored,
        "the side table holds the restored rows"
    );
    assert_eq!(Sandbox::rows(&sb.production, &table).await, before);
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{side}`")).await;

    // --drill-database loads into a scratch database under the same table name.
    let scratch = format!("scratch_{}", &table[6..]);
    Sandbox::exec(&sb.production, &format!("CREATE DATABASE `{scratch}`")).await;
    let out = command(state.path())
        .args(base)
        .args(["--drill-database", &scratch, "--keep"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(table_exists(&sb, &scratch, &table).await);
    assert_eq!(Sandbox::rows(&sb.production, &table).await, before);
    let again = command(state.path())
        .args(base)
        .args(["--drill-database", &scratch])
        .output()
        .await
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(3),
        "an existing drill table is refused: {}",
        describe(&again)
    );
    Sandbox::exec(&sb.production, &format!("DROP DATABASE `{scratch}`")).await;
    assert_eq!(
        sb.source_description().await,
        source,
        "drills leave the source instance and its groups alone"
    );
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn a_verification_mismatch_exits_5() {
    let sb = Sandbox::connect().await;
    let table = unique_table("mismatch");
    let time = sb.seed_with_accident(&table, 500).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    // A trigger on production alters what is inserted: the restored rows do not arrive as they left.
    Sandbox::exec(
        &sb.production,
        &format!("CREATE TRIGGER `{table}_t` BEFORE INSERT ON `{table}` FOR EACH ROW SET NEW.description = 'altered'"),
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
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
            "--yes",
        ])
        .args(["--on-failure", "teardown"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("verification failed"), "{}", describe(&out));
    assert!(
        err.contains("reads back in production with other values than on the restored server"),
        "the row is named: {err}"
    );
    assert_eq!(
        Sandbox::rows(&sb.production, &table).await,
        before,
        "the chunk whose check failed was rolled back, not committed"
    );
    assert!(
        err.contains("has triggers that fire on the rows this run inserts")
            && err.contains(&format!("BEFORE INSERT {table}_t")),
        "the trigger is reported before anything is written: {err}"
    );
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn a_flag_beats_the_environment_which_beats_the_config_file() {
    let sb = Sandbox::connect().await;
    let table = unique_table("config");
    let time = sb.seed_with_accident(&table, 100).await;
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("restore.toml");
    std::fs::write(
        &config,
        format!(
            "instance = \"prod-db\"\ndatabase = \"shop\"\ntable = \"{table}\"\ntime = \"{time}\"\n\
             client-cidr = \"10.9.9.9/32\"\ninstance-class = \"db.r6g.large\"\n"
        ),
    )
    .unwrap();
    let plan = |extra: Vec<String>, env_cidr: Option<&str>| {
        let mut cmd = command(state.path());
        cmd.arg("plan").arg("--config").arg(&config).args(extra);
        match env_cidr {
            Some(c) => cmd.env("RDS_TABLE_RESTORE_CLIENT_CIDR", c),
            None => cmd.env_remove("RDS_TABLE_RESTORE_CLIENT_CIDR"),
        };
        async move { cmd.output().await.unwrap() }
    };
    let out = plan(vec![], None).await;
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("from 10.9.9.9/32 only"), "the file's value: {text}");
    assert!(text.contains("db.r6g.large: memory optimized"), "{text}");
    let text = String::from_utf8_lossy(&plan(vec![], Some("10.8.8.8/32")).await.stdout).to_string();
    assert!(
        text.contains("from 10.8.8.8/32 only"),
        "the environment beats the file: {text}"
    );
    let out = plan(vec!["--client-cidr".into(), "10.7.7.7/32".into()], Some("10.8.8.8/32")).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("from 10.7.7.7/32 only"),
        "the flag beats both"
    );

    std::fs::write(&config, "clinet-cidr = \"10.9.9.9/32\"\n").unwrap();
    let out = plan(vec![], None).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`clinet-cidr`"),
        "{}",
        describe(&out)
    );
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn side_table_mode_loads_a_kept_table_and_touches_nothing_else() {
    let sb = Sandbox::connect().await;
    let table = unique_table("sidemode");
    let time = sb.seed_with_accident(&table, 1000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
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
            "--yes",
        ])
        .args(["--mode", "side-table", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let summary = common::summary(&out.stdout);
    assert_eq!(summary["kind"], "restore");
    let side = summary["target_table"]
        .as_str()
        .unwrap()
        .trim_start_matches("shop.")
        .to_string();
    assert!(side.starts_with(&format!("{table}__restored_")), "{side}");
    assert_eq!(
        Sandbox::rows(&sb.production, &table).await,
        before,
        "the real table is untouched"
    );
    assert_eq!(
        Sandbox::rows(&sb.production, &side).await,
        restored,
        "the side table holds the restored rows"
    );
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    Sandbox::exec(&sb.production, &format!("DROP TABLE `{side}`")).await;
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn dump_file_records_exactly_the_rows_inserted_and_never_overwrites_a_file() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::connect().await;
    let table = unique_table("dumpfile");
    let time = sb.seed_with_accident(&table, 1000).await;
    let state = tempfile::tempdir().unwrap();
    let dump = state.path().join("applied.sql");
    std::fs::write(&dump, "keep me").unwrap();
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
    ];
    let refused = command(state.path())
        .args(args)
        .arg("--dump-file")
        .arg(&dump)
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert_eq!(std::fs::read_to_string(&dump).unwrap(), "keep me");
    std::fs::remove_file(&dump).unwrap();

    let out = command(state.path())
        .args(args)
        .args(["--chunk-size", "100", "--output", "json"])
        .arg("--dump-file")
        .arg(&dump)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let inserted = common::summary(&out.stdout)["rows_inserted"].as_u64().unwrap();
    assert!(inserted > 0);
    let text = std::fs::read_to_string(&dump).unwrap();
    let rows_in_file = text.lines().filter(|l| l.starts_with('(')).count() as u64;
    assert_eq!(rows_in_file, inserted, "one line per inserted row");
    assert!(text.contains("SET NAMES utf8mb4;") && text.contains(&format!("INSERT INTO `shop`.`{table}`")));
    assert_eq!(std::fs::metadata(&dump).unwrap().permissions().mode() & 0o777, 0o600);
    sb.drop_table(&table).await;
}
