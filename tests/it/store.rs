//! One store suite, run against SQLite and PostgreSQL. The PostgreSQL half runs when
//! LIFEBOAT_TEST_POSTGRES_URL is set (each test gets a fresh database); with
//! LIFEBOAT_REQUIRE_SERVICES=1 a missing server fails instead of skipping.

use crate::common;

use std::time::Duration;

use lifeboat::bus::Envelope;
use lifeboat::domain::{
    self as ids, Acquire, Actor, Alert, AlertBrief, AlertDecision, Audit, Change, Check,
    LeaseRequest, Offer, OfferMode, OfferState, OutcomeKind, Platform, Report, Revocation, Run,
    RunAudit, RunId, RunState, Source, StageRun, StageState, Status,
};
use lifeboat::semaphore::Semaphore;
use lifeboat::store::{
    AlertFilter, Batch, CardClaim, CreateError, Filing, Origin, Refusal, Release, RunFilter,
    RunWrite, Session, Store,
};
use lifeboat::workflow::{Action, PlannedStage, RetryPolicy, VersionPart, Versions};

/// A fresh, empty database; dropped (PostgreSQL) or deleted with its directory (SQLite).
struct Fresh {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database to drop afterwards.
    pg: Option<String>,
}

impl Fresh {
    async fn cleanup(self) {
        self.store.close().await;
        if let Some(name) = self.pg {
            common::drop_postgres(&name).await;
        }
    }
}

async fn sqlite() -> Option<Fresh> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .expect("sqlite");
    Some(Fresh {
        store,
        _dir: Some(dir),
        pg: None,
    })
}

async fn postgres() -> Option<Fresh> {
    let (url, name) = common::fresh_postgres().await?;
    let store = Store::connect(&url).await.expect("postgres store");
    Some(Fresh {
        store,
        _dir: None,
        pg: Some(name),
    })
}

fn plan() -> Vec<PlannedStage> {
    ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, n)| PlannedStage {
            name: n.to_string(),
            agent: "exec".into(),
            after: if i == 0 { vec![] } else { vec![0] },
            spec: serde_json::json!({ "command": ["true"] }),
            resource: Some(format!("res-{n}")),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
            approval: i == 1,
            approvals: 1,
            budgets: Vec::new(),
        })
        .collect()
}

fn new_run(group: &str) -> Run {
    let plan = plan();
    let mut params = lifeboat::workflow::Params::new();
    params.insert("to".into(), serde_json::json!("region-a"));
    Run {
        id: RunId::new(),
        group: group.into(),
        action: Action::Failover,
        workflow: "wf".into(),
        dry_run: false,
        reason: Some("because".into()),
        requested_by: Actor::Api("ops".into()),
        params,
        overrides: None,
        state: RunState::Pending,
        created_at: 1_700_000_000_000,
        started_at: None,
        finished_at: None,
        message: None,
        stages: vec![StageRun::default(); plan.len()],
        plan,
        version: 0,
    }
}

fn audit(kind: &str) -> Audit {
    Audit {
        at: 1,
        actor: Actor::Api("ops".into()),
        kind: kind.parse().expect("an event kind"),
        stage: None,
        attempt: None,
        message: None,
    }
}

async fn run_round_trips(s: Store) {
    let run = new_run("g");
    s.insert_run(&run, &audit("run.created"))
        .await
        .expect("insert");
    let loaded = s.load_run(run.id).await.expect("load").expect("found");
    assert_eq!(loaded, run);
    assert_eq!(s.active_runs().await.expect("active").len(), 1);
    assert_eq!(
        s.audit(run.id).await.expect("audit")[0].kind.to_string(),
        "run.created"
    );
    assert!(s.load_run(RunId::new()).await.expect("load").is_none());
}

async fn one_active_run_per_group_and_action(s: Store) {
    let first = new_run("g");
    s.insert_run(&first, &audit("run.created"))
        .await
        .expect("insert");
    let second = new_run("g");
    match s.insert_run(&second, &audit("run.created")).await {
        Err(CreateError::Busy { active, .. }) => assert_eq!(active, first.id),
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(
        s.load_run(second.id).await.expect("load").is_none(),
        "nothing of the refused run was written"
    );
    let mut dry = new_run("g");
    dry.dry_run = true;
    s.insert_run(&dry, &audit("run.created"))
        .await
        .expect("a dry run does not contend");

    let mut done = first.clone();
    done.state = RunState::Succeeded;
    done.finished_at = Some(2);
    done.version = 1;
    s.commit(&Batch {
        runs: vec![RunWrite {
            run: &done,
            expected_version: 0,
            stages: &[],
        }],
        ..Batch::default()
    })
    .await
    .expect("finish");
    s.insert_run(&second, &audit("run.created"))
        .await
        .expect("the group is free again");
}

async fn a_stale_write_is_refused_whole(s: Store) {
    let run = new_run("g");
    s.insert_run(&run, &audit("run.created"))
        .await
        .expect("insert");
    let mut next = run.clone();
    next.state = RunState::Running;
    next.stages[0].state = StageState::Dispatched;
    next.stages[0].attempts = 1;
    next.version = 1;
    let batch = Batch {
        runs: vec![RunWrite {
            run: &next,
            expected_version: 0,
            stages: &[0],
        }],
        audit: vec![RunAudit {
            run: run.id,
            audit: audit("run.running"),
        }],
        ..Batch::default()
    };
    s.commit(&batch).await.expect("first write");
    let stale = Batch {
        runs: vec![RunWrite {
            run: &next,
            expected_version: 0,
            stages: &[0],
        }],
        audit: vec![RunAudit {
            run: run.id,
            audit: audit("run.failed"),
        }],
        outbox: vec![Envelope {
            topic: "t".into(),
            key: "k".into(),
            payload: "p".into(),
        }],
        ..Batch::default()
    };
    let refused = s.commit(&stale).await.expect_err("a stale write");
    assert!(
        matches!(refused, lifeboat::store::StoreError::Conflict(_)),
        "a stale write is a conflict, not an outage: {refused:?}"
    );
    let kinds: Vec<String> = s
        .audit(run.id)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.kind.to_string())
        .collect();
    assert_eq!(kinds, vec!["run.created", "run.running"]);
    assert!(s.pending_outbox(i64::MAX).await.expect("outbox").is_empty());
    let loaded = s.load_run(run.id).await.expect("load").expect("run");
    assert_eq!(loaded.stages[0].state, StageState::Dispatched);
    assert_eq!(loaded.version, 1);
}

