//! `find`: where in production's binlog the damage to a table is, and the second to restore to.
//! Read-only: one DescribeDBInstances for the endpoint, then the binlog over the replication
//! protocol. Nothing is created or written, in AWS or in a database.

use chrono::{DateTime, SecondsFormat, Utc};

use rds_table_restore::binlog::reader::BinlogReader;
use rds_table_restore::binlog::{analyse, Before, Finding, Position, Scan, TableTxn};
use rds_table_restore::cli::{FindArgs, Output};
use rds_table_restore::error::{Error, Side};
use rds_table_restore::machine::find_dependents;
use rds_table_restore::mysql::MysqlConnector;
use rds_table_restore::plan::parse_moment;
use rds_table_restore::ports::Instance;
use rds_table_restore::ports::{Connector, Endpoint};
use rds_table_restore::ports::{Rds, TableRef};
use rds_table_restore::state::Connection;
use rds_table_restore::state::Dependent;
use rds_table_restore::ui;
use rds_table_restore::wizard::{DamageFinder, Found};

use super::{aws, connector, fail};

/// How many transactions the text lists; the flagged ones are always shown, JSON lists all.
const LISTED: usize = 40;

pub async fn find(args: FindArgs) -> u8 {
    let missing: Vec<&str> = [
        ("--instance", args.instance.is_none()),
        ("--database", args.database.is_none()),
        ("--table", args.table.is_none()),
    ]
    .into_iter()
    .filter(|(_, m)| *m)
    .map(|(f, _)| f)
    .collect();
    if !missing.is_empty() {
        return fail(
            2,
            &format!("find needs {}: which table's writes to look for", missing.join(", ")),
        );
    }
    let (instance, database, table) = (
        args.instance.clone().unwrap_or_default(),
        args.database.clone().unwrap_or_default(),
        args.table.clone().unwrap_or_default(),
    );
    let now = Utc::now();
    let since = match args.since.as_deref() {
        Some(s) => match parse_moment("--since", s, now) {
            Ok(t) => t,
            Err(e) => return fail(2, &e),
        },
        None => now - chrono::Duration::hours(24),
    };
    let until = match args
        .until
        .as_deref()
        .map(|s| parse_moment("--until", s, now))
        .transpose()
    {
        Ok(t) => t,
        Err(e) => return fail(2, &e),
    };
    if until.is_some_and(|u| u < since) {
        return fail(2, &"--until is before --since: give the earlier moment to --since");
    }
    let aws = aws(args.common.region.clone()).await;
    let source = match aws.rds.describe_instance(&instance).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return fail(
                3,
                &Error::InstanceNotFound {
                    id: instance,
                    region: aws.region.clone(),
                },
            )
        }
        Err(e) => return fail(1, &e),
    };
    let Some(endpoint) = source.endpoint.clone() else {
        return fail(3, &Error::NoEndpoint { id: instance });
    };
    let recorded = Connection {
        region: args.common.region.clone(),
        ..Connection::default()
    };
    let (db, _) = match connector(&args.db, &recorded, &aws.config).await {
        Ok(c) => c,
        Err(e) => return fail(3, &format!("{e:#}")),
    };
    let reader = BinlogReader {
        connector: &db,
        endpoint,
    };
    let table_ref = TableRef {
        database: database.clone(),
        table: table.clone(),
    };
    let quiet = args.common.quiet || args.common.output == Output::Json;
    if !quiet {
        eprintln!(
            "reading the binlog of {instance} for `{database}`.`{table}` from {}",
            utc(since)
        );
    }
    let log = match reader.probe().await {
        Ok(l) => l,
        Err(e) => return fail(if e.is_validation() { 3 } else { 1 }, &e),
    };
    let told = |at: &Position, last: Option<DateTime<Utc>>, found: usize| {
        if !quiet {
            eprintln!(
                "  at {at} ({}): {found} transactions on the table so far",
                last.map(utc).unwrap_or_else(|| "-".into())
            );
        }
    };
    let scan = match reader.scan(&log, &table_ref, since, until, &told).await {
        Ok(s) => s,
        Err(e) => return fail(if e.is_validation() { 3 } else { 1 }, &e),
    };
    let finding = analyse(&scan.txns);
    let cascades = cascades(&db, &reader.endpoint, &table_ref).await;
    let restore = finding.restore_time.map(|t| {
        format!(
            "rds-table-restore restore --instance {instance} --database {database} --table {table} --time {}",
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    });
    match args.common.output {
        Output::Json => emit_json(&scan, &finding, restore.as_deref(), &cascades),
        Output::Text => {
            print_text(&table_ref, &scan, &finding, restore.as_deref());
            for line in cascade_lines(&table_ref, &cascades) {
                println!("{line}");
            }
        }
    }
    0
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn counts(t: &TableTxn) -> String {
    format!("{:>9} {:>9} {:>9}", t.deleted, t.updated, t.inserted)
}

fn print_text(table: &TableRef, scan: &Scan, finding: &Finding, restore: Option<&str>) {
    let name = format!("`{}`.`{}`", table.database, table.table);
    let to = scan.last_event.map(utc).unwrap_or_else(|| "its end".into());
    let files = match scan.files.as_slice() {
        [] => "(none)".to_string(),
        [one] => one.clone(),
        [first, .., last] => format!("{first} to {last}"),
    };
    println!(
        "Binlog {files}, from {} to {}: {} transactions wrote {name} ({} others did not).",
        utc(scan.since),
        to,
        scan.txns.len(),
        scan.other_txns
    );
    for w in &scan.warnings {
        println!("warning: {w}");
    }
    if scan.txns.is_empty() {
        println!("Nothing in this range wrote {name}: widen it with --since, or check --database and --table.");
        return;
    }
    let shown: Vec<usize> = if scan.txns.len() <= LISTED {
        (0..scan.txns.len()).collect()
    } else {
        let mut v: Vec<usize> = finding.flagged.clone();
        v.extend(scan.txns.len() - (LISTED - v.len().min(LISTED))..scan.txns.len());
        v.sort_unstable();
        v.dedup();
        v
    };
    println!();
    println!(
        "  {:<23} {:<28} {:<14} {:>9} {:>9} {:>9}  statement",
        "time", "begins at", "GTID", "deleted", "updated", "inserted"
    );
    for &i in &shown {
        let t = &scan.txns[i];
        let mark = if Some(i) == finding.damage {
            "!!"
        } else if finding.flagged.contains(&i) {
            " !"
        } else {
            "  "
        };
        let statement = t
            .statements
            .iter()
            .map(|s| s.text.clone())
            .chain(t.sql.clone())
            .collect::<Vec<_>>()
            .join("; ");
        println!(
            "{mark}{:<23} {:<28} {:<14} {}  {statement}",
            utc(t.time),
            t.start.to_string(),
            t.gtid.as_deref().unwrap_or("-"),
            counts(t)
        );
    }
    if shown.len() < scan.txns.len() {
        println!(
            "  ... {} more, not listed (the flagged ones and the latest are); --output json lists every one",
            scan.txns.len() - shown.len()
        );
    }
    println!();
    for line in damage_lines(table, scan, finding, restore) {
        println!("{line}");
    }
}

/// What the finding means, in lines: the damage, the second to restore to (and the command,
/// when given), the transactions of the same second.
fn damage_lines(table: &TableRef, scan: &Scan, finding: &Finding, restore: Option<&str>) -> Vec<String> {
    let name = format!("`{}`.`{}`", table.database, table.table);
    let mut lines = Vec::new();
    let Some(d) = finding.damage else {
        lines.push(format!(
            "No transaction in this range deleted or changed rows of {name}."
        ));
        return lines;
    };
    let t = &scan.txns[d];
    let what = if t.destructive_statement() {
        t.statements
            .iter()
            .find(|s| s.kind.destructive())
            .map(|s| format!("`{}`", s.text))
            .unwrap_or_default()
    } else {
        match (t.deleted, t.updated) {
            (d, 0) => format!("{d} rows deleted"),
            (0, u) => format!("{u} rows updated"),
            (d, u) => format!("{d} rows deleted and {u} updated"),
        }
    };
    lines.push(format!(
        "The damage (!!): {what} at {}, beginning at {}{}.",
        utc(t.time),
        t.start,
        gtid_text(t)
    ));
    if let Some(time) = finding.restore_time {
        lines.push(format!(
            "Restore to {} (the second before it){}",
            time.to_rfc3339_opts(SecondsFormat::Secs, true),
            if restore.is_some() { ":" } else { "." }
        ));
        if let Some(cmd) = restore {
            lines.push(format!("  {cmd}"));
        }
    }
    if !finding.same_second.is_empty() {
        lines.push(format!(
            "warning: {} other transactions wrote {name} in the second of the damage or the one before ({}): a \
             restore to a second cannot tell them from it. The restored copy misses what they wrote; the default \
             merge (missing rows) keeps what production still has of it. A binlog rewind with --before is exact to \
             the transaction instead.",
            finding.same_second.len(),
            finding
                .same_second
                .iter()
                .map(|&i| scan.txns[i].start.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if let (Some(cmd), Some(time)) = (restore, finding.restore_time) {
            let at = format!("--time {}", time.to_rfc3339_opts(SecondsFormat::Secs, true));
            lines.push(format!("  {}", cmd.replace(&at, &format!("--before {}", t.start))));
        }
    }
    lines
}

/// `--before`: the transaction it names, read from production's binlog (exit 3 when it names
/// none on the table, with where to take one from).
pub async fn locate_before(
    aws: &super::Aws,
    db: &MysqlConnector,
    args: &rds_table_restore::cli::RestoreArgs,
    before: &Before,
    hint: Option<DateTime<Utc>>,
) -> Result<TableTxn, u8> {
    let Some(instance) = args.instance.clone() else {
        return Err(fail(
            2,
            &"--before needs --instance: the instance whose binlog holds the transaction",
        ));
    };
    let source = match aws.rds.describe_instance(&instance).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return Err(fail(
                3,
                &Error::InstanceNotFound {
                    id: instance,
                    region: aws.region.clone(),
                },
            ))
        }
        Err(e) => return Err(fail(1, &e)),
    };
    let Some(endpoint) = source.endpoint.clone() else {
        return Err(fail(3, &Error::NoEndpoint { id: instance }));
    };
    let reader = BinlogReader {
        connector: db,
        endpoint,
    };
    let table = TableRef {
        database: args.database.clone().unwrap_or_default(),
        table: args.table.first().cloned().unwrap_or_default(),
    };
    rds_table_restore::binlog::rewind::locate(&reader, &table, before, hint)
        .await
        .map_err(|e| fail(3, &e))
}

/// `find` for the guided mode: the same reading of the binlog, the damage as lines to show.
pub struct BinlogFinder<'a> {
    pub db: &'a MysqlConnector,
}

#[async_trait::async_trait]
impl DamageFinder for BinlogFinder<'_> {
    async fn find(
        &self,
        source: &Instance,
        table: &TableRef,
        since: DateTime<Utc>,
    ) -> rds_table_restore::error::Result<Found> {
        let endpoint = source
            .endpoint
            .clone()
            .ok_or_else(|| Error::NoEndpoint { id: source.id.clone() })?;
        let reader = BinlogReader {
            connector: self.db,
            endpoint,
        };
        let log = reader.probe().await?;
        let scan = reader.scan(&log, table, since, None, &|_, _, _| {}).await?;
        let finding = analyse(&scan.txns);
        let mut lines = vec![format!(
            "{} transactions wrote `{}`.`{}` since {}; {} of them flagged.",
            scan.txns.len(),
            table.database,
            table.table,
            utc(since),
            finding.flagged.len()
        )];
        lines.extend(damage_lines(table, &scan, &finding, None));
        Ok(Found {
            lines,
            proposed: finding.restore_time,
        })
    }
}

