//! What the operator named as the source: an RDS instance, a DB cluster (`--cluster`), or a
//! member of a cluster (`--instance prod-aurora-writer`), which is restored as its cluster: RDS
//! restores a cluster member only by restoring the whole cluster.

use crate::error::{Error, Result};
use crate::plan::ClusterPlan;
use crate::ports::{Cluster, Instance, Rds};

/// The source, resolved.
#[derive(Debug, Clone)]
pub enum Found {
    Instance(Instance),
    Cluster {
        cluster: Box<Cluster>,
        /// The source's writer instance, when it has one.
        writer: Option<Instance>,
        /// How the name given led here, when it was not `--cluster`.
        note: Option<String>,
    },
}

impl Found {
    /// The source as the steps see it: the instance; for a cluster, its writer's address and
    /// placement with the cluster's window, groups, subnet group and cluster parameter group.
    pub fn view(&self) -> Instance {
        match self {
            Found::Instance(i) => i.clone(),
            Found::Cluster { cluster: c, writer, .. } => {
                let w = writer.clone().unwrap_or_default();
                Instance {
                    id: c.id.clone(),
                    engine: c.engine.clone(),
                    engine_version: c.engine_version.clone(),
                    status: c.status.clone(),
                    class: w.class.clone().or(c.instance_class.clone()),
                    backup_retention_days: c.backup_retention_days,
                    created: None,
                    latest_restorable: c.latest_restorable,
                    earliest_restorable: c.earliest_restorable,
                    // The writer instance's own address: the certificate RDS gives an instance
                    // names it, and it is the one that takes writes.
                    endpoint: w.endpoint.clone().or(c.endpoint.clone()),
                    port: w.port.or(c.port),
                    subnet_group: c.subnet_group.clone(),
                    vpc_id: w.vpc_id.clone(),
                    parameter_group: c.parameter_group.clone(),
                    security_groups: c.security_groups.iter().map(|(g, _)| g.clone()).collect(),
                    security_group_status: c.security_groups.clone(),
                    publicly_accessible: w.publicly_accessible,
                    tags: c.tags.clone(),
                    dbi_resource_id: None,
                    cluster: None,
                    ca_certificate: w.ca_certificate.clone(),
                }
            }
        }
    }

    pub fn note(&self) -> Option<&str> {
        match self {
            Found::Cluster { note, .. } => note.as_deref(),
            Found::Instance(_) => None,
        }
    }

    /// What a restore of this cluster needs to keep; `None` for an instance. `target` is the
    /// restored cluster's name, `class` the plan's `--instance-class`.
    pub fn cluster_plan(&self, target: &str, class: Option<&str>) -> Result<Option<ClusterPlan>> {
        let Found::Cluster { cluster: c, writer, .. } = self else {
            return Ok(None);
        };
        check_cluster(c)?;
        let multi_az = c.is_multi_az();
        let writer_class = class
            .map(str::to_string)
            .or_else(|| if multi_az { c.instance_class.clone() } else { None })
            .or_else(|| writer.as_ref().and_then(|w| w.class.clone()))
            .ok_or_else(|| Error::UnsupportedCluster {
                id: c.id.clone(),
                why: "it has no writer instance to take the class from: pass --instance-class".into(),
            })?;
        Ok(Some(ClusterPlan {
            source: c.id.clone(),
            engine: c.engine.clone(),
            multi_az,
            writer: if multi_az {
                String::new()
            } else {
                crate::plan::writer_name(target)
            },
            serverless_v2: (writer_class == "db.serverless").then_some(c.serverless_v2).flatten(),
            writer_class: Some(writer_class),
            storage_type: multi_az.then(|| c.storage_type.clone()).flatten(),
            iops: if multi_az { c.iops } else { None },
            backtrack_window: c.backtrack_window.filter(|w| *w > 0),
            ca_certificate: writer.as_ref().and_then(|w| w.ca_certificate.clone()),
        }))
    }
}