async fn outbox_keeps_order_until_deleted(s: Store) {
    let msgs: Vec<Envelope> = (0..3)
        .map(|i| Envelope {
            topic: "lifeboat.events".into(),
            key: "r".into(),
            payload: format!("m{i}"),
        })
        .collect();
    let ids = s
        .commit(&Batch {
            outbox: msgs,
            ..Batch::default()
        })
        .await
        .expect("commit");
    let pending = s.pending_outbox(i64::MAX).await.expect("pending");
    assert_eq!(
        pending
            .iter()
            .map(|r| r.message.payload.as_str())
            .collect::<Vec<_>>(),
        ["m0", "m1", "m2"]
    );
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    s.delete_outbox(&ids[..2]).await.expect("delete");
    s.commit(&Batch {
        delivered: &ids[2..],
        ..Batch::default()
    })
    .await
    .expect("delete in a batch");
    assert!(
        s.pending_outbox(i64::MAX)
            .await
            .expect("pending")
            .is_empty()
    );
}

fn lease(run: RunId, stage: &str, attempt: u32, resource: &str, holder: &str) -> LeaseRequest {
    LeaseRequest {
        resource: resource.into(),
        request_id: ids::request_id(run, stage, attempt),
        run_id: run,
        stage: stage.into(),
        attempt,
        holder: holder.into(),
        budgets: Vec::new(),
    }
}

/// Leases claimed and released many at once answer each request as one at a time would.
async fn leases_taken_and_given_back_together_answer_each_request(s: Store) {
    let sem = Semaphore::new(s.clone(), None);
    let (done, held, fresh) = (RunId::new(), RunId::new(), RunId::new());
    let ended = lease(done, "a", 1, "database:ended", "agent:1");
    assert_eq!(
        sem.acquire(&ended).await.expect("acquire"),
        Acquire::Acquired
    );
    let released = |request_id, holder| Release {
        request_id,
        holder,
        kind: OutcomeKind::Succeeded,
        retryable: false,
        message: None,
        report: None,
    };
    assert!(
        sem.release(released(&ended.request_id, "agent:1"))
            .await
            .expect("release")
            .is_some()
    );
    let elsewhere = lease(held, "a", 1, "database:held", "agent:2");
    assert_eq!(
        sem.acquire(&elsewhere).await.expect("acquire"),
        Acquire::Acquired
    );

    let new = lease(fresh, "a", 1, "database:new", "agent:1");
    let rival = lease(RunId::new(), "a", 1, "database:held", "agent:1");
    let asked = [
        new.clone(),
        ended.clone(),
        lease(held, "a", 1, "database:held", "agent:1"),
        rival.clone(),
        new.clone(),
    ];
    let answers: Vec<Acquire> = sem
        .acquire_all(&asked)
        .await
        .into_iter()
        .map(|a| a.expect("answer"))
        .collect();
    assert_eq!(
        answers,
        vec![
            Acquire::Acquired,
            Acquire::Ended(OutcomeKind::Succeeded),
            Acquire::InProgress {
                holder: "agent:2".into()
            },
            Acquire::Busy {
                request_id: elsewhere.request_id.clone()
            },
            // The same request named twice is taken once.
            Acquire::InProgress {
                holder: "agent:1".into()
            },
        ]
    );
    // Nothing stays held for the request that had ended: its resource is free.
    let next = lease(RunId::new(), "a", 1, "database:ended", "agent:3");
    assert_eq!(sem.acquire(&next).await.expect("next"), Acquire::Acquired);

    // Released together: each lease by its own holder only, and once.
    let out = s
        .release_leases(&[
            released(&new.request_id, "agent:1"),
            released(&elsewhere.request_id, "agent:1"),
            released(&new.request_id, "agent:1"),
            released(&elsewhere.request_id, "agent:2"),
        ])
        .await
        .expect("release together");
    let ended_ids: Vec<Option<&str>> = out
        .iter()
        .map(|o| o.as_ref().map(|o| o.request_id.as_str()))
        .collect();
    assert_eq!(
        ended_ids,
        vec![
            Some(new.request_id.as_str()),
            None,
            None,
            Some(elsewhere.request_id.as_str()),
        ]
    );
    let outcomes = sem
        .outcomes(&[new.request_id.as_str(), elsewhere.request_id.as_str()])
        .await
        .expect("outcomes");
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|o| o.kind == OutcomeKind::Succeeded));
}

