//! One function per subcommand: gathers what the command needs (state, password, AWS clients),
//! runs the core, prints the outcome and returns the exit code.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use chrono::Utc;

use rds_table_restore::aws::{load_config, AwsEc2, AwsRds};
use rds_table_restore::binlog::Before;
use rds_table_restore::cli::{CommonArgs, DbArgs, DrillArgs, Output, RestoreArgs, ResumeArgs, RunArgs};
use rds_table_restore::error::{Error, Side};
use rds_table_restore::machine::{is_open, Deps, Machine, RunFailure, Settings};
use rds_table_restore::mysql::{Credential, MysqlConnector, Secret, TlsMode};
use rds_table_restore::plan::{
    new_run_id, parse_time, rfc3339, DrillRequest, Mode, Plan, Request, SourceKind, TAG_EXPIRES, TAG_RUN_ID, TAG_TOOL,
    TOOL_NAME,
};
use rds_table_restore::ports::{Connector, Ec2, Endpoint, Rds, Session};
use rds_table_restore::report::{drill_markdown, timeline, Report};
use rds_table_restore::state::{default_state_dir, list_runs, write_private, Connection, RunState, StateStore};
use rds_table_restore::ui;
use rds_table_restore::wizard::{self, Choices};

mod find;
mod inventory;
pub use find::find;
pub use inventory::{cleanup, runs, status};

const PASSWORD_ENV: &str = "RDS_TABLE_RESTORE_DB_PASSWORD";

fn fail(code: u8, error: &dyn std::fmt::Display) -> u8 {
    eprintln!("error: {error}");
    code
}

fn state_dir(common: &CommonArgs) -> Result<PathBuf, u8> {
    common
        .state_dir
        .clone()
        .or_else(default_state_dir)
        .ok_or_else(|| fail(3, &"no state directory could be found: pass --state-dir"))
}

/// `--state-dir DIR` when the directory is not the default, for commands printed to copy.
/// The state directory, and the run named on the command line in it (for `resume`, `abort`
/// and `status`); the exit code when either cannot be had.
fn open_run(common: &CommonArgs, run_id: &str) -> Result<(PathBuf, StateStore, RunState), u8> {
    let dir = state_dir(common)?;
    let (store, state) = StateStore::open(&dir, run_id).map_err(|e| fail(3, &e))?;
    Ok((dir, store, state))
}

fn state_dir_flag(dir: &Path) -> String {
    if default_state_dir().as_deref() == Some(dir) {
        String::new()
    } else {
        format!(" --state-dir {}", dir.display())
    }
}

pub(crate) struct Aws {
    config: aws_config::SdkConfig,
    rds: AwsRds,
    ec2: AwsEc2,
    region: String,
}

async fn aws(region: Option<String>) -> Aws {
    let config = load_config(region).await;
    let region = config
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "(no region)".into());
    Aws {
        rds: AwsRds::new(&config),
        ec2: AwsEc2::new(&config),
        region,
        config,
    }
}

