//! An RDS instance restored to a point in time (`RestoreDBInstanceToPointInTime`): RDS for
//! MySQL and RDS for MariaDB, single-AZ or Multi-AZ instance deployments.

use async_trait::async_trait;

use super::{CopyView, Release, RestoredCopy};
use crate::error::{Error, Result};
use crate::ports::{Deletion, Instance, Rds, RestoreRequest};

/// Statuses from which a restored instance never becomes available.
pub(super) const DEAD_ENDS: &[&str] = &[
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "storage-full",
    "inaccessible-encryption-credentials",
    "deleting",
];

/// Statuses in which RDS accepts a `DeleteDBInstance`.
pub(super) const DELETABLE: &[&str] = &[
    "available",
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "storage-full",
    "inaccessible-encryption-credentials",
    "stopped",
];

pub struct InstanceCopy<'a> {
    rds: &'a dyn Rds,
    id: String,
}

impl<'a> InstanceCopy<'a> {
    pub fn new(rds: &'a dyn Rds, id: &str) -> InstanceCopy<'a> {
        InstanceCopy {
            rds,
            id: id.to_string(),
        }
    }
}

fn view_of(i: Instance) -> CopyView {
    CopyView {
        ready: i.status == "available",
        failed: DEAD_ENDS.contains(&i.status.as_str()),
        id: i.id,
        status: i.status,
        endpoint: i.endpoint,
        security_groups: if i.security_group_status.is_empty() {
            i.security_groups.into_iter().map(|g| (g, "active".into())).collect()
        } else {
            i.security_group_status
        },
        tags: i.tags,
    }
}

#[async_trait]
impl RestoredCopy for InstanceCopy<'_> {
    fn label(&self) -> String {
        format!("RDS instance {}", self.id)
    }

    async fn request(&self, request: &RestoreRequest) -> Result<String> {
        Ok(self.rds.restore_to_point_in_time(request).await?.status)
    }

    fn already_exists(&self, e: &Error) -> bool {
        e.aws_code() == Some("DBInstanceAlreadyExists")
    }

    async fn observe(&self) -> Result<Option<CopyView>> {
        Ok(self.rds.describe_instance(&self.id).await?.map(view_of))
    }

    async fn release(&self) -> Result<Release> {
        let Some(i) = self.rds.describe_instance(&self.id).await? else {
            return Ok(Release::Gone);
        };
        if i.status == "deleting" {
            return Ok(Release::Pending { status: i.status });
        }
        // RDS refuses a delete while the instance is creating, backing up or modifying.
        if !DELETABLE.contains(&i.status.as_str()) {
            return Ok(Release::Busy { status: i.status });
        }
        match self.rds.delete_instance(&self.id).await {
            Ok(Deletion::Requested | Deletion::AlreadyDeleting) => Ok(Release::Pending {
                status: "deleting".into(),
            }),
            Ok(Deletion::Gone) => Ok(Release::Gone),
            Err(e) if e.aws_code() == Some("InvalidDBInstanceState") => Ok(Release::Busy { status: i.status }),
            Err(e) => Err(e),
        }
    }
}
