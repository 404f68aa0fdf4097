//! The guided mode: on a terminal, whatever the operator did not give on the command line is
//! asked for, one question at a time, from lists read from AWS and production. Without a
//! terminal nothing is asked: the caller turns a missing choice into a usage error naming the
//! flag. The questions go through [`Asker`], so the wizard runs the same against dialoguer and
//! against a script in the tests.

use chrono::{DateTime, Local, Utc};

use async_trait::async_trait;

use crate::error::{Error, Result, Side};
use crate::plan::{parse_cidr, parse_time, rfc3339, Mode, TAG_TOOL};
use crate::ports::{Connector, Instance, Rds, TableRef};

/// Asks one question at a time.
pub trait Asker: Send + Sync {
    /// Picks one of `items` (type to filter); the index of the choice.
    fn choose(&self, prompt: &str, items: &[String]) -> Result<usize>;
    /// A line of text.
    fn text(&self, prompt: &str) -> Result<String>;
    /// Tells the operator something.
    fn say(&self, line: &str);
}

/// Looks for the damage in production's binlog (`find`), for an operator who does not know
/// the second: what to show, and the second it proposes to restore to.
#[async_trait]
pub trait DamageFinder: Send + Sync {
    async fn find(&self, source: &Instance, table: &TableRef, since: DateTime<Utc>) -> Result<Found>;
}

/// What a [`DamageFinder`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// Lines to show the operator: the damage, its position, warnings.
    pub lines: Vec<String>,
    /// The second before the damage; `None` when nothing deleted or changed rows.
    pub proposed: Option<DateTime<Utc>>,
}

/// How far back the guided mode looks in the binlog.
const FIND_HOURS: i64 = 24;

/// The answer to the time question that asks for the binlog instead.
const BINLOG_ANSWER: &str = "binlog";

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
    /// `--with-dependents`: offered when the wizard runs and a foreign key makes a delete on
    /// the table change others.
    pub with_dependents: Option<bool>,
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

