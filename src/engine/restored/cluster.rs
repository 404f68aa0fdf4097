//! A DB cluster restored to a point in time (`RestoreDBClusterToPointInTime`): Aurora MySQL,
//! and Multi-AZ DB clusters (engine `mysql` with a cluster around it).
//!
//! A restored cluster has no instance of its own: for Aurora the tool adds one writer
//! (`CreateDBInstance --db-cluster-identifier`) once the cluster is available; a Multi-AZ DB
//! cluster's instances are made by RDS from the class the restore names. The copy is ready when
//! the cluster and its writer are available; the tool connects to the writer's endpoint.
//! Releasing runs in the order RDS allows: an Aurora cluster's instances first (RDS refuses to
//! delete a cluster that still holds instances not being deleted), then the cluster; a Multi-AZ
//! DB cluster is deleted whole (RDS refuses to delete its instances one by one).

use async_trait::async_trait;

use super::{CopyView, Release, RestoredCopy};
use crate::error::{Error, Result};
use crate::plan::{ClusterPlan, TAG_RUN_ID};
use crate::ports::{ClusterInstanceRequest, ClusterRestore, Deletion, Instance, Rds, RestoreRequest};

/// Cluster statuses from which a restored cluster never becomes available.
const DEAD_ENDS: &[&str] = &[
    "failed",
    "cloning-failed",
    "migration-failed",
    "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable",
    "deleting",
];

/// Cluster statuses in which RDS accepts a `DeleteDBCluster`.
const DELETABLE: &[&str] = &[
    "available",
    "stopped",
    "failed",
    "cloning-failed",
    "migration-failed",
    "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable",
];

/// The status shown while an available Aurora cluster waits for the writer the tool adds.
const NO_WRITER: &str = "available, no writer instance yet";

pub struct ClusterCopy<'a> {
    rds: &'a dyn Rds,
    id: String,
    run_id: String,
    multi_az: bool,
    /// The writer the tool adds (Aurora), with what `CreateDBInstance` needs; `None` for a
    /// Multi-AZ DB cluster, and for `cleanup`, which only releases.
    writer: Option<ClusterInstanceRequest>,
    restore: ClusterRestore,
}