/// Resolves how to reach and log in to the databases: the flags first, then what the run
/// recorded (for `resume`). The credential comes from IAM, a Secrets Manager secret, the
/// environment, a file or a prompt, in that order; never from the command line.
async fn connector(
    db: &DbArgs,
    recorded: &Connection,
    config: &aws_config::SdkConfig,
) -> anyhow::Result<(MysqlConnector, Connection)> {
    let iam_auth = db.iam_auth || recorded.iam_auth;
    let db_secret_arn = db.db_secret_arn.clone().or_else(|| recorded.db_secret_arn.clone());
    let mut user = db
        .db_user
        .clone()
        .or_else(|| Some(recorded.db_user.clone()).filter(|u| !u.is_empty()));
    let tls = db.tls.or(recorded.tls).unwrap_or(TlsMode::VerifyIdentity);
    if iam_auth && tls == TlsMode::Disabled {
        return Err(anyhow!(
            "--iam-auth sends the token with the cleartext plugin, so it needs TLS: drop --tls disabled"
        ));
    }
    let credential = if iam_auth {
        Credential::IamToken(Box::new(config.clone()))
    } else if let Some(arn) = &db_secret_arn {
        let (secret_user, password) = read_secret(config, arn).await?;
        user = user.or(secret_user);
        Credential::Password(password)
    } else {
        Credential::Password(read_password(db, user.as_deref().unwrap_or("?"))?)
    };
    let connection = Connection {
        region: recorded.region.clone(),
        db_user: user.ok_or_else(|| anyhow!("--db-user is required: the database user the tool logs in as"))?,
        tls: Some(tls),
        ssl_ca: db.ssl_ca.clone().or_else(|| recorded.ssl_ca.clone()),
        production_endpoint: db
            .production_endpoint
            .clone()
            .or_else(|| recorded.production_endpoint.clone()),
        restored_endpoint: db
            .restored_endpoint
            .clone()
            .or_else(|| recorded.restored_endpoint.clone()),
        iam_auth,
        db_secret_arn,
        disable_foreign_key_checks: db.disable_foreign_key_checks || recorded.disable_foreign_key_checks,
    };
    if tls != TlsMode::VerifyIdentity {
        eprintln!("warning: --tls {tls:?}: the database certificate is not fully verified");
    }
    let c = MysqlConnector {
        disable_foreign_key_checks: connection.disable_foreign_key_checks,
        user: connection.db_user.clone(),
        credential,
        tls,
        ssl_ca: connection.ssl_ca.clone(),
        production_override: connection.production_endpoint.clone(),
        restored_override: connection.restored_endpoint.clone(),
        connect_timeout: Duration::from_secs(30),
        load_method: db.load_method,
        compress: db.compress,
        compress_chosen: Default::default(),
    };
    Ok((c, connection))
}

/// The user (if the secret names one) and password from a Secrets Manager secret in the JSON
/// form RDS-managed secrets use. Errors name the secret, never its content.
async fn read_secret(config: &aws_config::SdkConfig, arn: &str) -> anyhow::Result<(Option<String>, Secret)> {
    let out = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot read the secret {arn}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            )
        })?;
    let text = out
        .secret_string()
        .ok_or_else(|| anyhow!("the secret {arn} holds no text (a binary secret?)"))?;
    let json: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        anyhow!("the secret {arn} is not JSON: RDS-managed secrets hold {{\"username\": ..., \"password\": ...}}")
    })?;
    let password = json["password"]
        .as_str()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| anyhow!("the secret {arn} has no \"password\" field"))?;
    Ok((
        json["username"].as_str().map(str::to_string),
        Secret::new(password.to_string()),
    ))
}

fn request_of(args: &RestoreArgs, drill: Option<DrillRequest>) -> Request {
    Request {
        instance: args.instance.clone().unwrap_or_default(),
        cluster: args.cluster.clone(),
        database: args.database.clone().unwrap_or_default(),
        table: args.table.first().cloned().unwrap_or_default(),
        time: args.time.clone().unwrap_or_default(),
        client_cidr: args.client_cidr.clone(),
        allow_any_source: args.allow_any_source,
        mode: args.mode.unwrap_or(Mode::MissingRows),
        instance_class: args.instance_class.clone(),
        parameter_group: args.parameter_group.clone(),
        subnet_group: args.subnet_group.clone(),
        publicly_accessible: args.publicly_accessible,
        chunk_size: args.chunk_size,
        chunk_bytes: args.chunk_bytes,
        max_lock_ms: args.max_lock_ms,
        wait_timeout_minutes: args.wait_timeout,
        on_failure: args.on_failure,
        where_predicate: args.where_predicate.clone(),
        drill,
        dump_file: args.dump_only.clone().or_else(|| args.dump_file.clone()),
        dump_only: args.dump_only.is_some(),
        confirm_table: args.confirm_table.clone(),
        recreate_table: args.recreate_table,
        parallel: args.parallel,
        source: args.source,
        before: None,
        also: args.table.iter().skip(1).cloned().collect(),
        with_dependents: args.with_dependents,
    }
}

pub async fn restore(args: RestoreArgs) -> u8 {
    start(args, None, None).await
}

pub async fn drill(args: DrillArgs) -> u8 {
    let drill = DrillRequest {
        database: args.drill_database.clone(),
        keep: args.keep,
    };
    start(args.restore, Some(drill), args.report_dir).await
}

