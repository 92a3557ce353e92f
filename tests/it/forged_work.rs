//! The bus is no command channel: on a real Kafka-protocol broker and PostgreSQL, requests
//! produced straight to the work topic by someone who is not the orchestrator run nothing,
//! and outcomes produced straight to the progress topic move no stage. The real run
//! completes with every stage run once.

use crate::common;

use std::time::Duration;

use common::cluster::Cluster;
use common::forgery::{forged, forgeries, refused};
use lifeboat::bus::kafka::{KafkaBus, KafkaSettings};
use lifeboat::bus::{Bus, Progress, ProgressKind, work_topic};
use lifeboat::domain::{RunId, request_id};
use serde_json::Value;

/// A producer on the cluster's topics, as anyone who can reach it has: no orchestrator,
/// no store.
async fn intruder(brokers: &str, cluster: &Cluster) -> KafkaBus {
    let mut settings = KafkaSettings::new(brokers);
    settings.namespace = Some(cluster.namespace());
    KafkaBus::connect(settings, &lifeboat::bus::kafka::topics(&["exec"]))
        .await
        .expect("a producer")
}

/// News of attempt 1 of `stage`, as if its agent had sent it.
fn news(run: RunId, stage: &str, kind: ProgressKind) -> Progress {
    Progress {
        v: 1,
        request_id: request_id(run, stage, 1),
        run_id: run,
        stage: stage.into(),
        attempt: 1,
        kind,
        message: "forged".into(),
        retryable: None,
        at: 0,
        agent_instance: "agent:intruder:1:0".into(),
    }
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn forged_requests_and_outcomes_on_the_broker_change_nothing() {
    let Some(brokers) = common::kafka_brokers() else {
        return;
    };
    let Some((db, db_name)) = common::fresh_postgres().await else {
        return;
    };
    let mut cluster = Cluster::new(&brokers, &db, &[("one", 0), ("slow", 4), ("three", 0)]);
    let (_serve, base) = cluster.serve("serve").await;
    let metrics_port = common::free_port();
    let _agent = cluster.agent_with(
        "agent",
        &[(
            "LIFEBOAT_AGENT_METRICS_LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )],
    );
    let id = common::create_run_at(&cluster.client, &base, "shop").await;
    cluster
        .wait_run(
            &base,
            &id,
            "`slow` to run",
            Duration::from_secs(60),
            |run| (common::stage(run, "slow")["state"] == "running").then_some(()),
        )
        .await;

    let producer = intruder(&brokers, &cluster).await;
    let run: RunId = id.parse().expect("a run id");
    let marker = cluster.dir.path().join("forged");
    let touch = ["touch", marker.to_str().expect("utf-8")];
    let mut payloads = forgeries(run, &touch);
    // A stage that is not in flight yet.
    payloads.push(forged(run, "three", 1, &touch));
    for payload in payloads {
        producer
            .publish(&work_topic("exec"), &id, payload)
            .await
            .expect("produce");
    }
    // An outcome for the running stage, as if its agent had finished: the orchestrator
    // reads outcomes from the store, where only the lease holder can write one.
    let outcome = news(run, "slow", ProgressKind::Succeeded);
    producer
        .publish(
            lifeboat::bus::PROGRESS_TOPIC,
            &id,
            serde_json::to_vec(&outcome).expect("json"),
        )
        .await
        .expect("produce");

    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let metrics = common::until(
        "the agent to refuse every forgery",
        Duration::from_secs(30),
        async || {
            let text = cluster
                .client
                .get(&metrics_url)
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let all = [
                "unknown_run",
                "unknown_stage",
                "stale_attempt",
                "spec_mismatch",
                "malformed",
                "oversized",
            ];
            // Two stale attempts were sent: the check waits for both, not the first.
            (all.iter().all(|r| refused(&text, r) > 0) && refused(&text, "stale_attempt") >= 2)
                .then_some(text)
        },
    )
    .await;
    assert_eq!(refused(&metrics, "stale_attempt"), 2, "{metrics}");

    let done = cluster.finished(&base, &id, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{done:#}\n{}", cluster.logs());
    assert_eq!(
        cluster.ran(),
        ["one", "slow", "three"],
        "each stage ran once"
    );
    assert!(!marker.exists(), "a forged request ran its command");
    let refusals: Vec<&Value> = done["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "work.refused")
        .collect();
    assert!(
        refusals.len() >= 3,
        "refusals audited on the run: {refusals:#?}"
    );
    // `slow` ended as its agent said, when it said: not on the forged outcome.
    let ended: Vec<&Value> = done["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["stage"] == "slow" && e["kind"] == "stage.succeeded")
        .collect();
    assert_eq!(ended.len(), 1, "{done:#}");
    let by = ended[0]["actor"].as_str().unwrap_or("");
    assert!(by.starts_with("agent:agent:"), "{by}");
    assert!(
        done["events"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| !e["actor"].as_str().unwrap_or("").contains("intruder")),
        "the forged outcome moved the run: {done:#}"
    );
    drop(cluster);
    common::drop_postgres(&db_name).await;
}

/// A start produced straight to the progress topic, for a stage sent to agents but taken by
/// none, moves nothing: only the agent holding the lease says a stage started.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn a_forged_start_moves_no_stage() {
    let Some(brokers) = common::kafka_brokers() else {
        return;
    };
    let Some((db, db_name)) = common::fresh_postgres().await else {
        return;
    };
    let mut cluster = Cluster::new(&brokers, &db, &[("one", 0)]);
    let (_serve, base) = cluster.serve("serve").await;
    // No agent yet: `one` is sent and waits, untaken (`force` past the preflight).
    let (status, created) = common::post_json(
        &cluster.client,
        &format!("{base}/api/v1/runs"),
        None,
        &serde_json::json!({ "group": "shop", "force": true }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("a run id").to_string();
    cluster
        .wait_run(
            &base,
            &id,
            "`one` to be sent",
            Duration::from_secs(30),
            |run| (common::stage(run, "one")["state"] == "dispatched").then_some(()),
        )
        .await;

    let producer = intruder(&brokers, &cluster).await;
    let run: RunId = id.parse().expect("a run id");
    let start = news(run, "one", ProgressKind::Accepted);
    producer
        .publish(
            lifeboat::bus::PROGRESS_TOPIC,
            &id,
            serde_json::to_vec(&start).expect("json"),
        )
        .await
        .expect("produce");
    // Until serve has refused it, or acted on it.
    common::until(
        "serve to read the forged start",
        Duration::from_secs(30),
        async || {
            let refused = cluster
                .log_of("serve")
                .contains("Ignoring a start from an agent that does not hold the lease");
            let run = cluster.get_run(&base, &id).await?;
            (refused || common::stage(&run, "one")["state"] != "dispatched").then_some(())
        },
    )
    .await;
    let now = cluster.get_run(&base, &id).await.expect("the run");
    assert_eq!(
        common::stage(&now, "one")["state"],
        "dispatched",
        "{now:#}\n{}",
        cluster.logs()
    );

    let _agent = cluster.agent("agent");
    let done = cluster.finished(&base, &id, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert!(
        done["events"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| !e["actor"].as_str().unwrap_or("").contains("intruder")),
        "the forged start moved the run: {done:#}"
    );
    drop(cluster);
    common::drop_postgres(&db_name).await;
}
