//! In-memory fakes of the ports, for the unit tests of the state machine, the copy and the
//! verification. They keep just enough behaviour to be honest: instances and groups appear and
//! disappear, tables hold rows keyed by a single integer primary key.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::error::{Error, Result, Side};
use crate::ports::*;
use crate::progress::Prompter;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub struct FakeRds {
    pub instances: Mutex<HashMap<String, Instance>>,
    pub clusters: Mutex<HashMap<String, Cluster>>,
    pub earliest: Mutex<Option<DateTime<Utc>>>,
    pub calls: Mutex<Vec<String>>,
    /// When set, RestoreDBInstanceToPointInTime drops the requested tags (an instance that
    /// does not look like ours).
    pub drop_tags: bool,
    /// When set, the first restore is carried out but answers `DBInstanceAlreadyExists`, as the
    /// SDK's retry of a restore whose answer was lost does.
    pub lose_restore_answer: Mutex<bool>,
}

impl FakeRds {
    pub fn with_source() -> FakeRds {
        let rds = FakeRds::default();
        let now = Utc::now();
        lock(&rds.instances).insert(
            "prod-db".into(),
            Instance {
                id: "prod-db".into(),
                engine: "mysql".into(),
                engine_version: Some("8.0.35".into()),
                status: "available".into(),
                class: Some("db.t3.medium".into()),
                backup_retention_days: 7,
                created: Some(now - Duration::days(30)),
                latest_restorable: Some(now - Duration::minutes(5)),
                endpoint: Some(Endpoint {
                    host: "prod-db.example".into(),
                    port: 3306,
                }),
                port: Some(3306),
                subnet_group: Some("prod-subnets".into()),
                vpc_id: Some("vpc-1".into()),
                parameter_group: Some("prod-params".into()),
                security_groups: vec!["sg-app".into()],
                publicly_accessible: false,
                tags: vec![("team".into(), "billing".into())],
                dbi_resource_id: Some("db-PRODSOURCE".into()),
                ca_certificate: Some("rds-ca-rsa2048-g1".into()),
                ..Instance::default()
            },
        );
        *lock(&rds.earliest) = Some(now - Duration::days(7));
        rds
    }
    /// With an Aurora MySQL cluster `prod-aurora` and its writer `prod-aurora-writer` too.
    pub fn with_aurora() -> FakeRds {
        let rds = FakeRds::with_source();
        let now = Utc::now();
        let mut writer = rds.instance("prod-db").unwrap();
        writer.id = "prod-aurora-writer".into();
        writer.engine = "aurora-mysql".into();
        writer.class = Some("db.r6g.large".into());
        writer.cluster = Some("prod-aurora".into());
        lock(&rds.instances).insert(writer.id.clone(), writer);
        lock(&rds.clusters).insert(
            "prod-aurora".into(),
            Cluster {
                id: "prod-aurora".into(),
                engine: "aurora-mysql".into(),
                engine_mode: Some("provisioned".into()),
                status: "available".into(),
                backup_retention_days: 7,
                earliest_restorable: Some(now - Duration::days(7)),
                latest_restorable: Some(now - Duration::minutes(5)),
                subnet_group: Some("prod-subnets".into()),
                parameter_group: Some("prod-aurora-cluster-params".into()),
                security_groups: vec![("sg-app".into(), "active".into())],
                members: vec![("prod-aurora-writer".into(), true)],
                backtrack_window: Some(3600),
                ..Cluster::default()
            },
        );
        rds
    }
    pub fn cluster(&self, id: &str) -> Option<Cluster> {
        lock(&self.clusters).get(id).cloned()
    }
    pub fn instance(&self, id: &str) -> Option<Instance> {
        lock(&self.instances).get(id).cloned()
    }
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.instances).keys().cloned().collect();
        ids.sort();
        ids
    }
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }
    fn log(&self, s: String) {
        lock(&self.calls).push(s);
    }
}

