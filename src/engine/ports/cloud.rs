//! The cloud side's ports: what the tool asks of RDS and EC2, and what it needs to know of
//! their resources. The adapter is `aws`; the unit tests use in-memory fakes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Endpoint;
use crate::error::Result;

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
    /// Each VPC security group with its membership status (`adding`, `active`, `removing`).
    pub security_group_status: Vec<(String, String)>,
    pub publicly_accessible: bool,
    pub tags: Vec<(String, String)>,
    /// The instance's own identity, which outlives a rename and tells a deleted instance's
    /// retained backups from this one's.
    pub dbi_resource_id: Option<String>,
    /// The DB cluster the instance belongs to (Aurora, Multi-AZ DB cluster).
    pub cluster: Option<String>,
    pub ca_certificate: Option<String>,
    /// The start of the restore window when AWS gives it with the resource (DB clusters do;
    /// for an instance it comes from its automated backups).
    pub earliest_restorable: Option<DateTime<Utc>>,
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
    /// The copy's VPC security groups: only the one this run created. Without them RDS puts
    /// the copy in the VPC's default group, which usually admits everything in it.
    pub security_groups: Vec<String>,
    /// The source's CA, so the copy's certificate verifies like production's.
    pub ca_certificate: Option<String>,
}

/// What the tool needs to know of a DB cluster (Aurora MySQL, or a Multi-AZ DB cluster).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    pub id: String,
    pub engine: String,
    pub engine_version: Option<String>,
    /// `provisioned`, `serverless` (Aurora Serverless v1: no instances), ...
    pub engine_mode: Option<String>,
    pub status: String,
    pub backup_retention_days: i32,
    pub earliest_restorable: Option<DateTime<Utc>>,
    pub latest_restorable: Option<DateTime<Utc>>,
    /// The writer endpoint.
    pub endpoint: Option<Endpoint>,
    pub port: Option<u16>,
    pub subnet_group: Option<String>,
    pub parameter_group: Option<String>,
    /// Each VPC security group with its membership status.
    pub security_groups: Vec<(String, String)>,
    /// The member instances, each with true for the writer.
    pub members: Vec<(String, bool)>,
    /// Set for a Multi-AZ DB cluster: the class of every instance, which RDS creates itself.
    pub instance_class: Option<String>,
    pub storage_type: Option<String>,
    pub iops: Option<i32>,
    /// Aurora Serverless v2 capacity range (ACUs), when the cluster has one.
    pub serverless_v2: Option<(f64, f64)>,
    /// Aurora's backtrack window in seconds, when backtracking is on.
    pub backtrack_window: Option<i64>,
    pub tags: Vec<(String, String)>,
}

impl Cluster {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The writer instance's identifier, if the cluster has one.
    pub fn writer(&self) -> Option<&str> {
        self.members.iter().find(|(_, w)| *w).map(|(id, _)| id.as_str())
    }

    /// A Multi-AZ DB cluster (engine `mysql`, instances made by RDS) rather than Aurora.
    pub fn is_multi_az(&self) -> bool {
        !self.engine.starts_with("aurora")
    }
}

/// What `RestoreDBClusterToPointInTime` is given beyond an instance restore's arguments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterRestore {
    pub engine: String,
    /// Multi-AZ DB clusters only: RDS creates the instances from these.
    pub instance_class: Option<String>,
    pub storage_type: Option<String>,
    pub iops: Option<i32>,
    pub serverless_v2: Option<(f64, f64)>,
}

/// The writer instance the tool adds to a restored Aurora cluster (`CreateDBInstance`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterInstanceRequest {
    pub id: String,
    pub cluster: String,
    pub engine: String,
    pub class: String,
    pub tags: Vec<(String, String)>,
    pub ca_certificate: Option<String>,
}

/// How a `DeleteDBInstance` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Accepted now.
    Requested,
    /// Already under way (a request before a crash, or another caller's).
    AlreadyDeleting,
    /// There is no such instance (any more).
    Gone,
}

#[async_trait]
pub trait Rds: Send + Sync {
    /// Every instance in the region (for `cleanup`).
    async fn list_instances(&self) -> Result<Vec<Instance>>;
    /// `None` when no instance has that identifier.
    async fn describe_instance(&self, id: &str) -> Result<Option<Instance>>;
    /// The start of the restore window: the `RestoreWindow` of the *active* automated backup of
    /// this very instance (`dbi_resource_id`), if RDS gives it. A retained backup of an older,
    /// deleted instance of the same name covers times this one cannot be restored to.
    async fn earliest_restorable_time(&self, id: &str, dbi_resource_id: Option<&str>) -> Result<Option<DateTime<Utc>>>;
    /// A restore that AWS answers with `DBInstanceAlreadyExists` (a retry after a lost answer,
    /// or a request before a crash) fails with that code: the caller adopts or refuses it.
    async fn restore_to_point_in_time(&self, request: &RestoreRequest) -> Result<Instance>;
    /// Deletes without a final snapshot and with its automated backups. Refused with
    /// `InvalidDBInstanceState` while the instance is busy (creating, modifying, ...).
    async fn delete_instance(&self, id: &str) -> Result<Deletion>;
    /// Every DB cluster in the region (for the wizard and `cleanup`).
    async fn list_clusters(&self) -> Result<Vec<Cluster>>;
    /// `None` when no cluster has that identifier.
    async fn describe_cluster(&self, id: &str) -> Result<Option<Cluster>>;
    /// `RestoreType=full-copy` to `request.time`; `DBClusterAlreadyExistsFault` is the
    /// caller's to adopt or refuse, as for instances.
    async fn restore_cluster_to_point_in_time(
        &self,
        request: &RestoreRequest,
        cluster: &ClusterRestore,
    ) -> Result<Cluster>;
    /// Adds an instance to a cluster (refused while the cluster is not `available`).
    async fn create_cluster_instance(&self, request: &ClusterInstanceRequest) -> Result<()>;
    /// Deletes without a final snapshot. Refused while the cluster is busy or still has
    /// instances that are not being deleted (Aurora).
    async fn delete_cluster(&self, id: &str) -> Result<Deletion>;
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
    /// One attempt: `DependencyViolation` while an instance (a deleting one too) holds the
    /// group is the caller's to wait out. A group that does not exist counts as deleted.
    async fn delete_security_group(&self, group_id: &str) -> Result<()>;
}
