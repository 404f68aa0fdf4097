//! The plan of one run: what the operator asked for, checked for shape before anything talks to
//! AWS, and the names and tags of everything the run will create. It holds no secrets, so it is
//! stored whole in the state file.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ports::TableRef;

mod input;
mod names;

pub use input::{check_predicate, input_errors, parse_cidr, parse_moment, parse_time};
pub use names::*;

pub const TOOL_NAME: &str = "rds-table-restore";
/// The tag that marks a resource as created by one run; every destructive call checks it first.
pub const TAG_RUN_ID: &str = "rds-table-restore:run-id";
pub const TAG_TOOL: &str = "rds-table-restore:tool";
pub const TAG_SOURCE: &str = "rds-table-restore:source-instance";
pub const TAG_TABLE: &str = "rds-table-restore:table";
pub const TAG_TIME: &str = "rds-table-restore:restore-time";
/// When the copy should be gone: `runs` and `cleanup` flag copies past it.
pub const TAG_EXPIRES: &str = "rds-table-restore:expires-at";

/// How long a restored copy is expected to live, for its `expires-at` tag: long enough for a
/// slow restore of a large instance and the copy, short enough that a forgotten one is noticed.
pub const COPY_LIFETIME_HOURS: i64 = 24;

/// How restored rows are merged into production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Insert only the restored rows whose primary key is absent in production.
    MissingRows,
    /// Also overwrite the rows present on both sides whose values differ (the counts of each are
    /// shown before anything is written).
    Overwrite,
    /// Load the restored rows into a new table `<table>__restored_<time>` in production, kept,
    /// and touch nothing else: the safest mode, for a merge done by hand.
    SideTable,
    /// Make the production table equal to the restored one: also deletes the rows written since.
    /// Needs the table's name typed at the prompt, or `--yes --confirm-table <name>`.
    ReplaceAll,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::MissingRows => "missing-rows",
            Mode::Overwrite => "overwrite",
            Mode::SideTable => "side-table",
            Mode::ReplaceAll => "replace-all",
        }
    }
}

/// What to do with the restored instance when a step fails (network access is revoked anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Delete the restored instance.
    Teardown,
    /// Keep it (it is named in the error, with its state file) to inspect it.
    Keep,
}

/// What the operator asked for, before checking.
#[derive(Debug, Clone)]
pub struct Request {
    pub instance: String,
    /// `--cluster`: the DB cluster the table lived in (Aurora MySQL, Multi-AZ DB cluster).
    pub cluster: Option<String>,
    pub database: String,
    pub table: String,
    pub time: String,
    pub client_cidr: Option<String>,
    pub allow_any_source: bool,
    pub mode: Mode,
    pub instance_class: Option<String>,
    pub parameter_group: Option<String>,
    pub subnet_group: Option<String>,
    pub publicly_accessible: bool,
    pub chunk_size: usize,
    /// `--chunk-bytes`: the bytes of restored rows a chunk holds at most.
    pub chunk_bytes: usize,
    /// `--max-lock-ms`: how long a chunk should hold its locks in production at most.
    pub max_lock_ms: u64,
    pub wait_timeout_minutes: u64,
    pub on_failure: OnFailure,
    /// `--where`: a single SQL predicate restricting the restored rows.
    pub where_predicate: Option<String>,
    /// `drill`: rehearse into a side table instead of the real one.
    pub drill: Option<DrillRequest>,
    /// `--dump-file` or `--dump-only`: where to write the SQL of the rows inserted.
    pub dump_file: Option<std::path::PathBuf>,
    /// `--dump-only`: write the SQL, never production.
    pub dump_only: bool,
    /// `--confirm-table`: the table name typed ahead, which replace-all needs with `--yes`.
    pub confirm_table: Option<String>,
    /// `--recreate-table`: if the table is gone from production (DROP TABLE), create it from
    /// the restored copy's `SHOW CREATE TABLE` without asking.
    pub recreate_table: bool,
    /// `--parallel`: writers on disjoint key ranges; 0 for `auto`.
    pub parallel: usize,
    /// `--source`: how the table as it was is obtained.
    pub source: SourceKind,
    /// `--before`, located: `FILE:POS` where the transaction begins (`time` is its second).
    pub before: Option<String>,
    /// `--table` given again: more tables brought back by the same run, from the same copy,
    /// each `table` (in `--database`) or `database.table`.
    pub also: Vec<String>,
    /// `--with-dependents`: also the tables a delete on these changes through foreign keys
    /// (ON DELETE CASCADE or SET NULL), in the same database.
    pub with_dependents: bool,
}

