//! Tables linked by foreign keys: the accident on a parent also took, inside InnoDB, the rows
//! of its CASCADE children and grandchildren and cleared SET NULL references (the parent's own
//! self-reference among them). A run that restores the parent alone must say so, in the plan,
//! the run's output and its JSON summary, with counts that match the servers.

mod common;

use common::{command, describe, unique_table, Sandbox};
use mysql_async::prelude::Queryable;

/// Parent `p` (self-referencing, SET NULL), `p_orders` (CASCADE), `p_items` (CASCADE from the
/// orders), `p_notes` (SET NULL), `p_audit` (RESTRICT, on customers the accident spares).
fn schema(p: &str) -> String {
    format!(
        "CREATE TABLE shop.`{p}` (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL, referrer_id BIGINT NULL, \
           FOREIGN KEY (referrer_id) REFERENCES shop.`{p}` (id) ON DELETE SET NULL) ENGINE=InnoDB; \
         CREATE TABLE shop.`{p}_orders` (id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NOT NULL, \
           FOREIGN KEY (customer_id) REFERENCES shop.`{p}` (id) ON DELETE CASCADE) ENGINE=InnoDB; \
         CREATE TABLE shop.`{p}_items` (id BIGINT NOT NULL PRIMARY KEY, order_id BIGINT NOT NULL, \
           FOREIGN KEY (order_id) REFERENCES shop.`{p}_orders` (id) ON DELETE CASCADE) ENGINE=InnoDB; \
         CREATE TABLE shop.`{p}_notes` (id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NULL, \
           FOREIGN KEY (customer_id) REFERENCES shop.`{p}` (id) ON DELETE SET NULL) ENGINE=InnoDB; \
         CREATE TABLE shop.`{p}_audit` (id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NOT NULL, \
           FOREIGN KEY (customer_id) REFERENCES shop.`{p}` (id) ON DELETE RESTRICT) ENGINE=InnoDB; \
         INSERT INTO shop.`{p}` SELECT seq, CONCAT('customer ', seq), IF(seq = 1, NULL, seq - 1) FROM seq_1_to_50; \
         INSERT INTO shop.`{p}_orders` SELECT seq, 1 + seq % 50 FROM seq_1_to_200; \
         INSERT INTO shop.`{p}_items` SELECT seq, 1 + seq % 200 FROM seq_1_to_400; \
         INSERT INTO shop.`{p}_notes` SELECT seq, 1 + seq % 50 FROM seq_1_to_100; \
         INSERT INTO shop.`{p}_audit` SELECT seq, 30 + seq % 20 FROM seq_1_to_20"
    )
}

/// The plan wraps at 80 columns: its text as single-spaced words, to compare lines with.
fn words(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

async fn count(pool: &mysql_async::Pool, sql: &str) -> u64 {
    let mut c = pool.get_conn().await.unwrap();
    c.query_first(sql).await.unwrap().unwrap()
}

fn drop_all(p: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS shop.`{p}_items`, shop.`{p}_orders`, shop.`{p}_notes`, shop.`{p}_audit`; \
         DROP TABLE IF EXISTS shop.`{p}`"
    )
}

