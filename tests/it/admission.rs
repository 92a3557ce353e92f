//! Agents act only on work the store holds. Forged requests, sent straight to the work
//! topic as anyone who can reach the bus could, run nothing; each is told in the log, the
//! metric and (where the run exists) the run's audit; the real run goes on unharmed.
//! Here on the embedded deployment; `tests/it/forged_work.rs` does the same on Kafka.

use crate::common;

use common::forgery::{forged, forgeries, refused};
use lifeboat::bus::work_topic;
use lifeboat::domain::RunId;
use serde_json::Value;

fn workflow(dir: &std::path::Path) -> String {
    let log = dir.join("ran.log");
    format!(
        "name: shop\nstages:\n  slow:\n    agent: exec\n    spec: {{ command: [sh, -c, 'sleep 3; echo slow >> {log}'] }}\n  last:\n    agent: exec\n    after: [slow]\n    spec: {{ command: [sh, -c, 'echo last >> {log}'] }}\n",
        log = log.display()
    )
}

fn refusals(run: &Value) -> Vec<String> {
    run["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "work.refused")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn forged_work_requests_run_nothing_and_the_real_run_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = workflow(dir.path());
    let t = common::spawn(&[("shop.yaml", &wf), ("groups.yaml", common::GROUPS)], &[]).await;
    let marker = dir.path().join("forged");
    let touch = ["touch", marker.to_str().expect("utf-8")];

    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_for(&id, "slow to run", |r| {
        common::stage(r, "slow")["state"] == "running"
    })
    .await;
    let run: RunId = id.parse().expect("a run id");
    let bus = &t.app().bus;
    let topic = work_topic("exec");
    let mut payloads = forgeries(run, &touch);
    // The altered spec again: counted again, audited once.
    payloads.push(forged(run, "slow", 1, &touch));
    for payload in payloads {
        bus.publish(&topic, &id, payload).await.expect("publish");
    }

    let done = t.wait_state(&id, "succeeded").await;
    assert!(!marker.exists(), "a forged request ran its command");
    let ran = std::fs::read_to_string(dir.path().join("ran.log")).expect("ran.log");
    assert_eq!(ran, "slow\nlast\n", "each real stage ran once");
    assert_eq!(common::stage(&done, "slow")["attempts"], 1);

    let metrics = t.metrics().await;
    for (reason, count) in [
        ("unknown_run", 1),
        ("unknown_stage", 1),
        ("stale_attempt", 1),
        ("spec_mismatch", 2),
        ("malformed", 1),
        ("oversized", 1),
    ] {
        assert_eq!(refused(&metrics, reason), count, "{reason}:\n{metrics}");
    }
    let audited = refusals(&done);
    assert_eq!(audited.len(), 3, "{audited:#?}");
    for said in [
        "has no stage `nope`",
        "attempt 2 of `slow` is not in flight",
        "spec differ",
    ] {
        assert!(
            audited.iter().any(|m| m.contains(said)),
            "no refusal saying {said:?}: {audited:#?}"
        );
    }
    let actor = done["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "work.refused"))
        .map(|e| e["actor"].clone())
        .unwrap_or_default();
    assert!(
        actor
            .as_str()
            .is_some_and(|a| a.starts_with("agent:embedded:")),
        "{actor}"
    );
    t.shutdown().await;
}