async fn leases_are_exclusive_and_remember_how_they_ended(s: Store) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sem = Semaphore::new(
        s.clone(),
        Some(std::sync::Arc::new(move |o| drop(tx.send(o)))),
    );
    let run = RunId::new();
    let report = Report {
        checks: vec![Check {
            name: "replica lag".into(),
            ok: true,
            detail: "0.3 s ≤ 10 s".into(),
        }],
        changes: vec![Change {
            target: "x".into(),
            from: "replica".into(),
            to: "writer".into(),
        }],
        lag_s: Some(0.3),
        budget_wait_s: None,
        rpo: Some(lifeboat::domain::RecoveryPoint {
            seconds: Some(42.5),
            bytes: Some(18_000_000),
            basis: lifeboat::domain::Basis::Measured,
            limit: Some(5.0),
        }),
    };
    let a1 = lease(run, "a", 1, "database:x", "agent:1");
    let before = lifeboat::clock::Clock::system().now_ms();
    assert_eq!(sem.acquire(&a1).await.expect("acquire"), Acquire::Acquired);
    let after = lifeboat::clock::Clock::system().now_ms();
    assert!(
        matches!(sem.acquire(&a1).await.expect("again"), Acquire::InProgress { holder } if holder == "agent:1")
    );
    let other = lease(RunId::new(), "a", 1, "database:x", "agent:2");
    assert_eq!(
        sem.acquire(&other).await.expect("busy"),
        Acquire::Busy {
            request_id: a1.request_id.clone()
        }
    );
    assert!(
        sem.heartbeat(&a1.request_id, "agent:1")
            .await
            .expect("beat")
    );
    assert!(
        !sem.heartbeat(&a1.request_id, "agent:2")
            .await
            .expect("not the holder")
    );

    assert!(
        sem.release(Release {
            request_id: &a1.request_id,
            holder: "agent:2",
            kind: OutcomeKind::Succeeded,
            retryable: false,
            message: None,
            report: None,
        })
        .await
        .expect("wrong holder")
        .is_none()
    );
    let out = sem
        .release(Release {
            request_id: &a1.request_id,
            holder: "agent:1",
            kind: OutcomeKind::Succeeded,
            retryable: false,
            message: Some("done".into()),
            report: Some(report.clone()),
        })
        .await
        .expect("release");
    assert_eq!(out.as_ref().map(|o| o.kind), Some(OutcomeKind::Succeeded));
    let stored = sem.outcomes(&[&a1.request_id]).await.expect("outcomes");
    assert_eq!(
        stored.first().and_then(|o| o.report.as_ref()),
        Some(&report),
        "the report is kept with the outcome"
    );
    // When the holder took the lease: the start of a stage its agent never said began.
    for o in [out.as_ref(), stored.first()] {
        let taken = o.and_then(|o| o.acquired_at).expect("when it was taken");
        assert!(
            (before..=after).contains(&taken),
            "{taken} in {before}..={after}"
        );
    }
    assert_eq!(
        rx.recv().await.map(|o| o.request_id),
        Some(a1.request_id.clone()),
        "the orchestrator is told"
    );
    // A redelivered request does nothing; the resource is free for others.
    assert_eq!(
        sem.acquire(&a1).await.expect("redelivery"),
        Acquire::Ended(OutcomeKind::Succeeded)
    );
    assert_eq!(sem.acquire(&other).await.expect("free"), Acquire::Acquired);

    // A restarted process expires its own old leases at once.
    let expired = sem.expire(Some("agent:2")).await.expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].kind, expired[0].retryable),
        (OutcomeKind::Expired, true)
    );
    assert!(
        !sem.heartbeat(&other.request_id, "agent:2")
            .await
            .expect("gone")
    );
    let recorded = sem.outcomes_for(run).await.expect("outcomes");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].message.as_deref(), Some("done"));

    // Revoking, even before anyone took the lease, keeps a late delivery from starting.
    let b1 = lease(run, "b", 1, "dial:y", "agent:1");
    s.commit(&Batch {
        revocations: vec![Revocation {
            request_id: b1.request_id.clone(),
            run_id: run,
            stage: "b".into(),
            attempt: 1,
            reason: "timed out".into(),
        }],
        ..Batch::default()
    })
    .await
    .expect("revoke");
    assert_eq!(
        sem.acquire(&b1).await.expect("late"),
        Acquire::Ended(OutcomeKind::Revoked)
    );
    // A batch of releases is looked up at once; requests that have not ended are absent.
    let mut found: Vec<(String, OutcomeKind)> = sem
        .outcomes(&[
            &a1.request_id,
            &b1.request_id,
            &other.request_id,
            "nobody/1",
        ])
        .await
        .expect("outcomes")
        .into_iter()
        .map(|o| (o.request_id, o.kind))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (a1.request_id.clone(), OutcomeKind::Succeeded),
        (b1.request_id.clone(), OutcomeKind::Revoked),
        (other.request_id.clone(), OutcomeKind::Expired),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(found, expected);
    // Nothing expires before its time.
    assert!(sem.expire(None).await.expect("sweep").is_empty());
}