/// How the table as it was at the point is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// RDS restores the instance (or cluster) to the point in time as a new copy.
    #[default]
    Pitr,
    /// The table is rewound through production's binlog into a table beside it: no instance,
    /// nothing in AWS.
    Binlog,
}

/// What `drill` adds to a request.
#[derive(Debug, Clone, Default)]
pub struct DrillRequest {
    /// Load into `<database>.<table>` instead of a side table beside the real one.
    pub database: Option<String>,
    /// Leave the side table in place for inspection.
    pub keep: bool,
}

/// A rehearsal: the restored rows go into `target`, a table the run creates in production,
/// never into the real table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drill {
    pub target: TableRef,
    pub keep: bool,
    /// A drill (a rehearsal), or a real restore in `side-table` mode.
    #[serde(default = "yes")]
    pub rehearsal: bool,
}

/// A chunk's byte budget when a plan recorded none (state files from before `--chunk-bytes`).
pub const DEFAULT_CHUNK_BYTES: usize = 8 << 20;

fn default_chunk_bytes() -> usize {
    DEFAULT_CHUNK_BYTES
}

fn default_max_lock_ms() -> u64 {
    100
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub run_id: String,
    pub source_instance: String,
    pub table: TableRef,
    pub restore_time: DateTime<Utc>,
    pub target_instance: String,
    pub security_group_name: String,
    pub client_cidr: String,
    pub mode: Mode,
    pub instance_class: Option<String>,
    pub parameter_group: Option<String>,
    pub subnet_group: Option<String>,
    pub publicly_accessible: bool,
    pub chunk_size: usize,
    /// The bytes of restored rows a chunk holds at most: `--chunk-bytes`, lowered in
    /// validation to half of production's `max_allowed_packet` when that is smaller.
    #[serde(default = "default_chunk_bytes")]
    pub chunk_bytes: usize,
    /// How long a chunk should hold its locks in production: past it, the next chunks shrink.
    #[serde(default = "default_max_lock_ms")]
    pub max_lock_ms: u64,
    pub wait_timeout_minutes: u64,
    pub on_failure: OnFailure,
    #[serde(default)]
    pub where_predicate: Option<String>,
    #[serde(default)]
    pub drill: Option<Drill>,
    #[serde(default)]
    pub dump_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub dump_only: bool,
    #[serde(default)]
    pub confirm_table: Option<String>,
    #[serde(default)]
    pub recreate_table: bool,
    #[serde(default = "one")]
    pub parallel: usize,
    /// The copy's `expires-at` tag (the run's start plus [`COPY_LIFETIME_HOURS`]).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// `--cluster`, as given.
    #[serde(default)]
    pub source_cluster: Option<String>,
    /// Set by validation when the source is a DB cluster: the copy is then a cluster restored
    /// to the point in time, named `target_instance`.
    #[serde(default)]
    pub cluster: Option<ClusterPlan>,
    /// `--source`.
    #[serde(default)]
    pub source_kind: SourceKind,
    /// With `--source binlog`: the table, beside the real one in production, that the rewind
    /// builds as the table was at the point and the copy reads from (dropped at teardown).
    #[serde(default)]
    pub asof: Option<TableRef>,
    /// `--before`, located: the rewind goes back to just before the transaction that begins
    /// at this `FILE:POS`; `restore_time` is that transaction's second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The other tables named with `--table`, brought back by the same run from the same copy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<TableRef>,
    /// `--with-dependents`: the tables the accident changed through foreign keys come back too.
    #[serde(default)]
    pub with_dependents: bool,
}

/// What a restore of a DB cluster needs to know of its source, found in validation and kept
/// so that a resumed run restores, waits and releases the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ClusterPlan {
    /// The source cluster.
    pub source: String,
    pub engine: String,
    /// A Multi-AZ DB cluster: RDS makes its instances. Otherwise Aurora: the tool adds one
    /// writer, `writer`.
    pub multi_az: bool,
    /// The restored cluster's writer instance: for Aurora the one the tool creates; for a
    /// Multi-AZ DB cluster empty (RDS names its instances).
    pub writer: String,
    pub writer_class: Option<String>,
    pub serverless_v2: Option<(f64, f64)>,
    pub storage_type: Option<String>,
    pub iops: Option<i32>,
    /// The source's backtrack window in seconds, when it has one (never used: see `plan`).
    pub backtrack_window: Option<i64>,
    /// The source writer's CA, for the writer the tool adds.
    pub ca_certificate: Option<String>,
}

