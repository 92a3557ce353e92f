//! At-least-once delivery: the same work request delivered twice — at once, and again after
//! it finished — does the work once.

use crate::common;

use std::time::Duration;

use lifeboat::bus::{self, WorkRequest};
use lifeboat::domain::RunId;

#[tokio::test]
async fn the_same_request_delivered_three_times_runs_once() {
    let scratch = tempfile::tempdir().expect("scratch");
    let log = scratch.path().join("ran.log");
    let wf = format!(
        "name: shop\nstages:\n  append:\n    agent: exec\n    spec: {{ command: [sh, -c, 'sleep 0.5; echo once >> {}'] }}\n",
        log.display()
    );
    let t = common::spawn(&[("shop.yaml", &wf), ("groups.yaml", common::GROUPS)], &[]).await;
    let app = t.app();
    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_for(&id, "append to be sent", |r| {
        matches!(
            common::stage(r, "append")["state"].as_str(),
            Some("dispatched" | "running")
        )
    })
    .await;
    let run: RunId = id.parse().expect("a run id");
    // The request exactly as the orchestrator sent it, delivered twice more while it runs.
    let stored = app
        .store
        .load_run(run)
        .await
        .expect("load")
        .expect("the run");
    let request = WorkRequest::for_stage(&stored, 0, 0);
    let payload = serde_json::to_vec(&request).expect("json");
    let topic = bus::work_topic("exec");
    for _ in 0..2 {
        app.bus
            .publish(&topic, &id, payload.clone())
            .await
            .expect("publish again");
    }
    t.wait_state(&id, "succeeded").await;

    app.bus
        .publish(&topic, &id, payload)
        .await
        .expect("a late redelivery");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "once\n");
    let semaphore = lifeboat::semaphore::Semaphore::new(app.store.clone(), None);
    assert_eq!(
        semaphore.outcomes_for(run).await.expect("outcomes").len(),
        1
    );
    assert!(
        !t.metrics().await.contains("lifeboat_work_refused_total{"),
        "a redelivery of the current attempt is no forgery"
    );
    t.shutdown().await;
}
