//! The sandbox, seen from the tests: admin connections to both MariaDB servers, AWS clients on
//! moto, and helpers to seed a table of a test's own (so tests do not disturb each other or the
//! demo's `billing`). Every assertion reads the world directly, never the tool's own report.

#![allow(dead_code)]

pub mod proxy;

use std::time::Duration;

use aws_config::BehaviorVersion;
use mysql_async::prelude::Queryable;
use mysql_async::{Pool, Value};

pub const TAG_TABLE: &str = "rds-table-restore:table";
pub const TAG_RUN_ID: &str = "rds-table-restore:run-id";

pub struct Sandbox {
    pub production: Pool,
    pub restored: Pool,
    pub rds: aws_sdk_rds::Client,
    pub ec2: aws_sdk_ec2::Client,
    seed_sql: String,
    accident_sql: String,
}

/// `restore` of `shop.<table>` from `prod-db` to `time`; tests add their own flags.
pub fn restore_args<'a>(table: &'a str, time: &'a str) -> Vec<&'a str> {
    vec![
        "restore",
        "--instance",
        "prod-db",
        "--database",
        "shop",
        "--table",
        table,
        "--time",
        time,
    ]
}

/// The run id of a state file (its name without `.json`).
pub fn run_id_of(state_file: &std::path::Path) -> String {
    state_file.file_stem().unwrap().to_string_lossy().to_string()
}

/// Loads a SQL file into production's `shop` with the mariadb client, as an operator applying a
/// `--dump-only` file by hand would.
pub fn load_sql_into_production(path: &std::path::Path) {
    let url = env("SANDBOX_PRODUCTION_URL");
    let (creds, addr) = url.trim_start_matches("mysql://").split_once('@').unwrap();
    let (user, pass) = creds.split_once(':').unwrap();
    let (host, port) = addr.split('/').next().unwrap().split_once(':').unwrap();
    let loaded = std::process::Command::new("mariadb")
        .args(["-h", host, "-P", port, "-u", user, &format!("-p{pass}"), "shop"])
        .stdin(std::fs::File::open(path).unwrap())
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "the dump does not load: {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
}

/// A sandbox variable, or a panic that says how to start the sandbox.
pub fn env_var(name: &str) -> String {
    env(name)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the sandbox. Start it and load its environment with\n  \
             scripts/sandbox up && eval \"$(scripts/sandbox env)\"\nor run every test with scripts/test"
        )
    })
}