/// The clusters this tool restores: Aurora MySQL (provisioned or Serverless v2) and Multi-AZ DB
/// clusters of MySQL. Each refusal says why, before anything is created.
pub fn check_cluster(c: &Cluster) -> Result<()> {
    let engine = c.engine.to_ascii_lowercase();
    let refuse = |why: String| Err(Error::UnsupportedCluster { id: c.id.clone(), why });
    match engine.as_str() {
        "aurora-mysql" | "aurora" | "mysql" => {}
        "aurora-postgresql" | "postgres" => {
            return refuse(format!(
                "it runs `{}`, and PostgreSQL is not supported yet (this tool restores MySQL and MariaDB tables)",
                c.engine
            ))
        }
        _ => {
            return refuse(format!(
                "it runs engine `{}`; this tool restores Aurora MySQL and MySQL clusters",
                c.engine
            ))
        }
    }
    if c.engine_mode.as_deref() == Some("serverless") {
        return refuse(
            "it is Aurora Serverless v1 (engine mode `serverless`), which has no instances to add to a restored \
             copy; restore it by hand, or migrate it to Serverless v2"
                .into(),
        );
    }
    if engine == "mysql" && c.instance_class.is_none() {
        return refuse(
            "it is a `mysql` cluster without a DB cluster instance class (not a Multi-AZ DB cluster)".into(),
        );
    }
    Ok(())
}

/// Finds the source: `cluster` when given (`instance`, if also given, must be one of its
/// members); else `instance`, resolved to its cluster when it is a member of one, or taken as
/// a cluster's name when no instance has it.
pub async fn find_source(rds: &dyn Rds, instance: &str, cluster: Option<&str>, region: &str) -> Result<Found> {
    let cluster_named = |id: &str| Error::ClusterNotFound {
        id: id.to_string(),
        region: region.to_string(),
    };
    if let Some(cid) = cluster {
        let c = rds.describe_cluster(cid).await?.ok_or_else(|| cluster_named(cid))?;
        if !instance.is_empty() {
            let member = rds.describe_instance(instance).await?;
            let of = member.as_ref().and_then(|i| i.cluster.clone());
            if of.as_deref() != Some(c.id.as_str()) {
                let what = match (member, of) {
                    (None, _) => "no instance has that name".to_string(),
                    (Some(_), None) => "it is an instance of its own, in no cluster".to_string(),
                    (Some(_), Some(other)) => format!("it is a member of `{other}`"),
                };
                return Err(Error::InvalidInput(format!(
                    "--instance `{instance}` and --cluster `{cid}` name different things ({what}): give only \
                     --cluster {cid}, or only --instance"
                )));
            }
        }
        let writer = writer_of(rds, &c).await?;
        return Ok(Found::Cluster {
            cluster: Box::new(c),
            writer,
            note: None,
        });
    }
    match rds.describe_instance(instance).await? {
        Some(i) => match i.cluster.clone() {
            None => Ok(Found::Instance(i)),
            Some(cid) => {
                let c = rds.describe_cluster(&cid).await?.ok_or_else(|| cluster_named(&cid))?;
                let writer = writer_of(rds, &c).await?;
                Ok(Found::Cluster {
                    cluster: Box::new(c),
                    writer,
                    note: Some(format!(
                        "`{instance}` is a member of the DB cluster `{cid}`: RDS restores a cluster as a whole, so \
                         the restored copy is a new cluster from `{cid}`"
                    )),
                })
            }
        },
        None => match rds.describe_cluster(instance).await? {
            Some(c) => {
                let writer = writer_of(rds, &c).await?;
                Ok(Found::Cluster {
                    note: Some(format!(
                        "`{instance}` is a DB cluster: restoring it as one (--cluster {instance})"
                    )),
                    cluster: Box::new(c),
                    writer,
                })
            }
            None => Err(Error::InstanceNotFound {
                id: instance.to_string(),
                region: region.to_string(),
            }),
        },
    }
}

async fn writer_of(rds: &dyn Rds, c: &Cluster) -> Result<Option<Instance>> {
    match c.writer() {
        Some(w) => rds.describe_instance(w).await,
        None => Ok(None),
    }
}