fn one() -> usize {
    1
}

impl Plan {
    /// Checks the request's shape and names what the run will create. `now` is passed in so
    /// tests can pin it.
    pub fn new(req: &Request, run_id: String, now: DateTime<Utc>) -> Result<Plan> {
        if let Some(first) = input_errors(req, now, false).into_iter().next() {
            return Err(first);
        }
        let restore_time = parse_time(&req.time, now)?;
        // A binlog rewind opens nothing to anyone: no address is needed.
        let client_cidr = match req.client_cidr.as_deref().filter(|c| !c.is_empty()) {
            None if req.source == SourceKind::Binlog => String::new(),
            c => parse_cidr(c.unwrap_or_default(), req.allow_any_source)?,
        };
        let where_predicate = req.where_predicate.as_deref().map(check_predicate).transpose()?;
        let source = req
            .cluster
            .as_deref()
            .filter(|c| !c.is_empty())
            .unwrap_or(&req.instance);
        let target_instance = match req.drill {
            None => target_name(source, &req.table, restore_time, &run_id),
            Some(_) => drill_target_name(source, &req.table, restore_time, &run_id),
        };
        let asof = (req.source == SourceKind::Binlog).then(|| TableRef {
            database: SCRATCH_DATABASE.into(),
            table: asof_table_name(&req.table, &run_id),
        });
        Ok(Plan {
            security_group_name: format!("{target_instance}-access"),
            target_instance,
            run_id,
            source_instance: req.instance.clone(),
            table: TableRef {
                database: req.database.clone(),
                table: req.table.clone(),
            },
            restore_time,
            client_cidr,
            mode: req.mode,
            instance_class: req.instance_class.clone(),
            parameter_group: req.parameter_group.clone(),
            subnet_group: req.subnet_group.clone(),
            publicly_accessible: req.publicly_accessible,
            chunk_size: req.chunk_size,
            chunk_bytes: req.chunk_bytes,
            max_lock_ms: req.max_lock_ms,
            wait_timeout_minutes: req.wait_timeout_minutes,
            on_failure: req.on_failure,
            where_predicate,
            dump_file: req.dump_file.clone(),
            dump_only: req.dump_only,
            confirm_table: req.confirm_table.clone(),
            recreate_table: req.recreate_table,
            parallel: req.parallel,
            expires_at: Some(now + chrono::Duration::hours(COPY_LIFETIME_HOURS)),
            source_cluster: req.cluster.clone().filter(|c| !c.is_empty()),
            cluster: None,
            source_kind: req.source,
            before: req.before.clone(),
            also: req.also.iter().map(|t| table_ref(&req.database, t)).collect(),
            with_dependents: req.with_dependents,
            asof,
            drill: req.drill.as_ref().map(|d| Drill {
                target: TableRef {
                    database: d.database.clone().unwrap_or_else(|| req.database.clone()),
                    table: match d.database {
                        Some(_) => req.table.clone(),
                        None => side_table_name(&req.table, now),
                    },
                },
                keep: d.keep,
                rehearsal: true,
            }),
        })
        .map(|mut plan: Plan| {
            if plan.drill.is_none() && req.mode == Mode::SideTable {
                plan.drill = Some(Drill {
                    target: TableRef {
                        database: req.database.clone(),
                        table: restored_table_name(&req.table, now),
                    },
                    keep: true,
                    rehearsal: false,
                });
            }
            plan
        })
    }

    /// True for a run of several tables: `--table` given more than once, or
    /// `--with-dependents`.
    pub fn is_multi(&self) -> bool {
        !self.also.is_empty() || self.with_dependents
    }

    /// The plan as it applies to one table of a run of several: the same copy, time and
    /// mode, another table.
    pub fn for_table(&self, table: &TableRef) -> Plan {
        Plan {
            table: table.clone(),
            ..self.clone()
        }
    }

    /// Every table the operator named, the first `--table` first.
    pub fn named_tables(&self) -> Vec<TableRef> {
        std::iter::once(self.table.clone())
            .chain(self.also.iter().cloned())
            .collect()
    }

