//! The HTTP API (the README's "HTTP API") against the real embedded app.

use crate::common;

use common::{GROUPS, spawn, stage};

const TOKEN: &str = "0123456789abcdef-ops";

const SHOP: &str = r#"
name: shop
params: { to: region-a }
stages:
  scale:
    agent: capacity
    spec: { cluster: "k8s-${to}", namespace: shop, replicas: 3, duration: 50ms, fail_attempts: 1 }
    retry: { initial_backoff: 10ms, max_backoff: 10ms }
  dial:
    agent: dial
    approval: required
    spec: { endpoint: shop.example.com, region: "${to}", duration: 50ms }
"#;

async fn shop() -> common::TestApp {
    spawn(
        &[("shop.yaml", SHOP), ("groups.yaml", GROUPS)],
        &[("ops", TOKEN)],
    )
    .await
}

fn error_of(body: &serde_json::Value) -> String {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error in {body}"))
        .to_string()
}

#[tokio::test]
async fn a_run_waits_at_the_gate_until_approved_and_every_step_is_audited() {
    let t = shop().await;
    let id = t
        .create(r#"{"group": "shop", "action": "failover", "reason": "drill day"}"#)
        .await;
    let run = t.wait_state(&id, "awaiting_approval").await;
    assert_eq!(stage(&run, "scale")["state"], "succeeded");
    assert_eq!(stage(&run, "dial")["state"], "ready");

    let (status, run) = t.post(&format!("/api/v1/runs/{id}/approve"), "").await;
    assert_eq!(status, 200, "{run}");
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(stage(&run, "dial")["approved_by"], "api:ops");
    assert_eq!(run["requested_by"], "api:ops");
    let events = run["events"].as_array().expect("events");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    for k in [
        "run.created",
        "run.running",
        "stage.dispatched",
        "stage.running",
        "stage.succeeded",
        "approval.requested",
        "stage.approved",
        "run.succeeded",
    ] {
        assert!(kinds.contains(&k), "missing {k} in {kinds:?}");
    }
    let created = &events[0];
    assert_eq!(
        (created["kind"].as_str(), created["actor"].as_str()),
        (Some("run.created"), Some("api:ops"))
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "stage.approved" && e["actor"] == "api:ops")
    );
    assert!(events.iter().any(|e| {
        e["kind"] == "stage.succeeded"
            && e["actor"]
                .as_str()
                .unwrap_or("")
                .starts_with("agent:embedded:")
    }));

    let (status, body) = t.post(&format!("/api/v1/runs/{id}/approve"), "").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_of(&body), "run is already succeeded");
    t.shutdown().await;
}