#[tokio::test]
async fn the_plan_and_the_run_say_what_a_cascade_took_with_the_table_counted_on_both_servers() {
    let sb = Sandbox::connect().await;
    let p = unique_table("cust");
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &schema(&p)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(&sb.production, &format!("DELETE FROM shop.`{p}` WHERE id <= 10")).await;
    let args = |verb: &'static str| -> Vec<String> {
        [
            verb,
            "--instance",
            "prod-db",
            "--database",
            "shop",
            "--table",
            p.as_str(),
            "--time",
            time.as_str(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // The plan, before anything exists: every table the delete changed, with its rule.
    let state = tempfile::tempdir().unwrap();
    let out = command(state.path()).args(args("plan")).output().await.unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let plan = words(&out.stdout);
    for shown in [
        "NOT RESTORED".to_string(),
        format!("`shop.{p}_orders` (customer_id) references `shop.{p}` ON DELETE CASCADE"),
        format!("`shop.{p}_items` (order_id) references `shop.{p}_orders` ON DELETE CASCADE"),
        format!("`shop.{p}_notes` (customer_id) references `shop.{p}` ON DELETE SET NULL"),
        format!("`shop.{p}` (referrer_id) references `shop.{p}` ON DELETE SET NULL"),
    ] {
        assert!(plan.contains(&shown), "{shown:?} missing from the plan:\n{plan}");
    }
    assert!(
        !plan.contains(&format!("{p}_audit")),
        "RESTRICT refused the delete, nothing to say:\n{plan}"
    );

    // The run: the parent comes back; each dependent is counted on both sides and flagged.
    let out = command(state.path())
        .args(args("restore"))
        .args(["--yes", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    // Every customer is back (customer 11 keeps production's cleared reference: missing-rows).
    let customers = format!("SELECT COUNT(*) + SUM(CRC32(CONCAT(id, ':', name))) FROM shop.`{p}`");
    assert_eq!(
        count(&sb.production, &customers).await,
        count(&sb.restored, &customers).await,
        "the parent is back"
    );
    let summary = common::summary(&out.stdout);
    let dependents = summary["dependents"].as_array().cloned().unwrap_or_default();
    let find = |table: &str| {
        dependents
            .iter()
            .find(|d| d["table"]["table"] == table)
            .cloned()
            .unwrap_or_else(|| panic!("{table} is not among the dependents: {summary}"))
    };
    let cases = [
        (format!("{p}_orders"), "TRUE", 200, 160),
        (format!("{p}_items"), "TRUE", 400, 320),
        (format!("{p}_notes"), "customer_id IS NULL", 0, 20),
        // Customer 11's referrer (10) was cleared; customer 1 never had one.
        (p.clone(), "referrer_id IS NULL", 1, 2),
    ];
    for (table, predicate, restored, production) in cases {
        let sql = format!("SELECT COUNT(*) FROM shop.`{table}` WHERE {predicate}");
        let on = (count(&sb.restored, &sql).await, count(&sb.production, &sql).await);
        assert_eq!(on, (restored, production), "{table} on the servers");
        let d = find(&table);
        assert_eq!(
            (d["restored_rows"].as_u64(), d["production_rows"].as_u64()),
            (Some(on.0), Some(on.1)),
            "{table}: the counts the run reports are the servers' own: {d}"
        );
    }
    assert_eq!(find(&format!("{p}_audit"))["on_delete"], "RESTRICT");
    let warnings: Vec<String> = common::events(&out.stdout)
        .iter()
        .filter(|e| e["event"] == "warning")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    for table in [format!("{p}_orders"), format!("{p}_items")] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&format!("`shop.{table}` (ON DELETE CASCADE"))
                    && w.contains(&format!("--table {table}"))),
            "no warning event for {table}: {warnings:#?}"
        );
    }
    // SET NULL: the rows are there, their references cleared; --with-dependents sets them back.
    let notes = format!("`shop.{p}_notes` (ON DELETE SET NULL");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&notes) && w.contains("--with-dependents")),
        "no advice for the SET NULL child: {warnings:#?}"
    );
    assert_eq!(sb.tool_resources(&p).await, (vec![], vec![]));
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &drop_all(&p)).await;
    }
}

/// Customers `c` 1..60 (each refers the next, `referrer_id`, ON DELETE SET NULL; 15 and 16
/// refer customer 3), orders (CASCADE) of customers 1..50, items (CASCADE of the orders),
/// notes (SET NULL), an audit (RESTRICT) of customers the accident spares. Customers 51..60
/// have no orders or notes.
fn family(c: &str) -> String {
    format!(
        "CREATE TABLE shop.`{c}` (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL, referrer_id BIGINT NULL, \
           FOREIGN KEY (referrer_id) REFERENCES shop.`{c}` (id) ON DELETE SET NULL) ENGINE=InnoDB; \
         CREATE TABLE shop.`{c}_orders` (id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NOT NULL, total DECIMAL(10,2), \
           FOREIGN KEY (customer_id) REFERENCES shop.`{c}` (id) ON DELETE CASCADE) ENGINE=InnoDB; \
         CREATE TABLE shop.`{c}_items` (id BIGINT NOT NULL PRIMARY KEY, order_id BIGINT NOT NULL, sku VARCHAR(20), \
           FOREIGN KEY (order_id) REFERENCES shop.`{c}_orders` (id) ON DELETE CASCADE) ENGINE=InnoDB; \
         CREATE TABLE shop.`{c}_notes` (id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NULL, body VARCHAR(40), \
           FOREIGN KEY (customer_id) REFERENCES shop.`{c}` (id) ON DELETE SET NULL) ENGINE=InnoDB; \
         CREATE TABLE shop.`{c}_audit` (id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NOT NULL, \
           FOREIGN KEY (customer_id) REFERENCES shop.`{c}` (id) ON DELETE RESTRICT) ENGINE=InnoDB; \
         SET SESSION foreign_key_checks = 0; \
         INSERT INTO shop.`{c}` SELECT seq, CONCAT('customer ', seq), \
           CASE WHEN seq = 60 THEN NULL WHEN seq IN (15, 16) THEN 3 ELSE seq + 1 END FROM seq_1_to_60; \
         SET SESSION foreign_key_checks = 1; \
         INSERT INTO shop.`{c}_orders` SELECT seq, 1 + seq % 50, seq * 1.25 FROM seq_1_to_200; \
         INSERT INTO shop.`{c}_items` SELECT seq, 1 + seq % 200, CONCAT('sku-', seq) FROM seq_1_to_400; \
         INSERT INTO shop.`{c}_notes` SELECT seq, 1 + seq % 50, CONCAT('note ', seq) FROM seq_1_to_100; \
         INSERT INTO shop.`{c}_audit` SELECT seq, 30 + seq % 20 FROM seq_1_to_20"
    )
}

