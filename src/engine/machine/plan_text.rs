//! The plan on one screen, for the wizard, `plan` and the consent prompt.

use crate::plan::{rfc3339, Mode, OnFailure, Plan};
use crate::ports::Instance;
use crate::state::Dependent;

/// The whole plan on one screen: what will be created, opened and written, and where.
pub fn plan_text(
    plan: &Plan,
    source: &Instance,
    table_missing: bool,
    dependents: &[Dependent],
    passes: &[crate::state::TablePass],
) -> String {
    let class = plan
        .instance_class
        .as_deref()
        .or(source.class.as_deref())
        .unwrap_or("the source's class");
    let written = match &plan.drill {
        None if plan.mode == Mode::Overwrite => format!(
            "OVERWRITE: insert into production `{}` the restored rows missing there, and set the rows whose \
             values differ back to their restored values (counted and shown before the first write)",
            plan.table
        ),
        None if plan.mode == Mode::ReplaceAll => format!(
            "REPLACE ALL: make production `{}` equal to its restored copy: rows written since are DELETED, \
             differing rows overwritten, missing rows inserted (counted and shown before the first write)",
            plan.table
        ),
        None => format!(
            "insert into production `{}` the restored rows whose primary key is missing there \
             (missing-rows: rows written since are never overwritten)",
            plan.table
        ),
        Some(d) if d.rehearsal => format!(
            "REHEARSAL: create `{}` in production and load the restored rows into it; the real table is not touched; \
             the side table is {} afterwards",
            d.target,
            if d.keep { "kept" } else { "dropped" }
        ),
        Some(d) => format!(
            "create `{}` in production and load the restored rows into it (side-table mode); `{}` and everything \
             else is left as it is, for you to merge by hand",
            d.target, plan.table
        ),
    };
    let mut lines = vec![
        format!("Plan for run {}", plan.run_id),
        match &plan.before {
            None => format!(
                "  table           {} on {} as it was at {} (UTC)",
                plan.table,
                plan.source(),
                rfc3339(plan.restore_time)
            ),
            Some(at) => format!(
                "  table           {} on {} as it was just before the transaction at {at} (binlog), which ran \
                 at {} (UTC)",
                plan.table,
                plan.source(),
                rfc3339(plan.restore_time)
            ),
        },
        restore_line(plan, class),
        format!(
            "                  in subnet group {}, {}parameter group {}, {}",
            plan.subnet_group
                .as_deref()
                .or(source.subnet_group.as_deref())
                .unwrap_or("default"),
            if plan.cluster.is_some() { "cluster " } else { "" },
            plan.parameter_group
                .as_deref()
                .or(source.parameter_group.as_deref())
                .unwrap_or("default"),
            if plan.publicly_accessible {
                "PUBLICLY ACCESSIBLE"
            } else {
                "not publicly accessible"
            }
        ),
        format!(
            "                  {}, CA {}, deletion protection off, tagged expires-at {}",
            if plan.cluster.is_some() {
                "the cluster's automated backups as RDS keeps them (deleted with it)"
            } else {
                "no backups kept (BackupRetentionPeriod 0)"
            },
            source.ca_certificate.as_deref().unwrap_or("as the source"),
            plan.expires_at.map(rfc3339).unwrap_or_else(|| "-".into())
        ),
        format!(
            "  isolation       the copy goes into a new security group {} in {} (never the VPC's default group), \
             created with no rule",
            plan.security_group_name,
            source.vpc_id.as_deref().unwrap_or("the source's VPC"),
        ),
        format!(
            "  open access     once the copy is available: tcp/{} from {} only, revoked as soon as the data work ends",
            source.port.unwrap_or(3306),
            plan.client_cidr
        ),
        format!("  write           {written}"),
    ];
    if let (true, Some(asof)) = (plan.is_binlog(), &plan.asof) {
        // No instance: what replaces the restore, isolation and access lines.
        let write = lines.pop();
        lines.truncate(2);
        let after = match &plan.before {
            Some(at) => format!("from {at} on"),
            None => format!("after {}", rfc3339(plan.restore_time)),
        };
        lines.push(match plan.asof_changed_keys_only() {
            true => format!(
                "  rewind          through production's binlog: `{asof}` is built in production from the \
                 before-images of every change {after}: the keys changed since, as they were then (every other row \
                 is as it was); no instance, nothing created in AWS"
            ),
            false => format!(
                "  rewind          through production's binlog: `{asof}` is built in production from the table's \
                 rows now and the before-images of every change {after} (no instance, nothing created in AWS)"
            ),
        });
        lines.extend(write);
    }
    if table_missing {
        lines.push(format!(
            "  TABLE MISSING   `{}` does not exist in production now: it is created from the restored copy's \
             SHOW CREATE TABLE, {}",
            plan.table,
            if plan.recreate_table {
                "as --recreate-table asks"
            } else {
                "shown to you first and only if you agree"
            }
        ));
    }
    if let Some(w) = &plan.where_predicate {
        lines.push(format!("  only rows       WHERE {w}"));
    }
    match (&plan.dump_file, plan.dump_only) {
        (Some(path), true) => lines.push(format!(
            "  DUMP ONLY       production is NOT written: the SQL of the rows it lacks goes to {} (review it, then \
             load it with the mysql client)",
            path.display()
        )),
        (Some(path), false) => lines.push(format!(
            "  also            the SQL of every row inserted goes to {}",
            path.display()
        )),
        (None, _) => {}
    }
    if !passes.is_empty() {
        lines.push(format!(
            "  tables          {} tables from the same copy, merged parents first, each in {} mode with its own \
             checkpoint:",
            passes.len(),
            plan.mode.name()
        ));
        for line in super::tables::passes_text(passes) {
            lines.push(format!("                  {line}"));
        }
    }
    let changed: Vec<Dependent> = dependents
        .iter()
        .filter(|d| d.changed_by_delete() && !passes.iter().any(|p| p.table == d.table))
        .cloned()
        .collect();
    if !changed.is_empty() {
        let restored = match passes.is_empty() {
            true => format!("`{}` only", plan.table),
            false => "the tables above only".to_string(),
        };
        lines.push(format!(
            "  NOT RESTORED    tables that reference the restored ones (a delete there changed them; this run restores \
             {restored}; --with-dependents brings back those in `{}`, --table database.table any other):",
            plan.table.database
        ));
        for line in super::dependents::dependents_text(&changed) {
            lines.push(format!("                  {line}"));
        }
    }
    let (copy, release) = match &plan.cluster {
        None => ("instance", "the instance"),
        Some(c) if c.multi_az => ("cluster", "the cluster (RDS deletes its instances with it)"),
        Some(_) => ("cluster", "the writer, then the cluster"),
    };
    if plan.is_binlog() {
        lines.push(
            "  then            verify every row against the as-of table, then drop it (on failure: kept for resume)"
                .to_string(),
        );
    } else {
        lines.push(format!(
            "  then            verify every restored row, revoke the access, delete {release}, then its group ({})",
            match plan.on_failure {
                OnFailure::Keep => format!("on failure: access revoked, {copy} kept for resume"),
                OnFailure::Teardown => format!("on failure: access revoked, {copy} deleted"),
            }
        ));
    }
    // Laid out for 80 columns: long values wrap under the value column.
    crate::report::fit(&lines.join("\n"), 18).trim_end().to_string()
}

