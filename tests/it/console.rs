//! The console over HTTP, as a browser without script uses it: sign in, start a run from
//! the group page, approve its gate, skip its failed stage, veto a countdown, sign out;
//! every action audited as the token's name. What a token may not do is not offered, and
//! is refused (403, nothing changed) when posted anyway, as is a form without its token.
//! And `GET /api/v1/events`, which the console follows.

use std::time::Duration;

use serde_json::{Value, json};

use crate::alerts::{am_alert, am_body};
use crate::common::console::{CI, OPS, VIEWER, Visitor, csrf, estate};
use crate::common::{TestApp, stage};

async fn runs(t: &TestApp) -> Vec<Value> {
    let (status, body) = t.get("/api/v1/runs").await;
    assert_eq!(status, 200, "{body}");
    body["runs"].as_array().cloned().unwrap_or_default()
}

/// Who caused each event of `kind` to stage `stage` (or to the run, with `None`).
fn actors_of(run: &Value, kind: &str, stage: Option<&str>) -> Vec<String> {
    run["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["kind"] == kind && e["stage"].as_str() == stage)
                .filter_map(|e| e["actor"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_signed_in_user_starts_approves_skips_and_each_is_audited_as_the_token() {
    let t = estate(|_| {}).await;
    let mut v = Visitor::new(&t);

    let first = v.get("/").await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.location.as_deref(), Some("/sign-in"));
    let wrong = v.sign_in("not-a-token-0123456789").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(
        wrong.body.contains("not one of this service"),
        "{}",
        wrong.body
    );
    assert!(v.cookie.is_none());

    let signed = v.sign_in(OPS).await;
    assert_eq!(signed.status, 303);
    let cookie = signed.set_cookie.expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=43200", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    assert!(!cookie.contains(OPS), "the cookie is not the token");

    let group = v.get("/groups/shop").await;
    assert_eq!(group.status, 200);
    assert!(
        group.body.contains(r#"action="/console/runs""#),
        "a start form"
    );
    assert!(group.body.contains("<svg"), "the plan graph");
    assert!(
        group.body.contains(r#"<select name="param.to">"#),
        "the declared param, as a list of its values"
    );
    let token = csrf(&group.body);

    let forged = v
        .post(
            "/console/runs",
            &[("group", "shop"), ("reason", "no token")],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let wrong_token = v
        .post(
            "/console/runs",
            &[("csrf", "0000"), ("group", "shop"), ("reason", "bad token")],
        )
        .await;
    assert_eq!(wrong_token.status, 403);
    assert!(
        runs(&t).await.is_empty(),
        "nothing started without the form's token"
    );

    let started = v
        .post(
            "/console/runs",
            &[
                ("csrf", &token),
                ("group", "shop"),
                ("action", "failover"),
                ("reason", "region b is down"),
                ("param.to", "region-a"),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let path = started.location.expect("to the run's page");
    let id = path.trim_start_matches("/runs/").to_string();
    let run = t.wait_state(&id, "awaiting_approval").await;
    assert_eq!(run["requested_by"], "api:ops");
    assert_eq!(run["reason"], "region b is down");
    assert_eq!(run["params"]["to"], "region-a", "{run}");

    let page = v.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Approve dial"), "the gate's control");
    assert!(page.body.len() < 200 * 1024, "{} bytes", page.body.len());
    for outside in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(
            !page.body.contains(outside),
            "nothing from elsewhere: {outside}"
        );
    }
    let approved = v
        .post(
            &format!("/console/runs/{id}/approve"),
            &[("csrf", &token), ("stage", "dial")],
        )
        .await;
    assert_eq!(approved.status, 303, "{}", approved.body);

    t.wait_state(&id, "failed").await;
    let page = v.get(&path).await;
    assert!(
        page.body.contains("Skip broken"),
        "the failed stage's control"
    );
    let skip = format!("/console/runs/{id}/stages/broken/skip");
    let no_reason = v.post(&skip, &[("csrf", &token), ("reason", " ")]).await;
    assert_eq!(no_reason.status, 400, "{}", no_reason.body);
    let skipped = v
        .post(&skip, &[("csrf", &token), ("reason", "fixed by hand")])
        .await;
    assert_eq!(skipped.status, 303, "{}", skipped.body);
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(stage(&run, "broken")["state"], "skipped");
    assert_eq!(stage(&run, "last")["state"], "succeeded");
    assert_eq!(actors_of(&run, "stage.approved", Some("dial")), ["api:ops"]);
    assert_eq!(
        actors_of(&run, "stage.skipped", Some("broken")),
        ["api:ops"]
    );
    let people: Vec<&str> = stage(&run, "dial")["approvals"]
        .as_array()
        .map(|a| a.iter().filter_map(|a| a["person"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(people, ["alice"], "people: names the token's holder");

    let page = v.get(&path).await;
    for shown in [
        "Scorecard",
        "Timeline",
        "Audit trail",
        "stage.skipped",
        "fixed by hand",
    ] {
        assert!(
            page.body.contains(shown),
            "{shown} on the finished run's page"
        );
    }

    let agents = v.get("/agents").await;
    assert!(
        agents.body.contains("embedded:") && agents.body.contains("✓ live"),
        "the in-process agents, live: {}",
        agents.body
    );

    let out = v.post("/sign-out", &[("csrf", &token)]).await;
    assert_eq!(out.status, 303);
    assert!(out.set_cookie.is_some_and(|c| c.contains("Max-Age=0")));
    let after = v.get("/").await;
    assert_eq!(after.status, 303, "the old cookie signs nobody in");
    t.shutdown().await;
}

#[tokio::test]
async fn what_a_token_may_not_do_is_not_offered_and_is_refused_when_forced() {
    let t = estate(|_| {}).await;
    let id = t
        .create(r#"{"group": "shop", "reason": "a gate to look at"}"#)
        .await;
    t.wait_state(&id, "awaiting_approval").await;

    // A read-only token sees the run and is offered nothing.
    let mut viewer = Visitor::new(&t);
    assert_eq!(viewer.sign_in(VIEWER).await.status, 303);
    let page = viewer.get(&format!("/runs/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("read only"), "{}", page.body);
    assert!(!page.body.contains("/console/runs/"), "no control offered");
    let group = viewer.get("/groups/shop").await;
    assert!(
        !group.body.contains(r#"action="/console/runs""#),
        "no start form"
    );
    let token = csrf(&page.body);
    let forced = viewer
        .post(
            &format!("/console/runs/{id}/approve"),
            &[("csrf", &token), ("stage", "dial")],
        )
        .await;
    assert_eq!(forced.status, 403, "{}", forced.body);
    assert!(forced.body.contains("may only read"), "{}", forced.body);

    // A token the group's allow list does not name.
    let mut ci = Visitor::new(&t);
    assert_eq!(ci.sign_in(CI).await.status, 303);
    let page = ci.get(&format!("/runs/{id}")).await;
    assert!(!page.body.contains("/console/runs/"), "no control offered");
    let token = csrf(&page.body);
    let forced = ci
        .post(
            &format!("/console/runs/{id}/approve"),
            &[("csrf", &token), ("stage", "dial")],
        )
        .await;
    assert_eq!(forced.status, 403, "{}", forced.body);
    assert!(
        forced.body.contains("shop"),
        "names the group: {}",
        forced.body
    );
    let started = ci
        .post(
            "/console/runs",
            &[("csrf", &token), ("group", "shop"), ("reason", "not mine")],
        )
        .await;
    assert_eq!(started.status, 403, "{}", started.body);

    let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["state"], "awaiting_approval", "nothing changed");
    assert!(actors_of(&run, "stage.approved", Some("dial")).is_empty());
    assert_eq!(runs(&t).await.len(), 1, "nothing started");
    let (_, refusals) = t.get("/api/v1/refusals").await;
    let by: Vec<&str> = refusals["refusals"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["actor"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        by.contains(&"api:ci") && by.contains(&"api:viewer"),
        "each refusal is recorded: {refusals}"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a_countdown_is_shown_ticking_and_vetoed_from_the_console() {
    let t = estate(|_| {}).await;
    let resp = t
        .client
        .post(t.url("/webhooks/alertmanager"))
        .body(am_body(&[am_alert(
            "firing",
            json!({ "alertname": "RegionDown", "region": "b" }),
            "fp-console",
        )]))
        .send()
        .await
        .expect("an alert");
    assert_eq!(resp.status().as_u16(), 200);
    let mut v = Visitor::new(&t);
    v.sign_in(OPS).await;
    let page = crate::common::until("the offer", Duration::from_secs(10), async || {
        let page = v.get("/alerts").await;
        page.body.contains("Veto").then_some(page)
    })
    .await;
    assert!(page.body.contains("data-deadline="), "a ticking deadline");
    assert!(page.body.contains("Start now"));
    assert!(
        page.body.contains("RegionDown"),
        "the alert and what it did"
    );
    let at = page
        .body
        .find("/console/offers/")
        .expect("the offer's form");
    let offer = &page.body[at + "/console/offers/".len()..];
    let offer = &offer[..offer.find('/').expect("an id")];
    let vetoed = v
        .post(
            &format!("/console/offers/{offer}/veto"),
            &[("csrf", &csrf(&page.body))],
        )
        .await;
    assert_eq!(vetoed.status, 303, "{}", vetoed.body);
    let (_, offers) = t.get("/api/v1/offers").await;
    assert_eq!(offers["offers"][0]["state"], "vetoed", "{offers}");
    assert_eq!(offers["offers"][0]["decided_by"], "api:ops");
    assert!(
        runs(&t).await.is_empty(),
        "a vetoed countdown starts nothing"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn the_cookie_is_secure_behind_https() {
    let t = estate(|s| s.public_url = Some("https://lifeboat.example.com".into())).await;
    let mut v = Visitor::new(&t);
    let signed = v.sign_in(OPS).await;
    assert!(
        signed.set_cookie.is_some_and(|c| c.contains("; Secure")),
        "Secure when reached over https"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn an_open_console_on_loopback_needs_no_sign_in_but_still_a_form_token() {
    let t = crate::common::spawn(
        &[
            ("shop.yaml", crate::common::console::SHOP),
            (
                "groups.yaml",
                "groups:\n  shop:\n    workflows: { failover: shop }\n",
            ),
        ],
        &[],
    )
    .await;
    let v = Visitor::new(&t);
    let page = v.get("/groups/shop").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.set_cookie.is_some(), "a session for the form token");
    let forged = v.post("/console/runs", &[("group", "shop")]).await;
    assert_eq!(forged.status, 403);
    assert!(runs(&t).await.is_empty());
    t.shutdown().await;
}

#[tokio::test]
async fn the_runs_list_filters_by_state_and_pages_by_cursor() {
    let t = estate(|_| {}).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = t
            .create(
                &json!({ "group": "shop", "dry_run": true, "reason": format!("drill {n}") })
                    .to_string(),
            )
            .await;
        // A dry run passes its gate, and fails at the missing command like the real one.
        t.wait_for(&id, "its end", |r| r["finished_at"].is_string())
            .await;
        ids.push(id);
    }
    let gated = t.create(r#"{"group": "shop", "reason": "real"}"#).await;
    t.wait_state(&gated, "awaiting_approval").await;

    let (status, page) = t.get("/api/v1/runs?limit=2").await;
    assert_eq!(status, 200, "{page}");
    let first: Vec<&str> = page["runs"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(first, [gated.as_str(), ids[2].as_str()], "newest first");
    let (_, next) = t
        .get(&format!("/api/v1/runs?limit=2&before={}", ids[2]))
        .await;
    let second: Vec<&str> = next["runs"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(second, [ids[1].as_str(), ids[0].as_str()]);
    let (status, bad) = t.get("/api/v1/runs?state=sideways").await;
    assert_eq!(status, 400, "{bad}");

    let mut v = Visitor::new(&t);
    v.sign_in(OPS).await;
    let waiting = v.get("/?state=awaiting_approval").await;
    assert_eq!(waiting.status, 200);
    assert!(waiting.body.contains(&format!("/runs/{gated}")));
    assert!(!waiting.body.contains(&format!("/runs/{}", ids[0])));
    let all = v.get("/").await;
    for id in ids.iter().chain([&gated]) {
        assert!(all.body.contains(&format!("/runs/{id}")), "{id} listed");
    }
    t.shutdown().await;
}

/// Reads SSE events from a response until `enough` says stop: (id, event name, data).
async fn read_events(
    resp: reqwest::Response,
    enough: impl Fn(&[(String, String, Value)]) -> bool,
) -> Vec<(String, String, Value)> {
    use futures_util::StreamExt;
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !enough(&events) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; events so far: {events:?}"))
            .expect("the stream goes on")
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut id, mut name, mut data) =
                (String::new(), "message".to_string(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !data.is_empty() {
                events.push((id, name, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
        }
    }
    events
}

#[tokio::test]
async fn events_stream_filters_by_run_and_resumes_from_last_event_id() {
    let t = estate(|_| {}).await;
    let unauthorized = t
        .client
        .get(t.url("/api/v1/events"))
        .send()
        .await
        .expect("a request");
    assert_eq!(unauthorized.status().as_u16(), 401);

    let open = |query: &str, last: Option<&str>| {
        let mut req = t
            .client
            .get(t.url(&format!("/api/v1/events{query}")))
            .bearer_auth(OPS);
        if let Some(last) = last {
            req = req.header("last-event-id", last);
        }
        req.send()
    };
    let ends = |id: String| {
        move |e: &[(String, String, Value)]| {
            e.iter().any(|(_, _, d)| {
                d["run_id"] == id.as_str()
                    && d["kind"]
                        .as_str()
                        .is_some_and(|k| k == "run.failed" || k == "run.succeeded")
            })
        }
    };
    let live = open("?group=shop", None).await.expect("a stream");
    assert_eq!(live.status().as_u16(), 200);
    assert!(
        live.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/event-stream"))
    );
    let id = t
        .create(r#"{"group": "shop", "dry_run": true, "reason": "watch"}"#)
        .await;
    let (status, other) = t
        .post_as(
            CI,
            "/api/v1/runs",
            &json!({ "group": "other", "dry_run": true, "reason": "noise" }),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    let other = other["id"].as_str().expect("an id").to_string();
    let seen = read_events(live, ends(id.clone())).await;
    assert!(
        seen.iter()
            .all(|(_, name, d)| name == "message" && d["group"] == "shop"),
        "only the group asked for: {seen:?}"
    );
    // A run's first event on the bus is its start (its creation is in the audit only).
    assert_eq!(seen[0].2["kind"], "run.running", "{seen:?}");
    assert!(
        seen.iter().all(|(eid, _, d)| *eid == d["id"]),
        "the SSE id is the event's"
    );
    t.wait_for(&other, "its end", |r| r["finished_at"].is_string())
        .await;

    // Back from the run's first event, a client gets the rest of it, in order, once.
    let resp = open(&format!("?run={id}"), Some(&seen[0].0))
        .await
        .expect("a stream");
    let resumed = read_events(resp, ends(id.clone())).await;
    let ids =
        |e: &[(String, String, Value)]| e.iter().map(|(i, _, _)| i.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&resumed),
        ids(&seen[1..]),
        "what came after, and only that"
    );

    let resp = open("", Some("no-such-event")).await.expect("a stream");
    let events = read_events(resp, |e| !e.is_empty()).await;
    assert_eq!(events[0].1, "reset", "{events:?}");
    assert!(
        events[0].2["reason"]
            .as_str()
            .is_some_and(|r| r.contains("read the state again"))
    );

    let (status, _) = t.get("/api/v1/events?run=nope").await;
    assert_eq!(status, 400);
    t.shutdown().await;
}

/// On the production shape, each replica serves every event from the events topic, and a
/// console session opened on one replica is known to the other (it lives in the store).
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn every_replica_streams_every_event_and_knows_every_session() {
    use crate::common::cluster::Cluster;
    let Some(brokers) = crate::common::kafka_brokers() else {
        return;
    };
    let Some((db, db_name)) = crate::common::fresh_postgres().await else {
        return;
    };
    let mut cluster = Cluster::new(&brokers, &db, &[("one", 0), ("two", 0)]);
    let (_a, base_a) = cluster.serve("serve-a").await;
    let (_b, base_b) = cluster.serve("serve-b").await;
    let _agent = cluster.agent("agent-1");

    let stream = cluster
        .client
        .get(format!("{base_b}/api/v1/events?group=shop"))
        .send()
        .await
        .expect("a stream from replica b");
    assert_eq!(stream.status().as_u16(), 200);
    let id = crate::common::create_run_at(&cluster.client, &base_a, "shop").await;
    let seen = read_events(stream, |e| {
        e.iter()
            .any(|(_, _, d)| d["run_id"] == id.as_str() && d["kind"] == "run.succeeded")
    })
    .await;
    let stages: Vec<&str> = seen
        .iter()
        .filter(|(_, _, d)| d["kind"] == "stage.succeeded")
        .filter_map(|(_, _, d)| d["stage"].as_str())
        .collect();
    assert_eq!(stages, ["one", "two"], "{seen:?}\n{}", cluster.logs());

    // A session opened on replica b starts a run through replica a's console.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let page = client
        .get(format!("{base_b}/groups/shop"))
        .send()
        .await
        .expect("the group page");
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session")
        .to_string();
    let token = csrf(&page.text().await.expect("html"));
    let started = client
        .post(format!("{base_a}/console/runs"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("group", "shop"),
            ("reason", "from b's session"),
        ])
        .send()
        .await
        .expect("the start form");
    assert_eq!(started.status().as_u16(), 303, "{}", cluster.logs());
    let path = started
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("to the run")
        .to_string();
    let second = path.trim_start_matches("/runs/");
    let done = cluster
        .finished(&base_a, second, Duration::from_secs(60))
        .await;
    assert_eq!(done["requested_by"], "api:local");
    assert_eq!(done["reason"], "from b's session");
    drop(cluster);
    crate::common::drop_postgres(&db_name).await;
}