fn drop_family(c: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS shop.`{c}_items`, shop.`{c}_orders`, shop.`{c}_notes`, shop.`{c}_audit`; \
         DROP TABLE IF EXISTS shop.`{c}`"
    )
}

/// Seeds the family on both servers, returns the restore time, then the accident on production
/// (customers 1..10 and 55..60, with what the cascades do) and the application's writes since:
/// a new customer and order, customer 16 and note 5 re-pointed after their references were
/// cleared.
async fn family_with_accident(sb: &Sandbox, c: &str) -> String {
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &family(c)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Sandbox::exec(
        &sb.production,
        &format!(
            "DELETE FROM shop.`{c}` WHERE id <= 10 OR id >= 55; \
             INSERT INTO shop.`{c}` VALUES (1000, 'written since', 20); \
             INSERT INTO shop.`{c}_orders` VALUES (1000, 30, 99.99); \
             UPDATE shop.`{c}` SET referrer_id = 20 WHERE id = 16; \
             UPDATE shop.`{c}_notes` SET customer_id = 20 WHERE id = 5"
        ),
    )
    .await;
    time
}

/// The tool as the sandbox's writer user, who may also UPDATE (setting references back).
fn writer(mut cmd: tokio::process::Command) -> tokio::process::Command {
    cmd.env("RDS_TABLE_RESTORE_DB_USER", common::env_var("SANDBOX_WRITER_USER"))
        .env(
            "RDS_TABLE_RESTORE_DB_PASSWORD",
            common::env_var("SANDBOX_WRITER_PASSWORD"),
        );
    cmd
}

/// `SELECT *` of a table in key order on one server.
async fn all(pool: &mysql_async::Pool, table: &str) -> Vec<Vec<mysql_async::Value>> {
    Sandbox::rows(pool, table).await
}

fn row_of(rows: &[Vec<mysql_async::Value>], id: i64) -> Option<&Vec<mysql_async::Value>> {
    rows.iter().find(|r| common::id(&r[0]) == id)
}

fn int(v: &mysql_async::Value) -> Option<i64> {
    match v {
        mysql_async::Value::NULL => None,
        other => Some(common::id(other)),
    }
}

/// What production must hold after the family's accident is brought back by a run with
/// `--with-dependents`: every restored row of every table the delete changed, the rows written
/// since, the re-pointed references as the application left them, the cleared ones set back.
async fn assert_family_restored(sb: &Sandbox, c: &str) {
    // The parent: every restored customer, exactly, but for 16 (re-pointed since); and 1000.
    let (prod, rest) = (all(&sb.production, c).await, all(&sb.restored, c).await);
    for r in &rest {
        let id = common::id(&r[0]);
        let p = row_of(&prod, id).unwrap_or_else(|| panic!("customer {id} is missing in production"));
        if id == 16 {
            assert_eq!(int(&p[2]), Some(20), "customer 16 was re-pointed since: kept");
        } else {
            assert_eq!(p, r, "customer {id}: production differs from the restored copy");
        }
    }
    assert_eq!(
        int(&row_of(&prod, 15).unwrap()[2]),
        Some(3),
        "customer 15's cleared referrer is set back"
    );
    assert!(row_of(&prod, 1000).is_some(), "the customer written since is kept");
    assert_eq!(prod.len(), rest.len() + 1);
    // The CASCADE child and grandchild: every restored row, exactly, and the order written since.
    for table in [format!("{c}_orders"), format!("{c}_items")] {
        let (prod, rest) = (all(&sb.production, &table).await, all(&sb.restored, &table).await);
        for r in &rest {
            assert_eq!(
                row_of(&prod, common::id(&r[0])),
                Some(r),
                "{table}: a restored row differs or is missing"
            );
        }
        let extra: Vec<i64> = prod
            .iter()
            .map(|p| common::id(&p[0]))
            .filter(|id| row_of(&rest, *id).is_none())
            .collect();
        let expected: Vec<i64> = if table.ends_with("_orders") { vec![1000] } else { vec![] };
        assert_eq!(extra, expected, "{table}: rows production has beyond the restored ones");
    }
    // The SET NULL child: its references back, but for note 5 (re-pointed since).
    let notes = format!("{c}_notes");
    let (prod, rest) = (all(&sb.production, &notes).await, all(&sb.restored, &notes).await);
    assert_eq!(prod.len(), rest.len(), "no note is added or removed");
    for r in &rest {
        let id = common::id(&r[0]);
        let p = row_of(&prod, id).unwrap();
        if id == 5 {
            assert_eq!(int(&p[1]), Some(20), "note 5 was re-pointed since: kept");
        } else {
            assert_eq!(p, r, "note {id}: its reference is not set back");
        }
    }
    // The RESTRICT child was never touched.
    let audit = format!("{c}_audit");
    assert_eq!(all(&sb.production, &audit).await, all(&sb.restored, &audit).await);
}