fn gtid_text(t: &TableTxn) -> String {
    t.gtid.as_deref().map(|g| format!(" (GTID {g})")).unwrap_or_default()
}

/// The tables a delete on `table` changes inside InnoDB (CASCADE, SET NULL, SET DEFAULT, and
/// on through CASCADE), whose changes the binlog does not hold: an error reading them is a
/// line saying so, not the end of `find`.
async fn cascades(db: &MysqlConnector, endpoint: &Endpoint, table: &TableRef) -> Result<Vec<Dependent>, String> {
    let mut session = db
        .connect(Side::Production, endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let found = find_dependents(session.as_mut(), table)
        .await
        .map_err(|e| e.to_string())?;
    Ok(found.into_iter().filter(Dependent::changed_by_delete).collect())
}

fn cascade_lines(table: &TableRef, cascades: &Result<Vec<Dependent>, String>) -> Vec<String> {
    match cascades {
        Err(e) => vec![format!(
            "warning: the foreign keys that reference `{}`.`{}` could not be read ({e}): a cascade into other \
             tables would not show here",
            table.database, table.table
        )],
        Ok(c) if c.is_empty() => Vec::new(),
        Ok(c) => {
            let mut lines = vec![format!(
                "Not in the binlog: a delete on `{}`.`{}` also changes these tables inside InnoDB, and the binlog \
                 holds none of it (`plan` counts what they lost):",
                table.database, table.table
            )];
            for d in c {
                lines.push(format!(
                    "  `{}`.`{}` ON DELETE {} (through `{}`)",
                    d.table.database, d.table.table, d.on_delete, d.constraint
                ));
            }
            lines
        }
    }
}

fn emit_json(scan: &Scan, finding: &Finding, restore: Option<&str>, cascades: &Result<Vec<Dependent>, String>) {
    for (i, t) in scan.txns.iter().enumerate() {
        let mut v = serde_json::to_value(t).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("flagged".into(), finding.flagged.contains(&i).into());
            m.insert("damage".into(), (finding.damage == Some(i)).into());
        }
        ui::emit("binlog_transaction", v);
    }
    let damage = finding.damage.map(|d| &scan.txns[d]);
    ui::emit(
        "summary",
        serde_json::json!({
            "outcome": if damage.is_some() { "found" } else { "no-damage" },
            "changed": false,
            "files": scan.files,
            "since": scan.since,
            "last_event": scan.last_event,
            "end": scan.end,
            "transactions": scan.txns.len(),
            "other_transactions": scan.other_txns,
            "warnings": scan.warnings,
            "damage": damage,
            "restore_time": finding.restore_time.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            "before_position": damage.map(|t| t.start.clone()),
            "before_gtid": damage.and_then(|t| t.gtid.clone()),
            "same_second": finding.same_second.iter().map(|&i| &scan.txns[i]).collect::<Vec<_>>(),
            "restore_command": restore,
            "cascades": cascades.as_ref().ok().map(|c| c
                .iter()
                .map(|d| serde_json::json!({
                    "table": format!("{}.{}", d.table.database, d.table.table),
                    "references": format!("{}.{}", d.references.database, d.references.table),
                    "on_delete": d.on_delete,
                }))
                .collect::<Vec<_>>()),
            "cascades_error": cascades.as_ref().err(),
        }),
    );
}
