//! Failback worked out from the record, on the simulated estate: a group with no failback
//! workflow fails back by reversing its last successful failover (the dial back to the
//! region whose records it answered before, the promote by a planned switchover back,
//! the other side re-protected), planned and said to come from that run; refused, saying
//! why and what to do, with no failover to reverse or before the old writer is
//! re-protected.

use crate::common;

use common::stage;
use serde_json::Value;

const FAILOVER: &str = "
name: shop-failover
stages:
  promote:
    agent: database
    spec: { cluster: db-a, role: writer, duration: 10ms }
  demote:
    agent: database
    after: [promote]
    spec: { cluster: db-b, role: reader, duration: 10ms }
  dial:
    agent: dial
    after: [demote]
    spec: { endpoint: shop.example.com, region: region-a, duration: 10ms }
  notify:
    agent: noop
    after: [dial]
";

const REPROTECT: &str = "
name: shop-reprotect
stages:
  reprotect:
    agent: database
    spec: { cluster: db-b, role: replica, source: db-a, duration: 10ms }
";

const GROUPS: &str =
    "groups:\n  shop:\n    workflows: { failover: shop-failover, reprotect: shop-reprotect }\n";

const TARGETS: &str = "
databases:
  db-a: { provider: sim }
  db-b: { provider: sim }
endpoints:
  shop.example.com:
    provider: sim
    regions:
      region-a: { A: [192.0.2.1] }
      region-b: { A: [192.0.2.2] }
";

fn error(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_failback_is_worked_out_from_the_last_failover_once_it_is_re_protected() {
    let t = common::spawn(
        &[
            ("failover.yaml", FAILOVER),
            ("reprotect.yaml", REPROTECT),
            ("groups.yaml", GROUPS),
            ("targets.yaml", TARGETS),
        ],
        &[],
    )
    .await;
    let plan = "/api/v1/groups/shop/plan?action=failback";

    // Nothing to reverse yet.
    let (status, body) = t.get(plan).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        error(&body).contains("no successful failover to reverse"),
        "{body}"
    );
    let (status, body) = t
        .post("/api/v1/runs", r#"{"group": "shop", "action": "failback"}"#)
        .await;
    assert_eq!(status, 409, "{body}");

    let failover = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&failover, "succeeded").await;
    // A dry run is no failover to reverse.
    let drill = t.create(r#"{"group": "shop", "dry_run": true}"#).await;
    t.wait_state(&drill, "succeeded").await;

    // The old writer is not a replica yet: refused, saying what to do.
    let (status, body) = t.get(plan).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        error(&body),
        format!(
            "database `db-b` is not re-protected since run {failover} failed it over: make it a replica of `db-a` first (`/dr reprotect shop`, or a `role: replica` stage)"
        )
    );

    let reprotect = t
        .create(r#"{"group": "shop", "action": "reprotect"}"#)
        .await;
    t.wait_state(&reprotect, "succeeded").await;

    // The worked-out plan: the dial back first, then the switchover back, then the other
    // side re-protected; the noop reverses to nothing.
    let (status, body) = t.get(plan).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["from_run"], failover.as_str());
    assert_eq!(body["workflow"], format!("failback from run {failover}"));
    let waves: Vec<Vec<String>> = body["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            w.as_array()
                .into_iter()
                .flatten()
                .map(|s| s["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        waves,
        [
            vec!["back-dial".to_string()],
            vec!["back-promote".to_string()],
            vec!["reprotect-db-a".to_string()],
        ]
    );

    // A dry run checks it; the run carries it out.
    let id = t
        .create(r#"{"group": "shop", "action": "failback", "dry_run": true}"#)
        .await;
    t.wait_state(&id, "succeeded").await;
    let id = t.create(r#"{"group": "shop", "action": "failback"}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(run["workflow"], format!("failback from run {failover}"));
    assert_eq!(
        common::changes(stage(&run, "back-dial")),
        ["shop.example.com A: 192.0.2.1 → 192.0.2.2"]
    );
    let back = common::changes(stage(&run, "back-promote"));
    assert!(
        back.contains(&"db-b: replica → writer".to_string())
            && back.contains(&"db-a default_transaction_read_only: off → on".to_string()),
        "{back:?}"
    );
    assert_eq!(
        common::changes(stage(&run, "reprotect-db-a")),
        ["db-a: writer (fenced) → replica of db-b"]
    );
    t.shutdown().await;
}
