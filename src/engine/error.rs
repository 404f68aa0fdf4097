//! The errors the core can report. Each message says what is wrong and what to do about it,
//! because the person reading it is in the middle of an incident.

use std::fmt;

/// Which server a data-plane error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    Production,
    Restored,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Production => "production",
            Side::Restored => "the restored instance",
        })
    }
}

/// A restored row no statement can carry: what to tell the operator.
#[derive(Debug)]
pub struct OversizeRow {
    pub table: String,
    pub key: String,
    pub size: String,
    pub side: Side,
    pub limit: String,
    pub needed: String,
    pub group: String,
    pub written: String,
}

impl fmt::Display for OversizeRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the row of `{}` with key {} is {}, larger than max_allowed_packet on {} ({}): no statement can \
             carry it, so {}. Raise max_allowed_packet to at least {} in {}, then run `rds-table-restore resume`",
            self.table, self.key, self.size, self.side, self.limit, self.written, self.needed, self.group
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- found by validation, before anything is created ----
    #[error("no RDS instance named `{id}` in {region}: check --instance and the region (--region or AWS_REGION)")]
    InstanceNotFound { id: String, region: String },

    #[error("`{id}` runs engine `{engine}`: this tool restores RDS for MySQL and RDS for MariaDB instances only")]
    UnsupportedEngine { id: String, engine: String },

    #[error("no DB cluster named `{id}` in {region}: check --cluster and the region (--region or AWS_REGION)")]
    ClusterNotFound { id: String, region: String },

    #[error("the DB cluster `{id}` cannot be restored by this tool: {why}")]
    UnsupportedCluster { id: String, why: String },

    #[error("`{id}` keeps no automated backups (BackupRetentionPeriod is 0), so RDS has no point in time to restore it to; enable backup retention to be covered next time")]
    NoBackups { id: String },

    #[error("{time} is before the earliest restorable time of `{id}` ({earliest}): RDS can restore it only to a second inside [{earliest}, {latest}] (backups are kept {days} days); choose a --time inside it")]
    TimeTooEarly {
        id: String,
        time: String,
        earliest: String,
        latest: String,
        days: i32,
    },

    #[error("{time} is after the latest restorable time of `{id}` ({latest}): RDS uploads transaction logs every few minutes; wait a few minutes and retry, or choose an earlier --time")]
    TimeTooLate { id: String, time: String, latest: String },

    #[error("{time} is in the future: give the moment just before the damage, e.g. --time 2024-05-01T09:14:00Z")]
    TimeInFuture { time: String },

    #[error("RDS reports no latest restorable time for `{id}` (status `{status}`): wait until the instance is available and retry")]
    NoRestoreWindow { id: String, status: String },

    #[error("{0}")]
    InvalidInput(String),

    #[error("table `{database}`.`{table}` does not exist on production: check --database and --table (names are case-sensitive on RDS for MySQL); if it was dropped, add --recreate-table to create it from the restored copy's definition")]
    TableNotFound { database: String, table: String },

    #[error("table `{database}`.`{table}` has no primary key: rows cannot be matched between the restored copy and production, so a merge is not safe; use --mode side-table to load the restored rows into a new table beside it and merge them by hand")]
    NoPrimaryKey { database: String, table: String },

    #[error("--mode {mode} needs {privileges} on `{table}`, which user `{user}` lacks: grant it (GRANT {privileges} ON {table} TO ...), or use --mode missing-rows, which only inserts")]
    MissingPrivileges {
        mode: &'static str,
        privileges: String,
        table: String,
        user: String,
    },

    #[error("{side} refused the login of user `{user}` at {address}: check --db-user and the password (RDS_TABLE_RESTORE_DB_PASSWORD or --db-password-file)")]
    DbAuth { side: Side, user: String, address: String },

    #[error("cannot connect to {side} at {address}: {detail}{hint}")]
    DbConnect {
        side: Side,
        address: String,
        detail: String,
        hint: String,
    },

    #[error("production's binary log cannot answer this: {what}; {fix}")]
    BinlogUnusable { what: String, fix: String },

    #[error("this run writes to production and needs your explicit consent: run it on a terminal to be asked, or pass --yes in scripts")]
    ConsentRequired,

    #[error("stopped at your request: this command changed nothing")]
    Declined,

    // ---- found while running ----
    #[error("{0}")]
    Aws(AwsError),

    #[error("the restored instance `{id}` is in security groups this run did not create ({groups}): the tool never lets the copy join them; end the run with `rds-table-restore abort {run_id}`")]
    NotIsolated { id: String, groups: String, run_id: String },

    #[error("{what} did not finish within {minutes} minutes ({detail}): finish it with `{command}`")]
    StillPending {
        what: String,
        minutes: u64,
        detail: String,
        command: String,
    },

    #[error("database error on {side}: {detail}")]
    Db { side: Side, detail: String },

    #[error(
        "the restored table differs from production: {0}. Nothing was written; compare `SHOW CREATE TABLE` on both"
    )]
    SchemaMismatch(String),

    #[error("{0}")]
    RowTooLarge(Box<OversizeRow>),

    #[error("the restored instance `{id}` was not available after {minutes} minutes (last status `{status}`): raise --wait-timeout, or check the RDS console")]
    WaitTimeout { id: String, minutes: u64, status: String },

    #[error("the restored instance `{id}` went to status `{status}` and will not become available: check the RDS events for it")]
    RestoreFailed { id: String, status: String },

    #[error("`{id}` has no endpoint yet (RDS reported no address for it): wait until it is available and retry")]
    NoEndpoint { id: String },

    #[error("verification failed: {0}")]
    VerificationFailed(String),

    #[error("refusing to {action} `{id}`: it does not carry the tag {key}={run_id}, so this run did not create it; the tool changes only what it created")]
    NotOurs {
        action: &'static str,
        id: String,
        key: &'static str,
        run_id: String,
    },

    #[error("cannot write the state file {path}: {detail}")]
    State { path: String, detail: String },

    #[error("lost the connection to {side}: {detail}")]
    DbConnectionLost { side: Side, detail: String },

    #[error("{side} kept answering with lock conflicts ({detail}): another transaction holds the rows or gaps this chunk needs; find it (SHOW ENGINE INNODB STATUS), then resume")]
    DbConflict { side: Side, detail: String },

    #[error("run {run_id} for this table is unfinished (last step: {step}): continue it with `rds-table-restore resume {run_id}` or end it with `rds-table-restore abort {run_id}` before starting another")]
    Unfinished { run_id: String, step: String },

    #[error("another rds-table-restore process is working on {what} right now (lock {lock}): wait for it to end")]
    Busy { what: String, lock: String },

    #[error("another rds-table-restore run holds the lock for {table} on production (GET_LOCK `{lock}`): only one run may write a table at a time")]
    ProductionBusy { table: String, lock: String },

    #[error("run {run_id} is {outcome}: there is nothing to {action}")]
    AlreadyFinished {
        run_id: String,
        outcome: String,
        action: &'static str,
    },

    #[error("interrupted")]
    Interrupted,
}

