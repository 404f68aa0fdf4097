//! The plan on one screen, for the wizard, `plan` and the consent prompt.

use crate::plan::{rfc3339, Mode, OnFailure, Plan};
use crate::ports::Instance;

/// The whole plan on one screen: what will be created, opened and written, and where.
pub fn plan_text(plan: &Plan, source: &Instance, table_missing: bool) -> String {
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
        format!(
            "  table           {} on {} as it was at {} (UTC)",
            plan.table,
            plan.source_instance,
            rfc3339(plan.restore_time)
        ),
        format!(
            "  restore         RDS instance {} ({class}: {})",
            plan.target_instance,
            crate::plan::cost_class(class)
        ),
        format!(
            "                  in subnet group {}, parameter group {}, {}",
            plan.subnet_group
                .as_deref()
                .or(source.subnet_group.as_deref())
                .unwrap_or("default"),
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
            "                  no backups kept (BackupRetentionPeriod 0), CA {}, deletion protection off, tagged \
             expires-at {}",
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
    lines.push(format!(
        "  then            verify every restored row, revoke the access, delete the instance, then its group ({})",
        match plan.on_failure {
            OnFailure::Keep => "on failure: access revoked, instance kept for resume",
            OnFailure::Teardown => "on failure: access revoked, instance deleted",
        }
    ));
    // Laid out for 80 columns: long values wrap under the value column.
    crate::report::fit(&lines.join("\n"), 18).trim_end().to_string()
}
