//! The conventions of a well-kept command line, checked on the real binary: usage errors all
//! at once before any password or network call, completions that a shell accepts, a man page
//! that groff reads without a warning, a version that names its commit, and scripts that say
//! what they build before they build it.

use std::process::Command;

use assert_cmd::prelude::*;

fn bin() -> Command {
    let mut cmd = Command::cargo_bin("rds-table-restore").unwrap();
    // No sandbox needed here, and none of its settings may leak in: every choice is given or
    // missing on purpose, and AWS and the databases point at a port where nothing listens.
    for (key, _) in std::env::vars() {
        if key.starts_with("RDS_TABLE_RESTORE_") || key.starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

#[test]
fn usage_errors_come_all_at_once_before_the_password_and_any_call() {
    let started = std::time::Instant::now();
    let out = bin()
        .args(["restore", "--instance", "prod-db", "--database", "shop", "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for flag in ["--time", "--table", "--client-cidr"] {
        assert!(stderr.contains(flag), "{flag} not named: {stderr}");
    }
    assert!(
        !stderr.contains("password"),
        "the password was asked for first: {stderr}"
    );
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error")).count(), 1, "{stderr}");
    // An AWS call to a closed port would be retried for seconds by the SDK.
    assert!(
        started.elapsed().as_secs() < 5,
        "took {:?}: it called out",
        started.elapsed()
    );
}

#[test]
fn missing_choices_malformed_values_and_conflicting_flags_are_reported_together() {
    let out = bin()
        .args([
            "restore",
            "--instance",
            "prod-db",
            "--database",
            "shop",
            "--time",
            "ten past nine",
            "--client-cidr",
            "203.0.113.7/33",
            "--parallel",
            "2",
            "--dump-file",
            "/nonexistent-dir/rows.sql",
            "--yes",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for named in [
        "--table",
        "ten past nine",
        "203.0.113.7/33",
        "--parallel",
        "/nonexistent-dir",
    ] {
        assert!(stderr.contains(named), "{named} not reported: {stderr}");
    }
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error: ")).count(),
        5,
        "{stderr}"
    );
    assert!(!stderr.contains("password"), "{stderr}");
}

#[test]
fn completions_are_accepted_by_bash_and_printed_for_every_shell() {
    let script = bin().args(["completions", "bash"]).output().unwrap();
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("completion.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let bash = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p rds-table-restore", file.display()))
        .output()
        .unwrap();
    assert!(
        bash.status.success() && String::from_utf8_lossy(&bash.stdout).contains("rds-table-restore"),
        "bash did not take the completion: {}",
        String::from_utf8_lossy(&bash.stderr)
    );
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = bin().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && out.stdout.len() > 500, "{shell}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("cleanup"), "{shell}");
    }
}

#[test]
fn the_man_page_reads_without_warnings_and_has_the_exit_codes_and_variables() {
    let page = bin().arg("man").output().unwrap();
    assert!(page.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rds-table-restore.1");
    std::fs::write(&file, &page.stdout).unwrap();
    let groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output()
        .expect("groff (Debian's groff-base, which man-db needs)");
    assert!(
        groff.status.success() && groff.stderr.is_empty(),
        "groff warns: {}",
        String::from_utf8_lossy(&groff.stderr)
    );
    let text = String::from_utf8_lossy(&page.stdout);
    for wanted in ["EXIT STATUS", "ENVIRONMENT", "RDS_TABLE_RESTORE_DB_PASSWORD", "130"] {
        assert!(text.contains(wanted), "{wanted} missing");
    }
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let out = bin().arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(env!("CARGO_PKG_VERSION")),
        "{text}"
    );
    let in_git = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !in_git {
        assert!(text.contains("unknown commit"), "{text}");
        return;
    }
    // The commit named is one of this repository's (HEAD's, or an ancestor's when the binary
    // predates a commit made since).
    let hash = text
        .split("commit ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no commit in {text}"));
    let kind = Command::new("git")
        .args(["cat-file", "-t", hash])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&kind.stdout).trim(), "commit", "{text}");
}

#[test]
fn the_demo_and_the_tests_say_what_they_build_before_building_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (script, word) in [("scripts/demo", "demo:"), ("scripts/test", "test:")] {
        let text = std::fs::read_to_string(root.join(script)).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let at = |pred: &dyn Fn(&str) -> bool| lines.iter().position(|l| pred(l));
        let note = at(&|l| l.starts_with("echo") && l.contains(word) && l.contains("10-20 minutes"))
            .unwrap_or_else(|| panic!("{script} says nothing before its build"));
        let build = at(&|l| l.starts_with("cargo ")).unwrap_or_else(|| panic!("{script} builds nothing"));
        assert!(note < build, "{script}: the note comes after the build");
        assert!(
            !lines.iter().any(|l| l.starts_with("cargo") && l.contains("--quiet")),
            "{script} hides cargo's progress"
        );
    }
}
