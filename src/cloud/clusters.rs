//! The RDS calls of DB clusters (Aurora MySQL, Multi-AZ DB clusters): describe, restore to a
//! point in time, add the writer instance, delete. Each is one attempt, as in `aws`.

use aws_sdk_rds::error::ProvideErrorMetadata;
use aws_sdk_rds::types::{ServerlessV2ScalingConfiguration, Tag};

use super::aws::{aws_err, chrono_time, no_answer, AwsRds};
use crate::error::Result;
use crate::ports::{Cluster, ClusterInstanceRequest, ClusterRestore, Deletion, Endpoint, RestoreRequest};

fn tags_of(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn cluster_of(c: &aws_sdk_rds::types::DbCluster) -> Cluster {
    let port = c.port().and_then(|p| u16::try_from(p).ok());
    Cluster {
        id: c.db_cluster_identifier().unwrap_or_default().to_string(),
        engine: c.engine().unwrap_or_default().to_string(),
        engine_version: c.engine_version().map(str::to_string),
        engine_mode: c.engine_mode().map(str::to_string),
        status: c.status().unwrap_or("unknown").to_string(),
        backup_retention_days: c.backup_retention_period().unwrap_or(0),
        earliest_restorable: c.earliest_restorable_time().and_then(chrono_time),
        latest_restorable: c.latest_restorable_time().and_then(chrono_time),
        endpoint: c.endpoint().zip(port).map(|(host, port)| Endpoint {
            host: host.to_string(),
            port,
        }),
        port,
        subnet_group: c.db_subnet_group().map(str::to_string),
        parameter_group: c.db_cluster_parameter_group().map(str::to_string),
        security_groups: c
            .vpc_security_groups()
            .iter()
            .filter_map(|g| {
                Some((
                    g.vpc_security_group_id()?.to_string(),
                    g.status().unwrap_or("active").to_string(),
                ))
            })
            .collect(),
        members: c
            .db_cluster_members()
            .iter()
            .filter_map(|m| {
                Some((
                    m.db_instance_identifier()?.to_string(),
                    m.is_cluster_writer().unwrap_or(false),
                ))
            })
            .collect(),
        instance_class: c.db_cluster_instance_class().map(str::to_string),
        storage_type: c.storage_type().map(str::to_string),
        iops: c.iops(),
        serverless_v2: c
            .serverless_v2_scaling_configuration()
            .and_then(|s| Some((s.min_capacity()?, s.max_capacity()?))),
        backtrack_window: c.backtrack_window().filter(|w| *w > 0),
        tags: c
            .tag_list()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect(),
    }
}

impl AwsRds {
    pub(super) async fn clusters(&self) -> Result<Vec<Cluster>> {
        let mut pages = self.client.describe_db_clusters().into_paginator().send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_err("DescribeDBClusters", e))?;
            all.extend(page.db_clusters().iter().map(cluster_of));
        }
        Ok(all)
    }

    pub(super) async fn cluster(&self, id: &str) -> Result<Option<Cluster>> {
        tracing::debug!(cluster = id, "DescribeDBClusters");
        match self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_clusters().first().map(cluster_of)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_db_cluster_not_found_fault()) => Ok(None),
            Err(e) => Err(aws_err("DescribeDBClusters", e)),
        }
    }

    /// A full copy (a copy-on-write clone cannot take a `RestoreToTime`), into the run's own
    /// group only, with the source's subnet group and cluster parameter group, no backtrack
    /// window and no deletion protection. A Multi-AZ DB cluster also takes the class, storage
    /// type and IOPS of the instances RDS creates for it; it is never publicly accessible.
    pub(super) async fn restore_cluster(&self, r: &RestoreRequest, c: &ClusterRestore) -> Result<Cluster> {
        tracing::debug!(source = %r.source, target = %r.target, time = %r.time, "RestoreDBClusterToPointInTime");
        let serverless = c.serverless_v2.map(|(min, max)| {
            ServerlessV2ScalingConfiguration::builder()
                .min_capacity(min)
                .max_capacity(max)
                .build()
        });
        let multi_az = c.instance_class.is_some();
        let out = self
            .client
            .restore_db_cluster_to_point_in_time()
            .source_db_cluster_identifier(&r.source)
            .db_cluster_identifier(&r.target)
            .restore_type("full-copy")
            .restore_to_time(aws_smithy_types::DateTime::from_secs(r.time.timestamp()))
            .set_db_subnet_group_name(r.subnet_group.clone())
            .set_db_cluster_parameter_group_name(r.parameter_group.clone())
            .set_vpc_security_group_ids(Some(r.security_groups.clone()))
            .deletion_protection(false)
            .copy_tags_to_snapshot(false)
            .set_enable_iam_database_authentication(r.enable_iam_auth.then_some(true))
            .set_serverless_v2_scaling_configuration(serverless)
            .set_db_cluster_instance_class(c.instance_class.clone())
            .set_storage_type(c.storage_type.clone())
            .set_iops(c.iops)
            .set_publicly_accessible(multi_az.then_some(r.publicly_accessible))
            .set_tags(Some(tags_of(&r.tags)))
            .send()
            .await
            .map_err(|e| aws_err("RestoreDBClusterToPointInTime", e))?;
        out.db_cluster()
            .map(cluster_of)
            .ok_or_else(|| no_answer("RestoreDBClusterToPointInTime", "described no cluster"))
    }

    /// The restored Aurora cluster's one writer: not public, the source writer's class and CA.
    pub(super) async fn add_cluster_instance(&self, r: &ClusterInstanceRequest) -> Result<()> {
        tracing::debug!(instance = %r.id, cluster = %r.cluster, "CreateDBInstance");
        self.client
            .create_db_instance()
            .db_instance_identifier(&r.id)
            .db_cluster_identifier(&r.cluster)
            .engine(&r.engine)
            .db_instance_class(&r.class)
            .publicly_accessible(false)
            .set_ca_certificate_identifier(r.ca_certificate.clone())
            .set_tags(Some(tags_of(&r.tags)))
            .send()
            .await
            .map_err(|e| aws_err("CreateDBInstance", e))?;
        Ok(())
    }

    pub(super) async fn remove_cluster(&self, id: &str) -> Result<Deletion> {
        tracing::debug!(cluster = id, "DeleteDBCluster");
        match self
            .client
            .delete_db_cluster()
            .db_cluster_identifier(id)
            .skip_final_snapshot(true)
            .send()
            .await
        {
            Ok(_) => Ok(Deletion::Requested),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_db_cluster_not_found_fault()) => Ok(Deletion::Gone),
            Err(e)
                if e.code() == Some("InvalidDBClusterStateFault")
                    && e.message().is_some_and(|m| m.contains("already being deleted")) =>
            {
                Ok(Deletion::AlreadyDeleting)
            }
            Err(e) => Err(aws_err("DeleteDBCluster", e)),
        }
    }
}
