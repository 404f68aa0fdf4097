//! The command line and the terminal: the flags (here), the config file, the wizard, the
//! progress display and prompts, the man page. Every flag can also come from
//! `RDS_TABLE_RESTORE_<FLAG>` (upper case, hyphens as underscores); a flag on the command line
//! wins over the environment.

pub mod config;
pub mod manpage;
pub mod ui;
pub mod wizard;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::mysql::{Compress, LoadMethod, TlsMode};
use crate::plan::{Mode, OnFailure, SourceKind};
use crate::ports::Endpoint;

pub const EXIT_CODES: &str = "\
Exit codes:
  0    the table is restored and verified; AWS holds nothing of the run any more
  1    a step failed after the run began, holding no AWS resource (the message says
       whether AWS confirmed it; if not, check with `rds-table-restore cleanup`)
  2    usage error (a flag is missing or malformed)
  3    validation failed before anything was created or written
  4    failed or stopped with AWS resources still held: the message names them and gives
       the `resume` and `abort` commands
  5    verification found a mismatch between the restored copy and production
  130  interrupted (Ctrl-C or SIGTERM)

The database password is read from RDS_TABLE_RESTORE_DB_PASSWORD, from --db-password-file, or
asked for on a terminal; it is never taken on the command line.";

/// The version and the commit it was built from (build.rs), for `--version` and bug reports.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RDS_TABLE_RESTORE_COMMIT"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "rds-table-restore",
    version = VERSION,
    about = "Bring back one table of an RDS MySQL/MariaDB database as it was at a chosen second.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Read options from this TOML file (keys are the long flags: client-cidr = "203.0.113.7/32").
    /// A flag beats an RDS_TABLE_RESTORE_* variable, which beats the file, which beats the default.
    #[arg(long, global = true, value_name = "FILE", env = "RDS_TABLE_RESTORE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Every `RDS_TABLE_RESTORE_*` variable some option reads.
    pub fn env_names() -> Vec<String> {
        fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                if let Some(e) = a.get_env() {
                    out.push(e.to_string_lossy().into_owned());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, out);
            }
        }
        let mut out = Vec::new();
        walk(&<Cli as clap::CommandFactory>::command(), &mut out);
        out.sort();
        out.dedup();
        out
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Restore the instance to a point in time, merge one table back into production, verify, clean up.
    Restore(Box<RestoreArgs>),
    /// Every read-only check of a restore, then the full plan; creates and changes nothing.
    Plan(Box<RestoreArgs>),
    /// Rehearse a restore end to end into a side table in production (never the real table),
    /// tear down, and report the time to recover.
    Drill(Box<DrillArgs>),
    /// Read production's binlog and list the transactions that wrote the table: when, where,
    /// how many rows each deleted, updated and inserted; propose the second to restore to.
    /// Read-only: writes nothing, anywhere.
    Find(Box<FindArgs>),
    /// Continue a run from its last finished step (after a crash, Ctrl-C or a failure).
    Resume(ResumeArgs),
    /// Remove what a run created (rule, security group, restored instance); never touches production data.
    Abort(RunArgs),
    /// List the runs in the state directory.
    Runs(CommonArgs),
    /// Show one run in detail.
    Status(RunArgs),
    /// Find resources tagged by this tool whose run is over or unknown here, and delete them after confirmation.
    Cleanup(CommonArgs),
    /// Print a shell completion script: `rds-table-restore completions bash > /etc/bash_completion.d/rds-table-restore`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `rds-table-restore man > /usr/local/share/man/man1/rds-table-restore.1`.
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Answer yes to the confirmation (for scripts).
    #[arg(short = 'y', long, env = "RDS_TABLE_RESTORE_YES")]
    pub yes: bool,
    /// AWS region (default: the usual AWS configuration).
    #[arg(long, env = "RDS_TABLE_RESTORE_REGION")]
    pub region: Option<String>,
    /// Where run state files are kept (default: the user's state directory).
    #[arg(long, value_name = "DIR", env = "RDS_TABLE_RESTORE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value = "text", env = "RDS_TABLE_RESTORE_OUTPUT")]
    pub output: Output,
    /// No progress on stderr (errors are still printed).
    #[arg(short, long, env = "RDS_TABLE_RESTORE_QUIET")]
    pub quiet: bool,
    /// More detail on stderr: -v logs every AWS and database call, -vv also the AWS SDK's own.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// How to reach the databases. `resume` falls back to what the run recorded.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Connect to production here (an SSH/SSM tunnel) instead of its RDS address; TLS still checks the RDS name.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_endpoint, env = "RDS_TABLE_RESTORE_PRODUCTION_ENDPOINT")]
    pub production_endpoint: Option<Endpoint>,
    /// Connect to the restored instance here instead of its RDS address; TLS still checks the RDS name.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_endpoint, env = "RDS_TABLE_RESTORE_RESTORED_ENDPOINT")]
    pub restored_endpoint: Option<Endpoint>,
    /// How TLS is checked [default: verify-identity].
    #[arg(long, value_enum, env = "RDS_TABLE_RESTORE_TLS")]
    pub tls: Option<TlsMode>,
    /// CA bundle to trust (for RDS, the global-bundle.pem AWS publishes).
    #[arg(long, value_name = "FILE", env = "RDS_TABLE_RESTORE_SSL_CA")]
    pub ssl_ca: Option<PathBuf>,
    /// Database user, the same on production and on the restored copy.
    #[arg(long, env = "RDS_TABLE_RESTORE_DB_USER")]
    pub db_user: Option<String>,
    /// Take the user and password from this AWS Secrets Manager secret (the JSON RDS-managed
    /// secrets hold: {"username": ..., "password": ...}).
    #[arg(
        long,
        value_name = "ARN",
        env = "RDS_TABLE_RESTORE_DB_SECRET_ARN",
        conflicts_with = "iam_auth"
    )]
    pub db_secret_arn: Option<String>,
    /// Log in with an RDS IAM authentication token made from the AWS credentials (requires TLS).
    #[arg(long, env = "RDS_TABLE_RESTORE_IAM_AUTH")]
    pub iam_auth: bool,
    /// Turn off foreign key checks for the tool's own production session (not the server's):
    /// for restoring a child table whose parents were deleted too, in the right order.
    #[arg(long, env = "RDS_TABLE_RESTORE_DISABLE_FOREIGN_KEY_CHECKS")]
    pub disable_foreign_key_checks: bool,
    /// How the rows production lacks are written: `LOAD DATA LOCAL INFILE` fed from memory
    /// where the server allows it and every column has an exact text form (auto), or
    /// multi-row INSERT.
    #[arg(long, value_enum, default_value = "auto", env = "RDS_TABLE_RESTORE_LOAD_METHOD")]
    pub load_method: LoadMethod,
    /// The MySQL protocol's compression (zlib), for both servers: `auto` turns it on for a
    /// server whose round trip is 2 ms or more (a VPN, an SSM or SSH tunnel, another region),
    /// measured when the first session opens; off on a fast link, where it costs more than it
    /// saves.
    #[arg(long, value_enum, default_value = "auto", env = "RDS_TABLE_RESTORE_COMPRESS")]
    pub compress: Compress,
    /// File holding the database password (instead of RDS_TABLE_RESTORE_DB_PASSWORD).

    #[arg(long, value_name = "FILE", env = "RDS_TABLE_RESTORE_DB_PASSWORD_FILE")]
    pub db_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub restore: RestoreArgs,
    /// Load into this database (same table name) instead of `<table>__drill_<time>` beside the real table.
    #[arg(long, value_name = "DATABASE", env = "RDS_TABLE_RESTORE_DRILL_DATABASE")]
    pub drill_database: Option<String>,
    /// Keep the side table afterwards, for inspection.
    #[arg(long, env = "RDS_TABLE_RESTORE_KEEP")]
    pub keep: bool,
    /// Where to write the drill report (Markdown and JSON) [default: the state directory].
    #[arg(long, value_name = "DIR", env = "RDS_TABLE_RESTORE_REPORT_DIR")]
    pub report_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// The RDS instance whose binlog is read (production: the writer, for a cluster).
    #[arg(long, env = "RDS_TABLE_RESTORE_INSTANCE")]
    pub instance: Option<String>,
    /// The database (schema) of the table.
    #[arg(long, env = "RDS_TABLE_RESTORE_DATABASE")]
    pub database: Option<String>,
    /// The table whose writes are listed.
    #[arg(long, env = "RDS_TABLE_RESTORE_TABLE")]
    pub table: Option<String>,
    /// Transactions from this moment, in the forms --time takes ("2 hours ago",
    /// 2024-05-01T09:00:00Z) [default: 24 hours ago].
    #[arg(long, env = "RDS_TABLE_RESTORE_SINCE")]
    pub since: Option<String>,
    /// Transactions up to this moment [default: the binlog's current end].
    #[arg(long, env = "RDS_TABLE_RESTORE_UNTIL")]
    pub until: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The run id, as `runs` lists it.
    pub run_id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run id, as `runs` lists it.
    pub run_id: String,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The RDS instance the table lived in (the source of the point-in-time restore). Asked for
    /// on a terminal when missing, like --time, --database, --table and --client-cidr.
    #[arg(long, env = "RDS_TABLE_RESTORE_INSTANCE")]
    pub instance: Option<String>,
    /// The DB cluster the table lived in (Aurora MySQL, or a Multi-AZ DB cluster): restored as a
    /// new cluster with one writer. An --instance that is a cluster member means its cluster.
    #[arg(long, env = "RDS_TABLE_RESTORE_CLUSTER")]
    pub cluster: Option<String>,
    /// How the table as it was is obtained: `pitr` restores the instance (or cluster) to the
    /// point in time as a new copy; `binlog` rewinds the table through production's binlog into
    /// a table beside it, in seconds, with nothing created in AWS (needs ROW format, FULL row
    /// images and the binlogs since the point; every condition is checked first).
    #[arg(long, value_enum, default_value = "pitr", env = "RDS_TABLE_RESTORE_SOURCE")]
    pub source: SourceKind,
    /// The database (schema) of the table.
    #[arg(long, env = "RDS_TABLE_RESTORE_DATABASE")]
    pub database: Option<String>,
    /// The table to bring back. Give it again for more tables of the same accident, restored
    /// by the same run from the same copy (parents first): `--table orders`, or
    /// `--table other_db.orders` for one in another database (comma-separated in the variable).
    #[arg(long, env = "RDS_TABLE_RESTORE_TABLE", value_delimiter = ',')]
    pub table: Vec<String>,
    /// Also bring back, in the same run, the tables a delete on these changes through foreign
    /// keys: rows an ON DELETE CASCADE took (at any depth), and references an ON DELETE SET NULL
    /// cleared (set back where production still holds NULL). Only those in --database; name
    /// another database's with --table.
    #[arg(long, env = "RDS_TABLE_RESTORE_WITH_DEPENDENTS")]
    pub with_dependents: bool,
    /// The moment to restore to, just before the damage, always with its zone: 2024-05-01T09:14:00Z,
    /// "2024-05-01 11:14:00 +02:00", "2024-05-01 09:14:00 UTC" or "15 minutes ago".
    #[arg(long, env = "RDS_TABLE_RESTORE_TIME")]
    pub time: Option<String>,
    /// Instead of --time, exact to the transaction: the table as it was just before the one that
    /// begins at FILE:POS or has this GTID, as `find` lists them (binlog.000022:748247897,
    /// 0-1-42, or <server uuid>:42). Implies --source binlog. With a GTID, --time (if given)
    /// says where in the binlog to start looking for it.
    #[arg(long, value_name = "FILE:POS|GTID", env = "RDS_TABLE_RESTORE_BEFORE")]
    pub before: Option<String>,
    /// How restored rows are merged into production [default: missing-rows; the guided mode
    /// asks].
    #[arg(long, value_enum, env = "RDS_TABLE_RESTORE_MODE")]
    pub mode: Option<Mode>,
    /// The table's name, typed ahead: what --mode replace-all needs with --yes (at a prompt it
    /// asks for the name instead).
    #[arg(long, value_name = "TABLE", env = "RDS_TABLE_RESTORE_CONFIRM_TABLE")]
    pub confirm_table: Option<String>,
    /// If the table no longer exists in production (DROP TABLE), create it from the restored
    /// copy's SHOW CREATE TABLE without asking (at a prompt, the definition is shown and asked
    /// about).
    #[arg(long, env = "RDS_TABLE_RESTORE_RECREATE_TABLE")]
    pub recreate_table: bool,
    /// Writers copying disjoint key ranges at once, each with its own connections and
    /// checkpoint: `auto` (the default) chooses from the round trip it measures to both servers
    /// (2 on a fast link, where the servers' CPUs are the limit; more over a slow one, where each
    /// writer waits on the network) and says what it chose; or a number, 1 to 16. One with
    /// --dump-file, and for a table without a primary key.
    #[arg(long, default_value = "auto", value_name = "auto|N", value_parser = parse_parallel, env = "RDS_TABLE_RESTORE_PARALLEL")]
    pub parallel: usize,
    /// Restore only the rows matching this condition (one SQL predicate on the table's columns,
    /// checked on both servers before anything is written).
    #[arg(long = "where", value_name = "PREDICATE", env = "RDS_TABLE_RESTORE_WHERE")]
    pub where_predicate: Option<String>,
    /// Also write the SQL of every row inserted into production to this new file (0600), one
    /// INSERT per chunk, exact for every type.
    #[arg(
        long,
        value_name = "FILE",
        env = "RDS_TABLE_RESTORE_DUMP_FILE",
        conflicts_with = "dump_only"
    )]
    pub dump_file: Option<PathBuf>,
    /// Write the SQL of the rows production lacks to this new file and do not write production:
    /// the runbook's review-and-apply-by-hand path (load it with the mysql client).
    #[arg(long, value_name = "FILE", env = "RDS_TABLE_RESTORE_DUMP_ONLY")]
    pub dump_only: Option<PathBuf>,
    /// The address this tool connects from; the temporary security group opens the port to it only.
    #[arg(long, env = "RDS_TABLE_RESTORE_CLIENT_CIDR")]
    pub client_cidr: Option<String>,
    /// Allow --client-cidr 0.0.0.0/0 or ::/0 (the whole internet).
    #[arg(long, env = "RDS_TABLE_RESTORE_ALLOW_ANY_SOURCE")]
    pub allow_any_source: bool,
    /// Instance class for the restored copy (default: the source's).
    #[arg(long, env = "RDS_TABLE_RESTORE_INSTANCE_CLASS")]
    pub instance_class: Option<String>,
    /// DB parameter group for the restored copy (default: the source's).
    #[arg(long, env = "RDS_TABLE_RESTORE_PARAMETER_GROUP")]
    pub parameter_group: Option<String>,
    /// DB subnet group for the restored copy (default: the source's).
    #[arg(long, env = "RDS_TABLE_RESTORE_SUBNET_GROUP")]
    pub subnet_group: Option<String>,
    /// Make the restored copy publicly accessible: only needed when you connect over the internet
    /// rather than from inside the VPC or through a tunnel.
    #[arg(long, env = "RDS_TABLE_RESTORE_PUBLICLY_ACCESSIBLE")]
    pub publicly_accessible: bool,
    /// Rows per chunk: each chunk is one production transaction and one checkpoint.
    #[arg(long, default_value_t = 1000, env = "RDS_TABLE_RESTORE_CHUNK_SIZE")]
    pub chunk_size: usize,
    /// Bytes of restored rows per chunk at most (a row wider than this goes alone): keeps memory
    /// and every packet small when rows are wide (documents, PDFs). `8MiB`, `512KiB`, `16M` or
    /// plain bytes; lowered to half of the servers' `max_allowed_packet` when that is smaller.
    /// Parallel writers share it (each takes an equal part, 64KiB at least).
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_size, env = "RDS_TABLE_RESTORE_CHUNK_BYTES")]
    pub chunk_bytes: usize,
    /// The longest a chunk's transaction should hold its row locks in production, in
    /// milliseconds: while the application writes, a chunk that took longer makes the chunks
    /// after it smaller (down to one row), and they grow back to --chunk-size when quick.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 100,
        env = "RDS_TABLE_RESTORE_MAX_LOCK_MS"
    )]
    pub max_lock_ms: u64,
    /// Give up waiting for the restored instance after this many minutes.
    #[arg(long, default_value_t = 120, env = "RDS_TABLE_RESTORE_WAIT_TIMEOUT")]
    pub wait_timeout: u64,
    /// What to do with the restored instance when a step fails: keep it for `resume`, or delete
    /// it. Network access is revoked either way.
    #[arg(long, value_enum, default_value = "keep", env = "RDS_TABLE_RESTORE_ON_FAILURE")]
    pub on_failure: OnFailure,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// A byte size: plain bytes, or with a suffix K/KiB, M/MiB, G/GiB (all powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "`{s}` is not a size: write bytes, or a number with KiB, MiB or GiB (8MiB)"
            ))
        }
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size: write bytes, or a number with KiB, MiB or GiB (8MiB)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large a size"))
}

/// `--parallel`: `auto` (0) or a number of writers.
fn parse_parallel(s: &str) -> Result<usize, String> {
    match s.trim() {
        "auto" => Ok(0),
        n => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=16).contains(n))
            .ok_or_else(|| format!("`{s}` is neither `auto` nor a number of writers from 1 to 16")),
    }
}

/// `HOST:PORT`, with IPv6 hosts in brackets.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not HOST:PORT (e.g. 127.0.0.1:3306)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number in `{s}`"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{s}` has no host"));
    }
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}