#[tokio::test]
async fn with_dependents_one_run_brings_back_what_the_cascades_took_parents_first() {
    let sb = Sandbox::connect().await;
    let c = unique_table("fam");
    let time = family_with_accident(&sb, &c).await;
    let state = tempfile::tempdir().unwrap();
    let args = |verb: &'static str| -> Vec<String> {
        [
            verb,
            "--instance",
            "prod-db",
            "--database",
            "shop",
            "--table",
            c.as_str(),
            "--time",
            time.as_str(),
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--with-dependents".to_string()])
        .collect()
    };

    // The plan names every table of the run in the order it is merged, and what is done to each.
    let out = writer(command(state.path())).args(args("plan")).output().await.unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let plan = words(&out.stdout);
    for shown in [
        format!("1. `shop.{c}` (named): its missing rows, then the references (referrer_id) set back"),
        format!("`shop.{c}_notes` (SET NULL from shop.{c}): the references (customer_id) set back"),
        format!("`shop.{c}_orders` (CASCADE from shop.{c}): its missing rows"),
        format!("4. `shop.{c}_items` (CASCADE from shop.{c}_orders): its missing rows"),
    ] {
        assert!(plan.contains(&shown), "{shown:?} missing from the plan:\n{plan}");
    }
    assert!(
        !plan.contains(&format!("{c}_audit`)")),
        "RESTRICT is not in the run:\n{plan}"
    );

    // Setting references back needs UPDATE on them: the tool's user lacks it, before anything.
    let out = command(state.path())
        .args(args("restore"))
        .arg("--yes")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        describe(&out).contains("GRANT UPDATE (referrer_id)"),
        "{}",
        describe(&out)
    );
    assert_eq!(sb.tool_resources(&c).await, (vec![], vec![]), "nothing was created");

    // One run: every table back, the rows written since kept, nothing left in AWS.
    let out = writer(command(state.path()))
        .args(args("restore"))
        .args(["--yes", "--output", "json", "--chunk-size", "7"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_family_restored(&sb, &c).await;
    let summary = common::summary(&out.stdout);
    let tables: Vec<String> = summary["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables in the summary: {summary}"))
        .iter()
        .map(|t| t["table"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        tables,
        [
            format!("shop.{c}"),
            format!("shop.{c}_notes"),
            format!("shop.{c}_orders"),
            format!("shop.{c}_items")
        ]
    );
    // One restored copy served them all: one restore request for the run.
    assert_eq!(sb.tool_resources(&c).await, (vec![], vec![]));
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &drop_family(&c)).await;
    }
}

