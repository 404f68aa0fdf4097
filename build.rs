//! Records the git commit the binary is built from, for `--version` (and so for bug reports
//! and drill reports). Outside a git checkout (a source tarball) it says `unknown commit`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .map(|c| format!("commit {c}"))
        .unwrap_or_else(|| "unknown commit".into());
    println!("cargo:rustc-env=RDS_TABLE_RESTORE_COMMIT={commit}");
    // A new commit moves HEAD or the branch it points to.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