impl<'a> ClusterCopy<'a> {
    /// The copy a run's plan restores.
    pub fn for_plan(rds: &'a dyn Rds, plan: &crate::plan::Plan, cluster: &ClusterPlan) -> ClusterCopy<'a> {
        ClusterCopy {
            rds,
            id: plan.target_instance.clone(),
            run_id: plan.run_id.clone(),
            multi_az: cluster.multi_az,
            writer: (!cluster.multi_az).then(|| ClusterInstanceRequest {
                id: cluster.writer.clone(),
                cluster: plan.target_instance.clone(),
                engine: cluster.engine.clone(),
                class: cluster
                    .writer_class
                    .clone()
                    .or_else(|| plan.instance_class.clone())
                    .unwrap_or_else(|| "db.r6g.large".into()),
                tags: plan.tags(),
                ca_certificate: cluster.ca_certificate.clone(),
            }),
            restore: ClusterRestore {
                engine: cluster.engine.clone(),
                instance_class: cluster
                    .multi_az
                    .then(|| plan.instance_class.clone().or(cluster.writer_class.clone()))
                    .flatten(),
                storage_type: cluster.storage_type.clone(),
                iops: cluster.iops,
                serverless_v2: cluster.serverless_v2,
            },
        }
    }

    /// A cluster found by its tags (for `cleanup`): released, never advanced.
    pub fn found(rds: &'a dyn Rds, cluster: &crate::ports::Cluster, run_id: &str) -> ClusterCopy<'a> {
        ClusterCopy {
            rds,
            id: cluster.id.clone(),
            run_id: run_id.to_string(),
            multi_az: cluster.is_multi_az(),
            writer: None,
            restore: ClusterRestore::default(),
        }
    }

    /// The instances to delete before the cluster (Aurora): its members, and the writer the
    /// tool adds, which the cluster may not list yet.
    fn members(&self, listed: &[(String, bool)]) -> Vec<String> {
        let mut ids: Vec<String> = listed.iter().map(|(id, _)| id.clone()).collect();
        if let Some(w) = &self.writer {
            if !ids.contains(&w.id) {
                ids.push(w.id.clone());
            }
        }
        ids
    }

    fn ours(&self, tags: &[(String, String)]) -> bool {
        tags.iter().any(|(k, v)| k == TAG_RUN_ID && *v == self.run_id)
    }
}

#[async_trait]
impl RestoredCopy for ClusterCopy<'_> {
    fn label(&self) -> String {
        format!("DB cluster {}", self.id)
    }

    async fn request(&self, request: &RestoreRequest) -> Result<String> {
        let mut request = request.clone();
        request.target = self.id.clone();
        Ok(self
            .rds
            .restore_cluster_to_point_in_time(&request, &self.restore)
            .await?
            .status)
    }

    fn already_exists(&self, e: &Error) -> bool {
        e.aws_code() == Some("DBClusterAlreadyExistsFault")
    }

    async fn observe(&self) -> Result<Option<CopyView>> {
        let Some(c) = self.rds.describe_cluster(&self.id).await? else {
            return Ok(None);
        };
        let writer_id = match &self.writer {
            Some(w) => Some(w.id.clone()),
            None => c.writer().map(str::to_string),
        };
        let writer: Option<Instance> = match &writer_id {
            Some(w) => self.rds.describe_instance(w).await?,
            None => None,
        };
        let mut view = CopyView {
            id: c.id.clone(),
            status: c.status.clone(),
            endpoint: None,
            security_groups: c.security_groups.clone(),
            tags: c.tags.clone(),
            ready: false,
            failed: DEAD_ENDS.contains(&c.status.as_str()),
        };
        if c.status != "available" {
            return Ok(Some(view));
        }
        match writer {
            None if self.multi_az => view.status = "available, instances not visible yet".into(),
            None => view.status = NO_WRITER.into(),
            Some(w) => {
                // An instance of that name that this run did not tag is not ours to use.
                if !self.multi_az && !self.ours(&w.tags) {
                    view.tags = w.tags.clone();
                }
                if w.status == "available" {
                    view.status = "available".into();
                    view.endpoint = w.endpoint.clone();
                    view.ready = true;
                } else {
                    view.failed = super::instance::DEAD_ENDS.contains(&w.status.as_str());
                    view.status = format!("available, writer {} {}", w.id, w.status);
                }
            }
        }
        Ok(Some(view))
    }

    async fn advance(&self, view: &CopyView) -> Result<bool> {
        let Some(writer) = &self.writer else {
            return Ok(false);
        };
        if view.status != NO_WRITER {
            return Ok(false);
        }
        match self.rds.create_cluster_instance(writer).await {
            Ok(()) => Ok(true),
            // Created already (a lost answer, a request before a crash): it shows in a moment,
            // and its tag is checked then.
            Err(e) if e.aws_code() == Some("DBInstanceAlreadyExists") => Ok(false),
            Err(e) if e.aws_code() == Some("InvalidDBClusterStateFault") => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release(&self) -> Result<Release> {
        let Some(c) = self.rds.describe_cluster(&self.id).await? else {
            return Ok(Release::Gone);
        };
        if c.status == "deleting" {
            return Ok(Release::Pending { status: c.status });
        }
        if !self.multi_az {
            let mut deleting = Vec::new();
            for id in self.members(&c.members) {
                let Some(i) = self.rds.describe_instance(&id).await? else {
                    continue;
                };
                if !self.ours(&i.tags) {
                    return Err(Error::NotOurs {
                        action: "delete RDS instance",
                        id: i.id,
                        key: TAG_RUN_ID,
                        run_id: self.run_id.clone(),
                    });
                }
                if i.status == "deleting" {
                    deleting.push(i.id);
                    continue;
                }
                if !super::instance::DELETABLE.contains(&i.status.as_str()) {
                    return Ok(Release::Busy {
                        status: format!("instance {} {}", i.id, i.status),
                    });
                }
                match self.rds.delete_instance(&i.id).await {
                    Ok(Deletion::Requested | Deletion::AlreadyDeleting) => deleting.push(i.id),
                    Ok(Deletion::Gone) => {}
                    Err(e) if e.aws_code() == Some("InvalidDBInstanceState") => {
                        return Ok(Release::Busy {
                            status: format!("instance {} {}", i.id, i.status),
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            if !deleting.is_empty() {
                return Ok(Release::Pending {
                    status: format!("instance {} deleting", deleting.join(", ")),
                });
            }
        }
        if !DELETABLE.contains(&c.status.as_str()) {
            return Ok(Release::Busy { status: c.status });
        }
        match self.rds.delete_cluster(&self.id).await {
            Ok(Deletion::Requested | Deletion::AlreadyDeleting) => Ok(Release::Pending {
                status: "deleting".into(),
            }),
            Ok(Deletion::Gone) => Ok(Release::Gone),
            // An instance not listed yet, or the cluster busy: asked again on the next step.
            Err(e) if e.aws_code() == Some("InvalidDBClusterStateFault") => Ok(Release::Busy { status: c.status }),
            Err(e) => Err(e),
        }
    }
}