    /// How rows are merged into the table written: a side table (drill, side-table mode) is
    /// new, so it only ever receives inserts.
    pub fn merge(&self) -> crate::ports::Merge {
        use crate::ports::Merge;
        match (self.drill.is_some(), self.mode) {
            (true, _) | (_, Mode::MissingRows) | (_, Mode::SideTable) => Merge::MissingRows,
            (false, Mode::Overwrite) => Merge::Overwrite,
            (false, Mode::ReplaceAll) => Merge::ReplaceAll,
        }
    }

    /// True for a rehearsal (`drill`), false for a real restore (whatever its mode).
    pub fn is_drill(&self) -> bool {
        self.drill.as_ref().is_some_and(|d| d.rehearsal)
    }

    /// Where the rows as they were are read: the table on the restored copy, or, rewound
    /// through the binlog, the as-of table beside it in production.
    pub fn restored_table(&self) -> &TableRef {
        self.asof.as_ref().unwrap_or(&self.table)
    }

    /// True when the table is rewound through the binlog (no instance, nothing in AWS).
    pub fn is_binlog(&self) -> bool {
        self.source_kind == SourceKind::Binlog
    }

    /// True when the binlog rewind's as-of table holds the keys changed after the point
    /// alone: the merge keeps every row it is not given (missing-rows, overwrite, with or
    /// without `--where`), and every row no change touched is in production as it was then.
    /// A side table or a drill needs the whole table, and replace-all would delete the rest.
    pub fn asof_changed_keys_only(&self) -> bool {
        self.is_binlog() && !self.rewind_needs_whole_table()
    }

    /// True when a binlog rewind for this plan's mode would need the whole table as it was
    /// (a side table, a drill, replace-all), whichever source the plan chose.
    pub fn rewind_needs_whole_table(&self) -> bool {
        self.drill.is_some() || self.merge() == crate::ports::Merge::ReplaceAll
    }

    /// Where the restored rows are written: the real table, or the drill's side table.
    pub fn target_table(&self) -> &TableRef {
        self.drill.as_ref().map(|d| &d.target).unwrap_or(&self.table)
    }

    /// True when the rule opens the port to one address only.
    pub fn single_host(&self) -> bool {
        self.client_cidr.ends_with("/32") && !self.client_cidr.contains(':') || self.client_cidr.ends_with("/128")
    }

    /// The tags put on every resource the run creates.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags = vec![
            (TAG_RUN_ID.into(), self.run_id.clone()),
            (TAG_TOOL.into(), TOOL_NAME.into()),
            (TAG_SOURCE.into(), tag_value(self.source())),
            (TAG_TABLE.into(), tag_value(&self.table.to_string())),
            (TAG_TIME.into(), rfc3339(self.restore_time)),
        ];
        if let Some(t) = self.expires_at {
            tags.push((TAG_EXPIRES.into(), rfc3339(t)));
        }
        tags
    }

    /// The source the copy is restored from: the cluster when the source is one.
    pub fn source(&self) -> &str {
        match (&self.cluster, &self.source_cluster) {
            (Some(c), _) => &c.source,
            (None, Some(c)) => c,
            (None, None) => &self.source_instance,
        }
    }

    /// "RDS instance" or "DB cluster": what the copy is, for messages.
    pub fn copy_noun(&self) -> &'static str {
        if self.cluster.is_some() {
            "DB cluster"
        } else {
            "RDS instance"
        }
    }

    /// True once the copy has outlived its `expires-at`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| now > t)
    }
}

