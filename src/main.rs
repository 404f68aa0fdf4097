//! The edge: parses the command line, reads the password, wires the real adapters to the
//! state machine, and turns the outcome into a report and an exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Parser;

use rds_table_restore::aws::{load_config, AwsEc2, AwsRds};
use rds_table_restore::cli::{Cli, Command, Output, RestoreArgs};
use rds_table_restore::error::Error;
use rds_table_restore::machine::{Deps, Machine, Settings};
use rds_table_restore::mysql::{MysqlConnector, Secret};
use rds_table_restore::plan::{new_run_id, Plan, Request};
use rds_table_restore::report::Report;
use rds_table_restore::state::{default_state_dir, StateStore};
use rds_table_restore::ui;

const PASSWORD_ENV: &str = "RDS_TABLE_RESTORE_DB_PASSWORD";

fn main() -> ExitCode {
    // The AWS SDK and mysql_async both use rustls; with one provider installed up front,
    // rustls never has to guess (and panic) when more than one backend is compiled in.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Restore(args) => restore(*args).await,
        }
    });
    ExitCode::from(code)
}

fn fail(code: u8, error: &dyn std::fmt::Display) -> u8 {
    eprintln!("error: {error}");
    code
}

async fn restore(args: RestoreArgs) -> u8 {
    let request = Request {
        instance: args.instance.clone(),
        database: args.database.clone(),
        table: args.table.clone(),
        time: args.time.clone(),
        client_cidr: args.client_cidr.clone(),
        allow_any_source: args.allow_any_source,
        mode: args.mode,
        instance_class: args.instance_class.clone(),
        parameter_group: args.parameter_group.clone(),
        subnet_group: args.subnet_group.clone(),
        publicly_accessible: args.publicly_accessible,
        chunk_size: args.chunk_size,
        wait_timeout_minutes: args.wait_timeout,
        on_failure: args.on_failure,
    };
    let now = chrono::Utc::now();
    let plan = match Plan::new(&request, new_run_id(now), now) {
        Ok(p) => p,
        Err(e) => return fail(3, &e),
    };
    let password = match read_password(&args) {
        Ok(p) => p,
        Err(e) => return fail(3, &format!("{e:#}")),
    };
    let state_dir = match args.state_dir.clone().or_else(default_state_dir) {
        Some(d) => d,
        None => return fail(3, &"no state directory: pass --state-dir"),
    };
    let store = match StateStore::new(&state_dir, &plan.run_id) {
        Ok(s) => s,
        Err(e) => return fail(3, &e),
    };

    let config = load_config(args.region.clone()).await;
    let region = config
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "(no region)".into());
    let rds = AwsRds::new(&config);
    let ec2 = AwsEc2::new(&config);
    let db = MysqlConnector {
        user: args.db_user.clone(),
        password,
        tls: args.tls,
        ssl_ca: args.ssl_ca.clone(),
        production_override: args.production_endpoint.clone(),
        restored_override: args.restored_endpoint.clone(),
        connect_timeout: Duration::from_secs(30),
    };
    if args.tls != rds_table_restore::mysql::TlsMode::VerifyIdentity && !args.quiet {
        eprintln!(
            "warning: --tls {:?}: the database certificate is not fully verified",
            args.tls
        );
    }
    let progress = ui::progress_for(args.quiet || args.output == Output::Json);
    let prompter = ui::prompter();
    let cancel = Arc::new(AtomicBool::new(false));
    watch_signals(cancel.clone());

    let deps = Deps {
        rds: &rds,
        ec2: &ec2,
        db: &db,
        ui: progress.as_ref(),
        prompter: prompter.as_ref(),
    };
    let settings = Settings {
        region,
        assume_yes: args.yes,
        ..Settings::default()
    };
    let machine = match Machine::new(deps, settings, store, plan, cancel) {
        Ok(m) => m,
        Err(e) => return fail(3, &e),
    };
    let state_path = machine.state_path();
    match machine.run().await {
        Ok(state) => {
            print_report(&Report::from_state(&state, &state_path), args.output);
            0
        }
        Err(failure) => {
            let report = Report::from_state(&failure.state, &failure.state_path);
            let code = match &failure.error {
                Error::Interrupted => 130,
                Error::VerificationFailed(_) => 5,
                _ if !failure.resources_left.is_empty() => 4,
                e if e.is_validation() => 3,
                _ => 1,
            };
            if args.output == Output::Json {
                print_report(&report, args.output);
            }
            eprintln!("error: {}", failure.error);
            if failure.resources_left.is_empty() {
                if !failure.error.is_validation() {
                    eprintln!("nothing is left behind in AWS; production keeps every row committed so far");
                }
            } else {
                eprintln!("still held in AWS: {}", failure.resources_left.join("; "));
                eprintln!("the run's state file: {}", failure.state_path.display());
            }
            code
        }
    }
}

fn print_report(report: &Report, output: Output) {
    match output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => println!(
            "{}",
            serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        ),
    }
}

/// The password: the environment, then a file, then a prompt on a terminal. Never argv.
fn read_password(args: &RestoreArgs) -> anyhow::Result<Secret> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        if !p.is_empty() {
            return Ok(Secret::new(p));
        }
    }
    if let Some(path) = &args.db_password_file {
        return read_password_file(path);
    }
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let p = dialoguer::Password::new()
            .with_prompt(format!("Password for database user {}", args.db_user))
            .interact()
            .context("reading the password")?;
        return Ok(Secret::new(p));
    }
    Err(anyhow!(
        "no database password: set {PASSWORD_ENV}, or pass --db-password-file FILE, or run on a terminal to be asked"
    ))
}

fn read_password_file(path: &PathBuf) -> anyhow::Result<Secret> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read --db-password-file {}", path.display()))?;
    let p = text.trim_end_matches(['\n', '\r']).to_string();
    if p.is_empty() {
        return Err(anyhow!("--db-password-file {} is empty", path.display()));
    }
    Ok(Secret::new(p))
}

/// First Ctrl-C or SIGTERM: stop at the next safe point (a chunk boundary or between steps),
/// clean up and exit 130. A second one exits at once; the state file is consistent either way,
/// since it is only ever replaced whole.
fn watch_signals(cancel: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        for n in 0.. {
            let term_recv = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term_recv => {}
            }
            if n == 0 {
                cancel.store(true, Ordering::SeqCst);
                eprintln!("\ninterrupt: stopping at the next safe point and cleaning up (again to exit at once)");
            } else {
                std::process::exit(130);
            }
        }
    });
}
