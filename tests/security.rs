//! Security over the sandbox: secrets never leak, TLS refuses what it should, names are quoted,
//! `--where` stays one predicate, credentials come from where they should. Everything is read
//! from outside the tool: its output, its files, its argv, MariaDB and moto.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{command, compare_rows, describe, expected_after, state_files, unique_table, Sandbox};
use mysql_async::prelude::Queryable;

fn restore_cmd(state: &Path, table: &str, time: &str) -> tokio::process::Command {
    let mut cmd = command(state);
    cmd.args([
        "restore",
        "--instance",
        "prod-db",
        "--database",
        "shop",
        "--table",
        table,
        "--time",
        time,
        "--yes",
    ]);
    cmd
}

fn password() -> String {
    std::env::var("RDS_TABLE_RESTORE_DB_PASSWORD").expect("run scripts/sandbox env first")
}

#[tokio::test]
async fn a_password_file_others_can_read_is_refused_and_a_private_one_works() {
    let sb = Sandbox::connect().await;
    let table = unique_table("pwfile");
    let time = sb.seed_with_accident(&table, 500).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, format!("{}\n", password())).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let open = restore_cmd(state.path(), &table, &time)
        .arg("--db-password-file")
        .arg(&file)
        .env_remove("RDS_TABLE_RESTORE_DB_PASSWORD")
        .output()
        .await
        .unwrap();
    assert_eq!(open.status.code(), Some(3), "{}", describe(&open));
    assert!(
        String::from_utf8_lossy(&open.stderr).contains("chmod 600"),
        "{}",
        describe(&open)
    );
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = restore_cmd(state.path(), &table, &time)
        .arg("--db-password-file")
        .arg(&file)
        .env_remove("RDS_TABLE_RESTORE_DB_PASSWORD")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &expected_after(&before, &restored),
    )
    .unwrap();
    sb.drop_table(&table).await;
}

/// The process's argv as the kernel shows it to every user of the machine.
async fn read_argv(pid: u32) -> Vec<u8> {
    for _ in 0..100 {
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if argv.windows(7).any(|w| w == b"restore") {
            return argv;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Vec::new()
}

/// Runs a full restore while watching the process: its argv, and afterwards its stdout,
/// stderr and every file in the state directory. The password must be in none of them.
#[tokio::test]
async fn the_password_never_reaches_argv_output_or_files() {
    let sb = Sandbox::connect().await;
    let pw = password();
    for (output, verbosity) in [("text", "-vv"), ("json", "-v")] {
        let table = unique_table("leak");
        let time = sb.seed_with_accident(&table, 2000).await;
        let state = tempfile::tempdir().unwrap();
        let child = restore_cmd(state.path(), &table, &time)
            .args(["--output", output, "--chunk-size", "200", verbosity])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let argv = read_argv(child.id().unwrap()).await;
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        assert!(!argv.is_empty(), "could not read the argv");
        let mut places = vec![
            ("argv", argv),
            ("stdout", out.stdout.clone()),
            ("stderr", out.stderr.clone()),
        ];
        for f in std::fs::read_dir(state.path()).unwrap() {
            let path = f.unwrap().path();
            if path.is_file() {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                if path.extension().is_some_and(|x| x == "json") {
                    assert_eq!(mode, 0o600, "{} is mode {mode:o}", path.display());
                }
                places.push(("state file", std::fs::read(&path).unwrap()));
            }
        }
        for (place, bytes) in places {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&pw),
                "the password appears in the {place} ({output} output)"
            );
        }
        sb.drop_table(&table).await;
    }
}

#[tokio::test]
async fn a_secrets_manager_secret_supplies_user_and_password() {
    let sb = Sandbox::connect().await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let table = unique_table("secret");
    let good = sm
        .create_secret()
        .name(format!("rds!{table}"))
        .secret_string(serde_json::json!({"username": "restore_tool", "password": password()}).to_string())
        .send()
        .await
        .unwrap();
    let bad = sm
        .create_secret()
        .name(format!("not-json-{table}"))
        .secret_string(format!("plain {}", password()))
        .send()
        .await
        .unwrap();
    let time = sb.seed_with_accident(&table, 500).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();

    let refused = restore_cmd(state.path(), &table, &time)
        .args(["--db-secret-arn", bad.arn().unwrap()])
        .env_remove("RDS_TABLE_RESTORE_DB_PASSWORD")
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(3), "{}", describe(&refused));
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("is not JSON") && !text.contains(&password()), "{text}");

    let out = restore_cmd(state.path(), &table, &time)
        .args(["--db-secret-arn", good.arn().unwrap()])
        .env_remove("RDS_TABLE_RESTORE_DB_PASSWORD")
        .env_remove("RDS_TABLE_RESTORE_DB_USER")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &expected_after(&before, &restored),
    )
    .unwrap();
    for f in state_files(state.path()) {
        assert!(!std::fs::read_to_string(f).unwrap().contains(&password()));
    }
    sb.drop_table(&table).await;
}

