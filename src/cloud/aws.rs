//! The AWS adapters of the control-plane ports, on aws-sdk-rds and aws-sdk-ec2.
//!
//! Throttling, 5xx and transport errors are retried by the SDK's standard retry mode (set up in
//! `load_config`); what reaches the machine is an error worth telling the operator about, as an
//! [`AwsError`] (operation, code, message, request id). Each call here is one attempt at one
//! thing: waiting out AWS's states (`modifying`, `deleting`, eventual consistency) is the
//! machine's, which knows how long a step may take.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Ipv6Range, ResourceType, TagSpecification};
use aws_sdk_rds::error::SdkError;
use aws_sdk_rds::operation::RequestId;
use chrono::{DateTime, Utc};

use crate::error::{AwsError, Error, Result};
use crate::ports::{
    Cluster, ClusterInstanceRequest, ClusterRestore, Deletion, Ec2, Endpoint, Group, Instance, Rds, RestoreRequest,
};

/// Loads the AWS configuration the usual way (env, profile, SSO, instance role), honouring
/// `AWS_ENDPOINT_URL`, with the SDK's standard retries.
pub async fn load_config(region: Option<String>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(
        RetryConfig::standard()
            .with_max_attempts(6)
            .with_max_backoff(Duration::from_secs(20)),
    );
    if let Some(r) = region {
        loader = loader.region(Region::new(r));
    }
    loader.load().await
}

/// One line from an SDK error: the service's code and message when AWS answered, else the
/// chain of causes (a timeout, a refused connection), never the SDK's debug structure.
pub(super) fn aws_err<E, R>(operation: &'static str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
    SdkError<E, R>: RequestId,
{
    let request_id = e.request_id().map(str::to_string).or_else(|| match &e {
        // EC2 names it in the error body only; the SDK keeps it in the error's metadata.
        SdkError::ServiceError(s) => s.err().meta().request_id().map(str::to_string),
        _ => None,
    });
    let (code, message) = match &e {
        SdkError::ServiceError(s) => (
            s.err().code().map(str::to_string),
            s.err().message().map(str::to_string).unwrap_or_else(|| causes(s.err())),
        ),
        other => (None, causes(other)),
    };
    tracing::debug!(operation, ?code, %message, ?request_id, "AWS error");
    Error::Aws(AwsError {
        operation,
        code,
        message,
        request_id,
    })
}

/// "timeout: connect: connection refused": each cause once, without the SDK's debug dump.
fn causes(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

pub(super) fn no_answer(operation: &'static str, what: &str) -> Error {
    Error::Aws(AwsError::new(operation, None, format!("the answer {what}")))
}

pub(super) fn chrono_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

pub struct AwsRds {
    pub(super) client: aws_sdk_rds::Client,
}

impl AwsRds {
    pub fn new(config: &SdkConfig) -> AwsRds {
        AwsRds {
            client: aws_sdk_rds::Client::new(config),
        }
    }
}

fn instance_of(db: &aws_sdk_rds::types::DbInstance) -> Instance {
    let endpoint = db.endpoint().and_then(|e| {
        Some(Endpoint {
            host: e.address()?.to_string(),
            port: u16::try_from(e.port()?).ok()?,
        })
    });
    Instance {
        id: db.db_instance_identifier().unwrap_or_default().to_string(),
        engine: db.engine().unwrap_or_default().to_string(),
        engine_version: db.engine_version().map(str::to_string),
        status: db.db_instance_status().unwrap_or("unknown").to_string(),
        class: db.db_instance_class().map(str::to_string),
        backup_retention_days: db.backup_retention_period().unwrap_or(0),
        created: db.instance_create_time().and_then(chrono_time),
        latest_restorable: db.latest_restorable_time().and_then(chrono_time),
        port: endpoint
            .as_ref()
            .map(|e| e.port)
            .or(db.db_instance_port().and_then(|p| u16::try_from(p).ok())),
        endpoint,
        subnet_group: db
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_name())
            .map(str::to_string),
        vpc_id: db.db_subnet_group().and_then(|g| g.vpc_id()).map(str::to_string),
        parameter_group: db
            .db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_name())
            .map(str::to_string),
        security_groups: db
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect(),
        security_group_status: db
            .vpc_security_groups()
            .iter()
            .filter_map(|g| {
                Some((
                    g.vpc_security_group_id()?.to_string(),
                    g.status().unwrap_or("unknown").to_string(),
                ))
            })
            .collect(),
        publicly_accessible: db.publicly_accessible().unwrap_or(false),
        tags: db
            .tag_list()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect(),
        dbi_resource_id: db.dbi_resource_id().map(str::to_string),
        cluster: db.db_cluster_identifier().map(str::to_string),
        ca_certificate: db.ca_certificate_identifier().map(str::to_string),
        earliest_restorable: None,
    }
}

