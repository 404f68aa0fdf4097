//! The ports through which the state machine reaches AWS and MySQL. The real adapters live in
//! `aws` and `mysql`; the unit tests drive the same machine through in-memory fakes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
pub use mysql_async::Value;

use crate::error::Result;

/// One row, in the column order of [`TableSchema::columns`].
pub type Row = Vec<Value>;

/// A host and port to reach a database at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// What the tool needs to know of an RDS instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instance {
    pub id: String,
    pub engine: String,
    pub engine_version: Option<String>,
    pub status: String,
    pub class: Option<String>,
    pub backup_retention_days: i32,
    pub created: Option<DateTime<Utc>>,
    pub latest_restorable: Option<DateTime<Utc>>,
    pub endpoint: Option<Endpoint>,
    pub port: Option<u16>,
    pub subnet_group: Option<String>,
    pub vpc_id: Option<String>,
    pub parameter_group: Option<String>,
    pub security_groups: Vec<String>,
    pub publicly_accessible: bool,
    pub tags: Vec<(String, String)>,
}

impl Instance {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The arguments of `RestoreDBInstanceToPointInTime` the tool sets.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreRequest {
    pub source: String,
    pub target: String,
    pub time: DateTime<Utc>,
    pub subnet_group: Option<String>,
    pub parameter_group: Option<String>,
    pub class: Option<String>,
    pub publicly_accessible: bool,
    pub tags: Vec<(String, String)>,
    /// Turn on IAM database authentication on the copy (RDS leaves it off on a restore), for
    /// runs that log in with `--iam-auth`.
    pub enable_iam_auth: bool,
}

#[async_trait]
pub trait Rds: Send + Sync {
    /// Every instance in the region (for `cleanup`).
    async fn list_instances(&self) -> Result<Vec<Instance>>;
    /// `None` when no instance has that identifier.
    async fn describe_instance(&self, id: &str) -> Result<Option<Instance>>;
    /// The start of the restore window, from the automated backups (`RestoreWindow`), if RDS gives it.
    async fn earliest_restorable_time(&self, id: &str) -> Result<Option<DateTime<Utc>>>;
    async fn restore_to_point_in_time(&self, request: &RestoreRequest) -> Result<Instance>;
    /// Replaces the instance's VPC security groups (applied immediately).
    async fn set_security_groups(&self, id: &str, groups: &[String]) -> Result<()>;
    /// Deletes without a final snapshot and with its automated backups.
    async fn delete_instance(&self, id: &str) -> Result<()>;
}

/// A security group, as `cleanup` and reconciliation need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub vpc_id: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl Group {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[async_trait]
pub trait Ec2: Send + Sync {
    /// The group of that name in that VPC, if any (to adopt one created before a crash).
    async fn find_security_group(&self, vpc_id: &str, name: &str) -> Result<Option<Group>>;
    /// Every group carrying the tag key (for `cleanup`).
    async fn security_groups_tagged(&self, key: &str) -> Result<Vec<Group>>;
    async fn vpc_of_security_group(&self, group_id: &str) -> Result<Option<String>>;
    async fn create_security_group(
        &self,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<String>;
    /// `None` when the group does not exist (any more).
    async fn security_group_tags(&self, group_id: &str) -> Result<Option<Vec<(String, String)>>>;
    /// Adds the rule; a rule that already exists counts as added.
    async fn authorize_ingress(&self, group_id: &str, port: u16, cidr: &str, description: &str) -> Result<()>;
    async fn revoke_ingress(&self, group_id: &str, port: u16, cidr: &str) -> Result<()>;
    async fn delete_security_group(&self, group_id: &str) -> Result<()>;
}

/// A column as the copy needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The full type as `information_schema.COLUMNS.COLUMN_TYPE` spells it, e.g. `decimal(14,4)`.
    pub column_type: String,
    pub nullable: bool,
}

/// The copyable columns of a table (generated columns are left out: the server computes them)
/// and the positions of its primary key columns among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub columns: Vec<Column>,
    pub key: Vec<usize>,
}

impl TableSchema {
    pub fn key_of<'r>(&self, row: &'r [Value]) -> Vec<&'r Value> {
        self.key.iter().map(|&i| &row[i]).collect()
    }
}

/// Database and table names, as given by the operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableRef {
    pub database: String,
    pub table: String,
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// What one chunk's merge into production found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkOutcome {
    /// The positions, in the chunk, of the rows production lacked (inserted, unless dry).
    pub missing: Vec<usize>,
    pub inserted: u64,
    pub already_present: u64,
    /// Of the rows already present, how many differ from the restored version (kept as they are).
    pub present_differing: u64,
}

/// A connection to one server, restored or production.
#[async_trait]
pub trait Session: Send {
    /// `None` when the table does not exist.
    async fn table_schema(&mut self, table: &TableRef) -> Result<Option<TableSchema>>;
    /// Takes the named advisory lock (`GET_LOCK`) for as long as this session lives; false when
    /// another session holds it.
    async fn try_advisory_lock(&mut self, name: &str) -> Result<bool>;
    /// The server's row estimate (information_schema), for progress only.
    async fn estimate_rows(&mut self, table: &TableRef) -> Result<Option<u64>>;
    /// Up to `limit` rows whose key is greater than `after` (and that match `filter`, a checked
    /// `--where` predicate), in key order.
    async fn read_chunk(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        after: Option<&[Value]>,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>>;
    /// The triggers that fire on inserts into `table`, as `BEFORE INSERT name`.
    async fn insert_triggers(&mut self, table: &TableRef) -> Result<Vec<String>>;
    /// The databases a user could mean (system schemas left out), for the wizard.
    async fn list_databases(&mut self) -> Result<Vec<String>>;
    /// The base tables of a database with the server's row estimates, for the wizard.
    async fn list_tables(&mut self, database: &str) -> Result<Vec<(String, Option<u64>)>>;
    /// Creates `table` with the definition of `like` (a drill's side table).
    async fn create_table_like(&mut self, table: &TableRef, like: &TableRef) -> Result<()>;
    /// Drops `table` (only ever a drill's side table).
    async fn drop_table(&mut self, table: &TableRef) -> Result<()>;
    /// How many rows match a `--where` predicate; the server's error when it is not valid SQL
    /// for this table.
    async fn count_where(&mut self, table: &TableRef, predicate: &str) -> Result<u64>;
    /// In one transaction: locks the key range the rows span, inserts the rows whose key is
    /// absent, commits. Rows already present are left untouched.
    /// With `dry`, only finds the missing rows (no lock, no write), for `--dump-only`.
    async fn insert_missing(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        rows: &[Row],
        dry: bool,
    ) -> Result<ChunkOutcome>;
    /// The rows with keys in `[first, last]`, in key order (no locks).
    async fn rows_in_range(
        &mut self,
        table: &TableRef,
        schema: &TableSchema,
        first: &[Value],
        last: &[Value],
    ) -> Result<Vec<Row>>;
}

/// Opens sessions. `rds_endpoint` is the address RDS reports; the connector may dial elsewhere
/// (an endpoint override) but verifies TLS against that name.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, side: crate::error::Side, rds_endpoint: &Endpoint) -> Result<Box<dyn Session>>;
}
