//! The data-loss gate on the simulated estate, through the API: a promote that would lose
//! more writes than `max_data_loss` stops for a person, says what it loses, and goes on
//! only when approved (by two people when no loss is allowed); a rejection fails it for
//! good; a dry run reports the loss and goes on; and the recovery point is kept with the
//! stage's report, in the scorecard and in the metrics.

use crate::common;

use common::{TestApp, stage};
use serde_json::Value;

const TOKEN: &str = "ops-token-0123456789";

/// A promote whose replica is `rpo` behind, allowed to lose `max`, then a dial.
fn workflow(rpo: &str, max: &str) -> String {
    format!(
        "name: shop\nstages:\n  promote:\n    agent: database\n    spec: {{ cluster: db-a, role: writer, rpo: {rpo}, max_data_loss: {max}, duration: 10ms }}\n  dial:\n    agent: dial\n    after: [promote]\n    spec: {{ endpoint: shop.example.com, region: a, duration: 10ms }}\n"
    )
}

async fn app(rpo: &str, max: &str) -> TestApp {
    let wf = workflow(rpo, max);
    common::spawn(
        &[("shop.yaml", &wf), ("groups.yaml", common::GROUPS)],
        &[("ops", TOKEN), ("alice", "alice-token-0123456789")],
    )
    .await
}

fn check<'a>(stage: &'a Value, name: &str) -> &'a Value {
    stage["report"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {stage:#}"))
}

#[tokio::test]
async fn a_promote_over_max_data_loss_waits_for_a_person_and_approving_promotes() {
    let t = app("42s", "5s").await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "awaiting_approval").await;
    let promote = stage(&run, "promote");
    assert_eq!(promote["state"], "ready", "{run:#}");
    let said = "promoting db-a now loses about 42 s / 17 MB of writes (measured)";
    assert_eq!(promote["held"], said);
    assert_eq!(promote["message"], format!("waiting for approval: {said}"));
    let rpo = &promote["report"]["rpo"];
    assert_eq!(rpo["seconds"], 42.0);
    assert_eq!(rpo["bytes"], 16_800_000);
    assert_eq!(rpo["basis"], "measured");
    assert_eq!(rpo["limit"], 5.0);
    assert_eq!(check(promote, "recovery point")["ok"], false);
    assert_eq!(
        stage(&run, "dial")["state"],
        "pending",
        "nothing after it ran"
    );
    assert!(
        !common::changes(promote)
            .iter()
            .any(|c| c.contains("writer")),
        "nothing was promoted: {promote:#}"
    );

    let (status, body) = t.post(&format!("/api/v1/runs/{id}/approve"), "{}").await;
    assert_eq!(status, 200, "{body}");
    let run = t.wait_state(&id, "succeeded").await;
    let promote = stage(&run, "promote");
    assert_eq!(
        promote["attempts"], 2,
        "measured once, promoted once approved"
    );
    assert_eq!(promote["approved_by"], "api:ops");
    assert_eq!(common::changes(promote), ["db-a: replica → writer"]);

    // The recovery point stays: in the report, the scorecard and the metrics.
    let (_, report) = t.get(&format!("/api/v1/runs/{id}/report")).await;
    assert_eq!(report["card"]["rpo"]["seconds"], 42.0, "{report:#}");
    assert_eq!(report["card"]["rpo"]["basis"], "measured");
    let metrics = t.metrics().await;
    assert!(
        metrics.contains(r#"lifeboat_recovery_point_seconds{group="shop",action="failover"} 42.0"#),
        "{metrics}"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn rejecting_the_gate_fails_the_promote_for_good() {
    let t = app("42s", "5s").await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&id, "awaiting_approval").await;
    let (status, body) = t
        .post(
            &format!("/api/v1/runs/{id}/reject"),
            r#"{"reason": "we wait for region b"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let run = t.wait_state(&id, "failed").await;
    let promote = stage(&run, "promote");
    assert_eq!(promote["state"], "failed");
    assert_eq!(promote["attempts"], 1);
    assert!(
        promote["message"].as_str().is_some_and(|m| m
            .starts_with("rejected by api:ops: we wait for region b; promoting db-a now loses")),
        "{run:#}"
    );
    assert_eq!(stage(&run, "dial")["state"], "skipped");
    assert!(common::changes(promote).is_empty(), "{promote:#}");
    t.shutdown().await;
}

#[tokio::test]
async fn no_loss_allowed_takes_two_people_and_a_dry_run_reports_without_stopping() {
    let t = app("3s", "0s").await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "awaiting_approval").await;
    assert_eq!(stage(&run, "promote")["approvals_needed"], 2, "{run:#}");
    // The requester may not be one of the two.
    let (status, body) = t.post(&format!("/api/v1/runs/{id}/approve"), "{}").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = t
        .post_as(
            "alice-token-0123456789",
            &format!("/api/v1/runs/{id}/approve"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["state"], "awaiting_approval", "one of two: {run:#}");
    t.post(&format!("/api/v1/runs/{id}/cancel"), "{}").await;
    t.wait_state(&id, "cancelled").await;

    // A dry run says what promoting would lose and goes on.
    let id = t.create(r#"{"group": "shop", "dry_run": true}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    let promote = stage(&run, "promote");
    assert_eq!(promote["attempts"], 1);
    assert_eq!(promote["report"]["rpo"]["seconds"], 3.0);
    let rpo = check(promote, "recovery point");
    assert_eq!(rpo["ok"], false);
    assert_eq!(
        rpo["detail"],
        "about 3 s / 1.2 MB of writes (measured) > max_data_loss 0s"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a_promote_within_max_data_loss_goes_straight_on() {
    let t = app("2s", "5s").await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    let promote = stage(&run, "promote");
    assert_eq!(promote["attempts"], 1);
    assert!(promote["approved_by"].is_null());
    assert_eq!(check(promote, "recovery point")["ok"], true);
    assert_eq!(
        check(promote, "recovery point")["detail"],
        "about 2 s / 800 kB of writes (measured) ≤ max_data_loss 5s"
    );
    t.shutdown().await;
}