#[tokio::test]
async fn a_crash_between_two_tables_resumes_with_the_finished_table_left_alone() {
    let sb = Sandbox::connect().await;
    let c = unique_table("famc");
    let time = family_with_accident(&sb, &c).await;
    let state = tempfile::tempdir().unwrap();
    let mut first = writer(command(state.path()));
    first
        .args(common::restore_args(&c, &time))
        .args(["--with-dependents", "--yes"])
        .env("FAILPOINTS", "copy-table-after-checkpoint=return");
    let out = first.output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(86),
        "the crash point after the first table: {}",
        describe(&out)
    );
    // The first table (the customers) is back; its children are not yet.
    let customers = all(&sb.production, &c).await;
    assert!(row_of(&customers, 57).is_some(), "the customers come first");
    let orders = format!("SELECT COUNT(*) FROM shop.`{c}_orders`");
    assert!(count(&sb.production, &orders).await < count(&sb.restored, &orders).await);
    // Meanwhile the application deletes a customer the run brought back (it has no orders or
    // notes). A resume that copied the customers again would bring it back once more.
    Sandbox::exec(&sb.production, &format!("DELETE FROM shop.`{c}` WHERE id = 57")).await;

    let run = common::run_id_of(&common::state_files(state.path())[0]);
    let out = writer(command(state.path()))
        .args(["resume", &run, "--yes", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let customers = all(&sb.production, &c).await;
    assert!(row_of(&customers, 57).is_none(), "the finished table was copied again");
    // Everything else as after an uninterrupted run.
    for table in [format!("{c}_orders"), format!("{c}_items"), format!("{c}_notes")] {
        let rest = all(&sb.restored, &table).await;
        let prod = all(&sb.production, &table).await;
        for r in rest
            .iter()
            .filter(|r| common::id(&r[0]) != 5 || !table.ends_with("_notes"))
        {
            assert_eq!(row_of(&prod, common::id(&r[0])), Some(r), "{table} after the resume");
        }
    }
    assert_eq!(sb.tool_resources(&c).await, (vec![], vec![]));
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &drop_family(&c)).await;
    }
}

/// A crash while the SET NULL references are set back (a chunk written but not committed, and
/// one committed and checkpointed), then `resume`: every table ends as an uninterrupted run
/// leaves it, the application's re-pointed references kept.
#[tokio::test]
async fn a_crash_while_references_are_set_back_resumes_to_the_same_end() {
    let sb = Sandbox::connect().await;
    for point in [
        "references-chunk-before-commit=return",
        "references-chunk-after-checkpoint=return",
    ] {
        let c = unique_table("famr");
        let time = family_with_accident(&sb, &c).await;
        let state = tempfile::tempdir().unwrap();
        let out = writer(command(state.path()))
            .args(common::restore_args(&c, &time))
            .args(["--with-dependents", "--yes", "--chunk-size", "7"])
            .env("FAILPOINTS", point)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(86), "{point}: {}", describe(&out));
        let run = common::run_id_of(&common::state_files(state.path())[0]);
        let out = writer(command(state.path()))
            .args(["resume", &run, "--yes"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{point}: {}", describe(&out));
        assert_family_restored(&sb, &c).await;
        assert_eq!(sb.tool_resources(&c).await, (vec![], vec![]), "{point}");
        for pool in [&sb.production, &sb.restored] {
            Sandbox::exec(pool, &drop_family(&c)).await;
        }
    }
}

#[tokio::test]
async fn two_named_tables_are_merged_parents_first_and_the_report_names_the_dependent_left_out() {
    let sb = Sandbox::connect().await;
    let c = unique_table("famt");
    let time = family_with_accident(&sb, &c).await;
    let state = tempfile::tempdir().unwrap();
    // The child first on the command line: the run still merges the parent first, with the
    // foreign key checks on.
    let orders = format!("{c}_orders");
    let out = command(state.path())
        .args([
            "restore",
            "--instance",
            "prod-db",
            "--database",
            "shop",
            "--table",
            &orders,
            "--table",
            &c,
            "--time",
            &time,
        ])
        .args(["--yes", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let (prod, rest) = (all(&sb.production, &orders).await, all(&sb.restored, &orders).await);
    for r in &rest {
        assert_eq!(row_of(&prod, common::id(&r[0])), Some(r), "{orders}");
    }
    // The items were not named: still missing, and the summary says so with its counts.
    let items = format!("SELECT COUNT(*) FROM shop.`{c}_items`");
    let lost = count(&sb.restored, &items).await - count(&sb.production, &items).await;
    assert!(lost > 0);
    let summary = common::summary(&out.stdout);
    let item = summary["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["table"]["table"] == format!("{c}_items"))
        .cloned()
        .unwrap_or_else(|| panic!("the items are not among the dependents: {summary}"));
    assert_eq!(
        item["restored_rows"].as_u64().unwrap() - item["production_rows"].as_u64().unwrap(),
        lost,
        "{item}"
    );
    // Without --with-dependents, the notes' cleared references stay as production has them.
    let cleared = format!("SELECT COUNT(*) FROM shop.`{c}_notes` WHERE customer_id IS NULL");
    assert!(count(&sb.production, &cleared).await > 0);
    assert_eq!(sb.tool_resources(&orders).await, (vec![], vec![]));
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &drop_family(&c)).await;
    }
}