/// Fills in the choices missing from the command line: asked for on a terminal, a usage error
/// naming the flag otherwise (exit 2). Never prompts without a terminal.
fn choices_of(args: &RestoreArgs) -> Choices {
    Choices {
        instance: args.instance.clone().or_else(|| args.cluster.clone()),
        time: args.time.clone(),
        database: args.database.clone(),
        table: args.table.first().cloned(),
        // A binlog rewind opens nothing: the address is not asked for.
        client_cidr: args
            .client_cidr
            .clone()
            .or_else(|| (args.source == SourceKind::Binlog).then(String::new)),
        mode: args.mode,
        // Asked only where nothing settles it: the flag, several tables, or a binlog rewind
        // (which cannot bring back what a cascade changed).
        with_dependents: (args.with_dependents || args.table.len() > 1 || args.source == SourceKind::Binlog)
            .then_some(args.with_dependents),
    }
}

/// The usage error for choices missing where no terminal can ask for them.
fn missing_message(missing: &[&str]) -> String {
    format!(
        "{} {} required: there is no terminal to ask on (each can also come from RDS_TABLE_RESTORE_* or --config)",
        missing.join(", "),
        if missing.len() == 1 { "is" } else { "are" }
    )
}

/// Usage errors, all at once, before the password is read and before any AWS or database
/// call (exit 2): the choices missing where there is no terminal to ask on, and every value
/// given that the plan refuses (a malformed time, a CIDR, flags that conflict), so a script
/// learns everything it got wrong in one go.
fn check_usage(args: &RestoreArgs, drill: Option<DrillRequest>) -> Result<(), u8> {
    let asks = ui::interactive() && args.common.output != Output::Json;
    let missing = choices_of(args).missing();
    let mut errors: Vec<String> = Vec::new();
    if !missing.is_empty() && !asks {
        errors.push(missing_message(&missing));
    }
    errors.extend(
        rds_table_restore::plan::input_errors(&request_of(args, drill), Utc::now(), true)
            .iter()
            .map(|e| e.to_string()),
    );
    match errors.as_slice() {
        [] => Ok(()),
        [only] => Err(fail(2, only)),
        all => {
            for e in &all[..all.len() - 1] {
                eprintln!("error: {e}");
            }
            Err(fail(2, &all[all.len() - 1]))
        }
    }
}

async fn complete(args: &mut RestoreArgs, aws: &Aws, db: &MysqlConnector) -> Result<(), u8> {
    let given = choices_of(args);
    let missing = given.missing();
    if missing.is_empty() {
        return Ok(());
    }
    if !ui::interactive() || args.common.output == Output::Json {
        return Err(fail(2, &missing_message(&missing)));
    }
    let finder = find::BinlogFinder { db };
    match wizard::fill(given, &aws.rds, db, Some(&finder), &ui::TtyAsker, Utc::now()).await {
        Ok(c) => {
            // With --cluster, the source choice was made; the wizard only filled in the rest.
            if args.cluster.is_none() {
                args.instance = c.instance;
            }
            let table;
            (args.time, args.database, table, args.client_cidr, args.mode) =
                (c.time, c.database, c.table, c.client_cidr, c.mode);
            if let Some(table) = table.filter(|_| args.table.is_empty()) {
                args.table = vec![table];
            }
            args.with_dependents |= c.with_dependents == Some(true);
            Ok(())
        }
        Err(e) => Err(fail(3, &e)),
    }
}

/// What a new run (or a `plan`) needs before the machine: AWS clients, the database connector,
/// the choices completed (asked for on a terminal) and the checked plan. Errors are already
/// printed; the exit code comes back.
async fn prepare(
    args: &mut RestoreArgs,
    drill: Option<DrillRequest>,
) -> Result<(Aws, MysqlConnector, Connection, Plan), u8> {
    // `--before` names a transaction; its second, read from the binlog below, is the time.
    let before = match args.before.as_deref() {
        None => None,
        Some(b) => Some(Before::parse(b).ok_or_else(|| {
            fail(
                2,
                &format!(
                    "--before `{b}` is neither FILE:POS nor a GTID: give it as `find` lists it \
                     (binlog.000022:748247897, 0-1-42, or <server uuid>:42)"
                ),
            )
        })?),
    };
    let hint = match (&before, args.time.clone()) {
        (Some(_), Some(t)) => Some(parse_time(&t, Utc::now()).map_err(|e| fail(2, &e))?),
        _ => None,
    };
    if before.is_some() {
        args.source = SourceKind::Binlog;
        args.time = Some(rfc3339(Utc::now() - chrono::Duration::seconds(1)));
    }
    check_usage(args, drill.clone())?;
    let aws = aws(args.common.region.clone()).await;
    let recorded = Connection {
        region: args.common.region.clone(),
        ..Connection::default()
    };
    let (db, connection) = connector(&args.db, &recorded, &aws.config)
        .await
        .map_err(|e| fail(3, &format!("{e:#}")))?;
    complete(args, &aws, &db).await?;
    let mut located = None;
    if let Some(before) = &before {
        let txn = find::locate_before(&aws, &db, args, before, hint).await?;
        eprintln!(
            "--before {before}: the transaction at {} ({}); the table is rewound to just before it",
            txn.start,
            rfc3339(txn.time)
        );
        args.time = Some(rfc3339(txn.time));
        located = Some(txn.start.to_string());
    }
    let now = Utc::now();
    let mut request = request_of(args, drill);
    request.before = located;
    let plan = Plan::new(&request, new_run_id(now), now).map_err(|e| fail(3, &e))?;
    Ok((aws, db, connection, plan))
}

