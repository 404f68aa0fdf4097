//! Tables linked by foreign keys. A `DELETE` on the restored table also deleted, inside InnoDB,
//! the rows of every table that references it with ON DELETE CASCADE (and of their own CASCADE
//! dependents), and cleared the references of SET NULL ones; none of it is in the binlog as
//! row events, and none of it is what this run brings back. So validation lists those tables
//! before anything is created, and once the restored copy is reachable their rows are counted
//! on both sides: a dependent that lost rows is a warning in the run's output, its report and
//! its JSON summary, never a silence.

use super::*;
use crate::ports::TableRef;
use crate::state::Dependent;

/// Every table whose foreign key references `table`, and through ON DELETE CASCADE the tables
/// that reference those, each foreign key once; cycles and self-references end the walk.
pub async fn find_dependents(session: &mut dyn Session, table: &TableRef) -> Result<Vec<Dependent>> {
    let mut found: Vec<Dependent> = Vec::new();
    let mut walked: Vec<TableRef> = vec![table.clone()];
    let mut queue: std::collections::VecDeque<TableRef> = [table.clone()].into();
    while let Some(parent) = queue.pop_front() {
        for fk in session.referencing(&parent).await? {
            if fk.on_delete == "CASCADE" && !walked.contains(&fk.child) {
                walked.push(fk.child.clone());
                queue.push_back(fk.child.clone());
            }
            found.push(Dependent {
                table: fk.child,
                references: parent.clone(),
                constraint: fk.constraint,
                columns: fk.columns,
                referenced_columns: fk.referenced,
                on_delete: fk.on_delete,
                restored_rows: None,
                production_rows: None,
            });
        }
    }
    Ok(found)
}

/// One line per dependent, for the plan and the validation warning.
pub(super) fn dependents_text(dependents: &[Dependent]) -> Vec<String> {
    dependents
        .iter()
        .map(|d| {
            let effect = match d.on_delete.as_str() {
                "CASCADE" => "a delete there deleted its rows too",
                "SET NULL" => "a delete there set its reference to NULL",
                "SET DEFAULT" => "a delete there set its reference to its default",
                _ => "would have refused the delete (nothing lost there)",
            };
            format!(
                "`{}` ({}) references `{}` ON DELETE {}: {effect}",
                d.table,
                d.columns.join(", "),
                d.references,
                d.on_delete
            )
        })
        .collect()
}