async fn counts_by_state(s: Store) {
    s.insert_run(&new_run("g1"), &audit("run.created"))
        .await
        .expect("insert");
    s.insert_run(&new_run("g2"), &audit("run.created"))
        .await
        .expect("insert");
    let (runs, stages) = s.state_counts().await.expect("counts");
    assert_eq!(runs, vec![("pending".to_string(), 2)]);
    assert_eq!(stages, vec![("pending".to_string(), 4)]);
    assert!(s.ping().await);
}

async fn a_card_is_posted_by_one_claimer(s: Store) {
    let run = RunId::new();
    let slack = Platform::from_static("slack");
    let hour = 3_600_000;
    assert_eq!(
        s.claim_card(slack, run, "replica-a", hour)
            .await
            .expect("claim"),
        CardClaim::Won { channel: None }
    );
    // Another replica waits while the claim is fresh; the claimer itself may carry on.
    assert_eq!(
        s.claim_card(slack, run, "replica-b", hour)
            .await
            .expect("claim"),
        CardClaim::Busy
    );
    assert_eq!(
        s.claim_card(slack, run, "replica-a", hour)
            .await
            .expect("claim"),
        CardClaim::Won { channel: None }
    );
    // The other platform's card is its own.
    assert_eq!(
        s.claim_card(Platform::from_static("discord"), run, "replica-b", hour)
            .await
            .expect("claim"),
        CardClaim::Won { channel: None }
    );

    // replica-a opened a channel and died before posting: a stale claim is taken over,
    // and the taker posts into the channel already opened.
    s.set_card_channel(slack, run, "C1").await.expect("channel");
    assert_eq!(
        s.claim_card(slack, run, "replica-b", 0)
            .await
            .expect("take over"),
        CardClaim::Won {
            channel: Some("C1".into())
        }
    );
    assert_eq!(
        s.claim_card(slack, run, "replica-a", hour)
            .await
            .expect("claim"),
        CardClaim::Busy
    );

    s.set_card_shown(slack, run, Some("1700.01"), "running", false)
        .await
        .expect("shown");
    assert_eq!(
        s.unsettled_cards(slack).await.expect("unsettled"),
        vec![run]
    );
    let CardClaim::Posted(card) = s
        .claim_card(slack, run, "replica-a", 0)
        .await
        .expect("claim")
    else {
        panic!("a posted card is edited, not posted again");
    };
    assert_eq!(card.channel.as_deref(), Some("C1"));
    assert_eq!(card.message.as_deref(), Some("1700.01"));
    assert_eq!(card.claimed_by, "replica-b");

    // A later edit keeps the message it does not name.
    s.set_card_shown(slack, run, None, "succeeded", true)
        .await
        .expect("shown");
    let card = s.card(slack, run).await.expect("card").expect("a card");
    assert_eq!(card.message.as_deref(), Some("1700.01"));
    assert_eq!(card.shown.as_deref(), Some("succeeded"));
    assert!(card.settled);
    assert!(
        s.unsettled_cards(slack)
            .await
            .expect("unsettled")
            .is_empty()
    );
    assert_eq!(
        s.unsettled_cards(Platform::from_static("discord"))
            .await
            .expect("unsettled"),
        vec![run]
    );
}

async fn a_post_is_made_once_unless_given_back(s: Store) {
    let run = RunId::new();
    let key = format!("{run}:stage.succeeded:a:1");
    assert!(
        s.claim_post(Platform::from_static("slack"), &key, run)
            .await
            .expect("claim")
    );
    assert!(
        !s.claim_post(Platform::from_static("slack"), &key, run)
            .await
            .expect("again")
    );
    assert!(
        s.claim_post(Platform::from_static("discord"), &key, run)
            .await
            .expect("discord")
    );
    s.release_post(Platform::from_static("slack"), &key)
        .await
        .expect("release");
    assert!(
        s.claim_post(Platform::from_static("slack"), &key, run)
            .await
            .expect("retry")
    );
}