#[async_trait]
impl Rds for AwsRds {
    async fn list_instances(&self) -> Result<Vec<Instance>> {
        let mut pages = self.client.describe_db_instances().into_paginator().send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_err("DescribeDBInstances", e))?;
            all.extend(page.db_instances().iter().map(instance_of));
        }
        Ok(all)
    }

    async fn describe_instance(&self, id: &str) -> Result<Option<Instance>> {
        tracing::debug!(instance = id, "DescribeDBInstances");
        match self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_instances().first().map(instance_of)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_db_instance_not_found_fault()) => Ok(None),
            Err(e) => Err(aws_err("DescribeDBInstances", e)),
        }
    }

    async fn earliest_restorable_time(&self, id: &str, dbi_resource_id: Option<&str>) -> Result<Option<DateTime<Utc>>> {
        match self
            .client
            .describe_db_instance_automated_backups()
            .db_instance_identifier(id)
            .send()
            .await
        {
            // Only the active backup of this very instance: a retained one of an older instance
            // of the same name would widen the window to times this one cannot be restored to.
            Ok(out) => Ok(out
                .db_instance_automated_backups()
                .iter()
                .filter(|b| b.status() == Some("active"))
                .filter(|b| dbi_resource_id.is_none() || b.dbi_resource_id() == dbi_resource_id)
                .filter_map(|b| b.restore_window()?.earliest_time().and_then(chrono_time))
                .max()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_instance_automated_backup_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_err("DescribeDBInstanceAutomatedBackups", e)),
        }
    }

    async fn restore_to_point_in_time(&self, r: &RestoreRequest) -> Result<Instance> {
        tracing::debug!(source = %r.source, target = %r.target, time = %r.time, "RestoreDBInstanceToPointInTime");
        let tags = r
            .tags
            .iter()
            .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
            .collect();
        let out = self
            .client
            .restore_db_instance_to_point_in_time()
            .source_db_instance_identifier(&r.source)
            .target_db_instance_identifier(&r.target)
            .restore_time(aws_smithy_types::DateTime::from_secs(r.time.timestamp()))
            .set_db_subnet_group_name(r.subnet_group.clone())
            .set_db_parameter_group_name(r.parameter_group.clone())
            .set_db_instance_class(r.class.clone())
            .publicly_accessible(r.publicly_accessible)
            .set_vpc_security_group_ids(Some(r.security_groups.clone()))
            // No backups of a copy that lives an hour: no backing-up phase, no backup storage.
            .backup_retention_period(0)
            .set_ca_certificate_identifier(r.ca_certificate.clone())
            .deletion_protection(false)
            .multi_az(false)
            .copy_tags_to_snapshot(false)
            .set_enable_iam_database_authentication(r.enable_iam_auth.then_some(true))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| aws_err("RestoreDBInstanceToPointInTime", e))?;
        out.db_instance()
            .map(instance_of)
            .ok_or_else(|| no_answer("RestoreDBInstanceToPointInTime", "described no instance"))
    }

    async fn delete_instance(&self, id: &str) -> Result<Deletion> {
        tracing::debug!(instance = id, "DeleteDBInstance");
        match self
            .client
            .delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await
        {
            Ok(_) => Ok(Deletion::Requested),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_db_instance_not_found_fault()) => Ok(Deletion::Gone),
            Err(e)
                if e.code() == Some("InvalidDBInstanceState")
                    && e.message().is_some_and(|m| m.contains("already being deleted")) =>
            {
                Ok(Deletion::AlreadyDeleting)
            }
            Err(e) => Err(aws_err("DeleteDBInstance", e)),
        }
    }

    async fn list_clusters(&self) -> Result<Vec<Cluster>> {
        self.clusters().await
    }

    async fn describe_cluster(&self, id: &str) -> Result<Option<Cluster>> {
        self.cluster(id).await
    }

    async fn restore_cluster_to_point_in_time(&self, r: &RestoreRequest, c: &ClusterRestore) -> Result<Cluster> {
        self.restore_cluster(r, c).await
    }

    async fn create_cluster_instance(&self, r: &ClusterInstanceRequest) -> Result<()> {
        self.add_cluster_instance(r).await
    }

    async fn delete_cluster(&self, id: &str) -> Result<Deletion> {
        self.remove_cluster(id).await
    }
}

pub struct AwsEc2 {
    client: aws_sdk_ec2::Client,
}

impl AwsEc2 {
    pub fn new(config: &SdkConfig) -> AwsEc2 {
        AwsEc2 {
            client: aws_sdk_ec2::Client::new(config),
        }
    }
}