/// A CA and nothing else, to prove a server certificate from the sandbox's CA is refused.
fn other_ca(dir: &Path) -> std::path::PathBuf {
    let (key, pem) = (dir.join("other.key"), dir.join("other.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=another CA",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&pem)
        .output()
        .unwrap();
    assert!(ok.status.success(), "openssl: {}", String::from_utf8_lossy(&ok.stderr));
    pem
}

#[tokio::test]
async fn tls_refuses_a_certificate_from_another_ca_and_one_for_another_name() {
    let sb = Sandbox::connect().await;
    // In eu-west-1, moto names the instance prod-db.aaaaaaaaaa.eu-west-1.rds.amazonaws.com,
    // which the sandbox's certificate does not cover. (Started first: its prod-db must exist
    // before the moment restored to.)
    let moto = common::FaultyMoto::start_in("eu-west-1", &[]);
    let table = unique_table("tls");
    let time = sb.seed_with_accident(&table, 300).await;
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();

    let out = restore_cmd(state.path(), &table, &time)
        .arg("--ssl-ca")
        .arg(other_ca(dir.path()))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS verification failed"),
        "{}",
        describe(&out)
    );
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));

    let wrong_name = restore_cmd(state.path(), &table, &time)
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_REGION", "eu-west-1")
        .output()
        .await
        .unwrap();
    assert_eq!(wrong_name.status.code(), Some(3), "{}", describe(&wrong_name));
    let text = String::from_utf8_lossy(&wrong_name.stderr).to_string();
    assert!(
        text.contains("eu-west-1") && text.contains("TLS verification failed"),
        "{text}"
    );

    // verify-ca checks the chain but not the name: it goes through, with a warning.
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let lax = restore_cmd(state.path(), &table, &time)
        .args(["--tls", "verify-ca"])
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_REGION", "eu-west-1")
        .output()
        .await
        .unwrap();
    assert!(lax.status.success(), "{}", describe(&lax));
    assert!(
        String::from_utf8_lossy(&lax.stderr).contains("warning: --tls VerifyCa"),
        "{}",
        describe(&lax)
    );
    compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &expected_after(&before, &restored),
    )
    .unwrap();
    sb.drop_table(&table).await;
}

#[tokio::test]
async fn hostile_table_and_column_names_are_quoted_everywhere() {
    let sb = Sandbox::connect().await;
    let table = format!("bill`ing; DROP 'x\" ü {}", &unique_table("h")[2..]);
    let q = |s: &str| format!("`{}`", s.replace('`', "``"));
    let create = format!(
        "CREATE TABLE {} (`select` BIGINT PRIMARY KEY, {} VARCHAR(20), {} TEXT, {} INT) CHARSET utf8mb4",
        q(&table),
        q("a`b"),
        q("quo'te\""),
        q("ünï co;l")
    );
    let fill = format!(
        "INSERT INTO {} SELECT seq, CONCAT('v', seq), CONCAT('it''s ', seq), seq % 3 FROM seq_1_to_1000",
        q(&table)
    );
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &create).await;
        Sandbox::exec(pool, &fill).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(
        &sb.production,
        &format!("DELETE FROM {} WHERE {} = 1", q(&table), q("ünï co;l")),
    )
    .await;

    let rows = |pool: mysql_async::Pool| {
        let sql = format!("SELECT * FROM shop.{} ORDER BY `select`", q(&table));
        async move {
            let mut c = pool.get_conn().await.unwrap();
            let r: Vec<mysql_async::Row> = c.query(sql).await.unwrap();
            r.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>()
        }
    };
    let restored = rows(sb.restored.clone()).await;
    let state = tempfile::tempdir().unwrap();
    let out = restore_cmd(state.path(), &table, &time).output().await.unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(rows(sb.production.clone()).await, restored, "every row is back");
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &format!("DROP TABLE {}", q(&table))).await;
    }
}

