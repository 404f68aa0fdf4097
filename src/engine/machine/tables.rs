//! A run of several tables: `--table` given more than once, or `--with-dependents`. The
//! accident on a parent also took, inside InnoDB, the rows of its ON DELETE CASCADE children
//! (and theirs), and cleared the references of its SET NULL children. One restored copy holds
//! all of them as they were, so one run brings them back: one restore, one door, one teardown,
//! one state file with a checkpoint per table.
//!
//! The tables are merged parents first, so the foreign key checks of production stay on and no
//! child row arrives before its parent. A table that references itself (or, in a cycle, a table
//! merged after it) is written with the checks off for the tool's session only, and what that
//! could leave dangling is counted after the copy. A table only a SET NULL reached keeps its
//! rows: its references are set back where production still holds NULL.

use super::*;
use crate::ports::{KeyRange, References, TableRef};
use crate::state::{Dependent, ReferencesProgress, TablePass};

/// The tables of a run of several and what is done to each, in the order they are merged:
/// every table named, and with `with_dependents` every table a delete on them changes through
/// CASCADE or SET NULL in the named tables' database (one in another database is included only
/// when named). Parents come before children; a table in a cycle is placed when nothing else
/// can be, with its checks off.
pub fn plan_passes(named: &[TableRef], dependents: &[Dependent], with_dependents: bool) -> Vec<TablePass> {
    let Some(first) = named.first() else {
        return Vec::new();
    };
    // (table, reason, restore_rows), in the order they were found.
    let mut included: Vec<(TableRef, String, bool)> = named.iter().map(|t| (t.clone(), "named".into(), true)).collect();
    if with_dependents {
        loop {
            let mut changed = false;
            for d in dependents
                .iter()
                .filter(|d| d.on_delete == "CASCADE" || d.on_delete == "SET NULL")
            {
                if d.table.database != first.database && !named.contains(&d.table) {
                    continue;
                }
                // Only a parent whose rows the accident deleted changed its children.
                if !included.iter().any(|(t, _, rows)| *t == d.references && *rows) {
                    continue;
                }
                let cascade = d.on_delete == "CASCADE";
                match included.iter_mut().find(|(t, _, _)| *t == d.table) {
                    Some(entry) if cascade && !entry.2 => {
                        entry.1 = format!("CASCADE from {}", d.references);
                        entry.2 = true;
                        changed = true;
                    }
                    Some(_) => {}
                    None => {
                        included.push((
                            d.table.clone(),
                            format!("{} from {}", d.on_delete, d.references),
                            cascade,
                        ));
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }
    let index = |t: &TableRef| included.iter().position(|(i, _, _)| i == t);
    // parent → child, between two different tables of the run, whatever the rule.
    let edges: Vec<(usize, usize)> = dependents
        .iter()
        .filter(|d| d.table != d.references)
        .filter_map(|d| Some((index(&d.references)?, index(&d.table)?)))
        .collect();
    let n = included.len();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let ready = (0..n).find(|&i| !placed[i] && !edges.iter().any(|&(p, c)| c == i && !placed[p] && p != i));
        let (i, cycle) = match ready {
            Some(i) => (i, false),
            None => ((0..n).find(|&i| !placed[i]).unwrap_or(0), true),
        };
        placed[i] = true;
        order.push((i, cycle));
    }
    order
        .into_iter()
        .map(|(i, cycle)| {
            let (table, reason, restore_rows) = included[i].clone();
            let self_reference = dependents.iter().any(|d| d.table == table && d.references == table);
            let references = match with_dependents {
                false => Vec::new(),
                true => dependents
                    .iter()
                    .filter(|d| d.on_delete == "SET NULL" && d.table == table && !d.referenced_columns.is_empty())
                    .filter(|d| included.iter().any(|(t, _, rows)| *t == d.references && *rows))
                    .map(references_of)
                    .collect(),
            };
            TablePass {
                table,
                reason,
                restore_rows,
                references,
                checks_off: restore_rows && (cycle || self_reference),
                copy: Default::default(),
                references_progress: Vec::new(),
                copied: false,
                verification: None,
            }
        })
        .collect()
}

fn references_of(d: &Dependent) -> References {
    References {
        constraint: d.constraint.clone(),
        columns: d.columns.clone(),
        parent: d.references.clone(),
        parent_columns: d.referenced_columns.clone(),
    }
}

/// One line per table of the run, for the plan and the consent screen.
pub(super) fn passes_text(passes: &[TablePass]) -> Vec<String> {
    passes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let what = match (p.restore_rows, p.references.is_empty()) {
                (true, true) => "its missing rows".to_string(),
                (true, false) => format!("its missing rows, then {}", refs_text(&p.references)),
                (false, _) => format!("{} (its rows are all still there)", refs_text(&p.references)),
            };
            let checks = if p.checks_off {
                ", written with this session's foreign key checks off (it references itself or a table merged \
                 after it), then checked for dangling references"
            } else {
                ""
            };
            format!("{}. `{}` ({}): {what}{checks}", i + 1, p.table, p.reason)
        })
        .collect()
}

fn refs_text(refs: &[References]) -> String {
    let cols: Vec<String> = refs.iter().map(|r| format!("({})", r.columns.join(", "))).collect();
    format!(
        "the references {} set back where production holds NULL and the restored copy a value",
        cols.join(", ")
    )
}

impl Source {
    /// What validation found, for one table of a run of several.
    fn for_pass(&self, i: usize) -> Source {
        Source {
            schema: self.schemas.get(i).cloned(),
            ..self.clone()
        }
    }
}

impl Machine<'_> {
    /// Validation of a run of several tables, after the dependents are known: the tables and
    /// their order (found once and kept in the state file), each one's production schema, its
    /// key and the privileges what is done to it needs. Returns the schemas, in pass order.
    pub(super) async fn check_tables(&mut self, session: &mut dyn Session) -> Result<Vec<TableSchema>> {
        let plan = self.state.plan.clone();
        if self.state.tables.is_empty() {
            self.state.tables = plan_passes(&plan.named_tables(), &self.state.dependents, plan.with_dependents);
            self.save()?;
        }
        let mut schemas = Vec::new();
        for pass in self.state.tables.clone() {
            let table = &pass.table;
            let schema = session.table_schema(table).await?.ok_or_else(|| Error::TableNotFound {
                database: table.database.clone(),
                table: table.table.clone(),
            })?;
            if schema.key.is_empty() {
                return Err(Error::NoPrimaryKey {
                    database: table.database.clone(),
                    table: table.table.clone(),
                });
            }
            if pass.restore_rows {
                let missing = session.missing_privileges(table, &schema, plan.merge()).await?;
                if !missing.is_empty() {
                    return Err(Error::MissingPrivileges {
                        mode: plan.mode.name(),
                        privileges: missing.join(", "),
                        table: table.to_string(),
                        user: self.state.connection.db_user.clone(),
                    });
                }
            }
            for refs in &pass.references {
                // The probe updates the reference's own columns (a grant may be on those only).
                let columns = TableSchema {
                    columns: schema
                        .columns
                        .iter()
                        .filter(|c| refs.columns.contains(&c.name))
                        .cloned()
                        .collect(),
                    key: Vec::new(),
                };
                if !session
                    .missing_privileges(table, &columns, Merge::Overwrite)
                    .await?
                    .is_empty()
                {
                    let cols = refs.columns.join(", ");
                    return Err(Error::InvalidInput(format!(
                        "--with-dependents sets back the references ({cols}) of `{table}` that ON DELETE SET NULL \
                         cleared, which needs UPDATE on them, and user `{}` lacks it: grant it (GRANT UPDATE ({cols}) \
                         ON {table} TO ...), or name the tables to restore with --table instead (those references \
                         then stay NULL)",
                        self.state.connection.db_user
                    )));
                }
            }
            schemas.push(schema);
        }
        let left_out: Vec<String> = self
            .state
            .dependents
            .iter()
            .filter(|d| d.changed_by_delete() && !self.state.tables.iter().any(|p| p.table == d.table))
            .map(|d| format!("`{}` (ON DELETE {} from `{}`)", d.table, d.on_delete, d.references))
            .collect();
        if !left_out.is_empty() {
            self.deps.ui.warn(&format!(
                "these tables reference the run's tables through foreign keys and are NOT in this run: {}; {}",
                left_out.join(", "),
                if plan.with_dependents {
                    "a table in another database is included only when named: --table database.table"
                } else {
                    "--with-dependents includes those in the same database; --table database.table names one"
                }
            ));
        }
        Ok(schemas)
    }

    /// Step 6 for a run of several tables: each table from its checkpoint, parents first; a
    /// table finished is recorded before the next begins, so a resumed run leaves it alone.
    pub(super) async fn copy_tables(&mut self, source: &Source, endpoint: &Endpoint) -> Result<()> {
        let plan = self.state.plan.clone();
        let names: Vec<String> = self.state.tables.iter().map(|p| format!("`{}`", p.table)).collect();
        self.begin(
            Step::Copy,
            &format!(
                "{} tables from {}, parents first: {} ({})",
                names.len(),
                plan.target_instance,
                names.join(", "),
                plan.mode.name()
            ),
        )?;
        let mut summaries = Vec::new();
        for i in 0..self.state.tables.len() {
            let pass = self.state.tables[i].clone();
            if pass.copied {
                summaries.push(format!("`{}`: done before", pass.table));
                continue;
            }
            self.check_cancel()?;
            self.enter_pass(Some(i));
            self.deps.ui.note(&format!(
                "table {} of {}: `{}` ({})",
                i + 1,
                names.len(),
                pass.table,
                pass.reason
            ));
            let source = source.for_pass(i);
            let mut parts = Vec::new();
            if pass.restore_rows {
                parts.push(self.copy_table(&source, endpoint).await?);
            }
            if !pass.references.is_empty() {
                parts.push(self.set_references_back(&source, endpoint).await?);
            }
            self.state.tables[i].copied = true;
            self.save()?;
            summaries.push(format!("`{}`: {}", pass.table, parts.join("; ")));
            crash_point!("copy-table-after-checkpoint");
        }
        self.enter_pass(None);
        self.check_dangling(source).await;
        self.finish(&summaries.join(" | "))
    }

    /// Makes `pass` the table worked on; the sessions of another table are not this one's
    /// (their schemas were compared for it, their checks set for it).
    fn enter_pass(&mut self, pass: Option<usize>) {
        self.pass = pass;
        self.drop_sessions();
    }

    /// Sets back, chunk by chunk, the references a SET NULL cleared in the current table,
    /// each chunk one production transaction and one checkpoint.
    async fn set_references_back(&mut self, source: &Source, endpoint: &Endpoint) -> Result<String> {
        let Some(i) = self.pass else {
            return Err(Error::Interrupted);
        };
        let schema = source.schema()?.clone();
        let table = self.state.tables[i].table.clone();
        let all = self.state.tables[i].references.clone();
        if self.state.tables[i].references_progress.len() != all.len() {
            self.state.tables[i].references_progress = vec![ReferencesProgress::default(); all.len()];
            self.save()?;
        }
        let chunk = self.state.plan.chunk_size.max(1);
        for (r, refs) in all.iter().enumerate() {
            if self.state.tables[i].references_progress[r].done {
                continue;
            }
            self.deps.ui.note(&format!(
                "`{table}`: setting back the references ({}) to `{}` that production holds as NULL...",
                refs.columns.join(", "),
                refs.parent
            ));
            self.with_reconnects(source, endpoint, |m| {
                let (table, schema, refs) = (table.clone(), schema.clone(), refs.clone());
                Box::pin(async move {
                    let (table, schema, refs) = (&table, &schema, &refs);
                    let (Some(restored), Some(production)) =
                        (m.restored_session.as_mut(), m.production_session.as_mut())
                    else {
                        return Err(Error::Interrupted);
                    };
                    // The server's own check says whether the referenced row is there.
                    production.set_foreign_key_checks(true).await?;
                    let n = schema.key.len();
                    loop {
                        if m.cancel.load(Ordering::SeqCst) {
                            return Err(Error::Interrupted);
                        }
                        let progress = m.state.tables[i].references_progress[r].clone();
                        let after = progress.last_key.as_deref().map(crate::copy::decode_key).transpose()?;
                        let rows = restored
                            .reference_chunk(table, schema, refs, after.as_deref(), chunk)
                            .await?;
                        let Some(last) = rows.last().map(|row| row[..n].to_vec()) else {
                            m.state.tables[i].references_progress[r].done = true;
                            m.state.updated_at = Utc::now();
                            return m.store.save(&m.state);
                        };
                        let range = KeyRange {
                            after: after.as_deref(),
                            upto: Some(&last),
                        };
                        let outcome = production.restore_references(table, schema, refs, range, &rows).await?;
                        let p = &mut m.state.tables[i].references_progress[r];
                        p.last_key = Some(last.iter().map(crate::rowcodec::StoredValue::from).collect());
                        p.restored += outcome.restored;
                        p.kept += outcome.kept;
                        p.unchanged += outcome.unchanged;
                        p.parent_gone += outcome.parent_gone;
                        p.absent += outcome.absent;
                        m.state.updated_at = Utc::now();
                        m.store.save(&m.state)?;
                        crash_point!("references-chunk-after-checkpoint");
                    }
                })
            })
            .await?;
        }
        let t = self.state.tables[i].references_total();
        if t.parent_gone > 0 {
            self.deps.ui.warn(&format!(
                "`{table}`: {} references were left NULL: the rows they pointed at are not in production now \
                 (deleted since the restore time, and not brought back by this run)",
                t.parent_gone
            ));
        }
        Ok(format!(
            "{} references set back, {} already as restored, {} re-pointed since and kept, {} left NULL (the row \
             they pointed at is gone), {} rows gone from production",
            t.restored, t.unchanged, t.kept, t.parent_gone, t.absent
        ))
    }

    /// After the copy: the rows of tables written with the checks off whose references point
    /// at no row in production. Best effort; a count that fails is said.
    async fn check_dangling(&mut self, source: &Source) {
        let written_unchecked: Vec<TableRef> = self
            .state
            .tables
            .iter()
            .filter(|p| p.checks_off)
            .map(|p| p.table.clone())
            .collect();
        if written_unchecked.is_empty() {
            return;
        }
        // Every foreign key of such a table, each with the child it belongs to.
        let keys: Vec<(TableRef, References)> = self
            .state
            .dependents
            .iter()
            .filter(|d| written_unchecked.contains(&d.table) && !d.referenced_columns.is_empty())
            .map(|d| (d.table.clone(), references_of(d)))
            .collect();
        let mut session = match self.deps.db.connect(Side::Production, &source.production).await {
            Ok(s) => s,
            Err(e) => return self.deps.ui.warn(&format!("dangling references were not counted: {e}")),
        };
        for (child, refs) in &keys {
            match session.dangling_references(child, refs).await {
                Ok(0) => {}
                Ok(n) => self.deps.ui.warn(&format!(
                    "{n} rows of `{child}` reference ({}) rows of `{}` that production does not have",
                    refs.columns.join(", "),
                    refs.parent
                )),
                Err(e) => self
                    .deps
                    .ui
                    .warn(&format!("dangling references of `{child}` were not counted: {e}")),
            }
        }
    }

    /// Step 7 for a run of several tables: each table whose rows were merged gets the final
    /// pass, from its own checkpoint; one verified is recorded before the next begins.
    pub(super) async fn verify_tables(&mut self, source: &Source, endpoint: &Endpoint) -> Result<()> {
        self.begin(
            Step::Verify,
            "every restored row of each table against production, by key",
        )?;
        let primary = self.state.plan.table.clone();
        let mut lines = Vec::new();
        for i in 0..self.state.tables.len() {
            let pass = self.state.tables[i].clone();
            if !pass.restore_rows {
                lines.push(format!(
                    "`{}`: references proven in each chunk's transaction",
                    pass.table
                ));
                continue;
            }
            let v = match pass.verification {
                Some(v) => v,
                None => {
                    self.check_cancel()?;
                    self.enter_pass(Some(i));
                    // Recorded in the table's pass and saved by verify_table.
                    self.verify_table(&source.for_pass(i), endpoint).await?
                }
            };
            if pass.table == primary {
                self.state.verification = Some(v.clone());
            }
            if !v.passed {
                self.enter_pass(None);
                return Err(match v.failure() {
                    Error::VerificationFailed(m) => Error::VerificationFailed(format!("`{}`: {m}", pass.table)),
                    other => other,
                });
            }
            lines.push(format!("`{}`: {}", pass.table, v.summary()));
        }
        self.enter_pass(None);
        self.save()?;
        self.finish(&lines.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableRef {
        TableRef {
            database: "shop".into(),
            table: name.into(),
        }
    }

    fn fk(child: &str, parent: &str, rule: &str) -> Dependent {
        Dependent {
            table: t(child),
            references: t(parent),
            constraint: format!("{child}_{parent}"),
            columns: vec![format!("{parent}_id")],
            referenced_columns: vec!["id".into()],
            on_delete: rule.into(),
            restored_rows: None,
            production_rows: None,
        }
    }

    fn names(passes: &[TablePass]) -> Vec<&str> {
        passes.iter().map(|p| p.table.table.as_str()).collect()
    }

    #[test]
    fn parents_come_before_children_whatever_order_they_are_named_in() {
        let deps = [fk("orders", "customers", "CASCADE"), fk("items", "orders", "CASCADE")];
        let passes = plan_passes(&[t("items"), t("orders"), t("customers")], &deps, false);
        assert_eq!(names(&passes), ["customers", "orders", "items"]);
        assert!(passes
            .iter()
            .all(|p| p.restore_rows && !p.checks_off && p.references.is_empty()));
    }

    #[test]
    fn with_dependents_brings_in_cascade_and_set_null_children_but_not_restrict_or_other_databases() {
        let mut elsewhere = fk("ledger", "customers", "CASCADE");
        elsewhere.table.database = "finance".into();
        let deps = [
            fk("orders", "customers", "CASCADE"),
            fk("notes", "customers", "SET NULL"),
            fk("audit", "customers", "RESTRICT"),
            fk("items", "orders", "CASCADE"),
            elsewhere,
        ];
        let passes = plan_passes(&[t("customers")], &deps, true);
        assert_eq!(names(&passes), ["customers", "orders", "notes", "items"]);
        let notes = &passes[2];
        assert!(!notes.restore_rows, "a SET NULL child keeps its rows");
        assert_eq!(notes.references.len(), 1);
        assert_eq!(notes.references[0].parent, t("customers"));
        assert_eq!(passes[3].reason, "CASCADE from shop.orders");
        // Without the flag, only what is named.
        assert_eq!(names(&plan_passes(&[t("customers")], &deps, false)), ["customers"]);
    }

    #[test]
    fn a_self_reference_or_a_cycle_turns_the_checks_off_for_that_table_only() {
        let deps = [
            fk("employees", "employees", "SET NULL"),
            fk("a", "b", "CASCADE"),
            fk("b", "a", "CASCADE"),
        ];
        let passes = plan_passes(&[t("employees")], &deps, true);
        assert!(passes[0].checks_off);
        assert_eq!(passes[0].references.len(), 1, "its own cleared references are set back");
        let passes = plan_passes(&[t("a"), t("b")], &deps, false);
        assert_eq!(names(&passes), ["a", "b"]);
        assert!(passes[0].checks_off && !passes[1].checks_off);
    }
}
