//! The guided mode: on a terminal, whatever the operator did not give on the command line is
//! asked for, one question at a time, from lists read from AWS and production. Without a
//! terminal nothing is asked: the caller turns a missing choice into a usage error naming the
//! flag. The questions go through [`Asker`], so the wizard runs the same against dialoguer and
//! against a script in the tests.

use chrono::{DateTime, Local, Utc};

use crate::error::{Error, Result, Side};
use crate::plan::{parse_cidr, parse_time, rfc3339, Mode, TAG_TOOL};
use crate::ports::{Connector, Instance, Rds};

/// Asks one question at a time.
pub trait Asker: Send + Sync {
    /// Picks one of `items` (type to filter); the index of the choice.
    fn choose(&self, prompt: &str, items: &[String]) -> Result<usize>;
    /// A line of text.
    fn text(&self, prompt: &str) -> Result<String>;
    /// Tells the operator something.
    fn say(&self, line: &str);
}

/// The choices a restore needs; `None` where the operator gave none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choices {
    pub instance: Option<String>,
    pub time: Option<String>,
    pub database: Option<String>,
    pub table: Option<String>,
    pub client_cidr: Option<String>,
    /// Not required (it defaults to missing-rows), but offered when the wizard runs.
    pub mode: Option<Mode>,
}

impl Choices {
    /// The flags still missing, in the order the wizard asks for them.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("--instance", self.instance.is_none()),
            ("--time", self.time.is_none()),
            ("--database", self.database.is_none()),
            ("--table", self.table.is_none()),
            ("--client-cidr", self.client_cidr.is_none()),
        ]
        .into_iter()
        .filter_map(|(flag, missing)| missing.then_some(flag))
        .collect()
    }
}

/// How close to the latest restorable time a choice earns a warning: RDS may not have the last
/// minutes of transaction log yet, and a time too close may land after the damage.
const NEAR_LATEST_SECONDS: i64 = 300;

/// Asks for every missing choice.
pub async fn fill(
    mut c: Choices,
    rds: &dyn Rds,
    db: &dyn Connector,
    asker: &dyn Asker,
    now: DateTime<Utc>,
) -> Result<Choices> {
    let instance = match &c.instance {
        // A cluster, or a member of one, is shown as its cluster (the copy is a cluster).
        Some(id) => match crate::restored::find_source(rds, id, None, "this region").await {
            Ok(found) => Some(found.view()),
            Err(Error::InstanceNotFound { .. }) => None,
            Err(e) => return Err(e),
        },
        None => Some(choose_instance(rds, asker).await?),
    };
    if c.instance.is_none() {
        c.instance = instance.as_ref().map(|i| i.id.clone());
    }
    if c.time.is_none() {
        let instance = instance.as_ref().ok_or_else(|| Error::InstanceNotFound {
            id: c.instance.clone().unwrap_or_default(),
            region: "this region".into(),
        })?;
        c.time = Some(ask_time(rds, instance, asker, now).await?);
    }
    if c.database.is_none() || c.table.is_none() {
        let instance = instance.as_ref().ok_or_else(|| Error::InstanceNotFound {
            id: c.instance.clone().unwrap_or_default(),
            region: "this region".into(),
        })?;
        let endpoint = instance.endpoint.clone().ok_or_else(|| Error::NoEndpoint {
            id: instance.id.clone(),
        })?;
        let mut session = db.connect(Side::Production, &endpoint).await?;
        if c.database.is_none() {
            let dbs = session.list_databases().await?;
            if dbs.is_empty() {
                return Err(Error::InvalidInput(
                    "production has no database this user can see".into(),
                ));
            }
            c.database = Some(dbs[asker.choose("Database of the table", &dbs)?].clone());
        }
        if c.table.is_none() {
            let database = c.database.clone().unwrap_or_default();
            let tables = session.list_tables(&database).await?;
            if tables.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "`{database}` has no table this user can see"
                )));
            }
            let items: Vec<String> = tables
                .iter()
                .map(|(t, rows)| match rows {
                    Some(n) => format!("{t}  (~{n} rows now)"),
                    None => t.clone(),
                })
                .collect();
            c.table = Some(tables[asker.choose("Table to bring back", &items)?].0.clone());
        }
    }
    if c.mode.is_none() {
        let modes = [
            (
                Mode::MissingRows,
                "missing-rows: insert into the table only the restored rows it lacks; rows written since stay as they are",
            ),
            (
                Mode::SideTable,
                "side-table: load the restored rows into a new table beside it and touch nothing else, to merge by hand",
            ),
            (
                Mode::Overwrite,
                "overwrite: insert the missing rows and set rows changed since back to their restored values (counts shown first)",
            ),
            (
                Mode::ReplaceAll,
                "replace-all: make the table equal to its restored copy, DELETING rows written since (you type the table name)",
            ),
        ];
        let items: Vec<String> = modes.iter().map(|(_, text)| text.to_string()).collect();
        c.mode = Some(modes[asker.choose("How to bring the rows back", &items)?].0);
    }
    if c.client_cidr.is_none() {
        asker.say("The restored instance gets a security group of its own, open to one address: yours.");
        loop {
            let answer = asker.text("Your address as seen by AWS (e.g. 203.0.113.7 or 203.0.113.7/32)")?;
            match parse_cidr(&answer, false) {
                Ok(cidr) => {
                    c.client_cidr = Some(cidr);
                    break;
                }
                Err(e) => asker.say(&e.to_string()),
            }
        }
    }
    Ok(c)
}