#[tokio::test]
async fn a_second_run_of_a_busy_group_is_refused_with_the_active_run() {
    let t = shop().await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let (status, body) = t.post("/api/v1/runs", r#"{"group": "shop"}"#).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["active_run"], id.as_str());
    assert!(error_of(&body).contains("already has an active failover run"));
    // A dry run does not contend with the real one.
    let (status, body) = t
        .post("/api/v1/runs", r#"{"group": "shop", "dry_run": true}"#)
        .await;
    assert_eq!(status, 201, "{body}");

    let (status, run) = t
        .post(
            &format!("/api/v1/runs/{id}/cancel"),
            r#"{"reason": "false alarm"}"#,
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["state"], "cancelled");
    assert_eq!(run["message"], "cancelled by api:ops: false alarm");
    let (status, _) = t.post(&format!("/api/v1/runs/{id}/cancel"), "").await;
    assert_eq!(status, 409);
    // The group is free again.
    t.create(r#"{"group": "shop"}"#).await;
    t.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_a_json_400_and_create_nothing() {
    let t = shop().await;
    let cases = [
        (
            "{\"group\": ",
            "invalid JSON body: EOF while parsing a value at line 1 column 10",
        ),
        ("", "request body is empty"),
        ("[1]", "request body must be a JSON object"),
        (
            r#"{"action": "failover"}"#,
            "invalid JSON body: missing field `group`",
        ),
        (
            r#"{"group": "shop", "colour": "red"}"#,
            "invalid JSON body: unknown field `colour`",
        ),
        (
            r#"{"group": "shop", "dry_run": "yes"}"#,
            "invalid JSON body: invalid type: string \"yes\", expected a boolean",
        ),
        (
            r#"{"group": "shop", "action": "explode"}"#,
            "unknown action `explode` (expected failover, failback, drill or reprotect)",
        ),
        (
            r#"{"group": "shop", "params": {"region": "x"}}"#,
            "workflow `shop` has no param `region` (params: to)",
        ),
    ];
    for (body, expected) in cases {
        let (status, err) = t.post("/api/v1/runs", body).await;
        assert_eq!(status, 400, "{body} → {err}");
        assert!(
            error_of(&err).starts_with(expected),
            "{body}: got {:?}, want {expected:?}",
            error_of(&err)
        );
    }
    let (status, body) = t.get("/api/v1/runs/not-a-run").await;
    assert_eq!(status, 400);
    assert_eq!(error_of(&body), "`not-a-run` is not a run id");
    let (status, body) = t
        .post(
            "/api/v1/runs/01a20cdf-faa4-75b5-951f-d1ace3e1e237/approve",
            "{\"stag\": 1}",
        )
        .await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("unknown field `stag`"));
    let (status, body) = t.get("/api/v1/runs?limit=many").await;
    assert_eq!(status, 400, "{body}");

    let (_, list) = t.get("/api/v1/runs").await;
    assert_eq!(
        list["runs"].as_array().map(Vec::len),
        Some(0),
        "nothing was created: {list}"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn unknown_things_get_404() {
    let t = shop().await;
    let (status, body) = t.post("/api/v1/runs", r#"{"group": "nope"}"#).await;
    assert_eq!(
        (status, error_of(&body)),
        (404, "unknown group `nope`".to_string())
    );
    let (status, body) = t
        .post(
            "/api/v1/runs",
            r#"{"group": "shop", "action": "reprotect"}"#,
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (404, "group `shop` has no reprotect workflow".to_string())
    );
    // A failback with no workflow is worked out from the last failover: with none, a
    // conflict that says what to do (tests/it/failback.rs).
    let (status, _) = t
        .post("/api/v1/runs", r#"{"group": "shop", "action": "failback"}"#)
        .await;
    assert_eq!(status, 409);
    let missing = "01a20cdf-faa4-75b5-951f-d1ace3e1e237";
    let (status, body) = t.get(&format!("/api/v1/runs/{missing}")).await;
    assert_eq!(
        (status, error_of(&body)),
        (404, format!("run {missing} not found"))
    );
    let (status, _) = t.post(&format!("/api/v1/runs/{missing}/cancel"), "").await;
    assert_eq!(status, 404);
    let (status, _) = t.get("/api/v1/groups/nope/plan").await;
    assert_eq!(status, 404);
    let (status, _) = t.get("/api/v1/nothing-here").await;
    assert_eq!(status, 404);
    t.shutdown().await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_gets_401_and_changes_nothing() {
    let mut t = shop().await;
    t.token = None;
    let (status, body) = t.post("/api/v1/runs", r#"{"group": "shop"}"#).await;
    assert_eq!(
        (status, error_of(&body)),
        (401, "missing or invalid bearer token".to_string())
    );
    t.token = Some("0123456789abcdef-wrong".into());
    let (status, _) = t.post("/api/v1/runs", r#"{"group": "shop"}"#).await;
    assert_eq!(status, 401);
    let (status, _) = t.get("/api/v1/runs").await;
    assert_eq!(status, 401);
    // Health and metrics stay open for probes and scrapers.
    let (status, _) = t.get("/healthz").await;
    assert_eq!(status, 200);
    t.token = Some(TOKEN.into());
    let (_, list) = t.get("/api/v1/runs").await;
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(0));
    t.shutdown().await;
}

#[tokio::test]
async fn groups_plan_health_readiness_and_metrics() {
    let t = shop().await;
    let (status, groups) = t.get("/api/v1/groups").await;
    assert_eq!(status, 200);
    assert_eq!(groups["groups"][0]["name"], "shop");
    assert_eq!(groups["groups"][0]["workflows"]["failover"], "shop");
    let (status, plan) = t.get("/api/v1/groups/shop/plan").await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["waves"][0][0]["name"], "scale");
    assert_eq!(plan["waves"][1][0]["name"], "dial");
    assert_eq!(plan["waves"][1][0]["approval"], true);
    let (status, _) = t.get("/api/v1/groups/shop/plan?action=sideways").await;
    assert_eq!(status, 400);

    let (status, ready) = t.get("/readyz").await;
    assert_eq!(
        (status, ready["store"].as_bool(), ready["bus"].as_bool()),
        (200, Some(true), Some(true))
    );

    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&id, "awaiting_approval").await;
    let (status, _) = t
        .post(
            &format!("/api/v1/runs/{id}/approve"),
            r#"{"stage": "dial"}"#,
        )
        .await;
    assert_eq!(status, 200);
    t.wait_state(&id, "succeeded").await;
    // A dry run passes the gate by itself: its dial is dispatched straight from scale's release.
    let dry = t.create(r#"{"group": "shop", "dry_run": true}"#).await;
    t.wait_state(&dry, "succeeded").await;
    let text = t.metrics().await;
    assert!(
        text.contains("lifeboat_stage_retries_total{agent=\"capacity\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("lifeboat_runs{state=\"succeeded\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("lifeboat_stages{state=\"succeeded\"} 4"),
        "{text}"
    );
    assert!(
        text.contains(
            "lifeboat_stage_duration_seconds_count{agent=\"capacity\",outcome=\"succeeded\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains("lifeboat_stage_overhead_seconds_count 1"),
        "{text}"
    );
    t.shutdown().await;
}

const TIMED: &str = "\
name: shop
stages:
  prescale:
    agent: capacity
    spec: { cluster: k, namespace: n, replicas: 2, duration: 200ms }
  promote:
    agent: database
    after: [prescale]
    spec: { cluster: a, role: writer, duration: 100ms }
  migrate:
    agent: database
    after: [prescale]
    spec: { cluster: b, role: writer, duration: 600ms }
  dial:
    agent: dial
    after: [promote, migrate]
    approval: required
    spec: { endpoint: shop.example.com, region: region-a, duration: 100ms }
";

#[tokio::test]
async fn a_finished_run_has_a_scorecard_with_its_critical_path() {
    let t = spawn(&[("shop.yaml", TIMED), ("groups.yaml", GROUPS)], &[]).await;
    let drill = t.create(r#"{"group": "shop", "dry_run": true}"#).await;
    t.wait_state(&drill, "succeeded").await;

    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_for(&id, "the gate", |r| {
        r["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "approval.requested"))
    })
    .await;
    let (status, body) = t.get(&format!("/api/v1/runs/{id}/report")).await;
    assert_eq!(status, 409, "no scorecard while it runs: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("its scorecard comes when it ends")
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _) = t.post(&format!("/api/v1/runs/{id}/approve"), "").await;
    assert_eq!(status, 200);
    t.wait_state(&id, "succeeded").await;

    let (status, report) = t.get(&format!("/api/v1/runs/{id}/report")).await;
    assert_eq!(status, 200, "{report}");
    let card = &report["card"];
    assert_eq!(
        card["critical_path"],
        serde_json::json!(["prescale", "migrate", "dial"])
    );
    let (total, path, overhead, people) = (
        card["total_ms"].as_i64().unwrap_or(-1),
        card["critical_path_ms"].as_i64().unwrap_or(-1),
        card["overhead_ms"].as_i64().unwrap_or(-1),
        card["waiting_on_people_ms"].as_i64().unwrap_or(-1),
    );
    assert!(
        path >= 200 + 600 + 300 + 100,
        "the path holds its stages and the gate: {report}"
    );
    assert_eq!(overhead, total - path, "{report}");
    assert!(people >= 300, "the gate waited on a person: {report}");
    assert!(report["previous"].is_null(), "the first real run: {report}");
    assert_eq!(report["last_drill"]["run"], drill.as_str());

    let again = t.create(r#"{"group": "shop"}"#).await;
    t.wait_for(&again, "the gate", |r| {
        r["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "approval.requested"))
    })
    .await;
    t.post(&format!("/api/v1/runs/{again}/approve"), "").await;
    t.wait_state(&again, "succeeded").await;
    let (_, report) = t.get(&format!("/api/v1/runs/{again}/report")).await;
    assert_eq!(report["previous"]["run"], id.as_str(), "{report}");
    assert_eq!(report["previous"]["total_ms"], total);

    let metrics = t.metrics().await;
    assert!(
        metrics.contains("lifeboat_recovery_seconds_count{group=\"shop\",action=\"failover\"} 2"),
        "{metrics}"
    );
    let (status, _) = t.get("/api/v1/runs/not-a-run/report").await;
    assert_eq!(status, 400);
}

/// A 500 says only that something went wrong and under which id the service logged it: no
/// store error, query or path reaches the client.
#[tokio::test]
async fn an_internal_error_answers_an_id_and_nothing_of_the_store() {
    let t = common::spawn(
        &[
            ("shop.yaml", "name: shop\nstages:\n  a: { agent: noop }\n"),
            ("groups.yaml", common::GROUPS),
        ],
        &[],
    )
    .await;
    // A store that answers, but not as the service expects: a bug, not an outage (which
    // is a 503, `tests/it/runs.rs`).
    let db = format!("sqlite://{}", t.dir.path().join("test.db").display());
    let mut other = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db)
        .await
        .expect("a second connection");
    sqlx::query("DROP TABLE stages")
        .execute(&mut other)
        .await
        .expect("drop");
    sqlx::query("DROP TABLE runs")
        .execute(&mut other)
        .await
        .expect("drop");
    let (status, body) = t.get("/api/v1/runs").await;
    assert_eq!(status, 500, "{body}");
    let id = body["error_id"].as_str().expect("an error id");
    assert_eq!(id.len(), 32, "{body}");
    assert_eq!(
        body["error"],
        format!("internal error; the service logged it as {id}"),
        "{body}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    t.shutdown().await;
}

/// An API with no tokens answers this machine only: a request that came through a proxy
/// (which would put it on the network) is refused, whatever it asks, and changes nothing.
#[tokio::test]
async fn an_open_api_refuses_what_came_through_a_proxy() {
    let t = spawn(&[("shop.yaml", SHOP), ("groups.yaml", GROUPS)], &[]).await;
    for (header, value) in [
        ("x-forwarded-for", "203.0.113.7"),
        ("forwarded", "for=203.0.113.7;proto=https"),
        ("x-real-ip", "203.0.113.7"),
    ] {
        let resp = t
            .client
            .post(t.url("/api/v1/runs"))
            .header(header, value)
            .json(&serde_json::json!({ "group": "shop" }))
            .send()
            .await
            .expect("a request");
        assert_eq!(resp.status().as_u16(), 401, "{header}");
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("LIFEBOAT_API_TOKENS")),
            "{header}: {body}"
        );
    }
    let (status, runs) = t.get("/api/v1/runs").await;
    assert_eq!(status, 200, "from this machine it answers");
    assert_eq!(runs["runs"], serde_json::json!([]), "nothing was started");
    t.shutdown().await;
}

/// A client that sends slowly is cut off and holds nothing: one that sends nothing, or
/// whose headers never end, is closed once they have taken 10 s, one whose body trickles
/// in gets 408 once the request has taken 30 s, and others are served all the while.
#[tokio::test]
async fn a_slow_client_is_cut_off_and_holds_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let t = shop().await;
    let addr = t.addr;

    /// Writes `piece` every second until the server answers or closes; what it answered.
    async fn trickle(mut stream: TcpStream, start: &[u8], piece: &[u8]) -> String {
        let _ = stream.write_all(start).await;
        let mut buf = vec![0u8; 4096];
        for _ in 0..60 {
            if stream.write_all(piece).await.is_err() {
                return String::new();
            }
            match tokio::time::timeout(std::time::Duration::from_secs(1), stream.read(&mut buf))
                .await
            {
                Ok(Ok(n)) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
                Ok(Err(_)) => return String::new(),
                Err(_) => {}
            }
        }
        panic!("a client sending one piece a second was never cut off")
    }

    let headers = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        trickle(
            stream,
            b"GET /healthz HTTP/1.1\r\nHost: lifeboat\r\n",
            b"X-Slow: a\r\n",
        )
        .await
    };
    // Connects and sends nothing at all: closed once its headers are 10 s late.
    let silent = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut buf = [0u8; 64];
        let wait = std::time::Duration::from_secs(20);
        let read = tokio::time::timeout(wait, stream.read(&mut buf)).await;
        assert!(
            read.is_ok(),
            "a silent connection was still open after 20 s"
        );
    };
    let body = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let start = format!(
            "POST /api/v1/runs HTTP/1.1\r\nHost: lifeboat\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        );
        trickle(stream, start.as_bytes(), b" ").await
    };
    let others = async {
        // Served all the while.
        for _ in 0..5 {
            let (status, _) = t.get("/api/v1/runs").await;
            assert_eq!(status, 200);
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    };
    let (headers, body, (), ()) = tokio::join!(headers, body, others, silent);
    assert!(
        headers.is_empty() || headers.starts_with("HTTP/1.1 408"),
        "headers that never end: {headers}"
    );
    assert!(body.starts_with("HTTP/1.1 408"), "a trickled body: {body}");
    assert_eq!(t.get("/api/v1/runs").await.1["runs"], serde_json::json!([]));
    t.shutdown().await;
}

/// A run's params must be declared by the workflow, be a string, number or boolean, and fit
/// the declaration's `enum` and `pattern`; anything else is a 400 naming the param, and
/// starts nothing.
#[tokio::test]
async fn a_run_takes_only_the_params_its_workflow_declares() {
    const DECLARED: &str = r#"
name: shop
params:
  to: { default: region-a, enum: [region-a, region-b] }
  replicas: { default: 3, pattern: "[0-9]{1,2}" }
  note: hello
stages:
  scale:
    agent: capacity
    spec: { cluster: "k8s-${to}", namespace: shop, replicas: "${replicas}", duration: 10ms }
"#;
    let t = spawn(
        &[("shop.yaml", DECLARED), ("groups.yaml", GROUPS)],
        &[("ops", TOKEN)],
    )
    .await;
    for (params, names) in [
        (r#"{"region": "region-b"}"#, "param `region`"),
        (r#"{"to": ["region-a"]}"#, "param `to`"),
        (r#"{"note": {"a": 1}}"#, "param `note`"),
        (r#"{"note": null}"#, "param `note`"),
        (r#"{"to": "region-a; drop table runs"}"#, "param `to`"),
        (r#"{"replicas": "3; rm -rf /"}"#, "param `replicas`"),
        (r#"{"replicas": 100}"#, "param `replicas`"),
        // A bare default takes any string, but not a reference to the agent's secrets.
        (
            r#"{"note": "x ${env:HOME} ${file:/etc/shadow}"}"#,
            "param `note`",
        ),
    ] {
        let (status, body) = t
            .post(
                "/api/v1/runs",
                &format!(r#"{{"group": "shop", "params": {params}}}"#),
            )
            .await;
        assert_eq!(status, 400, "{params}: {body}");
        let error = error_of(&body);
        assert!(error.contains(names), "{params}: `{error}` names {names}");
    }
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(runs["runs"], serde_json::json!([]), "nothing was started");

    let id = t
        .create(r#"{"group": "shop", "params": {"to": "region-b", "replicas": 12, "note": "hi"}}"#)
        .await;
    let run = t.wait_state(&id, "succeeded").await;
    let scale = stage(&run, "scale");
    assert_eq!(
        scale["report"]["changes"][0]["target"], "k8s-region-b/shop/all workloads replicas",
        "{run}"
    );
    assert_eq!(scale["report"]["changes"][0]["to"], "12", "{run}");
    t.shutdown().await;
}