/// `plan`: the checks and the plan of a restore, with a throwaway state directory, so nothing
/// is created or written anywhere.
pub async fn plan(mut args: RestoreArgs) -> u8 {
    let (aws, db, connection, plan) = match prepare(&mut args, None).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return fail(3, &e),
    };
    let store = match StateStore::new(scratch.path(), &plan.run_id) {
        Ok(s) => s,
        Err(e) => return fail(3, &e),
    };
    let progress = ui::progress_for(args.common.quiet, args.common.output == Output::Json);
    let prompter = ui::prompter();
    let deps = Deps {
        rds: &aws.rds,
        ec2: &aws.ec2,
        db: &db,
        ui: progress.as_ref(),
        prompter: prompter.as_ref(),
    };
    let settings = settings(&aws.region, true);
    let machine = match Machine::new(
        deps,
        settings,
        store,
        plan,
        connection,
        Arc::new(AtomicBool::new(false)),
    ) {
        Ok(m) => m,
        Err(e) => return fail(3, &e),
    };
    match machine.preview().await {
        Ok(text) => {
            match args.common.output {
                Output::Text => {
                    println!("{text}\n\nNothing was created or changed. Run the same command as `restore` to do it.")
                }
                Output::Json => ui::emit("plan", serde_json::json!({"plan": text, "changed": false})),
            }
            0
        }
        Err(f) => fail(if f.error.is_validation() { 3 } else { 1 }, &f.error),
    }
}

async fn start(mut args: RestoreArgs, drill: Option<DrillRequest>, report_dir: Option<PathBuf>) -> u8 {
    let dir = match state_dir(&args.common) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let (aws, db, connection, plan) = match prepare(&mut args, drill).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let store = match StateStore::new(&dir, &plan.run_id) {
        Ok(s) => s,
        Err(e) => return fail(3, &e),
    };
    let new = Begin::New {
        plan: Box::new(plan),
        connection,
    };
    run_machine(&aws, &db, &args.common, store, &dir, new, report_dir.as_deref()).await
}

/// How a run begins: a new plan, or a saved state to resume.
enum Begin {
    New { plan: Box<Plan>, connection: Connection },
    Resume { state: Box<RunState> },
}

/// Wires the adapters, the progress display and the signal watch to the machine, runs it, and
/// reports the outcome.
async fn run_machine(
    aws: &Aws,
    db: &MysqlConnector,
    common: &CommonArgs,
    store: StateStore,
    dir: &Path,
    begin: Begin,
    report_dir: Option<&Path>,
) -> u8 {
    let progress = ui::progress_for(common.quiet, common.output == Output::Json);
    let prompter = ui::prompter();
    let cancel = watch_signals();
    let deps = Deps {
        rds: &aws.rds,
        ec2: &aws.ec2,
        db,
        ui: progress.as_ref(),
        prompter: prompter.as_ref(),
    };
    let settings = settings(&aws.region, common.yes);
    let machine = match begin {
        Begin::New { plan, connection } => Machine::new(deps, settings, store, *plan, connection, cancel),
        Begin::Resume { state } => Machine::open(deps, settings, store, *state, cancel, "resume"),
    };
    let machine = match machine {
        Ok(m) => m,
        Err(e) => return fail(3, &e),
    };
    let state_path = machine.state_path();
    finish(machine.run().await, &state_path, dir, common.output, report_dir)
}