async fn choose_instance(rds: &dyn Rds, asker: &dyn Asker) -> Result<Instance> {
    let mut candidates: Vec<Instance> = rds
        .list_instances()
        .await?
        .into_iter()
        .filter(|i| matches!(i.engine.to_ascii_lowercase().as_str(), "mysql" | "mariadb"))
        .filter(|i| i.tag(TAG_TOOL).is_none())
        // Members of a DB cluster are restored as their cluster, listed below.
        .filter(|i| i.cluster.is_none())
        .collect();
    // DB clusters (Aurora MySQL, Multi-AZ) beside the instances, each as the source it is.
    for c in rds.list_clusters().await? {
        if c.tag(TAG_TOOL).is_some() || crate::restored::check_cluster(&c).is_err() {
            continue;
        }
        candidates.push(
            crate::restored::find_source(rds, "", Some(&c.id), "this region")
                .await?
                .view(),
        );
    }
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    if candidates.is_empty() {
        return Err(Error::InvalidInput(
            "no RDS for MySQL or MariaDB instance or cluster in this region: check --region and the AWS credentials"
                .into(),
        ));
    }
    let mut items = Vec::new();
    for i in &candidates {
        let earliest = window_start(rds, i).await?;
        items.push(format!(
            "{}{}  {} {}  {}  backups {} days  restorable {} .. {}",
            i.id,
            // Only a cluster's description carries its window's start.
            if i.earliest_restorable.is_some() {
                " (DB cluster)"
            } else {
                ""
            },
            i.engine,
            i.engine_version.as_deref().unwrap_or(""),
            i.status,
            i.backup_retention_days,
            earliest.map(rfc3339).unwrap_or_else(|| "?".into()),
            i.latest_restorable.map(rfc3339).unwrap_or_else(|| "?".into()),
        ));
    }
    let pick = asker.choose("RDS instance or DB cluster the table lived in", &items)?;
    Ok(candidates.swap_remove(pick))
}

/// The start of a source's restore window: a cluster's comes with its description; an
/// instance's from its automated backups, else its creation.
async fn window_start(rds: &dyn Rds, source: &Instance) -> Result<Option<DateTime<Utc>>> {
    if let Some(t) = source.earliest_restorable {
        return Ok(Some(t));
    }
    Ok(rds
        .earliest_restorable_time(&source.id, source.dbi_resource_id.as_deref())
        .await?
        .or(source.created))
}