/// An AWS error as the operator needs it: one line with the operation, the AWS error code,
/// its message and the request id (what AWS support asks for), then what to do. Never the
/// SDK's debug structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub operation: &'static str,
    /// The AWS error code (`InvalidDBInstanceState`); `None` when no answer came (a timeout,
    /// a refused connection).
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
}

impl AwsError {
    pub fn new(operation: &'static str, code: Option<&str>, message: impl Into<String>) -> AwsError {
        AwsError {
            operation,
            code: code.map(str::to_string),
            message: message.into(),
            request_id: None,
        }
    }

    /// What to do about it, for the codes an operator can act on.
    fn hint(&self) -> &'static str {
        match self.code.as_deref() {
            Some(c) if c.contains("AccessDenied") || c == "UnauthorizedOperation" || c == "AuthFailure" => {
                "the AWS identity lacks a permission: compare it with docs/iam-policy.json"
            }
            Some("ExpiredToken" | "ExpiredTokenException" | "InvalidClientTokenId" | "UnrecognizedClientException") => {
                "the AWS credentials are expired or wrong: log in again (aws sso login, or fresh keys)"
            }
            Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded") => {
                "AWS kept throttling after retries: wait a minute, then resume"
            }
            Some("InvalidDBInstanceState") => "the instance is busy with another change: wait for it, then resume",
            Some("DependencyViolation") => {
                "the group is still held by an instance being deleted: wait a few minutes, then resume"
            }
            Some("StorageQuotaExceeded" | "InstanceQuotaExceeded" | "DBInstanceQuotaExceeded") => {
                "an account quota is reached: raise it (Service Quotas) or delete unused instances"
            }
            Some("KMSKeyNotAccessibleFault") => {
                "the source is encrypted with a KMS key this identity cannot use: see the KMS statement in docs/iam-policy.json"
            }
            None => "no answer from AWS: check the network and the endpoint (AWS_ENDPOINT_URL), then resume",
            _ => "-v shows every AWS call",
        }
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AWS {} failed: ", self.operation)?;
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        write!(f, "{}", one_line(&self.message))?;
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        write!(f, "; {}", self.hint())
    }
}

/// Folds a message onto one line, cut at a length that still reads on a terminal.
pub fn one_line(message: &str) -> String {
    let folded: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match folded.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &folded[..i]),
        None => folded,
    }
}

impl Error {
    /// The AWS error code, when this is an AWS error that carries one.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Error::Aws(e) => e.code.as_deref(),
            _ => None,
        }
    }

    /// True for errors found before any resource was created or any row written.
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            Error::InstanceNotFound { .. }
                | Error::UnsupportedEngine { .. }
                | Error::ClusterNotFound { .. }
                | Error::UnsupportedCluster { .. }
                | Error::NoBackups { .. }
                | Error::TimeTooEarly { .. }
                | Error::TimeTooLate { .. }
                | Error::TimeInFuture { .. }
                | Error::NoRestoreWindow { .. }
                | Error::InvalidInput(_)
                | Error::TableNotFound { .. }
                | Error::NoPrimaryKey { .. }
                | Error::MissingPrivileges { .. }
                | Error::DbAuth { .. }
                | Error::DbConnect { .. }
                | Error::BinlogUnusable { .. }
                | Error::ConsentRequired
                | Error::Declined
                | Error::Unfinished { .. }
                | Error::Busy { .. }
                | Error::ProductionBusy { .. }
                | Error::AlreadyFinished { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