pub async fn resume(args: ResumeArgs) -> u8 {
    let (dir, store, state) = match open_run(&args.common, &args.run_id) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let region = args.common.region.clone().or_else(|| state.connection.region.clone());
    let aws = aws(region).await;
    let (db, connection) = match connector(&args.db, &state.connection, &aws.config).await {
        Ok(c) => c,
        Err(e) => return fail(3, &format!("{e:#}")),
    };
    let mut state = state;
    state.connection = connection;
    let resume = Begin::Resume { state: Box::new(state) };
    run_machine(&aws, &db, &args.common, store, &dir, resume, None).await
}

/// A connector for commands that must never reach a database.
struct NoDatabase;

#[async_trait]
impl Connector for NoDatabase {
    async fn connect(&self, _side: Side, _e: &Endpoint) -> rds_table_restore::error::Result<Box<dyn Session>> {
        Err(Error::InvalidInput("this command never connects to a database".into()))
    }
}

pub async fn abort(args: RunArgs) -> u8 {
    let (_, store, state) = match open_run(&args.common, &args.run_id) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let held = state.resources.held();
    let prompter = ui::prompter();
    if !args.common.yes {
        let what = if held.is_empty() {
            "nothing recorded; tagged leftovers are searched".into()
        } else {
            held.join(", ")
        };
        eprintln!(
            "Abort run {}: remove {what} (a binlog rewind's as-of table is left, for you to drop). Production \
             data is not touched.",
            state.run_id
        );
        match prompter.confirm("Abort?") {
            Ok(true) => {}
            Ok(false) => return fail(3, &Error::Declined),
            Err(e) => return fail(3, &e),
        }
    }
    let region = args.common.region.clone().or_else(|| state.connection.region.clone());
    let aws = aws(region).await;
    let progress = ui::progress_for(args.common.quiet, args.common.output == Output::Json);
    let deps = Deps {
        rds: &aws.rds,
        ec2: &aws.ec2,
        db: &NoDatabase,
        ui: progress.as_ref(),
        prompter: prompter.as_ref(),
    };
    let settings = settings(&aws.region, true);
    let cancel = Arc::new(AtomicBool::new(false));
    let machine = match Machine::open(deps, settings, store, state, cancel, "abort") {
        Ok(m) => m,
        Err(e) => return fail(3, &e),
    };
    match machine.abort().await {
        Ok(state) => {
            if args.common.output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({"run_id": state.run_id, "outcome": state.outcome})
                );
            } else {
                let left = state.resources.held();
                if left.is_empty() {
                    println!("run {} aborted: nothing it created is left", state.run_id);
                } else {
                    println!(
                        "run {} aborted: nothing it created is left in AWS; still in production: {}",
                        state.run_id,
                        left.join("; ")
                    );
                }
            }
            0
        }
        Err(f) => {
            eprintln!("error: {}", f.error);
            eprintln!("still held: {}", f.resources_left.join("; "));
            4
        }
    }
}