async fn ask_time(rds: &dyn Rds, instance: &Instance, asker: &dyn Asker, now: DateTime<Utc>) -> Result<String> {
    let earliest = window_start(rds, instance).await?;
    let latest = instance.latest_restorable;
    let show = |t: Option<DateTime<Utc>>| match t {
        Some(t) => format!(
            "{} UTC ({} local)",
            rfc3339(t),
            t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S %:z")
        ),
        None => "unknown".into(),
    };
    asker.say(&format!(
        "{} can be restored to any second from {} to {}.",
        instance.id,
        show(earliest),
        show(latest)
    ));
    asker.say(&format!(
        "Not sure of the second? In another terminal, `rds-table-restore find --instance {} --database <db> \
         --table <table>` lists the writes to the table in production's binlog, each with its second, and \
         proposes the one to restore to.",
        instance.id
    ));
    loop {
        let answer = asker.text(
            "Restore to (just before the damage: 2024-05-01T09:14:00Z, 2024-05-01 11:14:00 +02:00, 15 minutes ago)",
        )?;
        let t = match parse_time(&answer, now) {
            Ok(t) => t,
            Err(e) => {
                asker.say(&e.to_string());
                continue;
            }
        };
        if earliest.is_some_and(|e| t < e) || latest.is_some_and(|l| t > l) {
            asker.say(&format!(
                "{} is outside the restorable window: choose a second inside it",
                rfc3339(t)
            ));
            continue;
        }
        if latest.is_some_and(|l| (l - t).num_seconds() < NEAR_LATEST_SECONDS) {
            asker.say(&format!(
                "warning: {} is within 5 minutes of the latest restorable time; make sure it is before the damage",
                rfc3339(t)
            ));
        }
        asker.say(&format!("Restoring to {} UTC.", rfc3339(t)));
        return Ok(rfc3339(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeDb, FakeRds};
    use std::sync::Mutex;

    /// Answers from a script: choices are picked by the text they contain.
    struct Scripted {
        answers: Mutex<Vec<&'static str>>,
        said: Mutex<Vec<String>>,
    }

    impl Asker for Scripted {
        fn choose(&self, _p: &str, items: &[String]) -> Result<usize> {
            let want = self.answers.lock().unwrap().remove(0);
            Ok(items.iter().position(|i| i.contains(want)).expect("a listed choice"))
        }
        fn text(&self, _p: &str) -> Result<String> {
            Ok(self.answers.lock().unwrap().remove(0).to_string())
        }
        fn say(&self, line: &str) {
            self.said.lock().unwrap().push(line.to_string());
        }
    }

    #[tokio::test]
    async fn asks_only_for_what_is_missing_and_keeps_asking_until_an_answer_is_valid() {
        let rds = FakeRds::with_source();
        let db = FakeDb {
            schema: Some(crate::testing::schema()),
            ..Default::default()
        };
        let asker = Scripted {
            answers: Mutex::new(vec![
                "prod-db",
                "yesterday",
                "2 minutes ago",
                "30 minutes ago",
                "billing",
                "side-table",
                "0.0.0.0/0",
                "203.0.113.7",
            ]),
            said: Mutex::new(vec![]),
        };
        let given = Choices {
            database: Some("shop".into()),
            ..Default::default()
        };
        let now = Utc::now();
        let c = fill(given, &rds, &db, &asker, now).await.unwrap();
        assert_eq!(c.instance.as_deref(), Some("prod-db"));
        assert_eq!(
            c.database.as_deref(),
            Some("shop"),
            "given on the command line: not asked"
        );
        assert_eq!(c.table.as_deref(), Some("billing"));
        assert_eq!(c.client_cidr.as_deref(), Some("203.0.113.7/32"));
        assert_eq!(c.mode, Some(Mode::SideTable));
        assert_eq!(
            c.time,
            Some(rfc3339(now - chrono::Duration::minutes(30)).replace("+00:00", "Z"))
        );
        let said = asker.said.lock().unwrap().join("\n");
        assert!(
            said.contains("with its zone"),
            "a time without a zone is explained: {said}"
        );
        assert!(said.contains("outside the restorable window"), "{said}");
        assert!(said.contains("--allow-any-source"), "{said}");
        assert!(asker.answers.lock().unwrap().is_empty());
    }

    #[test]
    fn missing_flags_are_named_in_order() {
        let c = Choices {
            instance: Some("x".into()),
            table: Some("t".into()),
            ..Default::default()
        };
        assert_eq!(c.missing(), vec!["--time", "--database", "--client-cidr"]);
    }
}
