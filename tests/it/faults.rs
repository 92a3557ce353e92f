//! The production deployment's services fail mid-run and come back: the broker, then
//! PostgreSQL. Each test owns the service it stops (tests/it/common/services.rs); the shared
//! ones serve the other tests meanwhile.

use crate::common;

use std::time::Duration;

use common::Proc;
use common::cluster::{Cluster, attempts, retry_message, running_events};
use common::services::{PrivateBroker, PrivatePostgres};
use lifeboat::domain::{Acquire, LeaseRequest, OutcomeKind};
use lifeboat::semaphore::Semaphore;
use serde_json::Value;

/// Waits until `/readyz` at `base` answers `status` with `part` (`store` or `bus`) as `up`.
async fn readiness(cluster: &Cluster, base: &str, status: u16, part: &str, up: bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((code, body)) = cluster.readyz(base).await
            && code == status
            && body[part] == up
        {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {status} with {part}={up}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One `serve` and one agent, and a run they are working on.
struct Started {
    base: String,
    id: String,
    _processes: (Proc, Proc),
}

/// Starts `serve` and an agent on `cluster` and a run, and returns once `stage` runs.
async fn start(cluster: &mut Cluster, stage: &str) -> Started {
    let (serve, base) = cluster.serve("serve").await;
    let agent = cluster.agent("agent");
    let id = common::create_run_at(&cluster.client, &base, "shop").await;
    cluster
        .wait_run(
            &base,
            &id,
            &format!("`{stage}` to run"),
            Duration::from_secs(60),
            |run| (!running_events(run, stage).is_empty()).then_some(()),
        )
        .await;
    Started {
        base,
        id,
        _processes: (serve, agent),
    }
}

fn assert_each_stage_ran_once(cluster: &Cluster, done: &Value) {
    assert_eq!(done["state"], "succeeded", "{done:#}\n{}", cluster.logs());
    assert_eq!(cluster.ran(), ["one", "slow", "three"], "{done:#}");
    for stage in ["one", "slow", "three"] {
        assert_eq!(attempts(done, stage), 1, "{stage}: {done:#}");
    }
}

/// The broker dies while `slow` runs. The agent finishes and records the outcome in
/// PostgreSQL; `/readyz` says the bus is down; the run completes once the broker is back,
/// with `three` dispatched through it, and no stage runs twice.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_S3_URL and tansu"]
async fn a_run_completes_after_the_broker_is_restarted() {
    let Some(mut broker) = PrivateBroker::start().await else {
        return;
    };
    let Some((db, db_name)) = common::fresh_postgres().await else {
        return;
    };
    let mut cluster = Cluster::new(
        &broker.brokers(),
        &db,
        &[("one", 0), ("slow", 3), ("three", 0)],
    );
    let started = start(&mut cluster, "slow").await;
    let (base, id) = (&started.base, &started.id);

    broker.stop();
    let down = readiness(&cluster, base, 503, "bus", false).await;
    assert_eq!(down["store"], true, "{down}");
    // `slow` ends while the broker is away, and the service learns it from the store
    // alone: the agent's progress message is stuck in its producer.
    let while_down = cluster
        .wait_run(
            base,
            id,
            "`slow` to succeed with the broker down",
            Duration::from_secs(30),
            |run| (common::stage(run, "slow")["state"] == "succeeded").then(|| run.clone()),
        )
        .await;
    assert_eq!(cluster.ran(), ["one", "slow"], "{while_down:#}");
    assert!(while_down["finished_at"].is_null(), "{while_down:#}");
    assert_eq!(
        common::stage(&while_down, "three")["state"],
        "dispatched",
        "{while_down:#}"
    );

    broker.start_again().await;
    readiness(&cluster, base, 200, "bus", true).await;
    let done = cluster.finished(base, id, Duration::from_secs(90)).await;
    assert_each_stage_ran_once(&cluster, &done);
    drop((started, cluster));
    common::drop_postgres(&db_name).await;
}

/// PostgreSQL stops while `slow` runs and stays down longer than a lease's TTL. `/readyz`
/// says the store is down; the agent keeps its outcome until it can record it; when
/// PostgreSQL is back the service recovers without a restart, the lease is not mistaken
/// for a dead agent's, and the run completes with no stage run twice.
#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn a_run_completes_after_postgres_is_restarted() {
    let Some(brokers) = common::kafka_brokers() else {
        return;
    };
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let mut cluster = Cluster::new(
        &brokers,
        &pg.url(),
        &[("one", 0), ("slow", 3), ("three", 0)],
    );
    let started = start(&mut cluster, "slow").await;
    let (base, id) = (&started.base, &started.id);

    // A second holder, alive throughout, whose lease must outlast the outage too: the
    // service's expiry sweep must not take a store outage for the death of every holder.
    let store = lifeboat::store::Store::connect(&pg.url())
        .await
        .expect("connect");
    let bystander = Semaphore::new(store.clone(), None);
    let lease = LeaseRequest {
        resource: "test:bystander".into(),
        request_id: "bystander/1".into(),
        run_id: lifeboat::domain::RunId::new(),
        stage: "bystander".into(),
        attempt: 1,
        holder: "test".into(),
        budgets: Vec::new(),
    };
    assert_eq!(
        bystander.acquire(&lease).await.expect("acquire"),
        Acquire::Acquired
    );

    pg.stop();
    let down = readiness(&cluster, base, 503, "store", false).await;
    assert_eq!(down["bus"], true, "{down}");
    // Past the 15 s lease TTL: without a heartbeat or release, the lease looks dead.
    tokio::time::sleep(Duration::from_secs(18)).await;
    assert!(
        cluster.ran().iter().any(|s| s == "slow"),
        "`slow` ended during the outage"
    );

    pg.start_again();
    readiness(&cluster, base, 200, "store", true).await;
    let done = cluster.finished(base, id, Duration::from_secs(90)).await;
    assert_each_stage_ran_once(&cluster, &done);
    // The holder was alive all along: its lease is still its own once the store is back,
    // though it went unrenewed past its TTL.
    assert!(
        bystander
            .heartbeat("bystander/1", "test")
            .await
            .expect("heartbeat"),
        "a live holder's lease was expired because the store had been down\n{}",
        cluster.logs()
    );
    // The hold ends: with no more heartbeats the lease expires, as a dead holder's must.
    common::until(
        "the bystander's lease to expire",
        Duration::from_secs(45),
        async || {
            let ended = bystander.outcomes(&["bystander/1"]).await.ok()?;
            ended
                .first()
                .filter(|o| o.kind == OutcomeKind::Expired)
                .map(|_| ())
        },
    )
    .await;
    store.close().await;
}

/// Runs one exec stage of `work` seconds on a private PostgreSQL that is stopped for
/// `outage` seconds once the stage runs; returns the finished run. `None`: skipped.
async fn store_outage_during_work(work: u32, outage: u64) -> Option<(Cluster, Value)> {
    let brokers = common::kafka_brokers()?;
    let pg = PrivatePostgres::start()?;
    let mut cluster = Cluster::new(&brokers, &pg.url(), &[("long", work)]);
    let started = start(&mut cluster, "long").await;
    pg.stop();
    tokio::time::sleep(Duration::from_secs(outage)).await;
    pg.start_again();
    let done = cluster
        .finished(&started.base, &started.id, Duration::from_secs(90))
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}\n{}", cluster.logs());
    assert_eq!(
        cluster.ran(),
        ["long"],
        "the stage ran to its end once: {done:#}"
    );
    Some((cluster, done))
}

