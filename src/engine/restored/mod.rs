//! The restored copy: how the rows as they were at the point in time are obtained. One concept
//! with one implementation per kind, each in its own module, behind the small interface the
//! state machine drives: request it, see what AWS shows of it, take the next step it needs, and
//! release it in the order AWS allows. The machine keeps the runbook's steps and the bookkeeping
//! (started before, finished after, resources recorded the moment they exist), and the only
//! choice of kind is [`for_plan`].
//!
//! The kinds: an RDS instance restored to a point in time (`instance`) and a DB cluster
//! restored to one (`cluster`: Aurora MySQL, Multi-AZ DB clusters). The binlog rewind
//! (`--source binlog`) restores nothing in AWS, so it is not a kind of copy here: the machine
//! drives it through its own steps (`machine/rewind.rs`) and the data side builds it
//! (`data/binlog/rewind.rs`). `source` finds what the operator named (an instance, a cluster,
//! or a member of one) before the kind is chosen.

use async_trait::async_trait;

use crate::error::Result;
use crate::plan::Plan;
use crate::ports::{Endpoint, Rds, RestoreRequest};

mod cluster;
mod instance;
mod source;

pub use cluster::ClusterCopy;
pub use instance::InstanceCopy;
pub use source::{check_cluster, find_source, Found};

/// What AWS shows of a restored copy at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CopyView {
    /// The resource's identifier, for messages.
    pub id: String,
    /// Its status as AWS names it (`creating`, `backing-up`, `available`, `deleting`...).
    pub status: String,
    /// Where to connect, once AWS gives an address.
    pub endpoint: Option<Endpoint>,
    /// Each VPC security group with its membership status (`adding`, `active`, `removing`).
    pub security_groups: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// True when the copy can take connections: available, and nothing left to create.
    pub ready: bool,
    /// True when the copy will never become ready (the restore failed, or it is being deleted).
    pub failed: bool,
}

impl CopyView {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// One step of releasing a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// A deletion is under way (just requested, or already); `status` is what AWS shows.
    Pending { status: String },
    /// AWS is busy with the copy (`creating`, `modifying`...) and takes no delete yet.
    Busy { status: String },
    /// AWS shows nothing of the copy any more.
    Gone,
}

#[async_trait]
pub trait RestoredCopy: Send + Sync {
    /// What the copy is, for messages: "RDS instance restore-...".
    fn label(&self) -> String;
    /// Asks AWS for the copy. An answer lost after AWS acted comes back, on the SDK's retry, as
    /// an error [`RestoredCopy::already_exists`] recognises: the machine then adopts the copy
    /// if it carries the run's tag.
    async fn request(&self, request: &RestoreRequest) -> Result<String>;
    /// True for the error AWS gives when the copy exists already.
    fn already_exists(&self, e: &crate::error::Error) -> bool;
    /// What AWS shows of the copy now; `None` while it is not visible (just requested, or gone).
    async fn observe(&self) -> Result<Option<CopyView>>;
    /// Takes the next step a copy that is not ready needs from the tool (a cluster's writer
    /// instance, once the cluster is available); true when it did something. Most kinds only
    /// wait for AWS.
    async fn advance(&self, _view: &CopyView) -> Result<bool> {
        Ok(false)
    }
    /// One step of removing the copy, in the order AWS allows; called until it says `Gone`.
    async fn release(&self) -> Result<Release>;
}

/// The kind of copy a plan restores: the one place that chooses.
pub fn for_plan<'a>(plan: &Plan, rds: &'a dyn Rds) -> Box<dyn RestoredCopy + 'a> {
    match &plan.cluster {
        Some(cluster) => Box::new(ClusterCopy::for_plan(rds, plan, cluster)),
        None => Box::new(InstanceCopy::new(rds, &plan.target_instance)),
    }
}