/// The restore line: an instance, or a cluster with the writer the copy runs on.
fn restore_line(plan: &Plan, class: &str) -> String {
    let cost = crate::plan::cost_class(class);
    match &plan.cluster {
        None => format!("  restore         RDS instance {} ({class}: {cost})", plan.target_instance),
        Some(c) if c.multi_az => format!(
            "  restore         Multi-AZ DB cluster {} (RestoreDBClusterToPointInTime, full copy; RDS adds its \
             instances, {class}: {cost})",
            plan.target_instance
        ),
        Some(c) => format!(
            "  restore         {} cluster {} (RestoreDBClusterToPointInTime, full copy), then its writer {} \
             ({class}: {cost}){}",
            if c.engine.starts_with("aurora") { "Aurora MySQL" } else { "DB" },
            plan.target_instance,
            c.writer,
            match c.backtrack_window {
                Some(w) => format!(
                    "\n                  `{}` has backtrack on ({w} s): backtracking rewinds the WHOLE cluster in place \
                     and loses every write since on every table, so it is never used for one table",
                    c.source
                ),
                None => String::new(),
            }
        ),
    }
}

/// Both ways of obtaining the table, for `plan`: the chosen one passed validation; the other
/// was asked, read-only, whether it could serve.
#[derive(Debug, Clone)]
pub struct Sources {
    pub chosen_binlog: bool,
    /// Production's row estimate of the table.
    pub rows: Option<u64>,
    /// The instance restore: possible, or why not (the RDS window).
    pub pitr: std::result::Result<(), String>,
    /// The binlog rewind: what its checks found, or why it cannot serve.
    pub binlog: std::result::Result<crate::ports::RewindOutcome, String>,
}

/// Rows a second the data steps move, as `scripts/bench` measured them on this project's
/// sandbox (release build, loopback; docs/performance.md): the copy and the verification each,
/// and the rewind's copy of the table inside production. Over a real link the instance path's
/// copy and verification are slower; the rewind's copy never leaves production.
const COPY_ROWS_PER_SEC: u64 = 50_000;
const REWIND_ROWS_PER_SEC: u64 = 60_000;

