//! Statements the binlog holds as text (query events): whether one names the table, and what
//! kind it is. A light reading of SQL, not a parser: it looks for the table's name as an
//! identifier (bare or in backticks, alone or after its database), so a name inside a string
//! literal can make a statement count as one on the table. That errs on the side of showing
//! the operator too much, never too little.

/// What a statement does to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatementKind {
    Truncate,
    Drop,
    Alter,
    Rename,
    Create,
    /// A DELETE logged as a statement: its rows are not in the binlog.
    Delete,
    /// An UPDATE logged as a statement.
    Update,
    /// INSERT, REPLACE or LOAD DATA logged as a statement.
    Insert,
    Other,
}

impl StatementKind {
    pub fn of(sql: &str) -> StatementKind {
        let first = sql
            .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match first.as_str() {
            "TRUNCATE" => StatementKind::Truncate,
            "DROP" => StatementKind::Drop,
            "ALTER" => StatementKind::Alter,
            "RENAME" => StatementKind::Rename,
            "CREATE" => StatementKind::Create,
            "DELETE" => StatementKind::Delete,
            "UPDATE" => StatementKind::Update,
            "INSERT" | "REPLACE" | "LOAD" => StatementKind::Insert,
            _ => StatementKind::Other,
        }
    }

    /// Whether it may have removed or changed rows that a restore must bring back.
    pub fn destructive(self) -> bool {
        matches!(
            self,
            StatementKind::Truncate
                | StatementKind::Drop
                | StatementKind::Delete
                | StatementKind::Update
                | StatementKind::Rename
                | StatementKind::Alter
        )
    }

    /// Whether it changes the table's definition or identity (what a rewind cannot cross).
    pub fn is_ddl(self) -> bool {
        matches!(
            self,
            StatementKind::Truncate
                | StatementKind::Drop
                | StatementKind::Alter
                | StatementKind::Rename
                | StatementKind::Create
        )
    }
}

/// How much of a statement is kept to show.
pub const SHOWN: usize = 200;

/// The statement cut to [`SHOWN`] characters, on one line.
pub fn shown(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= SHOWN {
        one_line
    } else {
        format!("{}...", one_line.chars().take(SHOWN).collect::<String>())
    }
}

/// Whether `sql`, run with `schema` as its current database, names `database.table`.
/// Database and table names compare exactly (RDS for MySQL on Linux is case-sensitive).
pub fn mentions_table(sql: &str, schema: &str, database: &str, table: &str) -> bool {
    let names = identifiers(sql);
    names.iter().enumerate().any(|(i, (name, after_dot))| {
        if name != table {
            return false;
        }
        if *after_dot && i > 0 {
            names[i - 1].0 == database
        } else {
            schema == database
        }
    })
}

/// Whether a CREATE TABLE creates `database.table` (and not another table `LIKE` it or
/// `AS SELECT` from it, which names it too).
pub fn creates_table(sql: &str, schema: &str, database: &str, table: &str) -> bool {
    let names = identifiers(sql);
    let Some(at) = names.iter().position(|(n, _)| n.eq_ignore_ascii_case("TABLE")) else {
        return false;
    };
    let mut i = at + 1;
    while names
        .get(i)
        .is_some_and(|(n, _)| ["IF", "NOT", "EXISTS"].iter().any(|k| n.eq_ignore_ascii_case(k)))
    {
        i += 1;
    }
    match (names.get(i), names.get(i + 1)) {
        (Some((db, _)), Some((name, true))) => db == database && name == table,
        (Some((name, _)), _) => name == table && schema == database,
        _ => false,
    }
}

/// The identifiers of `sql` in order, each with whether it follows a dot (`db.table`).
/// Quoted strings are skipped; backticked names are taken whole.
fn identifiers(sql: &str) -> Vec<(String, bool)> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut after_dot = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            // A string literal: skip to its closing quote (doubled quotes and backslashes escape).
            i += 1;
            while i < chars.len() {
                if chars[i] == '\\' {
                    i += 2;
                    continue;
                }
                if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            after_dot = false;
        } else if c == '`' {
            let mut name = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '`' {
                    if chars.get(i + 1) == Some(&'`') {
                        name.push('`');
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push((name, after_dot));
            after_dot = false;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            out.push((chars[start..i].iter().collect(), after_dot));
            after_dot = false;
        } else {
            after_dot = c == '.';
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_names_the_table_bare_quoted_or_qualified() {
        assert!(mentions_table("TRUNCATE TABLE billing", "shop", "shop", "billing"));
        assert!(mentions_table("drop table `billing`", "shop", "shop", "billing"));
        assert!(mentions_table(
            "DELETE FROM `shop`.`billing` WHERE 1",
            "other",
            "shop",
            "billing"
        ));
        assert!(mentions_table(
            "ALTER TABLE shop.billing ADD x INT",
            "",
            "shop",
            "billing"
        ));
    }

    #[test]
    fn other_tables_databases_and_strings_do_not_count() {
        assert!(!mentions_table(
            "TRUNCATE TABLE billing_archive",
            "shop",
            "shop",
            "billing"
        ));
        assert!(!mentions_table("TRUNCATE TABLE billing", "staging", "shop", "billing"));
        assert!(!mentions_table(
            "DELETE FROM staging.billing",
            "shop",
            "shop",
            "billing"
        ));
        assert!(!mentions_table(
            "INSERT INTO notes VALUES ('billing')",
            "shop",
            "shop",
            "billing"
        ));
        assert!(!mentions_table("TRUNCATE TABLE Billing", "shop", "shop", "billing"));
    }

    #[test]
    fn a_create_names_the_table_it_creates_not_the_one_it_copies() {
        assert!(creates_table(
            "CREATE TABLE billing (id INT)",
            "shop",
            "shop",
            "billing"
        ));
        assert!(creates_table(
            "CREATE TABLE IF NOT EXISTS `shop`.`billing` (id INT)",
            "x",
            "shop",
            "billing"
        ));
        assert!(!creates_table(
            "CREATE TABLE `scratch`.`billing__asof_1` LIKE `shop`.`billing`",
            "shop",
            "shop",
            "billing"
        ));
        assert!(!creates_table(
            "CREATE TABLE copy AS SELECT * FROM billing",
            "shop",
            "shop",
            "billing"
        ));
    }

    #[test]
    fn statement_kinds() {
        assert_eq!(StatementKind::of("  truncate billing"), StatementKind::Truncate);
        assert_eq!(
            StatementKind::of("DROP TABLE `billing` /* generated by server */"),
            StatementKind::Drop
        );
        assert_eq!(StatementKind::of("delete from billing"), StatementKind::Delete);
        assert_eq!(
            StatementKind::of("REPLACE INTO billing VALUES (1)"),
            StatementKind::Insert
        );
        assert!(StatementKind::Delete.destructive() && !StatementKind::Insert.destructive());
        assert!(StatementKind::Alter.is_ddl() && !StatementKind::Update.is_ddl());
    }

    #[test]
    fn long_statements_are_cut_on_one_line() {
        let long = format!("INSERT INTO billing VALUES\n{}", "(1),".repeat(100));
        let s = shown(&long);
        assert!(s.ends_with("...") && !s.contains('\n') && s.chars().count() == SHOWN + 3);
    }
}