/// What an instance class costs by the hour, roughly, for the plan screen: the family decides.
pub fn cost_class(class: &str) -> &'static str {
    let family = class.trim_start_matches("db.").split('.').next().unwrap_or("");
    match family.chars().next() {
        Some('t') => "burstable, the cheapest per hour",
        Some('m') => "general purpose, moderate per hour",
        Some('r') | Some('x') | Some('z') => "memory optimized, expensive per hour",
        _ => "see the RDS pricing page",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use chrono::TimeZone;

    use crate::testing::request;

    #[test]
    fn a_where_predicate_is_one_condition_and_nothing_else() {
        for ok in [
            "currency = 'EUR'",
            "note = 'a;b -- c # d' AND (id > 3 OR id < 1)",
            "id IN (SELECT id FROM other WHERE x = \"it's\")",
            "`odd``name` = 'x\\'y'",
        ] {
            assert!(check_predicate(ok).is_ok(), "{ok} refused: {:?}", check_predicate(ok));
        }
        for (bad, why) in [
            ("1=1; DROP TABLE billing", "`;`"),
            ("1=1 # rest", "comment"),
            ("1=1 -- rest", "comment"),
            ("1=1 /* x */", "comment"),
            ("1) UNION SELECT password FROM mysql.user WHERE (1", "did not open"),
            ("(1=1", "open"),
            ("name = 'x", "quote"),
            ("  ", "empty"),
        ] {
            let e = check_predicate(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_drill_writes_a_side_table_never_the_real_one() {
        let mut r = request();
        r.drill = Some(DrillRequest::default());
        let p = Plan::new(&r, "id-0000".into(), now()).unwrap();
        assert_eq!(p.target_table().to_string(), "shop.billing__drill_20261123120000");
        assert_ne!(p.target_table(), &p.table);
        r.drill = Some(DrillRequest {
            database: Some("scratch".into()),
            keep: true,
        });
        let p = Plan::new(&r, "id-0000".into(), now()).unwrap();
        assert_eq!(p.target_table().to_string(), "scratch.billing");
        assert_eq!(side_table_name(&"t".repeat(80), now()).chars().count(), 64);
        let mut r = request();
        r.mode = Mode::SideTable;
        let p = Plan::new(&r, "id-0000".into(), now()).unwrap();
        assert_eq!(p.target_table().to_string(), "shop.billing__restored_20261123120000");
        assert!(!p.is_drill() && p.drill.as_ref().unwrap().keep);
        assert!(p.target_instance.starts_with("restore-"));
        assert_eq!(
            Plan::new(&request(), "id-0000".into(), now())
                .unwrap()
                .target_table()
                .to_string(),
            "shop.billing"
        );
    }

    #[test]
    fn tag_values_keep_to_what_aws_accepts() {
        assert_eq!(tag_value("shop.billing"), "shop.billing");
        assert_eq!(tag_value("shop.bill`ing; DROP 'x\""), "shop.bill_ing_ DROP _x_");
        assert_eq!(tag_value("café.ünï"), "café.ünï");
        assert_eq!(tag_value(&"x".repeat(300)).len(), 256);
    }

    #[test]
    fn only_a_single_address_counts_as_one_host() {
        let mut p = Plan::new(&request(), "id-0000".into(), now()).unwrap();
        assert!(p.single_host());
        for (cidr, single) in [
            ("10.0.0.0/16", false),
            ("2001:db8::1/128", true),
            ("2001:db8::/64", false),
        ] {
            p.client_cidr = cidr.into();
            assert_eq!(p.single_host(), single, "{cidr}");
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
    }

    #[test]
    fn an_as_of_table_name_is_the_run_s_own_and_fits_mysql() {
        let long = "t".repeat(64);
        let name = asof_table_name(&long, "20261202t203514-5eb0");
        assert_eq!(name.len(), 64);
        assert!(name.ends_with("__asof_20261202t203514_5eb0"));
        assert_eq!(
            asof_table_name("billing", "20261202t203514-5eb0"),
            "billing__asof_20261202t203514_5eb0"
        );
    }

    #[test]
    fn target_names_are_valid_rds_identifiers() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 9, 59, 58).unwrap();
        let name = target_name("prod-db", "billing", t, "20261123t100000-ab12");
        assert_eq!(name, "restore-prod-db-billing-20261123-095958-ab12");
        let long = target_name(
            "A_Very--Long_Production_Instance_Name_That_Goes_On",
            "invoice_line_items_archive_2024_final",
            t,
            "x-beef",
        );
        assert!(long.len() <= 63, "{long} is {} long", long.len());
        assert!(long.starts_with("restore-a-very-long"), "{long}");
        assert!(long.contains("-invoice"), "the table must stay visible: {long}");
        assert!(!long.contains("--") && !long.ends_with('-'));
        assert!(long
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        let odd = target_name("db", "Ünïcode täble;`x`", t, "x-0001");
        let drill = drill_target_name(&"x".repeat(70), &"y".repeat(70), t, "x-0001");
        assert!(drill.starts_with("drill-xxx") && drill.len() <= 63, "{drill}");
        assert!(!odd.contains("--") && odd.len() <= 63, "{odd}");
    }

    #[test]
    fn the_whole_internet_needs_an_explicit_flag() {
        for any in ["0.0.0.0/0", "::/0"] {
            let err = parse_cidr(any, false).unwrap_err().to_string();
            assert!(err.contains("--allow-any-source"), "{err}");
            assert_eq!(parse_cidr(any, true).unwrap(), any);
        }
    }

    #[test]
    fn cidrs_are_checked_and_normalised() {
        assert_eq!(parse_cidr("203.0.113.7", false).unwrap(), "203.0.113.7/32");
        assert_eq!(parse_cidr("2001:db8::1", false).unwrap(), "2001:db8::1/128");
        assert_eq!(parse_cidr("10.1.0.0/16", false).unwrap(), "10.1.0.0/16");
        for bad in ["10.1.2.3/16", "10.0.0.0/33", "example.com/32", "10.0.0.0/x", ""] {
            assert!(parse_cidr(bad, false).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn plan_checks_input_before_anything_else() {
        let mut r = request();
        r.client_cidr = None;
        assert!(Plan::new(&r, "id-0000".into(), now())
            .unwrap_err()
            .to_string()
            .contains("--client-cidr is required"));
        let mut r = request();
        r.time = "2026-11-23 10:00".into();
        assert!(Plan::new(&r, "id-0000".into(), now())
            .unwrap_err()
            .to_string()
            .contains("with its zone"));
        let mut r = request();
        r.time = "2026-11-24T10:00:00+02:00".into();
        assert!(matches!(
            Plan::new(&r, "id-0000".into(), now()),
            Err(Error::TimeInFuture { .. })
        ));
        let plan = Plan::new(&request(), "20261123t120000-ab12".into(), now()).unwrap();
        assert_eq!(plan.security_group_name, format!("{}-access", plan.target_instance));
        assert!(plan
            .tags()
            .contains(&(TAG_RUN_ID.to_string(), "20261123t120000-ab12".to_string())));
    }

    #[test]
    fn the_copy_is_tagged_to_expire_a_day_after_the_run_starts() {
        let plan = Plan::new(&request(), "20261123t120000-ab12".into(), now()).unwrap();
        assert!(plan
            .tags()
            .contains(&(TAG_EXPIRES.to_string(), "2026-11-24T12:00:00Z".to_string())));
        assert!(!plan.expired(now() + chrono::Duration::hours(23)));
        assert!(plan.expired(now() + chrono::Duration::hours(25)));
    }

    #[test]
    fn every_problem_of_a_request_is_found_at_once() {
        let mut r = request();
        r.time = "ten past nine".into();
        r.client_cidr = Some("203.0.113.7/40".into());
        r.chunk_size = 0;
        r.parallel = 17;
        let errors = input_errors(&r, now(), false);
        assert_eq!(errors.len(), 4, "{errors:?}");
        r.time = String::new();
        r.client_cidr = None;
        assert_eq!(
            input_errors(&r, now(), true).len(),
            2,
            "missing choices are the caller's to name"
        );
    }

    #[test]
    fn times_keep_their_zone_and_drop_fractions() {
        let t = parse_time("2026-11-23T11:30:05.900+01:00", now()).unwrap();
        assert_eq!(rfc3339(t), "2026-11-23T10:30:05Z");
        for (text, utc) in [
            ("2026-11-23 11:30:05 +01:00", "2026-11-23T10:30:05Z"),
            ("2026-11-23 11:30:05 -0230", "2026-11-23T14:00:05Z"),
            ("2026-11-23 10:30:05 UTC", "2026-11-23T10:30:05Z"),
            ("15 minutes ago", "2026-11-23T11:45:00Z"),
            ("2 hours ago", "2026-11-23T10:00:00Z"),
            ("90 seconds ago", "2026-11-23T11:58:30Z"),
        ] {
            assert_eq!(rfc3339(parse_time(text, now()).unwrap()), utc, "{text}");
        }
        for bad in [
            "2026-11-23 10:30:05",
            "yesterday",
            "15 minutes",
            "2026-11-23 10:30:05 CET",
            "ten minutes ago",
        ] {
            let e = parse_time(bad, now()).unwrap_err().to_string();
            assert!(e.contains("with its zone"), "{bad}: {e}");
        }
    }
}