/// Asks for every missing choice. With a `finder`, the time question also offers to look for
/// the damage in production's binlog (after asking for the table, which it needs).
pub async fn fill(
    mut c: Choices,
    rds: &dyn Rds,
    db: &dyn Connector,
    finder: Option<&dyn DamageFinder>,
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
        c.time = match ask_time(rds, instance, asker, now, finder.is_some(), None).await? {
            Some(t) => Some(t),
            None => {
                ask_table(&mut c, instance, db, asker).await?;
                let table = TableRef {
                    database: c.database.clone().unwrap_or_default(),
                    table: c.table.clone().unwrap_or_default(),
                };
                let since = now - chrono::Duration::hours(FIND_HOURS);
                asker.say(&format!(
                    "Reading the binlog of {} for `{}`.`{}` since {} UTC (read-only)...",
                    instance.id,
                    table.database,
                    table.table,
                    rfc3339(since)
                ));
                let found = match finder {
                    Some(f) => f.find(instance, &table, since).await,
                    None => Ok(Found::default()),
                };
                let proposed = match found {
                    Ok(found) => {
                        for line in &found.lines {
                            asker.say(line);
                        }
                        if found.proposed.is_none() {
                            asker.say("Nothing in the binlog deleted or changed its rows: give the time yourself.");
                        }
                        found.proposed
                    }
                    Err(e) => {
                        asker.say(&format!("The binlog cannot tell ({e}): give the time yourself."));
                        None
                    }
                };
                ask_time(rds, instance, asker, now, false, proposed).await?
            }
        };
    }
    if c.database.is_none() || c.table.is_none() {
        let instance = instance.as_ref().ok_or_else(|| Error::InstanceNotFound {
            id: c.instance.clone().unwrap_or_default(),
            region: "this region".into(),
        })?;
        ask_table(&mut c, instance, db, asker).await?;
    }
    if c.with_dependents.is_none() {
        if let (Some(instance), Some(database), Some(table)) = (&instance, &c.database, &c.table) {
            let table = TableRef {
                database: database.clone(),
                table: table.clone(),
            };
            c.with_dependents = offer_dependents(instance, &table, db, asker).await?;
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

/// When other tables of the database reference `table` through ON DELETE CASCADE or SET NULL,
/// a delete on it changed them too: lists them and asks whether the run brings them back as
/// well. `None` when there is nothing to ask (or production cannot tell: validation will).
async fn offer_dependents(
    instance: &Instance,
    table: &TableRef,
    db: &dyn Connector,
    asker: &dyn Asker,
) -> Result<Option<bool>> {
    let Some(endpoint) = instance.endpoint.clone() else {
        return Ok(None);
    };
    let Ok(mut session) = db.connect(Side::Production, &endpoint).await else {
        return Ok(None);
    };
    let Ok(found) = crate::machine::find_dependents(session.as_mut(), table).await else {
        return Ok(None);
    };
    let changed: Vec<_> = found
        .iter()
        .filter(|d| d.changed_by_delete() && d.table != *table && d.table.database == table.database)
        .collect();
    if changed.is_empty() {
        return Ok(None);
    }
    asker.say(&format!(
        "A delete on `{table}` also changes, through foreign keys, tables this restore would otherwise leave as they are:"
    ));
    for d in &changed {
        asker.say(&format!(
            "  `{}` ({}) ON DELETE {}: {}",
            d.table,
            d.columns.join(", "),
            d.on_delete,
            if d.on_delete == "CASCADE" {
                "its rows were deleted with the parent's"
            } else {
                "its references were set to NULL"
            }
        ));
    }
    let items = vec![
        "yes: bring them back in this run, from the same copy, parents first (--with-dependents)".to_string(),
        format!("no: `{}` only (the report will say what the others lost)", table.table),
    ];
    Ok(Some(asker.choose("Restore these tables too?", &items)? == 0))
}

/// Asks for the database and the table, from what production lists.
async fn ask_table(c: &mut Choices, instance: &Instance, db: &dyn Connector, asker: &dyn Asker) -> Result<()> {
    if c.database.is_some() && c.table.is_some() {
        return Ok(());
    }
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
    Ok(())
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

/// Asks for the second to restore to, inside the window. `None` when the operator asked to
/// look in the binlog instead (offered with `offer_binlog`); with `proposed`, an empty answer
/// takes it.
async fn ask_time(
    rds: &dyn Rds,
    instance: &Instance,
    asker: &dyn Asker,
    now: DateTime<Utc>,
    offer_binlog: bool,
    proposed: Option<DateTime<Utc>>,
) -> Result<Option<String>> {
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
    if offer_binlog {
        asker.say(&format!(
            "Not sure of the second? Answer `{BINLOG_ANSWER}`: the tool reads production's binlog (read-only), \
             lists the writes to the table and proposes the second before the damage."
        ));
    }
    let prompt = match proposed {
        Some(p) => format!(
            "Restore to (Enter for {} UTC, the second before the damage)",
            rfc3339(p)
        ),
        None => "Restore to (just before the damage: 2024-05-01T09:14:00Z, 2024-05-01 11:14:00 +02:00, 15 minutes ago)"
            .to_string(),
    };
    loop {
        let answer = asker.text(&prompt)?;
        if offer_binlog && answer.trim().eq_ignore_ascii_case(BINLOG_ANSWER) {
            return Ok(None);
        }
        let t = match (answer.trim().is_empty(), proposed) {
            (true, Some(p)) => p,
            _ => match parse_time(&answer, now) {
                Ok(t) => t,
                Err(e) => {
                    asker.say(&e.to_string());
                    continue;
                }
            },
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
        return Ok(Some(rfc3339(t)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeDb, FakeRds};
    use chrono::Timelike;
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
        let c = fill(given, &rds, &db, None, &asker, now).await.unwrap();
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

    /// A finder that proposes a fixed second, or fails, and records what it was asked.
    struct FakeFinder {
        proposed: Option<DateTime<Utc>>,
        fails: bool,
        asked: Mutex<Vec<TableRef>>,
    }

    #[async_trait]
    impl DamageFinder for FakeFinder {
        async fn find(&self, _source: &Instance, table: &TableRef, _since: DateTime<Utc>) -> Result<Found> {
            self.asked.lock().unwrap().push(table.clone());
            if self.fails {
                return Err(Error::BinlogUnusable {
                    what: "binary logging is off".into(),
                    fix: "use the instance restore".into(),
                });
            }
            Ok(Found {
                lines: vec!["The damage (!!): 25000 rows deleted".into()],
                proposed: self.proposed,
            })
        }
    }

    fn scripted(answers: Vec<&'static str>) -> Scripted {
        Scripted {
            answers: Mutex::new(answers),
            said: Mutex::new(vec![]),
        }
    }

    #[tokio::test]
    async fn an_operator_who_does_not_know_the_time_gets_the_second_the_binlog_proposes() {
        let rds = FakeRds::with_source();
        let db = FakeDb {
            schema: Some(crate::testing::schema()),
            ..Default::default()
        };
        let now = Utc::now();
        let proposed = (now - chrono::Duration::minutes(30)).with_nanosecond(0).unwrap();
        let finder = FakeFinder {
            proposed: Some(proposed),
            fails: false,
            asked: Mutex::new(vec![]),
        };
        // The table is asked first (the binlog needs it), then Enter takes the proposal.
        let asker = scripted(vec!["binlog", "billing", "", "missing-rows", "203.0.113.7"]);
        let given = Choices {
            instance: Some("prod-db".into()),
            database: Some("shop".into()),
            ..Default::default()
        };
        let c = fill(given, &rds, &db, Some(&finder), &asker, now).await.unwrap();
        assert_eq!(c.time, Some(rfc3339(proposed)));
        assert_eq!(c.table.as_deref(), Some("billing"));
        assert_eq!(
            finder.asked.lock().unwrap().as_slice(),
            &[TableRef {
                database: "shop".into(),
                table: "billing".into()
            }]
        );
        let said = asker.said.lock().unwrap().join("\n");
        assert!(
            said.contains("Answer `binlog`") && said.contains("25000 rows deleted"),
            "{said}"
        );
        assert!(asker.answers.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn when_the_binlog_cannot_tell_the_operator_gives_the_time() {
        let rds = FakeRds::with_source();
        let db = FakeDb {
            schema: Some(crate::testing::schema()),
            ..Default::default()
        };
        let finder = FakeFinder {
            proposed: None,
            fails: true,
            asked: Mutex::new(vec![]),
        };
        let asker = scripted(vec![
            "binlog",
            "billing",
            "binlog",
            "20 minutes ago",
            "missing-rows",
            "203.0.113.7",
        ]);
        let given = Choices {
            instance: Some("prod-db".into()),
            database: Some("shop".into()),
            ..Default::default()
        };
        let now = Utc::now();
        let c = fill(given, &rds, &db, Some(&finder), &asker, now).await.unwrap();
        assert_eq!(c.time, Some(rfc3339(now - chrono::Duration::minutes(20))));
        let said = asker.said.lock().unwrap().join("\n");
        assert!(
            said.contains("The binlog cannot tell") && said.contains("binary logging is off"),
            "{said}"
        );
        // The second `binlog` is no answer the second time: it is not a time.
        assert!(said.contains("is not a time"), "{said}");
    }

    #[tokio::test]
    async fn the_tables_a_cascade_changed_are_listed_and_offered() {
        let rds = FakeRds::with_source();
        let shop = |t: &str| TableRef {
            database: "shop".into(),
            table: t.into(),
        };
        let fk = |child: &str, rule: &str| crate::ports::ForeignKey {
            child: shop(child),
            constraint: format!("{child}_fk"),
            columns: vec!["billing_id".into()],
            referenced: vec!["id".into()],
            on_delete: rule.into(),
        };
        let db = FakeDb {
            schema: Some(crate::testing::schema()),
            foreign_keys: vec![
                (shop("billing"), fk("invoices", "CASCADE")),
                (shop("billing"), fk("audit", "RESTRICT")),
            ],
            ..Default::default()
        };
        // Everything given but the table (and the mode, which is always asked).
        let given = || Choices {
            instance: Some("prod-db".into()),
            time: Some("30 minutes ago".into()),
            database: Some("shop".into()),
            client_cidr: Some("203.0.113.7/32".into()),
            ..Default::default()
        };
        for (answer, expected) in [("yes", Some(true)), ("no", Some(false))] {
            let asker = Scripted {
                answers: Mutex::new(vec!["billing", answer, "missing-rows"]),
                said: Mutex::new(vec![]),
            };
            let c = fill(given(), &rds, &db, None, &asker, Utc::now()).await.unwrap();
            assert_eq!(c.with_dependents, expected, "{answer}");
            let said = asker.said.lock().unwrap().join("\n");
            assert!(
                said.contains("`shop.invoices` (billing_id) ON DELETE CASCADE"),
                "{said}"
            );
            assert!(!said.contains("audit"), "RESTRICT changed nothing: {said}");
        }
        // Nothing to offer: no question.
        let asker = Scripted {
            answers: Mutex::new(vec!["billing", "missing-rows"]),
            said: Mutex::new(vec![]),
        };
        let plain = FakeDb {
            schema: Some(crate::testing::schema()),
            ..Default::default()
        };
        let c = fill(given(), &rds, &plain, None, &asker, Utc::now()).await.unwrap();
        assert_eq!(c.with_dependents, None);
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
