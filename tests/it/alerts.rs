//! Alert webhooks end to end on the embedded app: Alertmanager, PagerDuty and Grafana
//! bodies with real credentials and signatures, routes and their modes, repeats, storms,
//! cooldowns, countdowns and what a restart does to them.

use crate::common;

use std::time::Duration;

use common::TestApp;
use lifeboat::app::Options;
use lifeboat::config::AlertSettings;
use lifeboat::secret::SecretString;
use lifeboat::signing::sign;
use serde_json::{Value, json};

pub const AM_TOKEN: &str = "am-token-5d1c9e0f";
const PD_SECRET: &str = "pd-secret-0b7e";
const GRAFANA_SECRET: &str = "grafana-secret-77aa";

const SHOP: &str = "name: shop\nstages:\n  dial: { agent: dial, spec: { endpoint: shop.example.com, region: b, duration: 10ms } }\n";
const SLOW: &str = "name: slow\nstages:\n  scale: { agent: capacity, spec: { cluster: k8s, namespace: shop, replicas: 2, duration: 30s } }\n";

const GROUPS: &str = "\
groups:
  shop:
    workflows: { failover: shop }
  slow:
    workflows: { failover: slow }
  held:
    workflows: { failover: shop }
";

const ROUTES: &str = "\
routes:
  - name: slow-down
    source: alertmanager
    match: { alertname: RegionDown }
    match_re: { service: \"slow-.*\" }
    group: slow
    mode: auto
  - name: shop-down
    source: any
    match: { alertname: RegionDown }
    group: shop
    mode: auto
    cooldown: 1h
  - name: by-label
    source: alertmanager
    match: { alertname: ServiceDown }
    group_label: dr_group
    mode: auto
    cooldown: 0s
  - name: pagerduty-p1
    source: pagerduty
    match: { priority: P1, event_type: incident.triggered }
    group: slow
    mode: auto
";

fn alerts_settings() -> AlertSettings {
    AlertSettings::default()
        .with_secret("alertmanager", AM_TOKEN)
        .with_secret("pagerduty", PD_SECRET)
        .with_secret("grafana", GRAFANA_SECRET)
}

async fn app(files: &[(&str, &str)], alerts: AlertSettings) -> TestApp {
    common::spawn_configured(files, &[], Options::default(), move |s| s.alerts = alerts).await
}

async fn shop() -> TestApp {
    app(
        &[
            ("shop.yaml", SHOP),
            ("slow.yaml", SLOW),
            ("groups.yaml", GROUPS),
            ("routes.yaml", ROUTES),
        ],
        alerts_settings(),
    )
    .await
}

/// An Alertmanager alert: its labels, a fingerprint and its start.
pub fn am_alert(status: &str, labels: Value, fingerprint: &str) -> Value {
    json!({
        "status": status,
        "labels": labels,
        "annotations": { "summary": "the region stopped answering" },
        "startsAt": "2026-11-25T10:00:00Z",
        "endsAt": if status == "resolved" { "2026-11-25T10:05:00Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    })
}

/// A version 4 notification, as Alertmanager sends it.
pub fn am_body(alerts: &[Value]) -> String {
    let firing = alerts.iter().any(|a| a["status"] == "firing");
    format!(
        "{}\n",
        json!({
            "receiver": "lifeboat",
            "status": if firing { "firing" } else { "resolved" },
            "alerts": alerts,
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": "{}:{alertname=\"RegionDown\"}",
            "truncatedAlerts": 0
        })
    )
}

async fn post(
    t: &TestApp,
    path: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = t
        .client
        .post(t.url(path))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body).send().await.expect("a request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn to_alertmanager(t: &TestApp, alerts: &[Value]) -> (u16, Value) {
    let bearer = format!("Bearer {AM_TOKEN}");
    post(
        t,
        "/webhooks/alertmanager",
        am_body(alerts),
        &[("authorization", &bearer)],
    )
    .await
}

fn decisions(reply: &Value) -> Vec<String> {
    reply["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["decision"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits for the offer to reach `state`; returns it.
async fn offer_in(t: &TestApp, id: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, offers) = t.get("/api/v1/offers?limit=500").await;
        let found = offers["offers"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["id"] == id).cloned());
        if let Some(o) = &found
            && o["state"] == state
        {
            return o.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "offer {id} never became {state}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn run_count(t: &TestApp) -> usize {
    let (_, runs) = t.get("/api/v1/runs?limit=500").await;
    runs["runs"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_firing_alert_starts_one_run_that_repeats_and_siblings_join() {
    let t = shop().await;
    let region_down =
        json!({ "alertname": "RegionDown", "region": "region-b", "service": "slow-api" });
    let (status, reply) =
        to_alertmanager(&t, &[am_alert("firing", region_down.clone(), "f1")]).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(decisions(&reply), ["started"]);
    assert_eq!(reply["alerts"][0]["route"], "slow-down");
    assert_eq!(reply["alerts"][0]["group"], "slow");
    let offer = reply["alerts"][0]["offer_id"]
        .as_str()
        .expect("an offer")
        .to_string();
    let started = offer_in(&t, &offer, "started").await;
    let run_id = started["run_id"].as_str().expect("a run").to_string();
    // The run is the offer's own id: starting it again would find it.
    assert_eq!(run_id, offer);
    let run = t
        .wait_for(&run_id, "scale to run", |r| {
            common::stage(r, "scale")["state"] == "running"
        })
        .await;
    assert_eq!(run["requested_by"], "alert:slow-down");
    let reason = run["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("RegionDown (region=region-b, service=slow-api)")
            && reason.contains("the region stopped answering"),
        "{reason}"
    );

    // Alertmanager sends the group again every repeat_interval: counted, nothing more.
    let (_, again) = to_alertmanager(&t, &[am_alert("firing", region_down.clone(), "f1")]).await;
    assert_eq!(decisions(&again), ["started"]);
    assert_eq!(again["alerts"][0]["repeat"], true);
    // The same alert twice in one notification, with a new one: the copy is a re-send.
    let twice = am_alert(
        "firing",
        json!({ "alertname": "RegionDown", "region": "region-b", "service": "slow-web" }),
        "f6",
    );
    let (_, reply) = to_alertmanager(&t, &[twice.clone(), twice]).await;
    assert_eq!(decisions(&reply), ["joined", "joined"]);
    assert!(reply["alerts"][0].get("repeat").is_none(), "{reply}");
    assert_eq!(reply["alerts"][1]["repeat"], true, "{reply}");
    // Another alert for the group folds into the run.
    let other = json!({ "alertname": "RegionDown", "region": "region-b", "service": "slow-db" });
    let (_, joined) = to_alertmanager(&t, &[am_alert("firing", other, "f2")]).await;
    assert_eq!(decisions(&joined), ["joined"]);
    assert_eq!(joined["alerts"][0]["run_id"], run_id.as_str());
    // A resolve is recorded and starts nothing; so is an alert no route takes.
    let (_, resolved) =
        to_alertmanager(&t, &[am_alert("resolved", region_down.clone(), "f1")]).await;
    assert_eq!(decisions(&resolved), ["resolved"]);
    let stray = json!({ "alertname": "DiskFull", "instance": "db-1" });
    let (_, unrouted) = to_alertmanager(&t, &[am_alert("firing", stray, "f3")]).await;
    assert_eq!(decisions(&unrouted), ["unrouted"]);
    // A route that takes its group from a label the alert lacks, or a group that does not
    // exist: recorded, with why.
    let (_, nameless) = to_alertmanager(
        &t,
        &[
            am_alert("firing", json!({ "alertname": "ServiceDown" }), "f4"),
            am_alert(
                "firing",
                json!({ "alertname": "ServiceDown", "dr_group": "nope" }),
                "f5",
            ),
        ],
    )
    .await;
    assert_eq!(decisions(&nameless), ["no_group", "no_group"]);
    let why = nameless["alerts"][0]["detail"].as_str().unwrap_or("");
    assert!(why.contains("label `dr_group`"), "{why}");
    let why = nameless["alerts"][1]["detail"].as_str().unwrap_or("");
    assert!(why.contains("group `nope`"), "{why}");

    assert_eq!(run_count(&t).await, 1);
    let (_, of_run) = t.get(&format!("/api/v1/alerts?run={run_id}")).await;
    assert_eq!(of_run["total"], 3, "{of_run}");
    assert_eq!(of_run["repeats"], 2, "{of_run}");
    let (_, all) = t.get("/api/v1/alerts").await;
    let all = all["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 7, "every distinct alert is recorded");
    assert_eq!(all[0]["decision"], "no_group");
    assert_eq!(all[6]["fingerprint"], "f1");
    assert_eq!(all[6]["labels"]["service"], "slow-api");
    assert_eq!(all[6]["source"], "alertmanager");
    let (status, bad) = t.get("/api/v1/alerts?decision=maybe").await;
    assert_eq!(status, 400, "{bad}");

    let metrics = t.metrics().await;
    assert!(
        metrics.contains(
            r#"lifeboat_alerts_total{source="alertmanager",route="slow-down",decision="started"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"lifeboat_alerts_total{source="alertmanager",route="",decision="repeat"} 2"#
        ),
        "{metrics}"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn receivers_refuse_bad_credentials_and_bodies_and_record_nothing() {
    let t = shop().await;
    let body = am_body(&[am_alert(
        "firing",
        json!({ "alertname": "RegionDown", "service": "slow-api" }),
        "f1",
    )]);
    for auth in [
        None,
        Some("Bearer not-the-token".to_string()),
        Some(format!("Token {AM_TOKEN}")),
    ] {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let (status, reply) = post(&t, "/webhooks/alertmanager", body.clone(), &headers).await;
        assert_eq!(status, 401, "{auth:?}: {reply}");
        assert!(
            reply["error"]
                .as_str()
                .is_some_and(|e| e.contains("alertmanager"))
        );
    }
    let bearer = format!("Bearer {AM_TOKEN}");
    let (status, reply) = post(
        &t,
        "/webhooks/alertmanager",
        "{\"version\": \"4\", \"alerts\": [{\"status\": \"firing\", \"labels\": []}]}",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    let said = reply["error"].as_str().unwrap_or("");
    assert!(said.contains("alerts[0].labels"), "{said}");
    let big = "x".repeat((1 << 20) + 1);
    let (status, _) = post(
        &t,
        "/webhooks/alertmanager",
        big,
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 413);
    let (_, alerts) = t.get("/api/v1/alerts").await;
    assert_eq!(alerts["alerts"], json!([]), "nothing refused is recorded");
    assert_eq!(run_count(&t).await, 0);

    // Basic auth with the token as password is Alertmanager's other way.
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("alertmanager:{AM_TOKEN}"))
    );
    let (status, reply) = post(
        &t,
        "/webhooks/alertmanager",
        body,
        &[("authorization", &basic)],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    t.shutdown().await;

    // A receiver with no secret refuses everything, unless opened on purpose.
    let closed = app(
        &[
            ("shop.yaml", SHOP),
            ("slow.yaml", SLOW),
            ("groups.yaml", GROUPS),
        ],
        AlertSettings::default(),
    )
    .await;
    let (status, reply) = post(&closed, "/webhooks/pagerduty", "{}", &[]).await;
    assert_eq!(status, 401);
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("PAGERDUTY_WEBHOOK_SECRET is not set")),
        "{reply}"
    );
    closed.shutdown().await;
    let open = app(
        &[
            ("shop.yaml", SHOP),
            ("slow.yaml", SLOW),
            ("groups.yaml", GROUPS),
        ],
        AlertSettings {
            open: vec!["alertmanager".into()],
            ..AlertSettings::default()
        },
    )
    .await;
    let (status, reply) = post(
        &open,
        "/webhooks/alertmanager",
        am_body(&[am_alert("firing", json!({ "alertname": "X" }), "f9")]),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(decisions(&reply), ["unrouted"]);
    open.shutdown().await;
}

fn pd_event(event_id: &str, event_type: &str, priority: &str) -> String {
    json!({
        "event": {
            "id": event_id,
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": "2026-11-25T10:00:00.000Z",
            "agent": null,
            "client": null,
            "data": {
                "id": "PINC1",
                "type": "incident",
                "html_url": "https://acme.pagerduty.com/incidents/PINC1",
                "number": 7,
                "status": "triggered",
                "incident_key": "k-1",
                "title": "Region b is down",
                "service": { "id": "PSVC", "summary": "slow-api", "type": "service_reference" },
                "priority": { "summary": priority },
                "urgency": "high"
            }
        }
    })
    .to_string()
}

#[tokio::test]
async fn pagerduty_and_grafana_are_checked_by_signature_and_redeliveries_count_once() {
    let t = shop().await;
    let body = pd_event("E1", "incident.triggered", "P1");
    let signature = format!("v1={}", sign(PD_SECRET.as_bytes(), &[body.as_bytes()]));
    let (status, reply) = post(
        &t,
        "/webhooks/pagerduty",
        body.clone(),
        &[("x-pagerduty-signature", "v1=00"), ("x-webhook-id", "W1")],
    )
    .await;
    assert_eq!(status, 401, "{reply}");
    let tampered = body.replace("P1", "P2");
    let (status, _) = post(
        &t,
        "/webhooks/pagerduty",
        tampered,
        &[
            ("x-pagerduty-signature", &signature),
            ("x-webhook-id", "W1"),
        ],
    )
    .await;
    assert_eq!(status, 401);
    // During a secret rotation PagerDuty signs with both; either one matching will do.
    let rotating = format!("v1=deadbeef,{signature}");
    let (status, reply) = post(
        &t,
        "/webhooks/pagerduty",
        body.clone(),
        &[("x-pagerduty-signature", &rotating), ("x-webhook-id", "W1")],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(decisions(&reply), ["started"]);
    assert_eq!(reply["alerts"][0]["route"], "pagerduty-p1");
    // A re-delivery is the same signed event id, counted once, whatever the unsigned
    // `X-Webhook-Id` says: a replayer cannot make it new by changing that header.
    for webhook_id in ["W1", "W9-replayed"] {
        let (_, again) = post(
            &t,
            "/webhooks/pagerduty",
            body.clone(),
            &[
                ("x-pagerduty-signature", &signature),
                ("x-webhook-id", webhook_id),
            ],
        )
        .await;
        assert_eq!(again["alerts"][0]["repeat"], true, "{webhook_id}: {again}");
    }
    // Other incident events are recorded and start nothing.
    let acked = pd_event("E2", "incident.acknowledged", "P1");
    let sig = format!("v1={}", sign(PD_SECRET.as_bytes(), &[acked.as_bytes()]));
    let (_, reply) = post(
        &t,
        "/webhooks/pagerduty",
        acked,
        &[("x-pagerduty-signature", &sig), ("x-webhook-id", "W2")],
    )
    .await;
    assert_eq!(decisions(&reply), ["ignored"]);

    // Grafana: signed over `timestamp:body`, within five minutes.
    let grafana = json!({
        "receiver": "lifeboat", "status": "firing", "orgId": 1, "version": "1",
        "alerts": [{ "status": "firing", "labels": { "alertname": "RegionDown", "region": "c" },
                     "annotations": {}, "startsAt": "2026-11-25T11:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                     "generatorURL": "http://grafana/x", "fingerprint": "g1" }],
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://grafana/",
        "groupKey": "{}", "truncatedAlerts": 0, "title": "[FIRING:1]", "state": "alerting", "message": ""
    })
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let sign_at = |ts: u64| {
        let ts = ts.to_string();
        (
            sign(
                GRAFANA_SECRET.as_bytes(),
                &[ts.as_bytes(), b":", grafana.as_bytes()],
            ),
            ts,
        )
    };
    let (stale_sig, stale_ts) = sign_at(now - 600);
    let (status, reply) = post(
        &t,
        "/webhooks/grafana",
        grafana.clone(),
        &[
            ("x-grafana-alerting-signature", &stale_sig),
            ("x-grafana-alerting-timestamp", &stale_ts),
        ],
    )
    .await;
    assert_eq!(status, 401, "{reply}");
    let (sig, ts) = sign_at(now);
    let (status, reply) = post(
        &t,
        "/webhooks/grafana",
        grafana.clone(),
        &[
            ("x-grafana-alerting-signature", &sig),
            ("x-grafana-alerting-timestamp", &ts),
        ],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(decisions(&reply), ["started"]);
    assert_eq!(reply["alerts"][0]["route"], "shop-down");
    let (status, _) = post(
        &t,
        "/webhooks/grafana",
        grafana,
        &[("x-grafana-alerting-signature", &sig)],
    )
    .await;
    assert_eq!(
        status, 401,
        "without its timestamp the signature is of another text"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a_cooldown_stops_a_second_run_and_a_storm_of_groups_is_held_back() {
    let mut groups = String::from(GROUPS);
    for i in 0..12 {
        groups.push_str(&format!("  g{i}:\n    workflows: {{ failover: shop }}\n"));
    }
    let t = app(
        &[
            ("shop.yaml", SHOP),
            ("slow.yaml", SLOW),
            ("groups.yaml", &groups),
            ("routes.yaml", ROUTES),
        ],
        alerts_settings(),
    )
    .await;
    let down = |fp: &str| {
        am_alert(
            "firing",
            json!({ "alertname": "RegionDown", "region": "a" }),
            fp,
        )
    };
    let (_, first) = to_alertmanager(&t, &[down("c1")]).await;
    assert_eq!(decisions(&first), ["started"]);
    let run = first["alerts"][0]["offer_id"]
        .as_str()
        .expect("offer")
        .to_string();
    t.wait_state(&run, "succeeded").await;
    // The run is over, but the route's cooldown (1h) still holds.
    let (_, second) = to_alertmanager(&t, &[down("c2")]).await;
    assert_eq!(decisions(&second), ["cooldown"]);
    let why = second["alerts"][0]["detail"].as_str().unwrap_or("");
    assert!(why.contains("cooldown is 1h"), "{why}");

    // One route across twelve groups at once: ten runs a minute, the rest held back.
    let storm: Vec<Value> = (0..12)
        .map(|i| {
            am_alert(
                "firing",
                json!({ "alertname": "ServiceDown", "dr_group": format!("g{i}") }),
                &format!("s{i}"),
            )
        })
        .collect();
    let (_, reply) = to_alertmanager(&t, &storm).await;
    let d = decisions(&reply);
    assert_eq!(d.iter().filter(|x| *x == "started").count(), 10, "{d:?}");
    assert_eq!(d.iter().filter(|x| *x == "held").count(), 2, "{d:?}");
    // A held alert sent again is decided again (and is still held this minute).
    let (_, again) = to_alertmanager(&t, &storm[11..]).await;
    assert_eq!(decisions(&again), ["held"]);
    assert!(again["alerts"][0].get("repeat").is_none(), "{again}");
    let (_, held) = t.get("/api/v1/alerts?decision=held").await;
    assert_eq!(held["alerts"].as_array().map(Vec::len), Some(2));
    assert_eq!(held["alerts"][0]["repeats"], 1);
    t.shutdown().await;
}

#[tokio::test]
async fn a_storm_of_ten_thousand_alerts_starts_one_run_and_counts_every_alert() {
    let t = shop().await;
    let bearer = format!("Bearer {AM_TOKEN}");
    let bodies: Vec<String> = (0..100)
        .map(|n| {
            let alerts: Vec<Value> = (0..100)
                .map(|i| {
                    am_alert(
                        "firing",
                        json!({ "alertname": "RegionDown", "service": "slow-api", "instance": format!("i{n}-{i}") }),
                        &format!("storm-{n}-{i}"),
                    )
                })
                .collect();
            am_body(&alerts)
        })
        .collect();
    let mut sent = futures_util::stream::iter(bodies.into_iter().map(|b| {
        let req = t
            .client
            .post(t.url("/webhooks/alertmanager"))
            .header("authorization", &bearer)
            .header("content-type", "application/json")
            .body(b);
        async move { req.send().await.map(|r| r.status().as_u16()) }
    }))
    .buffer_unordered(8);
    use futures_util::StreamExt;
    let mut ok = 0;
    while let Some(status) = sent.next().await {
        assert_eq!(status.expect("a response"), 200);
        ok += 1;
    }
    assert_eq!(ok, 100);
    drop(sent);
    assert_eq!(run_count(&t).await, 1, "one run for the whole storm");
    let (_, runs) = t.get("/api/v1/runs").await;
    let run = runs["runs"][0]["id"].as_str().expect("the run").to_string();
    let (_, counted) = t.get(&format!("/api/v1/alerts?run={run}&limit=1")).await;
    assert_eq!(counted["total"], 10_000, "{}", counted["total"]);
    t.shutdown().await;
}

const COUNTDOWN_ROUTES: &str = "\
routes:
  - name: shop-countdown
    match: { alertname: RegionDown, region: a }
    group: shop
    mode: countdown
    delay: 1s
  - name: slow-countdown
    match: { alertname: RegionDown, region: b }
    group: slow
    mode: countdown
    delay: 1h
  - name: held-confirm
    match: { alertname: RegionDown, region: c }
    group: held
    mode: confirm
";

async fn countdowns() -> TestApp {
    app(
        &[
            ("shop.yaml", SHOP),
            ("slow.yaml", SLOW),
            ("groups.yaml", GROUPS),
            ("routes.yaml", COUNTDOWN_ROUTES),
        ],
        alerts_settings(),
    )
    .await
}

fn down_in(region: &str, fp: &str) -> Value {
    am_alert(
        "firing",
        json!({ "alertname": "RegionDown", "region": region }),
        fp,
    )
}

#[tokio::test]
async fn countdowns_fire_unless_vetoed_or_resolved_and_confirmations_wait_for_a_person() {
    let t = countdowns().await;
    // A countdown runs out and starts its run, in the route's name.
    let (_, reply) = to_alertmanager(&t, &[down_in("a", "a1")]).await;
    assert_eq!(decisions(&reply), ["offered"]);
    let offer = reply["alerts"][0]["offer_id"]
        .as_str()
        .expect("offer")
        .to_string();
    let open = offer_in(&t, &offer, "open").await;
    assert_eq!(open["mode"], "countdown");
    assert!(open["deadline"].is_string(), "{open}");
    assert_eq!(run_count(&t).await, 0, "nothing starts before the deadline");
    let fired = offer_in(&t, &offer, "started").await;
    assert_eq!(fired["decided_by"], "alert:shop-countdown");
    let run = t.wait_state(&offer, "succeeded").await;
    assert_eq!(run["requested_by"], "alert:shop-countdown");

    // A veto stops a countdown; a second alert meanwhile joins the offer, not a new one.
    let (_, reply) = to_alertmanager(&t, &[down_in("b", "b1")]).await;
    let slow = reply["alerts"][0]["offer_id"]
        .as_str()
        .expect("offer")
        .to_string();
    let (_, joined) = to_alertmanager(&t, &[down_in("b", "b2")]).await;
    assert_eq!(decisions(&joined), ["joined"]);
    assert_eq!(joined["alerts"][0]["offer_id"], slow.as_str());
    let (status, wrong) = t.post(&format!("/api/v1/offers/{slow}/approve"), "").await;
    assert_eq!(
        status, 409,
        "a countdown is vetoed or started, not approved: {wrong}"
    );
    let (status, vetoed) = t.post(&format!("/api/v1/offers/{slow}/veto"), "").await;
    assert_eq!(status, 200, "{vetoed}");
    assert_eq!(vetoed["state"], "vetoed");
    assert_eq!(vetoed["decided_by"], "api:local");
    let (status, late) = t.post(&format!("/api/v1/offers/{slow}/start"), "").await;
    assert_eq!(status, 409, "{late}");
    assert!(
        late["error"]
            .as_str()
            .is_some_and(|e| e.contains("vetoed already")),
        "{late}"
    );

    // A confirmation waits for a person; when its alerts resolve first, it is withdrawn.
    let (_, reply) = to_alertmanager(&t, &[down_in("c", "c1"), down_in("c", "c2")]).await;
    assert_eq!(decisions(&reply), ["offered", "joined"]);
    let held = reply["alerts"][0]["offer_id"]
        .as_str()
        .expect("offer")
        .to_string();
    let one = am_alert(
        "resolved",
        json!({ "alertname": "RegionDown", "region": "c" }),
        "c1",
    );
    let (_, r) = to_alertmanager(&t, &[one]).await;
    assert_eq!(decisions(&r), ["resolved"], "c2 still fires");
    offer_in(&t, &held, "open").await;
    let two = am_alert(
        "resolved",
        json!({ "alertname": "RegionDown", "region": "c" }),
        "c2",
    );
    let (_, r) = to_alertmanager(&t, &[two]).await;
    assert_eq!(decisions(&r), ["withdrew"]);
    let withdrawn = offer_in(&t, &held, "withdrawn").await;
    assert_eq!(withdrawn["decided_by"], "alert:held-confirm");

    // The next alert opens a new confirmation; approving it starts the run as the person.
    let (_, reply) = to_alertmanager(&t, &[down_in("c", "c3")]).await;
    assert_eq!(decisions(&reply), ["offered"]);
    let next = reply["alerts"][0]["offer_id"]
        .as_str()
        .expect("offer")
        .to_string();
    let (status, started) = t.post(&format!("/api/v1/offers/{next}/approve"), "").await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["state"], "started");
    let run = t.wait_state(&next, "succeeded").await;
    assert_eq!(run["requested_by"], "api:local");
    assert_eq!(run_count(&t).await, 2);
    t.shutdown().await;
}

mod in_chat {
    use super::*;
    use common::slack::{Call, SIGNING_SECRET, Script, SlackStandIn, press, shown};
    use lifeboat::chat::slack::SlackSettings;

    const GROUPS_IN_CHAT: &str = "\
groups:
  shop:
    workflows: { failover: shop }
    channel: CSTANDING
    allow: { slack_users: [U1] }
  slow:
    workflows: { failover: slow }
    channel: CSTANDING
    allow: { slack_users: [U1] }
  held:
    workflows: { failover: shop }
    channel: CSTANDING
    allow: { slack_users: [U1] }
";

    const ROUTES_IN_CHAT: &str = "\
routes:
  - name: shop-countdown
    match: { alertname: RegionDown, region: a }
    group: shop
    mode: countdown
    delay: 10m
  - name: slow-auto
    match: { alertname: RegionDown, region: b }
    group: slow
    mode: auto
  - name: held-confirm
    match: { alertname: RegionDown, region: c }
    group: held
    mode: confirm
";

    async fn app_in_chat(standin: &SlackStandIn) -> TestApp {
        let slack = SlackSettings {
            bot_token: SecretString::from("xoxb-test-token"),
            signing_secret: Some(SecretString::from(SIGNING_SECRET)),
            app_token: None,
            api_url: standin.api_url(),
            tier_scale: 20.0,
            team_ids: Vec::new(),
        };
        common::spawn_configured(
            &[
                ("shop.yaml", SHOP),
                ("slow.yaml", SLOW),
                ("groups.yaml", GROUPS_IN_CHAT),
                ("routes.yaml", ROUTES_IN_CHAT),
            ],
            &[],
            Options::default(),
            move |s| {
                s.alerts = alerts_settings();
                s.chat.set(slack);
            },
        )
        .await
    }

    /// The latest post or edit of the offer's card in the standing channel.
    fn offer_card(s: &SlackStandIn, offer: &str) -> Option<Call> {
        s.all_calls().into_iter().rev().find(|c| {
            (c.method == "chat.postMessage" || c.method == "chat.update")
                && c.body["channel"] == "CSTANDING"
                && shown(c).contains(&format!("offer `{offer}`"))
        })
    }

    #[tokio::test]
    async fn a_countdown_counts_down_in_the_standing_channel_and_a_veto_stops_it() {
        let standin = SlackStandIn::start(Script::default()).await;
        let t = app_in_chat(&standin).await;
        let (_, reply) = to_alertmanager(&t, &[down_in("a", "a1")]).await;
        let offer = reply["alerts"][0]["offer_id"]
            .as_str()
            .expect("offer")
            .to_string();
        let posted = standin
            .until("the countdown's card", |s| offer_card(s, &offer))
            .await;
        assert_eq!(posted.method, "chat.postMessage");
        let card = shown(&posted);
        assert!(card.contains("Failover of shop starts in 10:00"), "{card}");
        assert!(
            card.contains("\"Veto\"") && card.contains("\"Start now\""),
            "{card}"
        );
        assert!(
            card.contains("<http://prometheus:9090/graph?g0.expr=up|RegionDown (region=a)>"),
            "{card}"
        );
        // The count moves on, in the same message.
        let edited = standin
            .until("the countdown to move", |s| {
                offer_card(s, &offer).filter(|c| c.method == "chat.update" && shown(c) != card)
            })
            .await;
        assert_eq!(edited.body["ts"], posted_ts(&standin, &posted));

        // Someone the group does not allow is refused; U1 vetoes.
        let (_, hook) = press(&t, &standin, "U9", "veto", &offer).await;
        let refused = standin.answer_at(&hook).await;
        assert!(
            refused["text"]
                .as_str()
                .unwrap_or("")
                .contains("<@U9> may not do that"),
            "{refused}"
        );
        offer_in(&t, &offer, "open").await;
        let (_, hook) = press(&t, &standin, "U1", "veto", &offer).await;
        let vetoed = standin.answer_at(&hook).await;
        assert!(
            vetoed["text"]
                .as_str()
                .unwrap_or("")
                .contains("<@U1> vetoed the failover of `shop`"),
            "{vetoed}"
        );
        let ended = offer_in(&t, &offer, "vetoed").await;
        assert_eq!(ended["decided_by"], "slack:U1");
        let last = standin
            .until("the vetoed card", |s| {
                offer_card(s, &offer).filter(|c| shown(c).contains("vetoed by <@U1>"))
            })
            .await;
        assert!(
            !shown(&last).contains("\"Veto\""),
            "no buttons once decided"
        );
        assert_eq!(run_count(&t).await, 0);
        t.shutdown().await;
    }

    fn posted_ts(standin: &SlackStandIn, posted: &Call) -> Value {
        let n = standin
            .all_calls()
            .iter()
            .filter(|c| c.method == "chat.postMessage")
            .position(|c| c.at == posted.at)
            .unwrap_or(0);
        Value::String(format!("1700000000.{:06}", n + 1))
    }

    #[tokio::test]
    async fn an_auto_run_says_which_alert_started_it_and_counts_those_folded_in() {
        let standin = SlackStandIn::start(Script::default()).await;
        let t = app_in_chat(&standin).await;
        let (_, reply) = to_alertmanager(&t, &[down_in("b", "b1")]).await;
        assert_eq!(decisions(&reply), ["started"]);
        let run = reply["alerts"][0]["offer_id"]
            .as_str()
            .expect("run")
            .to_string();
        standin
            .until("the run's card naming its alert", |s| {
                s.all_calls().into_iter().find(|c| {
                    c.body["channel"] == "CINC1"
                        && shown(c).contains("Started by alert <http://prometheus:9090/graph?g0.expr=up|RegionDown (region=b)>: the region stopped answering")
                })
            })
            .await;
        let more: Vec<Value> = (2..5).map(|i| down_in("b", &format!("b{i}"))).collect();
        let (_, reply) = to_alertmanager(&t, &more).await;
        assert_eq!(decisions(&reply), ["joined", "joined", "joined"]);
        to_alertmanager(&t, &[down_in("b", "b1")]).await;
        standin
            .until("the card counting them", |s| {
                s.all_calls().into_iter().find(|c| {
                    c.method == "chat.update"
                        && c.body["channel"] == "CINC1"
                        && shown(c).contains("4 alerts folded in, 1 re-send")
                })
            })
            .await;
        let (_, counted) = t.get(&format!("/api/v1/alerts?run={run}")).await;
        assert_eq!(counted["total"], 4);
        t.shutdown().await;
    }

    #[tokio::test]
    async fn a_confirmation_starts_on_approve_by_someone_allowed() {
        let standin = SlackStandIn::start(Script::default()).await;
        let t = app_in_chat(&standin).await;
        let (_, reply) = to_alertmanager(&t, &[down_in("c", "c1")]).await;
        let offer = reply["alerts"][0]["offer_id"]
            .as_str()
            .expect("offer")
            .to_string();
        let card = standin
            .until("the question", |s| offer_card(s, &offer))
            .await;
        let said = shown(&card);
        assert!(
            said.contains("Failover of held? An alert asks for it"),
            "{said}"
        );
        assert!(
            said.contains("\"Approve\"") && said.contains("\"Reject\""),
            "{said}"
        );
        let (_, hook) = press(&t, &standin, "U1", "offer_approve", &offer).await;
        let answer = standin.answer_at(&hook).await;
        assert!(
            answer["text"].as_str().unwrap_or("").contains(&format!(
                "<@U1> started the failover of `held`: run `{offer}`"
            )),
            "{answer}"
        );
        let run = t.wait_state(&offer, "succeeded").await;
        assert_eq!(run["requested_by"], "slack:U1");
        standin
            .until("the card pointing at the incident", |s| {
                offer_card(s, &offer).filter(|c| {
                    shown(c).contains("started by <@U1>")
                        && shown(c).contains("follow it in <#CINC1>")
                })
            })
            .await;
        t.shutdown().await;
    }
}

#[tokio::test]
async fn a_restart_mid_countdown_neither_loses_it_nor_fires_it_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let routes = "\
routes:
  - name: shop-countdown
    match: { alertname: RegionDown }
    group: shop
    mode: countdown
    delay: 3s
";
    common::write_workflows(
        dir.path(),
        &[
            ("shop.yaml", SHOP),
            ("slow.yaml", SLOW),
            ("groups.yaml", GROUPS),
            ("routes.yaml", routes),
        ],
    );
    let env = [("ALERTMANAGER_TOKEN", AM_TOKEN)];
    let client = reqwest::Client::new();
    let port = common::free_port();
    let mut first = common::serve(dir.path(), port, &env);
    let base = format!("http://127.0.0.1:{port}");
    common::until_ready(&client, &base).await;
    let reply: Value = client
        .post(format!("{base}/webhooks/alertmanager"))
        .bearer_auth(AM_TOKEN)
        .body(am_body(&[down_in("a", "a1")]))
        .send()
        .await
        .expect("the alert")
        .json()
        .await
        .expect("json");
    assert_eq!(decisions(&reply), ["offered"]);
    let offer = reply["alerts"][0]["offer_id"]
        .as_str()
        .expect("offer")
        .to_string();
    // Killed mid-countdown: the deadline is in the store.
    first.0.kill().expect("kill -9");
    let _ = first.0.wait();

    let port = common::free_port();
    let _second = common::serve(dir.path(), port, &env);
    let base = format!("http://127.0.0.1:{port}");
    common::until_ready(&client, &base).await;
    let started = common::until(
        "the countdown to fire after the restart",
        Duration::from_secs(30),
        async || {
            let url = format!("{base}/api/v1/offers");
            let offers = common::get_json(&client, &url, None).await?;
            offers["offers"]
                .as_array()?
                .iter()
                .find(|o| o["id"] == offer.as_str() && o["state"] == "started")
                .cloned()
        },
    )
    .await;
    let deadline = started["deadline"]
        .as_str()
        .expect("a deadline")
        .to_string();
    let runs: Value = client
        .get(format!("{base}/api/v1/runs"))
        .send()
        .await
        .expect("runs")
        .json()
        .await
        .expect("json");
    let runs = runs["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 1, "fired once: {runs:#?}");
    assert_eq!(runs[0]["id"], offer.as_str());
    let created = runs[0]["created_at"].as_str().unwrap_or("");
    assert!(
        created >= deadline.as_str(),
        "not before its deadline: {created} < {deadline}"
    );

    // A third start finds nothing left to fire.
    drop(_second);
    let port = common::free_port();
    let _third = common::serve(dir.path(), port, &env);
    let base = format!("http://127.0.0.1:{port}");
    common::until_ready(&client, &base).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs: Value = client
        .get(format!("{base}/api/v1/runs"))
        .send()
        .await
        .expect("runs")
        .json()
        .await
        .expect("json");
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1));
}

/// A loopback stand-in of PagerDuty's REST API: records each note, and answers the first
/// with a 429.
mod pagerduty_api {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use serde_json::Value;

    /// One note as received: the incident id, the headers and the body.
    pub type Note = (String, HeaderMap, Value);

    #[derive(Clone, Default)]
    pub struct Notes(pub Arc<Mutex<(usize, Vec<Note>)>>);

    impl Notes {
        pub fn taken(&self) -> Vec<Note> {
            self.0.lock().map(|n| n.1.clone()).unwrap_or_default()
        }
    }

    async fn note(
        State(notes): State<Notes>,
        Path(incident): Path<String>,
        headers: HeaderMap,
        body: axum::Json<Value>,
    ) -> axum::response::Response {
        let Ok(mut n) = notes.0.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        n.0 += 1;
        if n.0 == 1 {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response();
        }
        n.1.push((incident, headers, body.0));
        (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({ "note": {} })),
        )
            .into_response()
    }

    pub async fn start() -> (String, Notes) {
        let notes = Notes::default();
        let app = axum::Router::new()
            .route("/incidents/{id}/notes", axum::routing::post(note))
            .with_state(notes.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), notes)
    }
}

#[tokio::test]
async fn a_run_from_a_pagerduty_incident_writes_notes_on_it_once() {
    let (url, notes) = pagerduty_api::start().await;
    let routes = "\
routes:
  - name: pagerduty-p1
    source: pagerduty
    match: { priority: P1 }
    group: shop
    mode: auto
";
    let alerts = AlertSettings {
        pagerduty_api: Some(lifeboat::config::PagerDutyApi {
            token: SecretString::from("pd-rest-key"),
            url,
            from: Some("sre@example.com".into()),
        }),
        ..alerts_settings()
    };
    let t = common::spawn_configured(
        &[
            ("shop.yaml", SHOP),
            ("slow.yaml", SLOW),
            ("groups.yaml", GROUPS),
            ("routes.yaml", routes),
        ],
        &[],
        Options::default(),
        move |s| {
            s.alerts = alerts;
            s.public_url = Some("https://lifeboat.example.com".into());
        },
    )
    .await;
    let body = pd_event("E1", "incident.triggered", "P1");
    let signature = format!("v1={}", sign(PD_SECRET.as_bytes(), &[body.as_bytes()]));
    let (status, reply) = post(
        &t,
        "/webhooks/pagerduty",
        body,
        &[
            ("x-pagerduty-signature", &signature),
            ("x-webhook-id", "W1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let run = reply["alerts"][0]["offer_id"]
        .as_str()
        .expect("a run")
        .to_string();
    t.wait_state(&run, "succeeded").await;
    let taken = common::until("both notes", Duration::from_secs(30), async || {
        let n = notes.taken();
        (n.len() >= 2).then_some(n)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let taken_now = notes.taken();
    assert_eq!(
        taken_now.len(),
        2,
        "one note each, the 429 retried: {taken_now:?}"
    );
    let (incident, headers, started) = &taken[0];
    assert_eq!(incident, "PINC1");
    assert_eq!(headers["authorization"], "Token token=pd-rest-key");
    assert_eq!(headers["from"], "sre@example.com");
    let said = started["note"]["content"].as_str().unwrap_or("");
    assert_eq!(
        said,
        format!(
            "Lifeboat started failover of shop: run {run}. https://lifeboat.example.com/api/v1/runs/{run}"
        )
    );
    let ended = taken[1].2["note"]["content"].as_str().unwrap_or("");
    assert!(
        ended.starts_with("Lifeboat's failover of shop succeeded after") && ended.contains(&run),
        "{ended}"
    );
    t.shutdown().await;
}

/// A Datadog-style and a Zabbix-style webhook, configured as generic sources in
/// routes.yaml: signed with their secrets (read from files), read through their JSON
/// pointers, and routed like any source.
#[tokio::test]
async fn generic_sources_take_datadog_and_zabbix_bodies_through_their_pointers() {
    let secrets = tempfile::tempdir().expect("a temporary directory");
    let dd_secret = secrets.path().join("datadog");
    let zbx_secret = secrets.path().join("zabbix");
    std::fs::write(&dd_secret, "dd-secret-41\n").expect("write");
    std::fs::write(&zbx_secret, "zbx-secret-93\n").expect("write");
    let routes = format!(
        "\
sources:
  - name: datadog
    secret: ${{file:{dd}}}
    alertname: $.title
    status: $.alert_transition
    firing: [Triggered, Re-Triggered]
    resolved: [Recovered]
    fingerprint: $.alert_id
    tags: [$.tags]
    summary: $.body
    link: $.link
  - name: zabbix
    secret: ${{file:{zbx}}}
    signature_header: X-Zabbix-Signature
    timestamp_header: X-Zabbix-Timestamp
    alertname: $.trigger.name
    status: $.event.value
    firing: ['1']
    resolved: ['0']
    fingerprint: $.event.id
    labels: {{ host: $.host.name, severity: $.event.severity }}
    tags: [$.event.tags]
routes:
  - name: datadog-shop
    source: datadog
    match: {{ service: shop-api }}
    group: shop
    mode: auto
  - name: alertmanager-only
    source: alertmanager
    match: {{ severity: Disaster }}
    group: held
    mode: auto
  - name: zabbix-disaster
    source: zabbix
    match: {{ severity: Disaster }}
    group_label: dr_group
    mode: auto
",
        dd = dd_secret.display(),
        zbx = zbx_secret.display()
    );
    let t = app(
        &[
            ("shop.yaml", SHOP),
            ("slow.yaml", SLOW),
            ("groups.yaml", GROUPS),
            ("routes.yaml", &routes),
        ],
        alerts_settings(),
    )
    .await;

    let datadog = json!({
        "alert_id": "7311", "title": "[Triggered] shop p99 over 2s",
        "alert_transition": "Triggered", "priority": "P1",
        "tags": "env:prod,service:shop-api,region:region-b",
        "body": "p99 latency is 2.4s", "link": "https://app.datadoghq.com/monitors/7311",
        "date": 1_800_000_000_000_i64
    })
    .to_string();
    // Refused: no credentials, a wrong bearer, a signature over other bytes.
    let forged = sign(b"dd-secret-41", &[b"{}"]);
    for headers in [
        vec![],
        vec![("authorization", "Bearer dd-secret-4")],
        vec![("x-lifeboat-signature", forged.as_str())],
    ] {
        let (status, reply) =
            post(&t, "/webhooks/generic/datadog", datadog.clone(), &headers).await;
        assert_eq!(status, 401, "{headers:?}: {reply}");
        assert!(
            reply["error"]
                .as_str()
                .is_some_and(|e| e.contains("datadog")),
            "{reply}"
        );
    }
    assert_eq!(run_count(&t).await, 0);
    let (_, alerts) = t.get("/api/v1/alerts").await;
    assert_eq!(alerts["alerts"], json!([]), "nothing refused is recorded");

    // Datadog can only set a header: the secret as a bearer token.
    let (status, reply) = post(
        &t,
        "/webhooks/generic/datadog",
        datadog.clone(),
        &[("authorization", "Bearer dd-secret-41")],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(decisions(&reply), ["started"]);
    assert_eq!(reply["alerts"][0]["route"], "datadog-shop");
    assert_eq!(reply["alerts"][0]["group"], "shop");
    // Sent again: the same notification, counted once.
    let signed = format!("sha256={}", sign(b"dd-secret-41", &[datadog.as_bytes()]));
    let (status, reply) = post(
        &t,
        "/webhooks/generic/datadog",
        datadog.clone(),
        &[("x-lifeboat-signature", &signed)],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["alerts"][0]["repeat"], true, "{reply}");
    assert_eq!(run_count(&t).await, 1);
    let (_, alerts) = t.get("/api/v1/alerts").await;
    let first = &alerts["alerts"][0];
    assert_eq!(first["source"], "datadog", "{alerts}");
    assert_eq!(first["name"], "[Triggered] shop p99 over 2s", "{alerts}");

    // Zabbix signs `timestamp:body`, with a timestamp that must be fresh.
    let zabbix = |value: &str| {
        json!({
            "event": {
                "id": "88412", "value": value, "severity": "Disaster",
                "tags": [{ "tag": "dr_group", "value": "slow" }, { "tag": "service", "value": "slow-api" }]
            },
            "trigger": { "name": "Database replication stopped" },
            "host": { "name": "db-01.region-b" }
        })
        .to_string()
    };
    let post_zabbix = |body: String, ts: i64| {
        let t = &t;
        async move {
            let ts = ts.to_string();
            let sig = sign(b"zbx-secret-93", &[ts.as_bytes(), b":", body.as_bytes()]);
            post(
                t,
                "/webhooks/generic/zabbix",
                body,
                &[("x-zabbix-signature", &sig), ("x-zabbix-timestamp", &ts)],
            )
            .await
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let (status, reply) = post_zabbix(zabbix("1"), now - 600).await;
    assert_eq!(status, 401, "a stale timestamp: {reply}");
    let (status, reply) = post_zabbix(zabbix("1"), i64::MIN).await;
    assert_eq!(status, 401, "a timestamp that would wrap: {reply}");
    let (status, reply) = post_zabbix(zabbix("1"), now).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(decisions(&reply), ["started"], "{reply}");
    assert_eq!(
        reply["alerts"][0]["route"], "zabbix-disaster",
        "a Zabbix alert is not taken by a route for alertmanager: {reply}"
    );
    assert_eq!(reply["alerts"][0]["group"], "slow", "from its tag: {reply}");
    let (status, reply) = post_zabbix(zabbix("0"), now).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(decisions(&reply), ["resolved"], "{reply}");
    assert_eq!(run_count(&t).await, 2);

    // A body without the status its source reads, and sources there are not.
    let (status, reply) = post(
        &t,
        "/webhooks/generic/datadog",
        "{\"title\": \"x\"}",
        &[("authorization", "Bearer dd-secret-41")],
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("/alert_transition")),
        "{reply}"
    );
    for path in [
        "/webhooks/generic/nagios",
        "/webhooks/nagios",
        "/webhooks/generic/alertmanager",
    ] {
        let (status, reply) = post(&t, path, "{}", &[]).await;
        assert_eq!(status, 404, "{path}: {reply}");
        assert!(
            reply["error"]
                .as_str()
                .is_some_and(|e| e.contains("generic/datadog")),
            "{path}: {reply}"
        );
    }
    assert_eq!(run_count(&t).await, 2);
    t.shutdown().await;
}
