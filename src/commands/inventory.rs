//! The commands that look at runs and resources rather than restore: `runs`, `status` and
//! `cleanup` (which finds what the tool tagged in AWS and deletes what no open run holds).

use super::*;
use rds_table_restore::restored::{ClusterCopy, InstanceCopy, Release, RestoredCopy};

fn age(state: &RunState) -> String {
    let mins = (Utc::now() - state.updated_at).num_minutes();
    match mins {
        m if m < 1 => "just now".into(),
        m if m < 120 => format!("{m} min ago"),
        m if m < 48 * 60 => format!("{} h ago", m / 60),
        m => format!("{} days ago", m / 60 / 24),
    }
}

pub fn runs(args: CommonArgs) -> u8 {
    let dir = match state_dir(&args) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let runs = match list_runs(&dir) {
        Ok(r) => r,
        Err(e) => return fail(3, &e),
    };
    if args.output == Output::Json {
        let list: Vec<_> = runs
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .map(|s| {
                serde_json::json!({
                    "run_id": s.run_id, "table": s.plan.table.to_string(), "source_instance": s.plan.source_instance,
                    "outcome": s.outcome, "open": is_open(s),
                    "step": s.current_step().map(|r| r.step.name()), "resources": s.resources.held(),
                    "expired": !s.resources.held().is_empty() && s.plan.expired(Utc::now()),
                    "updated_at": s.updated_at,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return 0;
    }
    if runs.is_empty() {
        println!("no runs in {}", dir.display());
        return 0;
    }
    println!(
        "{:<22} {:<24} {:<12} {:<12} {:<14} HOLDS",
        "RUN ID", "TABLE", "OUTCOME", "STEP", "UPDATED"
    );
    for (path, run) in &runs {
        match run {
            Ok(s) => println!(
                "{:<22} {:<24} {:<12} {:<12} {:<14} {}",
                s.run_id,
                s.plan.table.to_string(),
                format!("{:?}", s.outcome).to_lowercase(),
                s.current_step().map(|r| r.step.name()).unwrap_or("-"),
                age(s),
                if s.resources.held().is_empty() {
                    "-".into()
                } else if s.plan.expired(Utc::now()) {
                    format!("{} (EXPIRED: past its expires-at)", s.resources.held().join(", "))
                } else {
                    s.resources.held().join(", ")
                }
            ),
            Err(e) => println!(
                "{:<22} unreadable: {e}",
                path.file_stem().unwrap_or_default().to_string_lossy()
            ),
        }
    }
    0
}

pub fn status(args: RunArgs) -> u8 {
    let (dir, store, state) = match open_run(&args.common, &args.run_id) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if args.common.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&state).unwrap_or_default());
        return 0;
    }
    print!("{}", Report::from_state(&state, store.path()).to_text());
    if let Some(e) = &state.error {
        println!("  last error: {e}");
    }
    if is_open(&state) {
        let flag = state_dir_flag(&dir);
        println!("  continue: rds-table-restore resume {}{flag}", state.run_id);
        println!("  or end:   rds-table-restore abort {}{flag}", state.run_id);
    }
    0
}

pub async fn cleanup(args: CommonArgs) -> u8 {
    let dir = match state_dir(&args) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let runs = match list_runs(&dir) {
        Ok(r) => r,
        Err(e) => return fail(3, &e),
    };
    let open: Vec<String> = runs
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter(|s| is_open(s))
        .map(|s| s.run_id.clone())
        .collect();
    let aws = aws(args.region.clone()).await;
    let ours = |tags: &dyn Fn(&str) -> Option<String>| -> Option<String> {
        (tags(TAG_TOOL).as_deref() == Some(TOOL_NAME))
            .then(|| tags(TAG_RUN_ID))
            .flatten()
    };
    let instances = match aws.rds.list_instances().await {
        Ok(i) => i,
        Err(e) => return fail(1, &e),
    };
    let clusters = match aws.rds.list_clusters().await {
        Ok(c) => c,
        Err(e) => return fail(1, &e),
    };
    let groups = match aws.ec2.security_groups_tagged(TAG_TOOL).await {
        Ok(g) => g,
        Err(e) => return fail(1, &e),
    };
    let now = Utc::now();
    let expired = |tag: Option<&str>| -> String {
        match tag.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
            Some(t) if t < now => format!(", EXPIRED since {}", t.with_timezone(&Utc).format("%Y-%m-%d %H:%M UTC")),
            _ => String::new(),
        }
    };
    // Each restored copy of a finished run, by its id, as the kind of copy it is: an instance,
    // or a cluster (whose instances go with it, in the order RDS allows).
    let mut doomed: Vec<(String, Box<dyn RestoredCopy + '_>)> = Vec::new();
    // The groups each resource holds, and whether the tool made it.
    let mut holders: Vec<(String, Vec<String>, bool)> = Vec::new();
    for c in &clusters {
        let groups: Vec<String> = c.security_groups.iter().map(|(g, _)| g.clone()).collect();
        let run = ours(&|k| c.tag(k).map(str::to_string));
        holders.push((c.id.clone(), groups, run.is_some()));
        let Some(run) = run else { continue };
        let flag = expired(c.tag(TAG_EXPIRES));
        if open.contains(&run) {
            println!(
                "keeping DB cluster {} (run {run} is unfinished{flag}: resume or abort it)",
                c.id
            );
        } else {
            println!(
                "DB cluster {} (run {run}, status {}{flag}), with its instances",
                c.id, c.status
            );
            doomed.push((c.id.clone(), Box::new(ClusterCopy::found(&aws.rds, c, &run))));
        }
    }
    for i in &instances {
        let run = ours(&|k| i.tag(k).map(str::to_string));
        holders.push((i.id.clone(), i.security_groups.clone(), run.is_some()));
        // A cluster member goes with its cluster.
        let (Some(run), None) = (run, &i.cluster) else { continue };
        let flag = expired(i.tag(TAG_EXPIRES));
        if open.contains(&run) {
            println!(
                "keeping RDS instance {} (run {run} is unfinished{flag}: resume or abort it)",
                i.id
            );
        } else {
            println!("RDS instance {} (run {run}, status {}{flag})", i.id, i.status);
            doomed.push((i.id.clone(), Box::new(InstanceCopy::new(&aws.rds, &i.id))));
        }
    }
    let mut doomed_groups = Vec::new();
    for g in &groups {
        if let Some(run) = ours(&|k| g.tag(k).map(str::to_string)) {
            if open.contains(&run) {
                println!(
                    "keeping security group {} (run {run} is unfinished: resume or abort it)",
                    g.id
                );
            } else if let Some((id, _, _)) = holders.iter().find(|(_, gs, tool)| !tool && gs.contains(&g.id)) {
                eprintln!(
                    "warning: security group {} is used by {id}, which this tool did not create: left alone",
                    g.id
                );
            } else {
                println!("security group {} {} (run {run})", g.id, g.name);
                doomed_groups.push(g.clone());
            }
        }
    }
    if doomed.is_empty() && doomed_groups.is_empty() {
        println!("nothing to clean up: AWS describes no instance, cluster or security group of a finished run");
        return 0;
    }
    if !args.yes {
        match ui::prompter().confirm("Delete these?") {
            Ok(true) => {}
            Ok(false) => return fail(3, &Error::Declined),
            Err(e) => return fail(3, &e),
        }
    }
    let mut failures = 0;
    // Each copy is released step by step (busy copies waited for, members before their
    // cluster) until AWS no longer describes it; a security group can go only after that.
    let started = std::time::Instant::now();
    let limit = Duration::from_secs(45 * 60);
    let mut said: Vec<(String, String)> = Vec::new();
    while !doomed.is_empty() && started.elapsed() < limit {
        let mut still = Vec::new();
        for (id, copy) in doomed {
            let label = copy.label();
            match copy.release().await {
                Ok(Release::Gone) => println!("{label} deleted"),
                Ok(Release::Pending { status } | Release::Busy { status }) => {
                    if !said.iter().any(|(l, s)| *l == label && *s == status) {
                        println!("{label}: {status}");
                        said.push((label, status));
                    }
                    still.push((id, copy));
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("error: {label}: {e}");
                }
            }
        }
        doomed = still;
        if !doomed.is_empty() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let pending: Vec<&String> = doomed.iter().map(|(id, _)| id).collect();
    for (_, copy) in &doomed {
        failures += 1;
        eprintln!(
            "error: {} is still being deleted after 45 minutes: run `rds-table-restore cleanup` again later",
            copy.label()
        );
    }
    for g in &doomed_groups {
        let held_by_pending = holders
            .iter()
            .any(|(id, gs, _)| pending.contains(&id) && gs.contains(&g.id));
        if held_by_pending {
            eprintln!(
                "error: security group {} is still held by an instance being deleted: run cleanup again later",
                g.id
            );
            continue;
        }
        let started = std::time::Instant::now();
        loop {
            match aws.ec2.delete_security_group(&g.id).await {
                Ok(()) => {
                    println!("deleted security group {}", g.id);
                    break;
                }
                Err(e)
                    if e.aws_code() == Some("DependencyViolation")
                        && started.elapsed() < Duration::from_secs(20 * 60) =>
                {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("error: {e}");
                    break;
                }
            }
        }
    }
    if failures > 0 {
        4
    } else {
        0
    }
}
