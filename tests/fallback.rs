//! A production server that refuses `LOAD DATA LOCAL` (`local_infile=OFF`): `--load-method
//! auto` falls back to INSERT and says so, `--load-method load-data` fails. The switch is
//! server-wide, so this is the only test in its binary (cargo runs test binaries one after
//! another) and it turns LOCAL back on however it ends.

mod common;

use common::{command, describe, unique_table, Sandbox};

struct LocalInfileOff;

impl LocalInfileOff {
    async fn new(pool: &mysql_async::Pool) -> LocalInfileOff {
        Sandbox::exec(pool, "SET GLOBAL local_infile = 0").await;
        LocalInfileOff
    }
}

impl Drop for LocalInfileOff {
    fn drop(&mut self) {
        // With the mariadb client over the server's socket, not the test's pool: Drop may run
        // while the test's runtime is blocked, and the pool needs that runtime.
        let socket = format!("{}/production/mariadbd.sock", common::env_var("SANDBOX_DIR"));
        let done = std::process::Command::new("mariadb")
            .args(["--socket", &socket, "-uroot", "-e", "SET GLOBAL local_infile = 1"])
            .status();
        assert!(
            done.is_ok_and(|s| s.success()),
            "could not turn local_infile back on: run `scripts/sandbox down && scripts/sandbox up`"
        );
    }
}

#[tokio::test]
async fn without_local_infile_auto_falls_back_to_insert_and_load_data_fails() {
    let sb = Sandbox::connect().await;
    let table = unique_table("billing_nolocal");
    let time = sb.seed_with_accident(&table, 3_000).await;
    let before = Sandbox::rows(&sb.production, &table).await;
    let restored = Sandbox::rows(&sb.restored, &table).await;
    let _off = LocalInfileOff::new(&sb.production).await;
    let mut args = common::restore_args(&table, &time);
    args.extend(["--yes", "--on-failure", "teardown"]);

    let state = tempfile::tempdir().unwrap();
    let refused = command(state.path())
        .args(&args)
        .args(["--load-method", "load-data"])
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("LOAD DATA LOCAL refused"),
        "{}",
        describe(&refused)
    );
    assert_eq!(Sandbox::rows(&sb.production, &table).await, before, "nothing written");

    let state = tempfile::tempdir().unwrap();
    let out = command(state.path())
        .args(&args)
        .args(["--output", "json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let copy = common::events(&out.stdout)
        .into_iter()
        .find(|e| e["event"] == "step_finished" && e["step"] == "copy")
        .expect("the copy finished");
    assert!(
        copy["summary"]
            .as_str()
            .unwrap()
            .contains("INSERT, as the server refused LOAD DATA LOCAL"),
        "{copy}"
    );
    common::compare_rows(
        &Sandbox::rows(&sb.production, &table).await,
        &common::expected_after(&before, &restored),
    )
    .unwrap();
    assert_eq!(sb.tool_resources(&table).await, (vec![], vec![]));
    sb.drop_table(&table).await;
}
