//! The request's own values, checked before anything is looked up: the time, the CIDR, the
//! `--where` predicate, and every other problem of a request, all found at once.

use std::net::IpAddr;

use chrono::{DateTime, Timelike, Utc};

use super::{rfc3339, Mode, Request};
use crate::error::{Error, Result};

/// Every problem in the request's own values, all of them, before anything is looked up: what
/// `Plan::new` refuses, for the command line to report at once. With `skip_missing`, choices
/// not given at all are left to the caller (which names them as missing).
pub fn input_errors(req: &Request, now: DateTime<Utc>, skip_missing: bool) -> Vec<Error> {
    let mut errors = Vec::new();
    let given = |v: &str| !(skip_missing && v.is_empty());
    if req.cluster.as_deref().is_some_and(|c| c.trim().is_empty()) {
        errors.push(Error::InvalidInput(
            "--cluster is empty: name the DB cluster the table lived in".into(),
        ));
    }
    if req.cluster.is_none() && given(&req.instance) && req.instance.trim().is_empty() {
        errors.push(Error::InvalidInput(
            "--instance is empty: name the RDS instance the table lived in".into(),
        ));
    }
    for (flag, v) in [("--database", &req.database), ("--table", &req.table)] {
        if given(v) && (v.is_empty() || v.len() > 64 || v.contains('\0')) {
            errors.push(Error::InvalidInput(format!(
                "{flag} `{v}` is not a MySQL identifier (1 to 64 characters, no NUL)"
            )));
        }
    }
    if given(&req.time) {
        match parse_time(&req.time, now) {
            Ok(t) if t > now => errors.push(Error::TimeInFuture { time: rfc3339(t) }),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    match &req.client_cidr {
        None if skip_missing || req.source == crate::plan::SourceKind::Binlog => {}
        None => errors.push(Error::InvalidInput(
            "--client-cidr is required: the address the tool connects from, e.g. 203.0.113.7/32 \
             (the temporary security group opens the database port to it only)"
                .into(),
        )),
        Some(c) => {
            if let Err(e) = parse_cidr(c, req.allow_any_source) {
                errors.push(e);
            }
        }
    }
    if req.chunk_size == 0 || req.chunk_size > 50_000 {
        errors.push(Error::InvalidInput(
            "--chunk-size must be between 1 and 50000 rows".into(),
        ));
    }
    if req.max_lock_ms == 0 || req.max_lock_ms > 60_000 {
        errors.push(Error::InvalidInput(
            "--max-lock-ms must be between 1 and 60000 milliseconds".into(),
        ));
    }
    if req.chunk_bytes < 64 << 10 || req.chunk_bytes > 1 << 30 {
        errors.push(Error::InvalidInput(
            "--chunk-bytes must be between 64KiB and 1GiB".into(),
        ));
    }
    let where_predicate = match req.where_predicate.as_deref().map(check_predicate).transpose() {
        Ok(p) => p,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if req.parallel > 16 {
        errors.push(Error::InvalidInput(
            "--parallel must be auto or between 1 and 16 writers".into(),
        ));
    }
    if req.parallel > 1 && req.dump_file.is_some() {
        errors.push(Error::InvalidInput(
            "--parallel writes chunks in no set order, which a --dump-file or --dump-only needs: \
             leave out --parallel"
                .into(),
        ));
    }
    if req.mode == Mode::ReplaceAll && (where_predicate.is_some() || req.where_predicate.is_some()) {
        errors.push(Error::InvalidInput(
            "--mode replace-all makes the whole table equal to the restored one, so it cannot take --where: \
             use --mode overwrite with --where to bring back some rows"
                .into(),
        ));
    }
    if let Some(c) = req.confirm_table.as_deref() {
        if req.mode != Mode::ReplaceAll {
            errors.push(Error::InvalidInput(format!(
                "--confirm-table is only for --mode replace-all (the mode is {})",
                req.mode.name()
            )));
        } else if c != req.table && given(&req.table) {
            errors.push(Error::InvalidInput(format!(
                "--confirm-table `{c}` is not the table being replaced (`{}`): type its exact name",
                req.table
            )));
        }
    }
    if req.drill.is_some() && req.mode != Mode::MissingRows && req.mode != Mode::SideTable {
        errors.push(Error::InvalidInput(format!(
            "a drill loads into a side table of its own, so --mode {} does not apply: leave --mode out",
            req.mode.name()
        )));
    }
    if !req.also.is_empty() || req.with_dependents {
        let flag = if req.also.is_empty() {
            "--with-dependents"
        } else {
            "--table given more than once"
        };
        let refusals = [
            (req.drill.is_some(), "a drill (rehearse one table at a time)"),
            (req.mode == Mode::SideTable, "--mode side-table (run it once per table)"),
            (
                req.mode == Mode::ReplaceAll,
                "--mode replace-all (its deletes would cascade to the other tables: replace one table at a time)",
            ),
            (
                req.where_predicate.is_some(),
                "--where (a condition is on one table's columns)",
            ),
            (
                req.dump_file.is_some(),
                "--dump-file or --dump-only (the file holds one table's rows)",
            ),
            (
                req.source == crate::plan::SourceKind::Binlog,
                "--source binlog (what a cascade deleted or set to NULL is not in the binlog: only the restored copy \
                 has it, so use --source pitr, the default)",
            ),
        ];
        for (refused, what) in refusals {
            if refused {
                errors.push(Error::InvalidInput(format!("{flag} does not go with {what}")));
            }
        }
        for t in &req.also {
            let t = crate::plan::table_ref(&req.database, t);
            if t.table.is_empty() || t.table.len() > 64 || t.database.len() > 64 || t.table.contains('\0') {
                errors.push(Error::InvalidInput(format!(
                    "--table `{t}` is not a MySQL identifier (1 to 64 characters, no NUL)"
                )));
            } else if t.database == req.database && t.table == req.table {
                errors.push(Error::InvalidInput(format!("--table `{}` is given twice", req.table)));
            }
        }
    }
    if let Some(path) = &req.dump_file {
        let flag = if req.dump_only { "--dump-only" } else { "--dump-file" };
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if path.exists() {
            errors.push(Error::InvalidInput(format!(
                "{flag} {} already exists: give a new file (the tool never overwrites one)",
                path.display()
            )));
        } else if !parent.is_dir() {
            errors.push(Error::InvalidInput(format!(
                "{flag} {}: the directory {} does not exist",
                path.display(),
                parent.display()
            )));
        }
    }
    errors
}

/// Parses `--time`, always with an explicit zone, since guessing one during an incident could
/// restore the wrong hour: RFC 3339 (`2024-05-01T09:14:00Z`), `YYYY-MM-DD HH:MM:SS ZONE` with
/// ZONE `UTC`, `Z` or an offset (`+02:00`), or `N seconds|minutes|hours|days ago`. Fractions of a
/// second are dropped (RDS restores to the second; rounding down stays before the damage).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    parse_moment("--time", s, now)
}

/// [`parse_time`] for another flag (`find --since`), named in the error.
pub fn parse_moment(flag: &str, s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let s = s.trim();
    let t = parse_time_forms(s, now).ok_or_else(|| {
        Error::InvalidInput(format!(
            "{flag} `{s}` is not a time this tool reads: write it with its zone, as 2024-05-01T09:14:00Z, \
             2024-05-01 11:14:00 +02:00 or 2024-05-01 09:14:00 UTC, or as `15 minutes ago`"
        ))
    })?;
    Ok(t.with_nanosecond(0).unwrap_or(t))
}

fn parse_time_forms(s: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let words: Vec<&str> = s.split_whitespace().collect();
    if let [n, unit, "ago"] = words.as_slice() {
        let n: i64 = n.parse().ok()?;
        let secs = match unit.trim_end_matches('s') {
            "second" | "sec" => 1,
            "minute" | "min" => 60,
            "hour" => 3600,
            "day" => 86_400,
            _ => return None,
        };
        return now.checked_sub_signed(chrono::Duration::seconds(n.checked_mul(secs)?));
    }
    if let [date, time, zone] = words.as_slice() {
        let naive = chrono::NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S%.f").ok()?;
        let offset = match *zone {
            "UTC" | "utc" | "Z" | "GMT" => chrono::FixedOffset::east_opt(0)?,
            z => chrono::DateTime::parse_from_str(&format!("2000-01-01 00:00:00 {z}"), "%Y-%m-%d %H:%M:%S %z")
                .ok()?
                .offset()
                .to_owned(),
        };
        return naive.and_local_timezone(offset).single().map(|t| t.with_timezone(&Utc));
    }
    None
}

/// Checks a CIDR for the ingress rule. A bare address is taken as a single host. The whole
/// internet is refused unless `allow_any` is set.
pub fn parse_cidr(s: &str, allow_any: bool) -> Result<String> {
    let s = s.trim();
    let bad = |why: &str| {
        Error::InvalidInput(format!(
            "--client-cidr `{s}` {why}: give the address you connect from, e.g. 203.0.113.7/32"
        ))
    };
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad("is not an IPv4 or IPv6 address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = match prefix {
        None => max,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| bad("has no valid prefix length"))?,
    };
    let host_bits_set = match ip {
        IpAddr::V4(v4) => prefix < 32 && (u32::from(v4) & (u32::MAX >> prefix)) != 0,
        IpAddr::V6(v6) => prefix < 128 && (u128::from(v6) & (u128::MAX >> prefix)) != 0,
    };
    if host_bits_set {
        return Err(bad("has host bits set beyond its prefix (EC2 rejects it)"));
    }
    if prefix == 0 && !allow_any {
        return Err(Error::InvalidInput(format!(
            "--client-cidr `{s}` would open the database port to the whole internet: give your own address \
             (e.g. 203.0.113.7/32), or pass --allow-any-source if you really mean it"
        )));
    }
    Ok(format!("{ip}/{prefix}"))
}

/// Checks `--where` is one predicate and nothing else: no statement separator, no comment
/// (which could swallow the rest of the tool's query), quotes closed and parentheses balanced
/// outside them (so it cannot close the tool's own parentheses around it). Whether it is valid
/// SQL for the table is asked of the servers before anything is written.
pub fn check_predicate(p: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::InvalidInput(format!(
            "--where `{p}` {why}: give a single condition, e.g. --where \"created_at >= '2024-05-01'\""
        ))
    };
    let p = p.trim();
    if p.is_empty() {
        return Err(bad("is empty"));
    }
    let (mut quote, mut depth, mut prev) = (None::<char>, 0i32, ' ');
    let chars: Vec<char> = p.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        match quote {
            Some(q) => {
                if c == '\\' && q != '`' {
                    prev = if prev == '\\' { ' ' } else { c };
                    continue;
                }
                if c == q && prev != '\\' {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' | '`' => quote = Some(c),
                ';' => return Err(bad("contains `;`")),
                '#' => return Err(bad("contains a `#` comment")),
                '-' if next == '-' => return Err(bad("contains a `--` comment")),
                '/' if next == '*' => return Err(bad("contains a `/*` comment")),
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        return Err(bad("closes a parenthesis it did not open"));
                    }
                }
                _ => {}
            },
        }
        prev = c;
    }
    if quote.is_some() {
        return Err(bad("leaves a quote open"));
    }
    if depth != 0 {
        return Err(bad("leaves a parenthesis open"));
    }
    Ok(p.to_string())
}