async fn origins_refusals_and_held_leases(s: Store) {
    let run = RunId::new();
    assert_eq!(
        s.origin(run, Platform::from_static("slack"))
            .await
            .expect("origin"),
        None
    );
    let asked = Origin {
        channel: "C-ops".into(),
        user: "U1".into(),
    };
    s.record_origin(run, Platform::from_static("slack"), &asked)
        .await
        .expect("record");
    // The first record stands: a redelivered command does not move it.
    let again = Origin {
        channel: "C-other".into(),
        user: "U2".into(),
    };
    s.record_origin(run, Platform::from_static("slack"), &again)
        .await
        .expect("record");
    assert_eq!(
        s.origin(run, Platform::from_static("slack"))
            .await
            .expect("origin"),
        Some(asked)
    );
    assert_eq!(
        s.origin(run, Platform::from_static("discord"))
            .await
            .expect("origin"),
        None
    );

    let who = Actor::Chat {
        platform: Platform::from_static("slack"),
        user: "U9".into(),
    };
    for (request, reason) in [
        ("failover petstore", "not in allow"),
        ("approve", "not an owner"),
    ] {
        s.record_refusal(&Refusal {
            actor: &who,
            group: Some("petstore"),
            run: (request == "approve").then_some(run),
            request,
            reason,
        })
        .await
        .expect("refusal");
    }
    let refused = s.refusals(10).await.expect("refusals");
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0].request, "approve");
    assert_eq!(refused[0].run, Some(run.to_string()));
    assert_eq!(refused[0].actor, who.to_string());
    assert_eq!(refused[1].reason, "not in allow");
    assert_eq!(refused[1].group.as_deref(), Some("petstore"));
    assert_eq!(refused[1].run, None);
    assert_eq!(s.refusals(1).await.expect("refusals").len(), 1);

    let sem = Semaphore::new(s.clone(), None);
    assert!(s.held_leases().await.expect("held").is_empty());
    let held = lease(run, "db", 1, "database:orders", "agent:1");
    assert_eq!(
        sem.acquire(&held).await.expect("acquire"),
        Acquire::Acquired
    );
    let leases = s.held_leases().await.expect("held");
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].resource, "database:orders");
    assert_eq!(leases[0].run_id, run);
    assert_eq!(leases[0].stage, "db");
    assert_eq!(leases[0].holder, "agent:1");
}

fn alert(fp: &str, status: Status) -> Alert {
    Alert {
        source: Source::from_static("alertmanager"),
        dedupe_key: format!("{fp}:{}", status.as_str()),
        fingerprint: fp.into(),
        status,
        name: "RegionDown".into(),
        labels: [("region".to_string(), "b".to_string())].into(),
        summary: Some("down".into()),
        link: None,
        incident: None,
    }
}

fn filing(a: &Alert, decision: AlertDecision, offer: Option<RunId>) -> Filing<'_> {
    Filing {
        alert: a,
        route: Some("r".into()),
        group: Some("g1".into()),
        action: Some(Action::Failover),
        decision,
        detail: None,
        offer,
        run: None,
    }
}