impl Machine<'_> {
    /// Validation: the dependents of the restored table, found once per run, and a warning
    /// when a delete changed any of them.
    pub(super) async fn check_dependents(&mut self, session: &mut dyn Session) -> Result<()> {
        if self.state.dependents.is_empty() {
            // A run of several tables: the foreign keys reaching any of them, each once.
            let mut all: Vec<Dependent> = Vec::new();
            for table in self.state.plan.named_tables() {
                for d in find_dependents(session, &table).await? {
                    if !all.iter().any(|a| a.table == d.table && a.constraint == d.constraint) {
                        all.push(d);
                    }
                }
            }
            self.state.dependents = all;
        }
        if self.state.plan.is_multi() {
            // check_tables says which of them the run includes and which it leaves out.
            return Ok(());
        }
        let changed: Vec<Dependent> = self
            .state
            .dependents
            .iter()
            .filter(|d| d.changed_by_delete())
            .cloned()
            .collect();
        if !changed.is_empty() {
            self.deps.ui.warn(&format!(
                "other tables reference `{}` through foreign keys, and this run restores `{}` only:\n  {}\n\
                 Their rows are counted on both sides once the restored copy is reachable. To bring them \
                 back in the same run, from the same copy: --with-dependents (or --table NAME again).",
                self.state.plan.table,
                self.state.plan.table,
                dependents_text(&changed).join("\n  ")
            ));
        }
        Ok(())
    }

    /// Counts each dependent's rows on the restored copy and in production (for SET NULL, the
    /// rows whose reference is NULL), and warns for those the accident changed. Best effort: a
    /// count that fails (no privilege on that table) is said, and the run goes on.
    pub(super) async fn count_dependents(&mut self, endpoint: &Endpoint, source: &Source) {
        if !self.state.dependents.iter().any(Dependent::changed_by_delete) {
            return;
        }
        if self.state.plan.is_binlog() {
            return self.deps.ui.warn(&format!(
                "the tables a delete on `{}` changes through its foreign keys were not counted: cascaded changes \
                 are not in the binlog, so the rewind has no copy of them as they were; a restore with \
                 --source pitr counts them against the restored instance",
                self.state.plan.table
            ));
        }
        self.deps.ui.note(&format!(
            "Counting the rows of the tables that reference `{}` on both servers...",
            self.state.plan.table
        ));
        let mut restored = match self.deps.db.connect(Side::Restored, endpoint).await {
            Ok(s) => s,
            Err(e) => {
                return self
                    .deps
                    .ui
                    .warn(&format!("the dependent tables were not counted: {e}"))
            }
        };
        let mut production = match self.deps.db.connect(Side::Production, &source.production).await {
            Ok(s) => s,
            Err(e) => {
                return self
                    .deps
                    .ui
                    .warn(&format!("the dependent tables were not counted: {e}"))
            }
        };
        let mut dependents = self.state.dependents.clone();
        for d in dependents.iter_mut().filter(|d| d.changed_by_delete()) {
            let null_in: &[String] = match d.on_delete.as_str() {
                "CASCADE" => &[],
                _ => &d.columns,
            };
            let (r, p) = (
                restored.count_rows(&d.table, null_in).await,
                production.count_rows(&d.table, null_in).await,
            );
            match (r, p) {
                (Ok(r), Ok(p)) => (d.restored_rows, d.production_rows) = (Some(r), Some(p)),
                (Err(e), _) | (_, Err(e)) => {
                    self.deps.ui.warn(&format!("`{}` was not counted: {e}", d.table));
                }
            }
        }
        self.state.dependents = dependents;
        if let Err(e) = self.save() {
            self.deps
                .ui
                .warn(&format!("the dependents' counts were not saved: {e}"));
        }
        for d in self.state.dependents.iter().filter(|d| d.lost().unwrap_or(0) > 0) {
            let (r, p) = (d.restored_rows.unwrap_or(0), d.production_rows.unwrap_or(0));
            if d.restored_by_the_run(&self.state.plan.table.to_string())
                || self.state.tables.iter().any(|p| p.table == d.table)
            {
                continue;
            }
            if d.table == self.state.plan.table {
                self.deps.ui.warn(&format!(
                    "`{}` references itself ({}, ON DELETE {}): it had {r} rows with a NULL reference at the \
                     restore time and has {p} now; rows the delete spared keep production's cleared reference \
                     (--with-dependents sets back those production still holds as NULL)",
                    d.table,
                    d.columns.join(", "),
                    d.on_delete
                ));
                continue;
            }
            let advice = match d.on_delete.as_str() {
                "CASCADE" => format!(
                    "held {r} rows at the restore time and holds {p} now: the delete took rows there that this \
                     run does not bring back; restore it too: --with-dependents, or --table {} with the same --time",
                    d.table.table
                ),
                // The rows are still there, their references cleared: an insert-missing run adds
                // nothing; the restored values are what is needed to set them back.
                _ => format!(
                    "had {r} rows with a NULL ({}) at the restore time and has {p} now: the delete cleared \
                     references there that this run does not set back; a run with --with-dependents (the same \
                     --time) sets them back where production still holds NULL",
                    d.columns.join(", ")
                ),
            };
            self.deps.ui.warn(&format!(
                "`{}` (ON DELETE {} from `{}`) {advice}",
                d.table, d.on_delete, d.references
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dependent(on_delete: &str, restored: u64, production: u64) -> Dependent {
        Dependent {
            table: TableRef {
                database: "shop".into(),
                table: "orders".into(),
            },
            references: TableRef {
                database: "shop".into(),
                table: "customers".into(),
            },
            constraint: "fk".into(),
            columns: vec!["customer_id".into()],
            referenced_columns: vec!["id".into()],
            on_delete: on_delete.into(),
            restored_rows: Some(restored),
            production_rows: Some(production),
        }
    }

    #[test]
    fn what_the_counts_say_a_delete_took() {
        assert_eq!(dependent("CASCADE", 500, 450).lost(), Some(50), "rows gone");
        assert_eq!(dependent("SET NULL", 3, 10).lost(), Some(7), "references cleared");
        assert_eq!(dependent("RESTRICT", 500, 450).lost(), None, "refused the delete");
        assert!(!dependent("NO ACTION", 1, 1).changed_by_delete());
    }
}
