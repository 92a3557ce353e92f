//! API token scopes: a read-only token reads and acts on nothing; a group's `allow.api`
//! keeps every other token from acting on its runs and offers; each refusal is a 403 that
//! names the group, recorded with the chat refusals, and changes nothing.

use serde_json::{Value, json};

use crate::alerts::{am_alert, am_body};
use crate::common::{self, TestApp, spawn_configured};
use lifeboat::config::ApiToken;

const OPS: &str = "0123456789abcdef-ops";
const CI: &str = "0123456789abcdef-ci";
const VIEWER: &str = "0123456789abcdef-viewer";

const SHOP: &str = r#"
name: shop
stages:
  scale:
    agent: capacity
    spec: { cluster: k8s, namespace: shop, replicas: 3, duration: 10ms }
  dial:
    agent: dial
    approval: required
    after: [scale]
    spec: { endpoint: shop.example.com, region: b, duration: 10ms }
"#;

const GROUPS: &str = r#"
groups:
  shop:
    workflows: { failover: shop }
    allow: { api: [ops] }
  open:
    workflows: { failover: shop }
"#;

const ROUTES: &str = r#"
routes:
  - name: shop-countdown
    match: { alertname: RegionDown }
    group: shop
    mode: countdown
    delay: 1h
"#;

async fn app() -> TestApp {
    spawn_configured(
        &[
            ("shop.yaml", SHOP),
            ("groups.yaml", GROUPS),
            ("routes.yaml", ROUTES),
        ],
        &[("ops", OPS)],
        Default::default(),
        |s| {
            s.api_tokens = vec![
                ApiToken::new("ops", OPS),
                ApiToken::new("ci", CI),
                ApiToken::read_only("viewer", VIEWER),
            ];
            s.alerts.open = vec!["alertmanager".into()];
        },
    )
    .await
}

fn refused(status: u16, body: &Value, names: &str) {
    assert_eq!(status, 403, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(names), "`{error}` should name {names}");
}

async fn runs(t: &TestApp) -> Vec<Value> {
    let (status, body) = t.get("/api/v1/runs").await;
    assert_eq!(status, 200, "{body}");
    body["runs"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_read_only_token_reads_and_acts_on_nothing() {
    let t = app().await;
    let read = common::get_json(&t.client, &t.url("/api/v1/groups"), Some(VIEWER)).await;
    assert!(read.is_some_and(|g| g["groups"].as_array().is_some_and(|g| g.len() == 2)));

    let (status, body) = t
        .post_as(VIEWER, "/api/v1/runs", &json!({ "group": "open" }))
        .await;
    refused(status, &body, "may only read");
    assert!(runs(&t).await.is_empty(), "nothing was started");

    let id = t.create(r#"{"group": "open"}"#).await;
    t.wait_state(&id, "awaiting_approval").await;
    let (status, body) = t
        .post_as(VIEWER, &format!("/api/v1/runs/{id}/cancel"), &json!({}))
        .await;
    refused(status, &body, "may only read");
    let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["state"], "awaiting_approval", "the run goes on");

    let (_, refusals) = t.get("/api/v1/refusals").await;
    assert_eq!(refusals["refusals"][0]["actor"], "api:viewer", "{refusals}");
    t.shutdown().await;
}

#[tokio::test]
async fn only_the_tokens_a_group_allows_act_on_its_runs_and_offers() {
    let t = app().await;
    // A token the group does not name may not start it; one it names may.
    let (status, body) = t
        .post_as(CI, "/api/v1/runs", &json!({ "group": "shop" }))
        .await;
    refused(status, &body, "group `shop`");
    assert!(runs(&t).await.is_empty(), "nothing was started");
    let (status, body) = t
        .post_as(CI, "/api/v1/runs", &json!({ "group": "open" }))
        .await;
    assert_eq!(status, 201, "a group with no `allow.api` is open: {body}");

    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&id, "awaiting_approval").await;
    for (path, body) in [
        (format!("/api/v1/runs/{id}/approve"), json!({})),
        (format!("/api/v1/runs/{id}/reject"), json!({})),
        (format!("/api/v1/runs/{id}/cancel"), json!({})),
        (format!("/api/v1/runs/{id}/abort"), json!({})),
        (format!("/api/v1/runs/{id}/resume"), json!({})),
        (format!("/api/v1/runs/{id}/stages/dial/retry"), json!({})),
        (
            format!("/api/v1/runs/{id}/stages/dial/skip"),
            json!({ "reason": "not needed" }),
        ),
    ] {
        let (status, answer) = t.post_as(CI, &path, &body).await;
        refused(status, &answer, "group `shop`");
    }
    let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["state"], "awaiting_approval", "{run}");
    assert!(
        run["events"]
            .as_array()
            .is_some_and(|e| e.iter().all(|e| e["actor"] != "api:ci")),
        "the refused token did nothing: {run}"
    );
    let (status, body) = t
        .post_as(OPS, &format!("/api/v1/runs/{id}/approve"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    t.wait_state(&id, "succeeded").await;

    // An offer is the group's too.
    let alert = am_alert("firing", json!({ "alertname": "RegionDown" }), "f1");
    let resp = t
        .client
        .post(t.url("/webhooks/alertmanager"))
        .header("content-type", "application/json")
        .body(am_body(&[alert]))
        .send()
        .await
        .expect("the alert");
    let reply: Value = resp.json().await.expect("json");
    let offer = reply["alerts"][0]["offer_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no offer in {reply}"))
        .to_string();
    for choice in ["veto", "start"] {
        let path = format!("/api/v1/offers/{offer}/{choice}");
        let (status, answer) = t.post_as(CI, &path, &json!({})).await;
        refused(status, &answer, "group `shop`");
        let (status, answer) = t.post_as(VIEWER, &path, &json!({})).await;
        refused(status, &answer, "may only read");
    }
    let (_, offers) = t.get("/api/v1/offers").await;
    assert_eq!(offers["offers"][0]["state"], "open", "{offers}");
    let (status, vetoed) = t
        .post_as(OPS, &format!("/api/v1/offers/{offer}/veto"), &json!({}))
        .await;
    assert_eq!((status, &vetoed["state"]), (200, &json!("vetoed")));

    // Every refusal is on record, with its group.
    let (_, refusals) = t.get("/api/v1/refusals?limit=500").await;
    let by_ci: Vec<&Value> = refusals["refusals"]
        .as_array()
        .map(|r| r.iter().filter(|r| r["actor"] == "api:ci").collect())
        .unwrap_or_default();
    assert_eq!(by_ci.len(), 1 + 7 + 2, "{refusals}");
    assert!(by_ci.iter().all(|r| r["group"] == "shop"), "{refusals}");
    t.shutdown().await;
}