async fn alerts_are_filed_once_and_offers_move_once(s: Store) {
    let first = alert("f1", Status::Firing);
    let offer = Offer {
        id: RunId::new(),
        route: "r".into(),
        group: "g1".into(),
        action: Action::Failover,
        mode: OfferMode::Confirm,
        state: OfferState::Open,
        opened_at: 1,
        deadline: None,
        decided_by: None,
        decided_at: None,
        run_id: None,
        message: None,
        alert: AlertBrief::from(&first),
    };
    let mut tx = s.alert_tx().await.expect("tx");
    assert_eq!(tx.previous(&first).await.expect("previous"), None);
    assert!(tx.open_offer(&offer).await.expect("open"));
    let filed = tx
        .insert(&[filing(&first, AlertDecision::Offered, Some(offer.id))])
        .await
        .expect("insert");
    assert_eq!(
        filed,
        vec![("alertmanager".to_string(), "f1:firing".to_string())]
    );
    // One live offer per group and action.
    let rival = Offer {
        id: RunId::new(),
        ..offer.clone()
    };
    assert!(!tx.open_offer(&rival).await.expect("rival"));
    assert_eq!(
        tx.live_offer("g1", Action::Failover).await.expect("live"),
        Some(offer.id)
    );
    // Filed again (and twice in one statement): only the new one goes in.
    let second = alert("f2", Status::Firing);
    let filed = tx
        .insert(&[
            filing(&first, AlertDecision::Offered, None),
            filing(&second, AlertDecision::Joined, Some(offer.id)),
            filing(&second, AlertDecision::Joined, Some(offer.id)),
        ])
        .await
        .expect("again");
    assert_eq!(
        filed,
        vec![("alertmanager".to_string(), "f2:firing".to_string())]
    );
    let (id, decision) = tx.previous(&first).await.expect("previous").expect("filed");
    assert_eq!(decision, AlertDecision::Offered);
    let known = tx
        .filed(&[&first, &second, &alert("f9", Status::Firing)])
        .await
        .expect("filed");
    assert_eq!(known.len(), 2);
    assert_eq!(
        known[&("alertmanager".to_string(), "f1:firing".to_string())],
        (id, AlertDecision::Offered)
    );
    tx.add_repeats(&[(id, 1)].into()).await.expect("repeat");
    tx.commit().await.expect("commit");

    // Resolving f1 leaves f2 firing; resolving f2 too leaves none.
    let mut tx = s.alert_tx().await.expect("tx");
    let resolved = alert("f1", Status::Resolved);
    assert_eq!(
        tx.offers_firing(&resolved).await.expect("firing"),
        vec![offer.id]
    );
    assert_eq!(
        tx.still_firing_besides(offer.id, &resolved)
            .await
            .expect("left"),
        1
    );
    assert_eq!(
        tx.insert(&[filing(&resolved, AlertDecision::Resolved, Some(offer.id))])
            .await
            .expect("insert")
            .len(),
        1
    );
    let resolved2 = alert("f2", Status::Resolved);
    assert_eq!(
        tx.still_firing_besides(offer.id, &resolved2)
            .await
            .expect("left"),
        0
    );
    tx.commit().await.expect("commit");

    // A person's word moves an open offer once.
    let who = Actor::Api("ops".into());
    let moved = s
        .decide_offer(offer.id, OfferState::Starting, &who)
        .await
        .expect("decide")
        .expect("it was open");
    assert_eq!(moved.state, OfferState::Starting);
    assert_eq!(moved.decided_by, Some(who.clone()));
    assert!(
        s.decide_offer(offer.id, OfferState::Vetoed, &who)
            .await
            .expect("decide")
            .is_none()
    );
    assert_eq!(
        s.live_offers().await.expect("live").len(),
        1,
        "starting is still live"
    );
    let run = RunId::new();
    assert!(
        s.finish_offer(offer.id, OfferState::Started, Some(run), None)
            .await
            .expect("finish")
    );
    assert!(
        !s.finish_offer(offer.id, OfferState::Failed, None, Some("late"))
            .await
            .expect("finish")
    );
    assert!(s.live_offers().await.expect("live").is_empty());
    let ended = s.offer(offer.id).await.expect("offer").expect("stored");
    assert_eq!(ended.state, OfferState::Started);
    assert_eq!(ended.run_id, Some(run));
    assert_eq!(ended.alert.headline, "RegionDown (region=b)");
    assert_eq!(s.count_alerts(run).await.expect("count"), (3, 1));
    let tally = s.alert_tally(run).await.expect("tally").expect("alerts");
    assert_eq!(tally.first.summary.as_deref(), Some("down"));
    assert_eq!(tally.alerts, 3);
    let listed = s
        .alerts(&AlertFilter {
            run: Some(run),
            limit: 2,
            ..AlertFilter::default()
        })
        .await
        .expect("alerts");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].status, "resolved");
    assert_eq!(listed[1].decision.as_deref(), Some("joined"));

    // A cooldown counts from the last start.
    let mut tx = s.alert_tx().await.expect("tx");
    assert!(tx.last_start("r", "g1").await.expect("last").is_some());
    assert!(tx.last_start("r", "g2").await.expect("last").is_none());
    tx.commit().await.expect("commit");
}

/// The whole engine on PostgreSQL: a run with a retry, through the real app.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL"]
async fn a_run_completes_on_postgres() {
    let Some((url, name)) = common::fresh_postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = "name: shop\nstages:\n  a:\n    agent: database\n    spec: { cluster: c, role: writer, fail_attempts: 1, duration: 10ms }\n    retry: { max_attempts: 2, initial_backoff: 10ms, max_backoff: 10ms }\n  b: { agent: noop }\n";
    let settings = lifeboat::config::Settings::embedded(
        url,
        common::write_workflows(
            dir.path(),
            &[("shop.yaml", wf), ("groups.yaml", common::GROUPS)],
        ),
    );
    let app = lifeboat::app::App::start(&settings, lifeboat::app::Options::default())
        .await
        .expect("app on postgres");
    let run = common::start_failover(&app, "shop").await;
    let done = common::finished(&app.store, run.id).await;
    assert_eq!(done.state, RunState::Succeeded);
    assert_eq!(done.stages[0].attempts, 2);
    assert!(
        app.store
            .audit(run.id)
            .await
            .expect("audit")
            .iter()
            .any(|a| a.kind.to_string() == "stage.retrying")
    );
    app.shutdown().await;
    common::drop_postgres(&name).await;
}

async fn a_chat_interaction_is_taken_once(s: Store) {
    assert!(s.first_sight("discord", "1001").await.expect("first"));
    assert!(
        !s.first_sight("discord", "1001").await.expect("again"),
        "a replay"
    );
    assert!(
        s.first_sight("slack", "1001")
            .await
            .expect("another platform's")
    );
    assert!(s.first_sight("discord", "1002").await.expect("another id"));
}

async fn console_sessions_expire_and_close(s: Store) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .expect("a clock after 1970");
    let session = |expires_at| Session {
        token_name: "ops".into(),
        csrf: "form-token".into(),
        expires_at,
    };
    s.open_session("live", &session(now + 60_000))
        .await
        .expect("a session");
    s.open_session("gone", &session(now - 1))
        .await
        .expect("an expired one");
    assert_eq!(
        s.session("live").await.expect("read"),
        Some(session(now + 60_000))
    );
    assert_eq!(s.session("gone").await.expect("read"), None, "expired");
    assert_eq!(s.session("never").await.expect("read"), None);
    s.close_session("live").await.expect("closed");
    assert_eq!(s.session("live").await.expect("read"), None, "signed out");
}