fn finish(
    result: Result<RunState, RunFailure>,
    state_path: &Path,
    dir: &Path,
    output: Output,
    report_dir: Option<&Path>,
) -> u8 {
    let (state, failure) = match result {
        Ok(state) => (state, None),
        Err(f) => (f.state.clone(), Some(f)),
    };
    let report = Report::from_state(&state, state_path);
    let code = match &failure {
        None => 0,
        Some(f) => match &f.error {
            Error::Interrupted => 130,
            Error::VerificationFailed(_) => 5,
            _ if !f.resources_left.is_empty() => 4,
            e if e.is_validation() => 3,
            _ => 1,
        },
    };
    let validation_failed = failure.as_ref().is_some_and(|f| f.error.is_validation());
    // The timeline of every run that got past validation, ready for the incident channel.
    if !validation_failed {
        let path = dir.join(format!("{}.timeline.md", state.run_id));
        match write_private(&path, &timeline(&state)) {
            Ok(()) if output == Output::Text => eprintln!("timeline for the incident channel:\n  {}", path.display()),
            Ok(()) => {}
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    if state.plan.is_drill() && !validation_failed {
        let rdir = report_dir.unwrap_or(dir);
        let md = rdir.join(format!("{}.drill.md", state.run_id));
        let json = rdir.join(format!("{}.drill.json", state.run_id));
        let written = std::fs::create_dir_all(rdir)
            .map_err(|e| Error::State {
                path: rdir.display().to_string(),
                detail: e.to_string(),
            })
            .and_then(|_| write_private(&md, &drill_markdown(&report)))
            .and_then(|_| write_private(&json, &serde_json::to_string_pretty(&report).unwrap_or_default()));
        match written {
            Ok(()) if output == Output::Text => eprintln!("drill report: {} and {}", md.display(), json.display()),
            Ok(()) => {}
            Err(e) => eprintln!("warning: cannot write the drill report: {e}"),
        }
    }
    let Some(failure) = failure else {
        print_report(&report, output, 0);
        return 0;
    };
    let open = is_open(&failure.state);
    if output == Output::Json {
        print_report(&report, output, code);
    }
    eprintln!("error: {}", failure.error);
    if !failure.resources_left.is_empty() {
        let (tables, aws): (Vec<&String>, Vec<&String>) = failure
            .resources_left
            .iter()
            .partition(|r| r.starts_with("as-of table"));
        if !aws.is_empty() {
            eprintln!(
                "still held in AWS: {}",
                aws.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ")
            );
        }
        if !tables.is_empty() {
            eprintln!(
                "still held: {}",
                tables.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ")
            );
        }
    } else if failure.confirmed_clean {
        eprintln!(
            "AWS describes no {} `{}` and no security group of this run: nothing is left behind; \
             production keeps every chunk committed so far",
            if failure.state.plan.cluster.is_some() {
                "DB cluster"
            } else {
                "instance"
            },
            failure.state.plan.target_instance
        );
    } else if !failure.error.is_validation() {
        eprintln!("AWS could not confirm that nothing is left: check with `rds-table-restore cleanup`");
    }
    if open {
        let flag = state_dir_flag(dir);
        eprintln!("continue with: rds-table-restore resume {}{flag}", failure.state.run_id);
        eprintln!("or end it:     rds-table-restore abort {}{flag}", failure.state.run_id);
    }
    code
}

/// The machine's settings. `RDS_TABLE_RESTORE_AWS_SETTLE_SECONDS` (undocumented, for the
/// sandbox's tests) shortens how long a just-created resource may stay invisible.
fn settings(region: &str, assume_yes: bool) -> Settings {
    let mut s = Settings {
        region: region.to_string(),
        assume_yes,
        ..Settings::default()
    };
    if let Some(secs) = std::env::var("RDS_TABLE_RESTORE_AWS_SETTLE_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        s.settle = Duration::from_secs(secs);
    }
    s
}

/// The report: as text, or as the closing `summary` event of the JSON stream.
fn print_report(report: &Report, output: Output, exit_code: u8) {
    match output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => {
            let mut v = serde_json::to_value(report).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("exit_code".into(), exit_code.into());
            }
            ui::emit("summary", v);
        }
    }
}

/// The password: the environment, then a file, then a prompt on a terminal. Never argv.
fn read_password(db: &DbArgs, user: &str) -> anyhow::Result<Secret> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        if !p.is_empty() {
            return Ok(Secret::new(p));
        }
    }
    if let Some(path) = &db.db_password_file {
        check_private(path)?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --db-password-file {}", path.display()))?;
        let p = text.trim_end_matches(['\n', '\r']).to_string();
        if p.is_empty() {
            return Err(anyhow!("--db-password-file {} is empty", path.display()));
        }
        return Ok(Secret::new(p));
    }
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let p = dialoguer::Password::new()
            .with_prompt(format!("Password for database user {user}"))
            .interact()
            .context("reading the password")?;
        return Ok(Secret::new(p));
    }
    Err(anyhow!(
        "no database password: set {PASSWORD_ENV}, or pass --db-password-file FILE, or run on a terminal to be asked"
    ))
}

/// Refuses a password file others can read: the password would already be out.
fn check_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read --db-password-file {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(anyhow!(
            "--db-password-file {} can be read by other users (mode {:o}): make it private with `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

/// First Ctrl-C or SIGTERM: stop at the next safe point (a chunk boundary or between steps),
/// revoke the network access, save, and print how to resume or abort. A second one exits at
/// once; the state file is consistent either way, since it is only ever replaced whole.
fn watch_signals() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
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
                flag.store(true, Ordering::SeqCst);
                eprintln!("\ninterrupt: stopping at the next safe point (press again to exit at once)");
            } else {
                std::process::exit(130);
            }
        }
    });
    cancel
}
