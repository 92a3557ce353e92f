//! At-least-once delivery: the same work request delivered twice — at once, and again after
//! it finished — does the work once.

mod common;

use std::time::Duration;

use lifeboat::bus::{self, WorkRequest};
use lifeboat::domain::{self as ids, RunId};

#[tokio::test]
async fn the_same_request_delivered_three_times_runs_once() {
    let t = common::spawn(
        &[
            ("shop.yaml", "name: shop\nstages:\n  x: { agent: noop }\n"),
            ("groups.yaml", common::GROUPS),
        ],
        &[],
    )
    .await;
    let app = t.app();
    let scratch = tempfile::tempdir().expect("scratch");
    let log = scratch.path().join("ran.log");
    let run = RunId::new();
    let request = WorkRequest {
        v: bus::VERSION,
        id: ids::request_id(run, "append", 1),
        run_id: run,
        stage: "append".into(),
        agent: "exec".into(),
        attempt: 1,
        spec: serde_json::json!({ "command": ["sh", "-c", format!("sleep 0.3; echo once >> {}", log.display())] }),
        resource: "test:append".into(),
        deadline: lifeboat::clock::Clock::system().now_ms() + 30_000,
        dry_run: false,
    };
    let payload = serde_json::to_vec(&request).expect("json");
    let topic = bus::work_topic("exec");
    app.bus
        .publish(&topic, &run.to_string(), payload.clone())
        .await
        .expect("publish");
    app.bus
        .publish(&topic, &run.to_string(), payload.clone())
        .await
        .expect("publish again");

    let semaphore = lifeboat::semaphore::Semaphore::new(app.store.clone(), None);
    let released = async {
        loop {
            if let Some(o) = semaphore.outcomes_for(run).await.expect("outcomes").pop() {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let outcome = tokio::time::timeout(Duration::from_secs(10), released)
        .await
        .expect("the work finishes");
    assert_eq!(outcome.kind, lifeboat::domain::OutcomeKind::Succeeded);

    app.bus
        .publish(&topic, &run.to_string(), payload)
        .await
        .expect("a late redelivery");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "once\n");
    assert_eq!(
        semaphore.outcomes_for(run).await.expect("outcomes").len(),
        1
    );
    t.shutdown().await;
}