fn permission(port: u16, cidr: &str, description: Option<&str>) -> IpPermission {
    let p = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(i32::from(port))
        .to_port(i32::from(port));
    if cidr.contains(':') {
        p.ipv6_ranges(
            Ipv6Range::builder()
                .cidr_ipv6(cidr)
                .set_description(description.map(str::to_string))
                .build(),
        )
        .build()
    } else {
        p.ip_ranges(
            IpRange::builder()
                .cidr_ip(cidr)
                .set_description(description.map(str::to_string))
                .build(),
        )
        .build()
    }
}

fn group_of(g: &aws_sdk_ec2::types::SecurityGroup) -> Group {
    Group {
        id: g.group_id().unwrap_or_default().to_string(),
        name: g.group_name().unwrap_or_default().to_string(),
        vpc_id: g.vpc_id().map(str::to_string),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect(),
    }
}

impl AwsEc2 {
    async fn groups(&self, filters: Vec<Filter>) -> Result<Vec<Group>> {
        let mut pages = self
            .client
            .describe_security_groups()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_err("DescribeSecurityGroups", e))?;
            all.extend(page.security_groups().iter().map(group_of));
        }
        Ok(all)
    }
}

#[async_trait]
impl Ec2 for AwsEc2 {
    async fn find_security_group(&self, vpc_id: &str, name: &str) -> Result<Option<Group>> {
        let filters = vec![
            Filter::builder().name("vpc-id").values(vpc_id).build(),
            Filter::builder().name("group-name").values(name).build(),
        ];
        Ok(self.groups(filters).await?.into_iter().next())
    }

    async fn security_groups_tagged(&self, key: &str) -> Result<Vec<Group>> {
        let groups = self
            .groups(vec![Filter::builder().name("tag-key").values(key).build()])
            .await?;
        // Filter again here: a server that ignores the filter must not widen what cleanup sees.
        Ok(groups.into_iter().filter(|g| g.tag(key).is_some()).collect())
    }

    async fn vpc_of_security_group(&self, group_id: &str) -> Result<Option<String>> {
        let out = self
            .client
            .describe_security_groups()
            .group_ids(group_id)
            .send()
            .await
            .map_err(|e| aws_err("DescribeSecurityGroups", e))?;
        Ok(out
            .security_groups()
            .first()
            .and_then(|g| g.vpc_id())
            .map(str::to_string))
    }

    async fn create_security_group(
        &self,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<String> {
        tracing::debug!(vpc = vpc_id, name, "CreateSecurityGroup");
        let mut spec = TagSpecification::builder().resource_type(ResourceType::SecurityGroup);
        spec = spec.tags(aws_sdk_ec2::types::Tag::builder().key("Name").value(name).build());
        for (k, v) in tags {
            spec = spec.tags(aws_sdk_ec2::types::Tag::builder().key(k).value(v).build());
        }
        let out = self
            .client
            .create_security_group()
            .group_name(name)
            .description(description)
            .vpc_id(vpc_id)
            .tag_specifications(spec.build())
            .send()
            .await
            .map_err(|e| aws_err("CreateSecurityGroup", e))?;
        out.group_id()
            .map(str::to_string)
            .ok_or_else(|| no_answer("CreateSecurityGroup", "named no group id"))
    }

    async fn security_group_tags(&self, group_id: &str) -> Result<Option<Vec<(String, String)>>> {
        let out = self
            .client
            .describe_security_groups()
            .filters(Filter::builder().name("group-id").values(group_id).build())
            .send()
            .await
            .map_err(|e| aws_err("DescribeSecurityGroups", e))?;
        Ok(out.security_groups().first().map(|g| {
            g.tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
                .collect()
        }))
    }

    async fn authorize_ingress(&self, group_id: &str, port: u16, cidr: &str, description: &str) -> Result<()> {
        tracing::debug!(group = group_id, port, cidr, "AuthorizeSecurityGroupIngress");
        match self
            .client
            .authorize_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(permission(port, cidr, Some(description)))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Added before a crash, not yet recorded: what we wanted.
            Err(e) if e.code() == Some("InvalidPermission.Duplicate") => Ok(()),
            Err(e) => Err(aws_err("AuthorizeSecurityGroupIngress", e)),
        }
    }

    async fn revoke_ingress(&self, group_id: &str, port: u16, cidr: &str) -> Result<()> {
        tracing::debug!(group = group_id, port, cidr, "RevokeSecurityGroupIngress");
        match self
            .client
            .revoke_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(permission(port, cidr, None))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already gone: what we wanted.
            Err(e) if e.code() == Some("InvalidPermission.NotFound") => Ok(()),
            Err(e) => Err(aws_err("RevokeSecurityGroupIngress", e)),
        }
    }

    async fn delete_security_group(&self, group_id: &str) -> Result<()> {
        tracing::debug!(group = group_id, "DeleteSecurityGroup");
        match self.client.delete_security_group().group_id(group_id).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("InvalidGroup.NotFound") => Ok(()),
            Err(e) => Err(aws_err("DeleteSecurityGroup", e)),
        }
    }
}
