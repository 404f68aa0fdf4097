use super::*;
use crate::plan::{Mode, Request};
use crate::ports::{Row, Value};
use crate::progress::{Prompter, Silent};
use crate::state::StepStatus;
use crate::testing::*;
use std::sync::Mutex;

struct World {
    rds: FakeRds,
    ec2: FakeEc2,
    db: FakeDb,
    dir: tempfile::TempDir,
}

impl World {
    /// Restored: rows 1..=10. Production after the accident: even rows deleted, row 3
    /// changed since, rows 11 and 12 written since.
    fn new() -> World {
        let restored: Vec<Row> = (1..=10).map(|i| row(i, &format!("r{i}"))).collect();
        let mut production: Vec<Row> = restored
            .iter()
            .filter(|r| matches!(r[0], Value::Int(i) if i % 2 == 1))
            .cloned()
            .collect();
        production[1] = row(3, "changed");
        production.push(row(11, "new"));
        production.push(row(12, "new"));
        World {
            rds: FakeRds::with_source(),
            ec2: FakeEc2::default(),
            db: FakeDb {
                production: table_of(production),
                restored: table_of(restored),
                schema: Some(schema()),
                ..Default::default()
            },
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn request(&self) -> Request {
        Request {
            instance: "prod-db".into(),
            cluster: None,
            database: "shop".into(),
            table: "billing".into(),
            time: rfc3339(Utc::now() - chrono::Duration::hours(1)),
            client_cidr: Some("203.0.113.7/32".into()),
            allow_any_source: false,
            mode: Mode::MissingRows,
            instance_class: None,
            parameter_group: None,
            subnet_group: None,
            publicly_accessible: false,
            chunk_size: 3,
            chunk_bytes: 8 << 20,
            max_lock_ms: 100,
            wait_timeout_minutes: 1,
            on_failure: OnFailure::Teardown,
            where_predicate: None,
            drill: None,
            dump_file: None,
            dump_only: false,
            confirm_table: None,
            recreate_table: false,
            parallel: 1,
            source: Default::default(),
            before: None,
            also: Vec::new(),
            with_dependents: false,
        }
    }

    async fn run_with(
        &self,
        req: Request,
        answer: Option<bool>,
        yes: bool,
    ) -> std::result::Result<RunState, RunFailure> {
        self.run_prompted(req, &Answer(answer), yes).await
    }

    async fn run_prompted(
        &self,
        req: Request,
        prompter: &dyn Prompter,
        yes: bool,
    ) -> std::result::Result<RunState, RunFailure> {
        let plan = Plan::new(&req, "20260101t000000-abcd".into(), Utc::now()).unwrap();
        let store = StateStore::new(self.dir.path(), &plan.run_id).unwrap();
        let deps = Deps {
            rds: &self.rds,
            ec2: &self.ec2,
            db: &self.db,
            ui: &Silent,
            prompter,
        };
        let settings = Settings {
            assume_yes: yes,
            poll_min: Duration::from_millis(1),
            poll_max: Duration::from_millis(2),
            settle: Duration::from_millis(20),
            gone_timeout: Duration::from_secs(2),
            dependency_timeout: Duration::from_secs(2),
            ..Settings::default()
        };
        Machine::new(
            deps,
            settings,
            store,
            plan,
            Connection::default(),
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap()
        .run()
        .await
    }

    async fn run(&self) -> std::result::Result<RunState, RunFailure> {
        self.run_with(self.request(), None, true).await
    }

    fn production(&self) -> BTreeMap<i64, Row> {
        self.db.production.lock().unwrap().clone()
    }

    fn assert_nothing_created(&self) {
        assert_eq!(self.rds.ids(), vec!["prod-db".to_string()]);
        assert!(self.ec2.group_ids().is_empty());
        assert!(
            !self.rds.calls().iter().any(|c| c.starts_with("restore")),
            "{:?}",
            self.rds.calls()
        );
    }
}

use std::collections::BTreeMap;

#[tokio::test]
async fn a_full_run_merges_missing_rows_and_leaves_nothing_behind() {
    let w = World::new();
    let before = w.production();
    let source_before = w.rds.instance("prod-db");
    let state = w.run().await.expect("run succeeds");

    let after = w.production();
    let restored = w.db.restored.lock().unwrap().clone();
    for (k, r) in &restored {
        let expected = before.get(k).unwrap_or(r);
        assert_eq!(after.get(k), Some(expected), "row {k}");
    }
    assert_eq!(
        after.get(&3),
        Some(&row(3, "changed")),
        "a row changed since the accident is kept"
    );
    assert_eq!(after.len(), 12);
    assert_eq!(
        (
            state.copy.inserted,
            state.copy.already_present,
            state.copy.present_differing
        ),
        (5, 5, 1)
    );

    assert_eq!(
        w.rds.ids(),
        vec!["prod-db".to_string()],
        "the restored instance is deleted"
    );
    assert!(w.ec2.group_ids().is_empty(), "the security group is deleted");
    assert_eq!(w.rds.instance("prod-db"), source_before, "the source is untouched");
    let ec2 = w.ec2.calls();
    assert_eq!(ec2.len(), 4, "{ec2:?}");
    assert!(
        ec2[1].ends_with("203.0.113.7/32 3306") && ec2[2].starts_with("revoke"),
        "{ec2:?}"
    );

    assert_eq!(state.outcome, Outcome::Succeeded);
    let steps: Vec<_> = state.steps.iter().map(|s| (s.step, s.status)).collect();
    assert_eq!(
        steps,
        Step::ALL.iter().map(|s| (*s, StepStatus::Finished)).collect::<Vec<_>>()
    );
    let on_disk = StateStore::load(&w.dir.path().join("20260101t000000-abcd.json")).unwrap();
    assert_eq!(on_disk, state);
    assert!(state.verification.as_ref().unwrap().passed);
    assert!(state.resources.held().is_empty());
}

#[tokio::test]
async fn the_restored_instance_is_named_tagged_and_placed_like_the_source() {
    let mut w = World::new();
    // A writer that loses rows makes the run fail at verify; --on-failure keep keeps the
    // instance so it can be inspected here.
    w.db.lose_inserts = true;
    let mut req = w.request();
    req.on_failure = OnFailure::Keep;
    let failure = w.run_with(req, None, true).await.unwrap_err();
    assert!(
        matches!(failure.error, Error::VerificationFailed(_)),
        "{}",
        failure.error
    );
    let target = failure.state.plan.target_instance.clone();
    assert!(target.starts_with("restore-prod-db-billing-"), "{target}");
    let i = w.rds.instance(&target).expect("kept on failure with --on-failure keep");
    assert_eq!(i.tag(TAG_RUN_ID), Some("20260101t000000-abcd"));
    assert_eq!(i.subnet_group.as_deref(), Some("prod-subnets"));
    assert_eq!(i.parameter_group.as_deref(), Some("prod-params"));
    assert_eq!(i.class.as_deref(), Some("db.t3.medium"));
    assert!(!i.publicly_accessible);
    let sg = failure
        .state
        .resources
        .security_group
        .clone()
        .expect("the copy's group");
    assert_eq!(
        i.security_groups,
        vec![sg.clone()],
        "the copy is in its own group only, never the source's"
    );
    assert_eq!(i.backup_retention_days, 0, "no backups of the copy");
    assert_eq!(
        i.ca_certificate.as_deref(),
        Some("rds-ca-rsa2048-g1"),
        "the source's CA"
    );
    assert!(i.tag(crate::plan::TAG_EXPIRES).is_some(), "an expires-at tag");
    let rules = w.ec2.groups.lock().unwrap()[&sg].rules.clone();
    assert!(rules.is_empty(), "network access is revoked on failure: {rules:?}");
    assert_eq!(
        failure.resources_left,
        vec![format!("security group {sg}"), format!("RDS instance {target}")]
    );
}

#[tokio::test]
async fn the_group_exists_before_the_restore_and_goes_after_the_instance() {
    let w = World::new();
    let state = w.run().await.unwrap();
    let sg = state.resources.security_group.clone().unwrap();
    let target = state.plan.target_instance.clone();
    let ec2 = w.ec2.calls();
    let rds = w.rds.calls();
    assert_eq!(
        ec2.iter().map(|c| c.split(' ').next().unwrap()).collect::<Vec<_>>(),
        ["create", "authorize", "revoke", "delete"],
        "{ec2:?}"
    );
    assert_eq!(
        rds,
        [format!("restore {target} groups={sg}"), format!("delete {target}")]
    );
    assert!(w.rds.instance(&target).is_none() && w.ec2.group_ids().is_empty());
    assert!(state.resources.restored_instance_gone && state.resources.security_group_deleted);
}

#[tokio::test]
async fn validation_failures_create_nothing() {
    type Setup = fn(&mut World, &mut Request);
    let cases: Vec<(&str, Setup)> = vec![
        ("no RDS instance named `nope`", |_, r| r.instance = "nope".into()),
        ("engine `postgres`", |w, _| {
            w.rds.instances.lock().unwrap().get_mut("prod-db").unwrap().engine = "postgres".into()
        }),
        ("keeps no automated backups", |w, _| {
            w.rds
                .instances
                .lock()
                .unwrap()
                .get_mut("prod-db")
                .unwrap()
                .backup_retention_days = 0
        }),
        ("before the earliest restorable time", |_, r| {
            r.time = rfc3339(Utc::now() - chrono::Duration::days(8))
        }),
        ("after the latest restorable time", |_, r| {
            r.time = rfc3339(Utc::now() - chrono::Duration::minutes(1))
        }),
        ("does not exist on production", |w, _| w.db.schema = None),
        ("has no primary key", |w, _| w.db.schema.as_mut().unwrap().key.clear()),
        ("refused the login", |w, _| w.db.refuse_login = true),
    ];
    for (expected, setup) in cases {
        let mut w = World::new();
        let mut req = w.request();
        setup(&mut w, &mut req);
        let before = w.production();
        let failure = w.run_with(req, None, true).await.expect_err(expected);
        assert!(
            failure.error.to_string().contains(expected),
            "{expected}: got {}",
            failure.error
        );
        assert!(failure.error.is_validation(), "{expected}");
        w.assert_nothing_created();
        assert_eq!(w.production(), before);
        assert!(failure.resources_left.is_empty());
    }
}

#[tokio::test]
async fn without_a_creation_time_or_window_start_there_is_no_lower_bound_to_trust() {
    let w = World::new();
    *w.rds.earliest.lock().unwrap() = None;
    w.rds.instances.lock().unwrap().get_mut("prod-db").unwrap().created = None;
    let failure = w.run().await.unwrap_err();
    assert!(
        matches!(failure.error, Error::NoRestoreWindow { .. }),
        "{}",
        failure.error
    );
    w.assert_nothing_created();
}

#[tokio::test]
async fn a_cidr_wider_than_one_host_needs_its_own_confirmation() {
    let w = World::new();
    let mut req = w.request();
    req.client_cidr = Some("10.1.0.0/16".into());
    let script = Script {
        answers: Mutex::new(vec![true, false]),
        asked: Mutex::new(vec![]),
    };
    let failure = w.run_prompted(req.clone(), &script, false).await.unwrap_err();
    assert!(matches!(failure.error, Error::Declined), "{}", failure.error);
    assert_eq!(script.asked.lock().unwrap()[1], "Open the port to all of 10.1.0.0/16?");
    w.assert_nothing_created();

    let script = Script {
        answers: Mutex::new(vec![true]),
        asked: Mutex::new(vec![]),
    };
    w.run_prompted(w.request(), &script, false)
        .await
        .expect("a /32 needs one answer");
    assert_eq!(script.asked.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn overwrite_sets_changed_rows_back_and_keeps_rows_written_since() {
    let w = World::new();
    let mut req = w.request();
    req.mode = Mode::Overwrite;
    let state = w.run_with(req, None, true).await.expect("overwrite run");
    let production = w.production();
    let restored = w.db.restored.lock().unwrap().clone();
    for (k, r) in &restored {
        assert_eq!(production.get(k), Some(r), "row {k}");
    }
    assert_eq!(production.len(), 12, "rows 11 and 12, written since, stay");
    assert_eq!((state.copy.inserted, state.copy.updated, state.copy.deleted), (5, 1, 0));
    assert_eq!(
        state.copy.planned,
        Some(crate::state::PlannedChanges {
            insert: 5,
            update: 1,
            delete: 0,
            unchanged: 4
        })
    );
    assert!(state.verification.unwrap().passed);
}

#[tokio::test]
async fn replace_all_in_scripts_needs_the_table_name_typed_ahead() {
    let w = World::new();
    let mut req = w.request();
    req.mode = Mode::ReplaceAll;
    let failure = w.run_with(req.clone(), None, true).await.unwrap_err();
    assert!(
        failure.error.to_string().contains("--confirm-table billing"),
        "{}",
        failure.error
    );
    w.assert_nothing_created();
    assert_eq!(w.production().len(), 7, "production untouched");

    req.confirm_table = Some("billing".into());
    let state = w.run_with(req, None, true).await.expect("replace-all run");
    assert_eq!(
        w.production(),
        *w.db.restored.lock().unwrap(),
        "production equals the restored table"
    );
    assert_eq!((state.copy.inserted, state.copy.updated, state.copy.deleted), (5, 1, 2));
    assert!(state.verification.unwrap().passed);
}

#[tokio::test]
async fn replace_all_at_a_prompt_needs_the_name_typed_then_the_counts_accepted() {
    let w = World::new();
    let mut req = w.request();
    req.mode = Mode::ReplaceAll;
    // Proceed, then the name typed wrong: nothing is created.
    let script = Script {
        answers: Mutex::new(vec![true, false]),
        asked: Mutex::new(vec![]),
    };
    let failure = w.run_prompted(req.clone(), &script, false).await.unwrap_err();
    assert!(matches!(failure.error, Error::Declined), "{}", failure.error);
    assert_eq!(
        script.asked.lock().unwrap()[1],
        "Type the table name (billing) to replace it"
    );
    w.assert_nothing_created();

    // Proceed, the name, then no to the counted changes: production is not written.
    let script = Script {
        answers: Mutex::new(vec![true, true, false]),
        asked: Mutex::new(vec![]),
    };
    let failure = w.run_prompted(req.clone(), &script, false).await.unwrap_err();
    assert!(matches!(failure.error, Error::Declined), "{}", failure.error);
    assert_eq!(script.asked.lock().unwrap()[2], "Write these changes?");
    assert_eq!(w.production().len(), 7, "production untouched");
    assert!(w.ec2.group_ids().is_empty(), "access revoked");
    assert_eq!(
        w.rds.ids(),
        vec!["prod-db".to_string()],
        "restored instance deleted (--on-failure teardown)"
    );
}

#[tokio::test]
async fn a_dropped_table_is_recreated_from_the_restored_definition_only_with_consent() {
    let w = World::new();
    w.db.production.lock().unwrap().clear();
    *w.db.production_dropped.lock().unwrap() = true;
    // At a prompt: the plan, then the definition; no to the second creates nothing in
    // production, and the restored instance goes.
    let script = Script {
        answers: Mutex::new(vec![true, false]),
        asked: Mutex::new(vec![]),
    };
    let failure = w.run_prompted(w.request(), &script, false).await.unwrap_err();
    assert!(matches!(failure.error, Error::Declined), "{}", failure.error);
    assert_eq!(
        script.asked.lock().unwrap()[1],
        "Create `shop.billing` in production with this definition?"
    );
    assert!(*w.db.production_dropped.lock().unwrap(), "not created");
    assert_eq!(w.rds.ids(), vec!["prod-db".to_string()]);

    let mut req = w.request();
    req.recreate_table = true;
    let state = w.run_with(req, None, true).await.expect("recreated and filled");
    assert!(!*w.db.production_dropped.lock().unwrap());
    assert_eq!(w.production(), *w.db.restored.lock().unwrap());
    assert_eq!(
        state.resources.created_table.as_ref().map(|t| t.to_string()).as_deref(),
        Some("shop.billing")
    );
    assert!(state.verification.unwrap().passed);
}

#[tokio::test]
async fn parallel_writers_split_the_keys_and_each_checkpoints_its_own_range() {
    for mode in [Mode::MissingRows, Mode::ReplaceAll] {
        let w = World::new();
        let mut req = w.request();
        req.mode = mode;
        req.confirm_table = (mode == Mode::ReplaceAll).then(|| "billing".into());
        req.parallel = 3;
        let state = w.run_with(req, None, true).await.expect("parallel run");
        assert_eq!(
            state.copy.workers.len(),
            3,
            "{mode:?}: 10 rows in chunks of 3 make 3 writers"
        );
        assert!(state.copy.workers.iter().all(|w| w.copy.done));
        assert_eq!(state.copy.workers[0].start, None);
        assert_eq!(state.copy.workers[2].end, None);
        assert_eq!(
            state.copy.workers[0].end, state.copy.workers[1].start,
            "ranges tile the keys"
        );
        assert_eq!(state.copy.rows_read, 10);
        let restored = w.db.restored.lock().unwrap().clone();
        let production = w.production();
        match mode {
            Mode::ReplaceAll => assert_eq!(production, restored),
            _ => {
                assert_eq!(state.copy.inserted, 5);
                assert_eq!(production.len(), 12);
            }
        }
        assert!(state.verification.unwrap().passed);
    }
}

#[tokio::test]
async fn nothing_happens_without_consent() {
    for (answer, expected) in [(Some(false), "stopped at your request"), (None, "--yes")] {
        let w = World::new();
        let before = w.production();
        let failure = w.run_with(w.request(), answer, false).await.unwrap_err();
        assert!(failure.error.to_string().contains(expected), "{}", failure.error);
        w.assert_nothing_created();
        assert_eq!(w.production(), before);
    }
    let w = World::new();
    w.run_with(w.request(), Some(true), false)
        .await
        .expect("consent given at the prompt");
}

#[tokio::test]
async fn a_failed_copy_revokes_access_and_tears_down_keeping_committed_chunks() {
    let mut w = World::new();
    w.db.fail_insert_at = Some(8);
    let failure = w.run().await.unwrap_err();
    assert!(failure.error.to_string().contains("injected failure"));
    assert!(failure.resources_left.is_empty(), "{:?}", failure.resources_left);
    assert_eq!(w.rds.ids(), vec!["prod-db".to_string()]);
    assert!(w.ec2.group_ids().is_empty());
    // Chunks [1] (the first reads one row, before row sizes are known), [2,3,4] and [5,6,7]
    // were committed before the failure: rows 2, 4 and 6 are back, 8 is not.
    let p = w.production();
    assert!(p.contains_key(&2) && p.contains_key(&4) && p.contains_key(&6) && !p.contains_key(&8));
    assert_eq!(
        failure.state.copy.last_key,
        Some(vec![crate::rowcodec::StoredValue::Int(7)])
    );
    let copy = failure.state.step(Step::Copy).unwrap();
    assert_eq!(copy.status, StepStatus::Failed);
    assert_eq!(failure.state.outcome, Outcome::Failed);
}

#[tokio::test]
async fn an_instance_without_our_tag_is_never_touched() {
    let w = World {
        rds: FakeRds {
            drop_tags: true,
            ..FakeRds::with_source()
        },
        ..World::new()
    };
    let failure = w.run().await.unwrap_err();
    assert!(matches!(failure.error, Error::NotOurs { .. }), "{}", failure.error);
    assert!(
        !w.rds
            .calls()
            .iter()
            .any(|c| c.starts_with("delete") || c.starts_with("set-groups")),
        "{:?}",
        w.rds.calls()
    );
    // Held, and said so: the group (ours, empty) and the instance the tool refuses to delete.
    assert_eq!(failure.resources_left.len(), 2, "{:?}", failure.resources_left);
    assert!(!failure.confirmed_clean);
}

#[tokio::test]
async fn creates_whose_answers_were_lost_are_adopted_once_each() {
    let w = World::new();
    *w.rds.lose_restore_answer.lock().unwrap() = true;
    *w.ec2.lose_create_answer.lock().unwrap() = true;
    let state = w.run().await.unwrap();
    let restores = w.rds.calls().iter().filter(|c| c.starts_with("restore")).count();
    assert_eq!(restores, 1, "{:?}", w.rds.calls());
    let creates = w.ec2.calls().iter().filter(|c| c.starts_with("create")).count();
    assert_eq!(creates, 1, "{:?}", w.ec2.calls());
    assert!(state.resources.restored_instance_gone && state.resources.security_group_deleted);
    assert_eq!(w.rds.ids(), ["prod-db"]);
    assert!(w.ec2.group_ids().is_empty());
    let restore = state.step(Step::Restore).unwrap().note.clone().unwrap();
    assert!(restore.contains("adopted after a lost answer"), "{restore}");
}

#[tokio::test]
async fn a_group_of_the_same_name_from_another_run_is_refused_and_left_alone() {
    let w = World::new();
    let req = w.request();
    let plan = Plan::new(&req, "20260101t000000-abcd".into(), Utc::now()).unwrap();
    w.ec2.groups.lock().unwrap().insert(
        "sg-other".into(),
        FakeGroup {
            vpc: "vpc-1".into(),
            name: plan.security_group_name.clone(),
            tags: vec![(TAG_RUN_ID.into(), "someone-else".into())],
            rules: vec![],
        },
    );
    let failure = w.run_with(req, None, true).await.unwrap_err();
    assert!(matches!(failure.error, Error::NotOurs { .. }), "{}", failure.error);
    assert_eq!(w.ec2.group_ids(), ["sg-other"], "the other group is untouched");
    assert!(
        !w.rds.calls().iter().any(|c| c.starts_with("restore")),
        "no restore without the copy's own group: {:?}",
        w.rds.calls()
    );
}

#[tokio::test]
async fn a_member_of_an_aurora_cluster_is_restored_as_a_new_cluster_with_one_writer() {
    let mut w = World::new();
    w.rds = FakeRds::with_aurora();
    let mut req = w.request();
    req.instance = "prod-aurora-writer".into();
    let state = w.run_with(req, None, true).await.expect("run succeeds");
    let plan = state.plan.clone();
    let cluster = plan.cluster.as_ref().expect("the plan says the copy is a cluster");
    assert_eq!((cluster.source.as_str(), cluster.multi_az), ("prod-aurora", false));
    assert_eq!(cluster.writer_class.as_deref(), Some("db.r6g.large"));
    assert_eq!(
        cluster.backtrack_window,
        Some(3600),
        "the source's backtrack is noticed"
    );
    let calls = w.rds.calls();
    let target = &plan.target_instance;
    let expected = [
        format!("restore-cluster {target}"),
        format!("create-instance {} in {target}", cluster.writer),
        format!("delete {}", cluster.writer),
        format!("delete-cluster {target}"),
    ];
    let mut at = 0;
    for e in &expected {
        let found = calls[at..].iter().position(|c| c.starts_with(e.as_str()));
        assert!(found.is_some(), "{e} after call {at} in {calls:?}");
        at += found.unwrap() + 1;
    }
    assert!(
        !calls.iter().any(|c| c.starts_with("restore ")),
        "no instance restore for a cluster: {calls:?}"
    );
    assert!(w.rds.cluster(target).is_none(), "the restored cluster is deleted");
    assert!(w.rds.instance(&cluster.writer).is_none(), "its writer is deleted");
    assert!(w.rds.cluster("prod-aurora").is_some_and(|c| c.members.len() == 1));
    assert!(w.ec2.group_ids().is_empty(), "the security group is deleted");
    assert_eq!(w.production().len(), 12, "the missing rows came back");
    assert!(state.resources.held().is_empty());
}

#[tokio::test]
async fn cluster_and_instance_naming_different_things_is_refused_before_anything_exists() {
    let mut w = World::new();
    w.rds = FakeRds::with_aurora();
    let mut req = w.request();
    req.instance = "prod-db".into();
    req.cluster = Some("prod-aurora".into());
    let failure = w.run_with(req, None, true).await.unwrap_err();
    let message = failure.error.to_string();
    assert!(message.contains("name different things"), "{message}");
    assert!(failure.error.is_validation());
    let mut req = w.request();
    req.cluster = Some("no-such-cluster".into());
    req.instance = String::new();
    let failure = w.run_with(req, None, true).await.unwrap_err();
    assert!(
        matches!(failure.error, Error::ClusterNotFound { .. }),
        "{}",
        failure.error
    );
    assert!(
        w.rds.calls().iter().all(|c| !c.starts_with("restore")),
        "{:?}",
        w.rds.calls()
    );
    assert!(w.ec2.group_ids().is_empty());
}