/// The agent's lease goes unrenewed while PostgreSQL is down: rather than work on without
/// a lease (and risk the stage running twice at once), the agent stops the work, hands the
/// stage back once the store answers, and the stage runs again, to its end, once.
#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn work_whose_lease_cannot_be_renewed_stops_and_runs_again() {
    // Down well past the 12 s an agent works on without renewing its lease, and shorter
    // than the work itself.
    let Some((_cluster, done)) = store_outage_during_work(18, 15).await else {
        return;
    };
    assert_eq!(attempts(&done, "long"), 2, "{done:#}");
    assert!(
        retry_message(&done, "long").contains("could not be renewed"),
        "{done:#}"
    );
}

/// A store outage shorter than the lease's margin misses a heartbeat or two, and the work
/// goes on: the agent keeps trying to renew, and stops only when the lease could be lost.
#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn running_work_outlasts_a_short_store_outage() {
    // Down across the first heartbeat (5 s into the lease), back before the 12 s margin.
    let Some((cluster, done)) = store_outage_during_work(12, 7).await else {
        return;
    };
    assert_eq!(attempts(&done, "long"), 1, "{done:#}\n{}", cluster.logs());
}

/// An alert sent while the store is down gets a 503, which senders retry; sent again once
/// the store is back, it is filed, and only once.
#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn an_alert_during_a_store_outage_gets_503_and_is_filed_when_sent_again() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let wf = "name: shop\nstages:\n  a: { agent: noop }\n";
    let routes = "routes:\n  - name: down\n    match: { alertname: RegionDown }\n    group: shop\n    mode: auto\n";
    let url = pg.url();
    let t = common::spawn_configured(
        &[
            ("shop.yaml", wf),
            ("groups.yaml", common::GROUPS),
            ("routes.yaml", routes),
        ],
        &[],
        lifeboat::app::Options::default(),
        move |s| {
            s.database_url = lifeboat::secret::DatabaseUrl::new(url);
            s.alerts = std::mem::take(&mut s.alerts).with_secret("alertmanager", "faults-am-token");
        },
    )
    .await;
    let alert = |fp: &str| {
        serde_json::json!({ "version": "4", "alerts": [{ "status": "firing",
            "labels": { "alertname": "RegionDown" }, "startsAt": "2026-11-25T10:00:00Z", "fingerprint": fp }] })
        .to_string()
    };
    let send = async |body: String| {
        let resp = t
            .client
            .post(t.url("/webhooks/alertmanager"))
            .bearer_auth("faults-am-token")
            .body(body)
            .send()
            .await
            .expect("an answer");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (status, reply) = send(alert("a1")).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["alerts"][0]["decision"], "started");

    pg.stop();
    let (status, reply) = send(alert("a2")).await;
    assert_eq!(status, 503, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not be recorded")),
        "{reply}"
    );
    pg.start_again();
    let reply = common::until(
        "the store to take alerts again",
        Duration::from_secs(60),
        async || {
            let (status, reply) = send(alert("a2")).await;
            (status == 200).then_some(reply)
        },
    )
    .await;
    assert!(
        reply["alerts"][0].get("repeat").is_none(),
        "first filed now: {reply}"
    );
    let (_, all) = t.get("/api/v1/alerts").await;
    assert_eq!(all["alerts"].as_array().map(Vec::len), Some(2), "{all}");
    t.shutdown().await;
}