async fn runs_are_listed_by_filter_and_cursor(s: Store) {
    let mut ids = Vec::new();
    // One run per group and action: each is active as far as the insert knows.
    for (group, action, state) in [
        ("a", Action::Failover, RunState::Succeeded),
        ("b", Action::Failover, RunState::Failed),
        ("a", Action::Drill, RunState::Failed),
        ("a", Action::Failback, RunState::Succeeded),
    ] {
        let mut run = new_run(group);
        run.action = action;
        run.state = state;
        run.created_at = 1_000 * (ids.len() as i64 + 1);
        s.insert_run(&run, &audit("run.created"))
            .await
            .expect("insert");
        ids.push(run.id);
    }
    let list = |filter: RunFilter| {
        let s = s.clone();
        async move {
            s.find_runs(&filter)
                .await
                .expect("a list")
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let all = RunFilter {
        limit: 50,
        ..RunFilter::default()
    };
    assert_eq!(list(all.clone()).await, [ids[3], ids[2], ids[1], ids[0]]);
    let failed_in_a = RunFilter {
        group: Some("a".into()),
        state: Some(RunState::Failed),
        ..all.clone()
    };
    assert_eq!(list(failed_in_a).await, [ids[2]]);
    let succeeded = RunFilter {
        state: Some(RunState::Succeeded),
        ..all.clone()
    };
    assert_eq!(list(succeeded).await, [ids[3], ids[0]]);
    let page = RunFilter {
        limit: 2,
        ..all.clone()
    };
    assert_eq!(list(page.clone()).await, [ids[3], ids[2]]);
    let next = RunFilter {
        before: Some(ids[2]),
        ..page
    };
    assert_eq!(list(next).await, [ids[1], ids[0]]);
    let drills = RunFilter {
        action: Some(Action::Drill),
        ..all.clone()
    };
    assert_eq!(list(drills).await, [ids[2]]);
    let since = RunFilter {
        since: Some(3_000),
        ..all.clone()
    };
    assert_eq!(list(since).await, [ids[3], ids[2]]);
    let reprotects = RunFilter {
        action: Some(Action::Reprotect),
        ..all
    };
    assert!(list(reprotects).await.is_empty());
}

async fn a_run_keeps_its_versions_and_a_change_is_dated_once(s: Store) {
    let versions = Versions {
        workflow: Some("aa".into()),
        templates: "bb".into(),
        targets: "cc".into(),
    };
    let run = new_run("a");
    s.insert_run_versioned(&run, &[audit("run.created")], Some(&versions))
        .await
        .expect("insert");
    assert_eq!(
        s.run_versions(run.id).await.expect("read"),
        Some(versions.clone())
    );
    let older = new_run("b");
    s.insert_run(&older, &audit("run.created"))
        .await
        .expect("insert");
    assert_eq!(s.run_versions(older.id).await.expect("read"), None);

    s.saw_versions("wf", &versions, 10).await.expect("seen");
    s.saw_versions("wf", &versions, 20)
        .await
        .expect("seen again");
    assert_eq!(
        s.first_seen("wf", VersionPart::Workflow, "aa")
            .await
            .expect("read"),
        Some(10),
        "first seen stays the first time"
    );
    assert_eq!(
        s.first_seen("wf", VersionPart::Targets, "aa")
            .await
            .expect("read"),
        None
    );
}

async fn an_evacuation_group_moves_once(s: Store) {
    use lifeboat::domain::EvacuationId;
    use lifeboat::domain::evacuation::{Evacuation, EvacuationGroup, EvacuationState, GroupState};
    use lifeboat::store::GroupMove;
    let group = |name: &str| EvacuationGroup {
        group: name.into(),
        state: GroupState::Waiting,
        run: None,
        note: None,
        updated_at: 1,
    };
    let e = Evacuation {
        id: EvacuationId::new(),
        action: Action::Failover,
        dry_run: false,
        reason: Some("region a".into()),
        requested_by: Actor::Api("ops".into()),
        state: EvacuationState::Going,
        created_at: 1,
        finished_at: None,
        groups: vec![group("db"), group("app")],
    };
    s.insert_evacuation(&e).await.expect("insert");
    assert_eq!(s.evacuation(e.id).await.expect("read"), Some(e.clone()));
    assert_eq!(s.going_evacuations().await.expect("going"), [e.id]);

    let run = new_run("db");
    let start = GroupMove {
        evacuation: e.id,
        group: "db",
        from: GroupState::Waiting,
        to: GroupState::Started,
        run: Some(run.id),
        note: None,
        at: 2,
    };
    assert!(s.move_evacuation_group(&start).await.expect("move"));
    assert!(
        !s.move_evacuation_group(&start).await.expect("move"),
        "a second replica's same move finds it moved"
    );
    // Chosen, not stored yet; then stored.
    assert_eq!(
        s.evacuation_runs(e.id).await.expect("runs"),
        [("db".to_string(), run.id, None)]
    );
    s.insert_run(&run, &audit("run.created"))
        .await
        .expect("insert");
    assert_eq!(
        s.evacuation_runs(e.id).await.expect("runs"),
        [("db".to_string(), run.id, Some(run.state))]
    );
    assert!(
        s.settle_evacuation(
            e.id,
            EvacuationState::Going,
            EvacuationState::Failed,
            Some(3)
        )
        .await
        .expect("settle")
    );
    assert!(
        !s.settle_evacuation(
            e.id,
            EvacuationState::Going,
            EvacuationState::Succeeded,
            Some(3)
        )
        .await
        .expect("settle")
    );
    let read = s.evacuation(e.id).await.expect("read").expect("stored");
    assert_eq!(read.state, EvacuationState::Failed);
    assert_eq!(read.finished_at, Some(3));
    assert_eq!(read.groups[0].run, Some(run.id));
    assert!(s.going_evacuations().await.expect("going").is_empty());
}

/// A budget of 2 admits two leases at once across takers, and a release or an expiry
/// gives a slot back. Twenty takers at once (separate connections on PostgreSQL)
/// get two slots between them.
async fn a_budget_admits_its_limit_and_gets_its_slots_back(s: Store) {
    use lifeboat::domain::Budget;
    let budget = Budget {
        key: "provider:rds".into(),
        limit: 2,
    };
    let run = RunId::new();
    let take = |stage: &str, holder: &str| {
        let mut l = lease(run, stage, 1, &format!("database:{stage}"), holder);
        l.budgets = vec![budget.clone()];
        l
    };
    let sem = Semaphore::new(s.clone(), None);
    let (a, b, c) = (take("a", "x"), take("b", "x"), take("c", "y"));
    assert_eq!(sem.acquire(&a).await.expect("a"), Acquire::Acquired);
    assert_eq!(sem.acquire(&b).await.expect("b"), Acquire::Acquired);
    assert_eq!(
        sem.acquire(&c).await.expect("c"),
        Acquire::OverBudget {
            budget: "rds".into(),
            held: 2,
            limit: 2
        }
    );
    // Refused for budget, `c` holds neither its lease nor a slot, and is seen waiting.
    assert!(!sem.heartbeat(&c.request_id, "y").await.expect("renew"));
    assert_eq!(
        s.budgets_held().await.expect("held"),
        [("provider:rds".to_string(), 2)]
    );
    assert_eq!(
        s.budget_waiters(&[c.request_id.as_str()])
            .await
            .expect("waiters"),
        [(c.request_id.clone(), "y".to_string())]
    );
    // A release gives a slot back.
    sem.release(Release {
        request_id: &a.request_id,
        holder: "x",
        kind: OutcomeKind::Succeeded,
        retryable: false,
        message: None,
        report: None,
    })
    .await
    .expect("release")
    .expect("held");
    assert_eq!(sem.acquire(&c).await.expect("c again"), Acquire::Acquired);
    assert!(
        s.budget_waiters(&[c.request_id.as_str()])
            .await
            .expect("waiters")
            .is_empty(),
        "taking the lease ends the wait"
    );
    // An expiry gives slots back: every lease of holder `x` (b) and `y` (c).
    sem.expire(Some("x")).await.expect("expire x");
    sem.expire(Some("y")).await.expect("expire y");
    assert!(s.budgets_held().await.expect("held").is_empty());

    // Twenty at once: two get in.
    let many: Vec<LeaseRequest> = (0..20).map(|i| take(&format!("m{i}"), "z")).collect();
    let tries = many.iter().map(|l| {
        let sem = sem.clone();
        let l = l.clone();
        async move { sem.acquire(&l).await.expect("acquire") }
    });
    let got = futures_util::future::join_all(tries).await;
    let admitted = got.iter().filter(|a| **a == Acquire::Acquired).count();
    assert_eq!(admitted, 2, "{got:?}");
    assert!(
        got.iter()
            .all(|a| matches!(a, Acquire::Acquired | Acquire::OverBudget { .. })),
        "{got:?}"
    );
    assert_eq!(
        s.budgets_held().await.expect("held"),
        [("provider:rds".to_string(), 2)]
    );
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(#[tokio::test] async fn $name() {
                let fresh = super::sqlite().await.expect("sqlite");
                super::$name(fresh.store.clone()).await;
                fresh.cleanup().await;
            })*
        }
        mod postgres_store {
            $(#[tokio::test] async fn $name() {
                let Some(fresh) = super::postgres().await else { return };
                super::$name(fresh.store.clone()).await;
                fresh.cleanup().await;
            })*
        }
    };
}

suite!(
    run_round_trips,
    one_active_run_per_group_and_action,
    a_stale_write_is_refused_whole,
    outbox_keeps_order_until_deleted,
    leases_are_exclusive_and_remember_how_they_ended,
    leases_taken_and_given_back_together_answer_each_request,
    counts_by_state,
    a_card_is_posted_by_one_claimer,
    a_post_is_made_once_unless_given_back,
    origins_refusals_and_held_leases,
    alerts_are_filed_once_and_offers_move_once,
    a_chat_interaction_is_taken_once,
    console_sessions_expire_and_close,
    runs_are_listed_by_filter_and_cursor,
    a_run_keeps_its_versions_and_a_change_is_dated_once,
    an_evacuation_group_moves_once,
    a_budget_admits_its_limit_and_gets_its_slots_back,
);