#[async_trait]
impl Rds for FakeRds {
    async fn list_instances(&self) -> Result<Vec<Instance>> {
        Ok(lock(&self.instances).values().cloned().collect())
    }
    async fn describe_instance(&self, id: &str) -> Result<Option<Instance>> {
        Ok(self.instance(id))
    }
    async fn earliest_restorable_time(&self, _id: &str, _dbi: Option<&str>) -> Result<Option<DateTime<Utc>>> {
        Ok(*lock(&self.earliest))
    }
    async fn restore_to_point_in_time(&self, r: &RestoreRequest) -> Result<Instance> {
        self.log(format!("restore {} groups={}", r.target, r.security_groups.join(",")));
        let source = self.instance(&r.source).expect("source exists");
        let restored = Instance {
            id: r.target.clone(),
            status: "available".into(),
            endpoint: Some(Endpoint {
                host: format!("{}.example", r.target),
                port: 3306,
            }),
            tags: if self.drop_tags { vec![] } else { r.tags.clone() },
            subnet_group: r.subnet_group.clone(),
            parameter_group: r.parameter_group.clone(),
            class: r.class.clone(),
            publicly_accessible: r.publicly_accessible,
            security_groups: r.security_groups.clone(),
            security_group_status: r.security_groups.iter().map(|g| (g.clone(), "active".into())).collect(),
            backup_retention_days: 0,
            dbi_resource_id: Some(format!("db-{}", r.target)),
            ..source
        };
        lock(&self.instances).insert(r.target.clone(), restored.clone());
        if std::mem::take(&mut *lock(&self.lose_restore_answer)) {
            return Err(Error::Aws(crate::error::AwsError::new(
                "RestoreDBInstanceToPointInTime",
                Some("DBInstanceAlreadyExists"),
                "DB instance already exists",
            )));
        }
        Ok(restored)
    }
    async fn delete_instance(&self, id: &str) -> Result<Deletion> {
        self.log(format!("delete {id}"));
        let gone = lock(&self.instances).remove(id);
        if let Some(c) = gone.as_ref().and_then(|i| i.cluster.clone()) {
            if let Some(c) = lock(&self.clusters).get_mut(&c) {
                c.members.retain(|(m, _)| m != id);
            }
        }
        Ok(match gone {
            Some(_) => Deletion::Requested,
            None => Deletion::Gone,
        })
    }
    async fn list_clusters(&self) -> Result<Vec<Cluster>> {
        Ok(lock(&self.clusters).values().cloned().collect())
    }
    async fn describe_cluster(&self, id: &str) -> Result<Option<Cluster>> {
        Ok(self.cluster(id))
    }
    async fn restore_cluster_to_point_in_time(&self, r: &RestoreRequest, _c: &ClusterRestore) -> Result<Cluster> {
        self.log(format!(
            "restore-cluster {} groups={}",
            r.target,
            r.security_groups.join(",")
        ));
        let source = self.cluster(&r.source).expect("source cluster exists");
        let restored = Cluster {
            id: r.target.clone(),
            tags: r.tags.clone(),
            members: vec![],
            backtrack_window: None,
            security_groups: r.security_groups.iter().map(|g| (g.clone(), "active".into())).collect(),
            ..source
        };
        lock(&self.clusters).insert(r.target.clone(), restored.clone());
        Ok(restored)
    }
    async fn create_cluster_instance(&self, r: &ClusterInstanceRequest) -> Result<()> {
        self.log(format!("create-instance {} in {}", r.id, r.cluster));
        let mut clusters = lock(&self.clusters);
        let cluster = clusters.get_mut(&r.cluster).expect("cluster exists");
        cluster.members.push((r.id.clone(), true));
        let groups: Vec<String> = cluster.security_groups.iter().map(|(g, _)| g.clone()).collect();
        let instance = Instance {
            id: r.id.clone(),
            engine: r.engine.clone(),
            status: "available".into(),
            class: Some(r.class.clone()),
            endpoint: Some(Endpoint {
                host: format!("{}.example", r.id),
                port: 3306,
            }),
            tags: r.tags.clone(),
            security_group_status: groups.iter().map(|g| (g.clone(), "active".into())).collect(),
            security_groups: groups,
            cluster: Some(r.cluster.clone()),
            ..Instance::default()
        };
        lock(&self.instances).insert(r.id.clone(), instance);
        Ok(())
    }
    async fn delete_cluster(&self, id: &str) -> Result<Deletion> {
        self.log(format!("delete-cluster {id}"));
        let mut clusters = lock(&self.clusters);
        if clusters.get(id).is_some_and(|c| !c.members.is_empty()) {
            return Err(Error::Aws(crate::error::AwsError::new(
                "DeleteDBCluster",
                Some("InvalidDBClusterStateFault"),
                "Cluster cannot be deleted, it still contains DB instances in non-deleting state.",
            )));
        }
        Ok(match clusters.remove(id) {
            Some(_) => Deletion::Requested,
            None => Deletion::Gone,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FakeGroup {
    pub vpc: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
    pub rules: Vec<(String, u16)>,
}

#[derive(Default)]
pub struct FakeEc2 {
    pub groups: Mutex<BTreeMap<String, FakeGroup>>,
    pub calls: Mutex<Vec<String>>,
    /// When set, the first group creation is carried out but answers `InvalidGroup.Duplicate`.
    pub lose_create_answer: Mutex<bool>,
}

impl FakeEc2 {
    pub fn group_ids(&self) -> Vec<String> {
        lock(&self.groups).keys().cloned().collect()
    }
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }
}

fn group(id: &str, g: &FakeGroup) -> Group {
    Group {
        id: id.into(),
        name: g.name.clone(),
        vpc_id: Some(g.vpc.clone()),
        tags: g.tags.clone(),
    }
}

#[async_trait]
impl Ec2 for FakeEc2 {
    async fn find_security_group(&self, vpc_id: &str, name: &str) -> Result<Option<Group>> {
        Ok(lock(&self.groups)
            .iter()
            .find(|(_, g)| g.vpc == vpc_id && g.name == name)
            .map(|(id, g)| group(id, g)))
    }
    async fn security_groups_tagged(&self, key: &str) -> Result<Vec<Group>> {
        Ok(lock(&self.groups)
            .iter()
            .filter(|(_, g)| g.tags.iter().any(|(k, _)| k == key))
            .map(|(id, g)| group(id, g))
            .collect())
    }
    async fn vpc_of_security_group(&self, group_id: &str) -> Result<Option<String>> {
        Ok(lock(&self.groups).get(group_id).map(|g| g.vpc.clone()))
    }
    async fn create_security_group(
        &self,
        vpc: &str,
        name: &str,
        _d: &str,
        tags: &[(String, String)],
    ) -> Result<String> {
        let id = format!("sg-{}", lock(&self.groups).len() + 100);
        lock(&self.calls).push(format!("create {id} {name}"));
        lock(&self.groups).insert(
            id.clone(),
            FakeGroup {
                vpc: vpc.into(),
                name: name.into(),
                tags: tags.to_vec(),
                rules: vec![],
            },
        );
        if std::mem::take(&mut *lock(&self.lose_create_answer)) {
            return Err(Error::Aws(crate::error::AwsError::new(
                "CreateSecurityGroup",
                Some("InvalidGroup.Duplicate"),
                "The security group already exists",
            )));
        }
        Ok(id)
    }
    async fn security_group_tags(&self, group_id: &str) -> Result<Option<Vec<(String, String)>>> {
        Ok(lock(&self.groups).get(group_id).map(|g| g.tags.clone()))
    }
    async fn authorize_ingress(&self, group_id: &str, port: u16, cidr: &str, _d: &str) -> Result<()> {
        lock(&self.calls).push(format!("authorize {group_id} {cidr} {port}"));
        lock(&self.groups)
            .get_mut(group_id)
            .expect("group")
            .rules
            .push((cidr.into(), port));
        Ok(())
    }
    async fn revoke_ingress(&self, group_id: &str, port: u16, cidr: &str) -> Result<()> {
        lock(&self.calls).push(format!("revoke {group_id} {cidr} {port}"));
        if let Some(g) = lock(&self.groups).get_mut(group_id) {
            g.rules.retain(|r| r != &(cidr.to_string(), port));
        }
        Ok(())
    }
    async fn delete_security_group(&self, group_id: &str) -> Result<()> {
        lock(&self.calls).push(format!("delete {group_id}"));
        lock(&self.groups).remove(group_id);
        Ok(())
    }
}

/// A table keyed by its first column, an integer.
pub type FakeTable = Arc<Mutex<BTreeMap<i64, Row>>>;

pub fn table_of(rows: impl IntoIterator<Item = Row>) -> FakeTable {
    Arc::new(Mutex::new(rows.into_iter().map(|r| (key_int(&r), r)).collect()))
}

fn key_int(row: &[Value]) -> i64 {
    match row[0] {
        Value::Int(i) => i,
        _ => panic!("fake tables are keyed by an Int first column"),
    }
}

pub fn row(id: i64, text: &str) -> Row {
    vec![Value::Int(id), Value::Bytes(text.as_bytes().to_vec())]
}

pub fn schema() -> TableSchema {
    TableSchema {
        columns: vec![
            Column {
                name: "id".into(),
                column_type: "bigint(20)".into(),
                nullable: false,
            },
            Column {
                name: "note".into(),
                column_type: "varchar(20)".into(),
                nullable: true,
            },
        ],
        key: vec![0],
    }
}

#[derive(Clone, Default)]
pub struct FakeDb {
    pub production: FakeTable,
    pub restored: FakeTable,
    pub schema: Option<TableSchema>,
    /// The password production accepts; `None` accepts any.
    pub refuse_login: bool,
    /// Fail the insert of the chunk that starts at this key.
    pub fail_insert_at: Option<i64>,
    /// Report inserts without storing them (a writer that loses rows).
    pub lose_inserts: bool,
    /// Production's table was dropped (until `create_table_from` makes it again).
    pub production_dropped: Arc<Mutex<bool>>,
    /// What `missing_privileges` reports for overwrite and replace-all.
    pub missing_privileges: Vec<&'static str>,
    /// Advisory locks held by open sessions.
    pub locks: Arc<Mutex<Vec<String>>>,
    /// The foreign keys `referencing` reports, each with the table it references.
    pub foreign_keys: Vec<(TableRef, crate::ports::ForeignKey)>,
}

#[async_trait]
impl Connector for FakeDb {
    async fn connect(&self, side: Side, rds_endpoint: &Endpoint) -> Result<Box<dyn Session>> {
        if self.refuse_login {
            return Err(Error::DbAuth {
                side,
                user: "tool".into(),
                address: rds_endpoint.to_string(),
            });
        }
        let table = match side {
            Side::Production => self.production.clone(),
            Side::Restored => self.restored.clone(),
        };
        Ok(Box::new(FakeSession {
            db: self.clone(),
            table,
            held: Vec::new(),
            side,
        }))
    }
}

pub struct FakeSession {
    db: FakeDb,
    table: FakeTable,
    held: Vec<String>,
    side: Side,
}

/// Like GET_LOCK, a lock ends with the session that took it.
impl Drop for FakeSession {
    fn drop(&mut self) {
        lock(&self.db.locks).retain(|l| !self.held.contains(l));
    }
}

#[async_trait]
impl Session for FakeSession {
    async fn try_advisory_lock(&mut self, name: &str) -> Result<bool> {
        let mut held = lock(&self.db.locks);
        if held.contains(&name.to_string()) {
            return Ok(false);
        }
        held.push(name.to_string());
        self.held.push(name.to_string());
        Ok(true)
    }
    async fn table_schema(&mut self, _t: &TableRef) -> Result<Option<TableSchema>> {
        if self.side == Side::Production && *lock(&self.db.production_dropped) {
            return Ok(None);
        }
        Ok(self.db.schema.clone())
    }
    async fn show_create_table(&mut self, t: &TableRef) -> Result<Option<String>> {
        Ok(self
            .table_schema(t)
            .await?
            .map(|_| format!("CREATE TABLE `{}` (...)", t.table)))
    }
    async fn create_table_from(&mut self, t: &TableRef, named: &str, _definition: &str) -> Result<()> {
        if t.table == named {
            *lock(&self.db.production_dropped) = false;
        }
        Ok(())
    }
    async fn missing_privileges(&mut self, _t: &TableRef, _s: &TableSchema, merge: Merge) -> Result<Vec<&'static str>> {
        Ok(match merge {
            Merge::MissingRows => vec![],
            _ => self.db.missing_privileges.clone(),
        })
    }
    async fn insert_triggers(&mut self, _t: &TableRef) -> Result<Vec<String>> {
        Ok(vec![])
    }
    async fn list_databases(&mut self) -> Result<Vec<String>> {
        Ok(vec!["shop".into()])
    }
    async fn list_tables(&mut self, _d: &str) -> Result<Vec<(String, Option<u64>)>> {
        Ok(vec![("billing".into(), Some(lock(&self.table).len() as u64))])
    }
    async fn drop_table(&mut self, _t: &TableRef) -> Result<()> {
        Ok(())
    }
    async fn count_where(&mut self, _t: &TableRef, _p: &str) -> Result<u64> {
        Ok(lock(&self.table).len() as u64)
    }
    async fn estimate_rows(&mut self, _t: &TableRef) -> Result<Option<u64>> {
        Ok(Some(lock(&self.table).len() as u64))
    }
    async fn referencing(&mut self, t: &TableRef) -> Result<Vec<crate::ports::ForeignKey>> {
        Ok(self
            .db
            .foreign_keys
            .iter()
            .filter(|(parent, _)| parent == t)
            .map(|(_, fk)| fk.clone())
            .collect())
    }
    async fn count_rows(&mut self, _t: &TableRef, _null_in: &[String]) -> Result<u64> {
        Ok(lock(&self.table).len() as u64)
    }
    async fn max_allowed_packet(&mut self) -> Result<u64> {
        Ok(64 << 20)
    }
    async fn widest_row(
        &mut self,
        _t: &TableRef,
        _s: &TableSchema,
        _filter: Option<&str>,
    ) -> Result<Option<(Row, u64)>> {
        Ok(lock(&self.table)
            .iter()
            .map(|(k, r)| (vec![Value::Int(*k)], crate::copy::row_bytes(r) as u64))
            .max_by_key(|(_, w)| *w))
    }
    async fn read_chunk(
        &mut self,
        _t: &TableRef,
        _s: &TableSchema,
        range: KeyRange<'_>,
        _filter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        Ok(lock(&self.table)
            .range(bounds(range))
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }
    async fn merge_chunk(
        &mut self,
        _t: &TableRef,
        _s: &TableSchema,
        rows: &[Row],
        range: KeyRange<'_>,
        merge: Merge,
        dry: bool,
        proof: &ChunkProof,
    ) -> Result<ChunkOutcome> {
        if self
            .db
            .fail_insert_at
            .is_some_and(|k| rows.first().is_some_and(|r| key_int(r) == k))
        {
            return Err(Error::Db {
                side: Side::Production,
                detail: "injected failure".into(),
            });
        }
        let mut t = lock(&self.table);
        let mut o = ChunkOutcome::default();
        for (i, r) in rows.iter().enumerate() {
            match t.get(&key_int(r)) {
                Some(existing) => {
                    o.already_present += 1;
                    if existing != r {
                        o.differing.push(i);
                    }
                }
                None => o.missing.push(i),
            }
        }
        if merge == Merge::ReplaceAll {
            let wanted: std::collections::BTreeSet<i64> = rows.iter().map(|r| key_int(r)).collect();
            o.extra = t
                .range(bounds(range))
                .filter(|(k, _)| !wanted.contains(k))
                .map(|(&k, _)| vec![Value::Int(k)])
                .collect();
        }
        if dry {
            return Ok(o);
        }
        if self.db.lose_inserts {
            // A writer that says it inserted what it did not: the proof must catch it.
            o.inserted = o.missing.len() as u64;
            if let Some(&i) = o.missing.first() {
                if proof.get(i).is_some_and(|p| p.ident == fake_key(&rows[i])) {
                    return Err(Error::VerificationFailed(format!(
                        "the row with key {} was written but production does not show it",
                        key_int(&rows[i])
                    )));
                }
            }
            return Ok(o);
        }
        for k in &o.extra {
            t.remove(&key_int(k));
            o.deleted += 1;
        }
        if merge != Merge::MissingRows {
            for &i in &o.differing {
                t.insert(key_int(&rows[i]), rows[i].clone());
                o.updated += 1;
            }
        }
        for &i in &o.missing {
            t.insert(key_int(&rows[i]), rows[i].clone());
            o.inserted += 1;
        }
        if !proof.is_empty() {
            let mut affected = o.missing.clone();
            if merge != Merge::MissingRows {
                affected.extend(&o.differing);
            }
            for &i in &affected {
                let written = t.get(&key_int(&rows[i])).map(fake_hash);
                if proof.get(i).map(|p| &p.hash) != written.as_ref() {
                    return Err(Error::VerificationFailed(format!("row {} differs", key_int(&rows[i]))));
                }
            }
            o.proven = (affected.len() + o.extra.len()) as u64;
        }
        Ok(o)
    }
    async fn row_hashes(
        &mut self,
        _t: &TableRef,
        _s: &TableSchema,
        range: KeyRange<'_>,
        _filter: Option<&str>,
    ) -> Result<Vec<(Row, String)>> {
        Ok(lock(&self.table)
            .range(bounds(range))
            .map(|(k, r)| (vec![Value::Int(*k)], fake_hash(r)))
            .collect())
    }
    async fn scan(
        &mut self,
        _t: &TableRef,
        _s: &TableSchema,
        _filter: Option<&str>,
        batch: usize,
        _batch_bytes: usize,
        out: tokio::sync::mpsc::Sender<Vec<Row>>,
    ) -> Result<()> {
        let rows: Vec<Row> = lock(&self.table).values().cloned().collect();
        for chunk in rows.chunks(batch.max(1)) {
            if out.send(chunk.to_vec()).await.is_err() {
                break;
            }
        }
        Ok(())
    }
    async fn range_checksum(
        &mut self,
        _t: &TableRef,
        _s: &TableSchema,
        range: KeyRange<'_>,
        _filter: Option<&str>,
    ) -> Result<RangeChecksum> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let t = lock(&self.table);
        let rows: Vec<&Row> = t.range(bounds(range)).map(|(_, r)| r).collect();
        for r in &rows {
            h.update(crate::rowcodec::encode_values(r.iter()));
        }
        Ok(RangeChecksum {
            rows: rows.len() as u64,
            hash: hex::encode(h.finalize()),
        })
    }
    async fn chunk_end(
        &mut self,
        _t: &TableRef,
        _s: &TableSchema,
        range: KeyRange<'_>,
        _filter: Option<&str>,
        size: usize,
    ) -> Result<Option<(Row, bool)>> {
        let t = lock(&self.table);
        let keys: Vec<i64> = t.range(bounds(range)).take(size).map(|(&k, _)| k).collect();
        Ok(keys.last().map(|&k| (vec![Value::Int(k)], keys.len() == size)))
    }
}

/// A key range as `BTreeMap` bounds over the fake's integer keys.
fn bounds(range: KeyRange<'_>) -> (std::ops::Bound<i64>, std::ops::Bound<i64>) {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    (
        range.after.map(|k| Excluded(key_int(k))).unwrap_or(Unbounded),
        range.upto.map(|k| Included(key_int(k))).unwrap_or(Unbounded),
    )
}

/// Answers the scripted answers in order, and records the questions.
pub struct Script {
    pub answers: Mutex<Vec<bool>>,
    pub asked: Mutex<Vec<String>>,
}

impl Prompter for Script {
    fn confirm(&self, q: &str) -> Result<bool> {
        lock(&self.asked).push(q.to_string());
        let mut a = lock(&self.answers);
        if a.is_empty() {
            return Err(Error::ConsentRequired);
        }
        Ok(a.remove(0))
    }
    /// A scripted `true` stands for the right name typed.
    fn type_to_confirm(&self, q: &str, _expected: &str) -> Result<bool> {
        self.confirm(q)
    }
}

pub struct Answer(pub Option<bool>);

impl Prompter for Answer {
    fn confirm(&self, _q: &str) -> Result<bool> {
        self.0.ok_or(Error::ConsentRequired)
    }
    fn type_to_confirm(&self, _q: &str, _expected: &str) -> Result<bool> {
        self.0.ok_or(Error::ConsentRequired)
    }
}

/// A plain restore request: `shop.billing` on `prod-db`, one address, 1000-row chunks.
pub fn request() -> crate::plan::Request {
    use crate::plan::{Mode, OnFailure, Request};
    Request {
        instance: "prod-db".into(),
        cluster: None,
        database: "shop".into(),
        table: "billing".into(),
        time: "2026-11-23T10:00:00Z".into(),
        client_cidr: Some("203.0.113.7/32".into()),
        allow_any_source: false,
        mode: Mode::MissingRows,
        instance_class: None,
        parameter_group: None,
        subnet_group: None,
        publicly_accessible: false,
        chunk_size: 1000,
        chunk_bytes: 8 << 20,
        max_lock_ms: 100,
        wait_timeout_minutes: 120,
        on_failure: OnFailure::Teardown,
        where_predicate: None,
        drill: None,
        dump_file: None,
        dump_only: false,
        confirm_table: None,
        recreate_table: false,
        parallel: 1,
        source: Default::default(),
        before: None,
        also: Vec::new(),
        with_dependents: false,
    }
}

/// The fakes' key encoding for proofs, as the copy encodes keys (a single integer key).
fn fake_key(row: &Row) -> Vec<u8> {
    crate::rowcodec::encode_values([&Value::Int(key_int(row))])
}

/// The fakes' stand-in for a server's row hash.
fn fake_hash(row: &Row) -> String {
    format!("{row:?}")
}