#[tokio::test]
async fn where_restores_only_matching_rows_and_stays_one_predicate() {
    let sb = Sandbox::connect().await;
    let table = unique_table("where");
    let time = sb.seed_with_accident(&table, 2000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let state = tempfile::tempdir().unwrap();
    // Refused in the value itself (a usage error, 2), or by production's server (validation, 3).
    for (predicate, expected, code) in [
        ("1=1; DROP TABLE billing", "contains `;`", 2),
        (
            "1) UNION SELECT 1 FROM mysql.user WHERE (1",
            "closes a parenthesis it did not open",
            2,
        ),
        ("no_such_column = 1", "does not work on production", 3),
    ] {
        let out = restore_cmd(state.path(), &table, &time)
            .args(["--where", predicate])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{predicate}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{predicate}: {}",
            describe(&out)
        );
        assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]), "{predicate}");
        assert_eq!(Sandbox::rows(&sb.production, &table).await, before, "{predicate}");
    }
    let out = restore_cmd(state.path(), &table, &time)
        .args(["--where", "customer_id < 1000"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let after = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let wanted: Vec<_> = restored
        .iter()
        .filter(|r| {
            matches!(r[1], mysql_async::Value::UInt(c) if c < 1000)
                || matches!(r[1], mysql_async::Value::Int(c) if c < 1000)
        })
        .cloned()
        .collect();
    compare_rows(&after, &expected_after(&before, &wanted)).unwrap();
    assert!(
        after.len() < expected_after(&before, &restored).len(),
        "rows outside --where stay missing"
    );
    sb.drop_table(&table).await;
}

/// The sandbox plays RDS IAM authentication with PAM: `scripts/sandbox_iam_check` accepts only a
/// well-formed SigV4 `connect` token for `iam_user` and logs the host it was signed for.
#[tokio::test]
async fn iam_auth_logs_in_with_tokens_signed_for_the_rds_names() {
    let sb = Sandbox::connect().await;
    let log = Path::new(&std::env::var("SANDBOX_DIR").unwrap()).join("iam/tokens.log");
    assert!(
        log.parent().unwrap().exists(),
        "the sandbox has no IAM user: scripts/sandbox up sets it up when run as root (it writes /etc/pam.d)"
    );
    // The check is real: a password that is not a token is refused.
    let port: u16 = std::env::var("RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT")
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ca = std::env::var("RDS_TABLE_RESTORE_SSL_CA").unwrap();
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("iam_user"))
        .pass(Some("not-a-token"))
        .enable_cleartext_plugin(true)
        .ssl_opts(mysql_async::SslOpts::default().with_root_certs(vec![std::path::PathBuf::from(ca).into()]));
    assert!(
        mysql_async::Conn::new(opts).await.is_err(),
        "PAM let a plain password in"
    );

    let table = unique_table("iam");
    let time = sb.seed_with_accident(&table, 500).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let state = tempfile::tempdir().unwrap();
    let seen = std::fs::read_to_string(&log).unwrap_or_default().lines().count();

    let refused = restore_cmd(state.path(), &table, &time)
        .args(["--iam-auth", "--db-user", "iam_user", "--tls", "disabled"])
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(3), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("needs TLS"),
        "{}",
        describe(&refused)
    );

    let out = restore_cmd(state.path(), &table, &time)
        .args(["--iam-auth", "--db-user", "iam_user", "--output", "json"])
        .env_remove("RDS_TABLE_RESTORE_DB_PASSWORD")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &expected_after(&before, &restored),
    )
    .unwrap();
    let report = common::summary(&out.stdout);
    let target = report["restored_instance"].as_str().unwrap();
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .skip(seen)
        .map(str::to_string)
        .collect();
    let signed_for = |host: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(&format!("ok {host}.aaaaaaaaaa.us-east-1.rds.amazonaws.com:3306")))
    };
    assert!(
        signed_for("prod-db"),
        "no token signed for production's RDS name: {lines:?}"
    );
    assert!(
        signed_for(target),
        "no token signed for the restored instance's RDS name: {lines:?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("refused")), "{lines:?}");
    sb.drop_table(&table).await;
}
