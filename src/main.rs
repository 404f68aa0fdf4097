//! The edge: parses the command line, reads the password, wires the real adapters to the
//! state machine, and turns the outcome into a report and an exit code.

mod commands;

use std::process::ExitCode;

use clap::Parser;

use rds_table_restore::cli::{Cli, Command};

fn main() -> ExitCode {
    // The AWS SDK and mysql_async both use rustls; with one provider installed up front,
    // rustls never has to guess (and panic) when more than one backend is compiled in.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // mysql_async pools up to 128 I/O buffers of up to 4 MiB each, and big chunks fill them:
    // that pool was most of the peak memory (121 MB against 47 MB with 8, at no cost in speed;
    // docs/performance.md). Set before any thread starts; an operator's own value wins.
    if std::env::var_os("MYSQL_ASYNC_BUFFER_POOL_CAP").is_none() {
        std::env::set_var("MYSQL_ASYNC_BUFFER_POOL_CAP", "8");
    }
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    // The config file fills in RDS_TABLE_RESTORE_* variables before the threads start and the
    // command line is parsed (see config.rs for the precedence).
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = rds_table_restore::config::config_path(&args) {
        if let Err(e) = rds_table_restore::config::apply(std::path::Path::new(&path), &Cli::env_names()) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let cli = Cli::parse();
    match &cli.command {
        Command::Completions { shell } => return print_completions(*shell),
        Command::Man => return print_man(),
        _ => {}
    }
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Restore(args) => commands::restore(*args).await,
            Command::Plan(args) => commands::plan(*args).await,
            Command::Drill(args) => commands::drill(*args).await,
            Command::Find(args) => commands::find(*args).await,
            Command::Resume(args) => commands::resume(args).await,
            Command::Abort(args) => commands::abort(args).await,
            Command::Runs(args) => commands::runs(args),
            Command::Status(args) => commands::status(args),
            Command::Cleanup(args) => commands::cleanup(args).await,
            Command::Completions { .. } | Command::Man => 0,
        }
    });
    ExitCode::from(code)
}

/// `-v`: the tool's own calls; `-vv`: the AWS SDK's and mysql_async's as well. Logs go to
/// stderr; they never hold a password (the types that carry one print `***`).
fn init_logging(cli: &Cli) {
    use rds_table_restore::cli::Command as C;
    let verbose = match &cli.command {
        C::Restore(a) | C::Plan(a) => a.common.verbose,
        C::Drill(a) => a.restore.common.verbose,
        C::Resume(a) => a.common.verbose,
        C::Find(a) => a.common.verbose,
        C::Abort(a) | C::Status(a) => a.common.verbose,
        C::Runs(a) | C::Cleanup(a) => a.verbose,
        C::Completions { .. } | C::Man => 0,
    };
    let filter = match verbose {
        0 => return,
        1 => "warn,rds_table_restore=debug",
        _ => "debug,rds_table_restore=trace,hyper=info,h2=info,rustls=info",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

fn print_completions(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "rds-table-restore", &mut std::io::stdout());
    ExitCode::SUCCESS
}

fn print_man() -> ExitCode {
    let mut page = Vec::new();
    match rds_table_restore::manpage::render(&mut page) {
        Ok(()) => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&page);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot render the man page: {e}");
            ExitCode::from(1)
        }
    }
}