impl Sandbox {
    pub async fn connect() -> Sandbox {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let production = Pool::new(env("SANDBOX_PRODUCTION_URL").as_str());
        let restored = Pool::new(env("SANDBOX_RESTORED_URL").as_str());
        for (name, pool) in [("production", &production), ("restored", &restored)] {
            let mut c = pool.get_conn().await.unwrap_or_else(|e| {
                panic!("cannot reach the sandbox's {name} MariaDB ({e}): start it with scripts/sandbox up")
            });
            c.query_drop("SET SESSION time_zone = '+00:00'").await.unwrap();
        }
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let rds = aws_sdk_rds::Client::new(&config);
        rds.describe_db_instances()
            .db_instance_identifier("prod-db")
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("moto does not answer or has no prod-db ({e:?}): start the sandbox with scripts/sandbox up")
            });
        Sandbox {
            production,
            restored,
            ec2: aws_sdk_ec2::Client::new(&config),
            rds,
            seed_sql: std::fs::read_to_string(env("SANDBOX_SEED_SQL")).unwrap(),
            accident_sql: std::fs::read_to_string(env("SANDBOX_ACCIDENT_SQL")).unwrap(),
        }
    }

    pub async fn exec(pool: &Pool, sql: &str) {
        let mut c = pool.get_conn().await.unwrap();
        c.query_drop("USE shop").await.unwrap();
        c.query_drop(sql).await.unwrap_or_else(|e| panic!("{e}: {sql}"));
    }

    /// Seeds `shop.<table>` identically on both servers, returns the restore time (after the
    /// seed, before the accident), then applies the accident to production only.
    pub async fn seed_with_accident(&self, table: &str, rows: u64) -> String {
        let seed = self
            .seed_sql
            .replace("@TABLE@", table)
            .replace("@ROWS@", &rows.to_string());
        Self::exec(&self.production, &seed).await;
        Self::exec(&self.restored, &seed).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let t = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let accident = self
            .accident_sql
            .replace("@TABLE@", table)
            .replace("@ROWS@", &rows.to_string());
        Self::exec(&self.production, &accident).await;
        t
    }

    pub async fn drop_table(&self, table: &str) {
        let sql = format!("DROP TABLE IF EXISTS `{table}`");
        Self::exec(&self.production, &sql).await;
        Self::exec(&self.restored, &sql).await;
    }

    /// Every row of `shop.<table>`, in key order, as the binary protocol returns them.
    pub async fn rows(pool: &Pool, table: &str) -> Vec<Vec<Value>> {
        let mut c = pool.get_conn().await.unwrap();
        c.query_drop("SET SESSION time_zone = '+00:00'").await.unwrap();
        let rows: Vec<mysql_async::Row> = c
            .exec(format!("SELECT * FROM shop.`{table}` ORDER BY id"), ())
            .await
            .unwrap();
        rows.into_iter().map(|r| r.unwrap()).collect()
    }

    /// RDS instances and security groups in moto that the tool made for this table, found by
    /// their tags and by their names.
    /// The instances and groups of runs on `table` that AWS still describes, read once the
    /// twin's pending deletions of them are over (a `deleting` instance still exists, and
    /// still holds its group).
    pub async fn tool_resources(&self, table: &str) -> (Vec<String>, Vec<String>) {
        let started = std::time::Instant::now();
        loop {
            let found = self.tool_resources_now(table).await;
            let deleting = self.deleting(&found.0).await;
            if deleting.is_empty() || started.elapsed() > Duration::from_secs(90) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn deleting(&self, ids: &[String]) -> Vec<String> {
        let mut deleting = Vec::new();
        for id in ids {
            if let Ok(out) = self.rds.describe_db_instances().db_instance_identifier(id).send().await {
                if out
                    .db_instances()
                    .iter()
                    .any(|d| d.db_instance_status() == Some("deleting"))
                {
                    deleting.push(id.clone());
                }
            }
        }
        deleting
    }

    async fn tool_resources_now(&self, table: &str) -> (Vec<String>, Vec<String>) {
        let wanted = rds_table_restore::plan::tag_value(&format!("shop.{table}"));
        let name_part = rds_table_restore::plan::sanitize(table);

        let mut instances = Vec::new();
        for db in self.rds.describe_db_instances().send().await.unwrap().db_instances() {
            let id = db.db_instance_identifier().unwrap_or_default().to_string();
            let tagged = db
                .tag_list()
                .iter()
                .any(|t| t.key() == Some(TAG_TABLE) && t.value() == Some(&wanted));
            if tagged || is_ours(&id, &name_part) {
                instances.push(id);
            }
        }
        let mut groups = Vec::new();
        for g in self
            .ec2
            .describe_security_groups()
            .send()
            .await
            .unwrap()
            .security_groups()
        {
            let tagged = g
                .tags()
                .iter()
                .any(|t| t.key() == Some(TAG_TABLE) && t.value() == Some(&wanted));
            if tagged || g.group_name().is_some_and(|n| is_ours(n, &name_part)) {
                groups.push(g.group_id().unwrap_or_default().to_string());
            }
        }
        (instances, groups)
    }

    /// The ingress rules of one group, as (cidr, from port).
    pub async fn ingress_of(&self, group: &str) -> Vec<(String, i32)> {
        let out = self
            .ec2
            .describe_security_groups()
            .group_ids(group)
            .send()
            .await
            .unwrap();
        let mut rules = Vec::new();
        for g in out.security_groups() {
            for p in g.ip_permissions() {
                for r in p.ip_ranges() {
                    rules.push((r.cidr_ip().unwrap_or_default().to_string(), p.from_port().unwrap_or(-1)));
                }
                for r in p.ipv6_ranges() {
                    rules.push((
                        r.cidr_ipv6().unwrap_or_default().to_string(),
                        p.from_port().unwrap_or(-1),
                    ));
                }
            }
        }
        rules
    }

    /// Every ingress rule in the account, as (group, cidr, from port).
    pub async fn all_ingress(&self) -> Vec<(String, String, i32)> {
        let mut rules = Vec::new();
        for g in self
            .ec2
            .describe_security_groups()
            .send()
            .await
            .unwrap()
            .security_groups()
        {
            // The tool names its groups restore-... or drill-...; the name is checked as well as the tag,
            // because moto may list a group being created or deleted by a test running
            // alongside before its tags are attached or after they are gone.
            let tool_made = g
                .group_name()
                .is_some_and(|n| n.starts_with("restore-") || n.starts_with("drill-"))
                || g.tags().iter().any(|t| t.key() == Some("rds-table-restore:tool"));
            if tool_made {
                continue;
            }
            for p in g.ip_permissions() {
                for r in p.ip_ranges() {
                    rules.push((
                        g.group_id().unwrap_or_default().to_string(),
                        r.cidr_ip().unwrap_or_default().to_string(),
                        p.from_port().unwrap_or(-1),
                    ));
                }
            }
        }
        rules.sort();
        rules
    }

    /// The source instance as moto describes it, whole but for LatestRestorableTime (which
    /// moves on its own), and the whole description of each of its security groups: the tool
    /// must never change either.
    pub async fn source_description(&self) -> String {
        let out = self
            .rds
            .describe_db_instances()
            .db_instance_identifier("prod-db")
            .send()
            .await
            .unwrap();
        let mut db = out.db_instances()[0].clone();
        db.latest_restorable_time = None;
        let ids: Vec<String> = db
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect();
        let groups = self
            .ec2
            .describe_security_groups()
            .set_group_ids(Some(ids))
            .send()
            .await
            .unwrap();
        format!("{db:?}\n{:?}", groups.security_groups())
    }
}

/// `restore-prod-db-<table>-<yyyymmdd>-...`: the tool's name for a restore of exactly this table.
fn is_ours(name: &str, table_part: &str) -> bool {
    ["restore", "drill"].iter().any(|kind| {
        name.strip_prefix(&format!("{kind}-prod-db-{table_part}-"))
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// What production must hold after a restore in missing-rows mode: its own rows, plus every
/// restored row whose key it lacked.
pub fn expected_after(before: &[Vec<Value>], restored: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let mut m: std::collections::BTreeMap<Vec<u8>, Vec<Value>> =
        restored.iter().map(|r| (key(&r[0]), r.clone())).collect();
    for r in before {
        m.insert(key(&r[0]), r.clone());
    }
    let mut rows: Vec<_> = m.into_values().collect();
    rows.sort_by_key(|r| id(&r[0]));
    rows
}

/// The integer key of a seeded row.
pub fn id(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("unexpected id {other:?}"),
    }
}

fn key(v: &Value) -> Vec<u8> {
    id(v).to_be_bytes().to_vec()
}

/// Checks `after` equals `expected` row for row; the first difference, in words.
pub fn compare_rows(after: &[Vec<Value>], expected: &[Vec<Value>]) -> Result<(), String> {
    if after.len() != expected.len() {
        return Err(format!("{} rows where {} were expected", after.len(), expected.len()));
    }
    for (a, e) in after.iter().zip(expected) {
        if a != e {
            return Err(format!("row {} is {a:?}, expected {e:?}", id(&a[0])));
        }
    }
    Ok(())
}

/// After an abort: nothing production had is lost or changed, and every other row is an exact
/// restored row (the chunks committed before the crash).
pub fn check_partial(after: &[Vec<Value>], before: &[Vec<Value>], restored: &[Vec<Value>]) -> Result<(), String> {
    let restored: std::collections::HashMap<i64, &Vec<Value>> = restored.iter().map(|r| (id(&r[0]), r)).collect();
    let before_m: std::collections::HashMap<i64, &Vec<Value>> = before.iter().map(|r| (id(&r[0]), r)).collect();
    for r in before {
        if !after.contains(r) {
            return Err(format!("production's row {} was lost or changed", id(&r[0])));
        }
    }
    for r in after {
        let k = id(&r[0]);
        if before_m.contains_key(&k) {
            continue;
        }
        if restored.get(&k) != Some(&r) {
            return Err(format!("row {k} is neither production's nor the restored copy's"));
        }
    }
    Ok(())
}

/// A table name no other test uses.
pub fn unique_table(prefix: &str) -> String {
    format!("{prefix}_{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// The run state files in a state directory.
pub fn state_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// An AWS twin of its own (scripts/aws_twin.py: moto behind real AWS's rules), with its own
/// settings, faults and request log. Stopped when dropped.
pub struct Twin {
    child: std::process::Child,
    pub port: u16,
}

/// The old name, from when the twin only injected faults.
pub type FaultyMoto = Twin;

impl Drop for Twin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Twin {
    pub fn start(args: &[&str]) -> Twin {
        Self::start_in("us-east-1", args)
    }

    /// A twin whose instances live in `region` (and so get endpoint names of that region).
    pub fn start_in(region: &str, args: &[&str]) -> Twin {
        use std::io::BufRead;
        let python = std::path::Path::new(&env("SANDBOX_DIR")).join("venv/bin/python");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/aws_twin.py");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(python)
            .arg(script)
            .args(["--port", &port.to_string(), "--seed"])
            .env("AWS_REGION", region)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start scripts/aws_twin.py with the sandbox's python (scripts/sandbox up installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("ready"), "aws_twin.py did not start: {line:?}");
        Twin { child, port }
    }

    fn http(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let answer = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(answer).unwrap_or_else(|e| panic!("bad {path} answer {text:?}: {e}"))
    }

    /// Changes settings (`POST /_twin`), e.g. `{"lose": {"CreateSecurityGroup": 1}}`.
    pub fn set(&self, settings: serde_json::Value) -> serde_json::Value {
        self.http("POST", "/_twin", &settings.to_string())
    }

    /// Every request the twin saw: `{seq, time, service, action, params, status, lost}`.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        match self.http("GET", "/_twin/requests", "") {
            serde_json::Value::Array(v) => v,
            other => other["requests"].as_array().cloned().unwrap_or_default(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The twin's settings, counters and pending deletions (`GET /_twin`).
    pub fn counters(&self) -> serde_json::Value {
        self.http("GET", "/_twin", "")
    }

    /// AWS clients on this moto, with the sandbox's databases.
    pub async fn sandbox(&self, sb: &Sandbox) -> Sandbox {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(self.url())
            .load()
            .await;
        Sandbox {
            production: sb.production.clone(),
            restored: sb.restored.clone(),
            rds: aws_sdk_rds::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            seed_sql: sb.seed_sql.clone(),
            accident_sql: sb.accident_sql.clone(),
        }
    }
}

/// Checks `--output json` is newline-delimited events, each an object with `event` and `time`,
/// the last one the `summary`; returns every event.
pub fn events(stdout: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(stdout);
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for e in &events {
        assert!(
            e["event"].is_string() && e["time"].is_string(),
            "an event without event/time: {e}"
        );
    }
    let last = events.last().expect("no events");
    assert_eq!(
        last["event"], "summary",
        "the stream does not end with the summary: {last}"
    );
    assert_eq!(events.iter().filter(|e| e["event"] == "summary").count(), 1);
    events
}

/// The closing `summary` event of `--output json`.
pub fn summary(stdout: &[u8]) -> serde_json::Value {
    events(stdout).pop().unwrap()
}

/// The binary under test.
pub fn binary() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("rds-table-restore")
}

/// A run's exit code and output, for assertion messages.
pub fn describe(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// The binary with a state directory of the test's own and no crash point armed.
pub fn command(state: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.env("RDS_TABLE_RESTORE_STATE_DIR", state).env_remove("FAILPOINTS");
    cmd
}

/// The columns of [`all_types`] that are written (the generated `gv` and `gs` are not), in
/// the table's order.
pub const ALL_TYPES_WRITTEN: &str =
    "id, u64, i64, ti, su, mi, d65, f, dbl, b1, b64, dt, dt6, ts, tm, yr, c, vc, tx, l1, bn, vb, bl, e, st, js";

/// A table with every column type, and rows at the edges of each.
pub fn all_types() -> (&'static str, Vec<String>) {
    let ddl = "id INT NOT NULL PRIMARY KEY, \
        u64 BIGINT UNSIGNED, i64 BIGINT, ti TINYINT, su SMALLINT UNSIGNED, mi MEDIUMINT, \
        d65 DECIMAL(65,30), f FLOAT, dbl DOUBLE, b1 BIT(1), b64 BIT(64), \
        dt DATE, dt6 DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6), yr YEAR, \
        c CHAR(10), vc VARCHAR(100), tx TEXT, l1 VARCHAR(50) CHARACTER SET latin1, \
        bn BINARY(8), vb VARBINARY(64), bl BLOB, e ENUM('a','b','c'), st SET('x','y','z'), js JSON, \
        gv INT AS (id * 2) VIRTUAL, gs VARCHAR(20) AS (CONCAT('g', id)) PERSISTENT";
    let cols = format!("({ALL_TYPES_WRITTEN})");
    let rows = [
        // the top of every range
        format!("{cols} VALUES (1, 18446744073709551615, 9223372036854775807, 127, 65535, 8388607, \
         99999999999999999999999999999999999.999999999999999999999999999999, 3.40282e38, 1.7976931348623157e308, \
         b'1', b'1111111111111111111111111111111111111111111111111111111111111111', '9999-12-31', \
         '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '838:59:59.000000', 2155, \
         'ü😀', 'emoji 🚒 and ünïcödé', REPEAT('long ', 2000), 'çàé latin', \
         x'00ff00ff00ff0000', x'00', x'00010203fffefd00', 'c', 'x,y,z', '{{\"a\": [1, 2, {{\"b\": null}}]}}')"),
        // the bottom of every range, negatives and zeros
        format!("{cols} VALUES (2, 0, -9223372036854775808, -128, 0, -8388608, \
         -99999999999999999999999999999999999.999999999999999999999999999999, -1.17549435e-38, -2.2250738585072014e-308, \
         b'0', b'0', '1000-01-01', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000001', '-838:59:59.000000', 1901, \
         '', '', '', '', x'0000000000000000', x'', x'', 'a', '', '[]')"),
        // NULL in every nullable column
        format!("{cols} VALUES (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"),
        // awkward in between: tiny fractions, negative zero, quotes and backslashes
        format!("{cols} VALUES (4, 1, -1, 0, 1, 0, 0.000000000000000000000000000001, -0.0, 0.1, b'1', b'101', \
         '2024-02-29', '2024-02-29 12:00:00.000001', '2024-02-29 12:00:00.5', '-00:00:00.000001', 2000, \
         'a''b\\\\c', 'tab\\there\\nnewline', 'it''s \"quoted\"', 'x', x'5c27223b', x'27', x'5c', 'b', 'y', '\"str\"')"),
    ];
    (ddl, rows.to_vec())
}
