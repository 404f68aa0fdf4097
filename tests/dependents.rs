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
    // The plan wraps at 80 columns: compared as words.
    let plan = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
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
    // SET NULL: the rows are there, their references cleared; the advice is a side-table run.
    let notes = format!("`shop.{p}_notes` (ON DELETE SET NULL");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&notes) && w.contains("--mode side-table")),
        "no side-table advice for the SET NULL child: {warnings:#?}"
    );
    assert_eq!(sb.tool_resources(&p).await, (vec![], vec![]));
    for pool in [&sb.production, &sb.restored] {
        Sandbox::exec(pool, &drop_all(&p)).await;
    }
}