/// The two sources side by side with what each would take.
pub fn sources_text(s: &Sources) -> String {
    let rows = s.rows.unwrap_or(0);
    let about_rows = match s.rows {
        Some(r) => format!("~{} rows", thousands(r)),
        None => "the table's rows".into(),
    };
    // Copy and verification, both sources alike.
    let data = 2 * rows / COPY_ROWS_PER_SEC;
    let chosen = |binlog: bool| if s.chosen_binlog == binlog { " (this plan)" } else { "" };
    let pitr = match &s.pitr {
        Ok(()) => format!(
            "  sources         --source pitr{}: an instance restored by RDS, 20 minutes to hours of RDS's own time \
             (it grows with the instance's storage and is not known in advance), then {about_rows} copied and \
             verified over the network: {} more",
            chosen(false),
            duration(data)
        ),
        Err(why) => format!("  sources         --source pitr: not possible: {why}"),
    };
    let binlog = match &s.binlog {
        Ok(found) if found.changed_keys_only => format!(
            "                  --source binlog{}: no instance, nothing in AWS: the keys of {} row changes of {} \
             transactions since the point, as they were then, then the same merge and verification of those keys \
             alone: {}",
            chosen(true),
            thousands(found.changes),
            thousands(found.transactions),
            duration(3 * found.changes / COPY_ROWS_PER_SEC)
        ),
        Ok(found) => format!(
            "                  --source binlog{}: no instance, nothing in AWS: {about_rows} copied inside production, {} row \
             changes of {} transactions since the point put back, then the same merge and verification: {}",
            chosen(true),
            thousands(found.changes),
            thousands(found.transactions),
            duration(rows / REWIND_ROWS_PER_SEC + found.changes / COPY_ROWS_PER_SEC + data)
        ),
        Err(why) => format!("                  --source binlog: not possible: {why}"),
    };
    let lines = [
        pitr,
        binlog,
        "                  (times at the rates this project measured on loopback; a real link is slower)".to_string(),
    ];
    crate::report::fit(&lines.join("\n"), 18).trim_end().to_string()
}

/// 1234567 as "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as the plan says them: "a few seconds", "12 s", "3 min".
fn duration(secs: u64) -> String {
    match secs {
        0..=4 => "a few seconds".into(),
        5..=119 => format!("about {secs} s"),
        _ => format!("about {} min", secs.div_ceil(60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(chosen_binlog: bool, binlog: std::result::Result<u64, &str>) -> Sources {
        Sources {
            chosen_binlog,
            rows: Some(1_000_000),
            pitr: Ok(()),
            binlog: binlog
                .map(|changes| crate::ports::RewindOutcome {
                    transactions: 2,
                    changes,
                    ..Default::default()
                })
                .map_err(str::to_string),
        }
    }

    /// The text without its wrapping.
    fn flat(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn both_sources_are_shown_with_their_time_and_the_chosen_one_marked() {
        let text = flat(&sources_text(&sources(false, Ok(250_000))));
        assert!(text.contains("--source pitr (this plan)"), "{text}");
        assert!(text.contains("20 minutes to hours"), "{text}");
        // 2 x 1M rows at 50,000/s: 40 s of copy and verification.
        assert!(text.contains("network: about 40 s more"), "{text}");
        assert!(text.contains("250,000 row changes of 2 transactions"), "{text}");
        // 1M / 60,000 + 250,000 / 50,000 + 40 = 16 + 5 + 40.
        assert!(text.contains("about 61 s"), "{text}");
        assert!(!text.contains("--source binlog (this plan)"), "{text}");
        // The changed keys alone: what they cost, whatever the table's size.
        let mut s = sources(false, Ok(250_000));
        if let Ok(found) = s.binlog.as_mut() {
            found.changed_keys_only = true;
        }
        let text = flat(&sources_text(&s));
        assert!(
            text.contains("the keys of 250,000 row changes of 2 transactions"),
            "{text}"
        );
        // 3 x 250,000 / 50,000: staged, copied, verified.
        assert!(text.contains("those keys alone: about 15 s"), "{text}");
    }

    #[test]
    fn a_source_that_cannot_serve_says_why() {
        let text = flat(&sources_text(&sources(false, Err("binlog_format is MIXED"))));
        assert!(
            text.contains("--source binlog: not possible: binlog_format is MIXED"),
            "{text}"
        );
        let mut s = sources(true, Ok(10));
        s.pitr = Err("the time is before the restore window".into());
        let text = flat(&sources_text(&s));
        assert!(text.contains("--source binlog (this plan)"), "{text}");
        assert!(
            text.contains("--source pitr: not possible: the time is before"),
            "{text}"
        );
    }
}
