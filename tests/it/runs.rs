//! Runs end to end on the embedded deployment: parallel stages, retries, timeouts, failure,
//! dry runs, the shipped agents, and leases that keep two runs off one resource.

use crate::common;

use common::{spawn, stage};
use serde_json::Value;

fn ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let t = humantime::parse_rfc3339(s).expect("rfc3339");
    t.duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_millis() as i64
}

#[tokio::test]
async fn independent_stages_overlap_in_time() {
    let wf = r#"
name: shop
stages:
  left:
    agent: exec
    spec: { command: [sleep, "0.6"] }
  right:
    agent: exec
    after: []
    spec: { command: [sleep, "0.6"] }
  join:
    agent: noop
    after: [left, right]
"#;
    let t = spawn(&[("shop.yaml", wf), ("groups.yaml", common::GROUPS)], &[]).await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    let (left, right, join) = (
        stage(&run, "left"),
        stage(&run, "right"),
        stage(&run, "join"),
    );
    // Each started before the other finished: they ran at the same time.
    assert!(
        ms(&left["started_at"]) < ms(&right["finished_at"]),
        "{run:#}"
    );
    assert!(
        ms(&right["started_at"]) < ms(&left["finished_at"]),
        "{run:#}"
    );
    assert!(ms(&join["started_at"]) >= ms(&left["finished_at"]).max(ms(&right["finished_at"])));
    t.shutdown().await;
}

#[tokio::test]
async fn a_transient_failure_is_retried_and_the_attempts_counted() {
    let scratch = tempfile::tempdir().expect("scratch");
    let wf = r#"
name: shop
params: { dir: "" }
stages:
  flaky:
    agent: database
    spec: { cluster: db-a, role: writer, fail_attempts: 2, duration: 20ms }
    retry: { max_attempts: 4, initial_backoff: 50ms, max_backoff: 200ms }
  counted:
    agent: exec
    spec:
      command: [sh, -c, 'n=$(cat tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > tries; test $n -ge 3']
      workdir: "${dir}"
    retry: { max_attempts: 3, initial_backoff: 50ms, max_backoff: 100ms }
"#;
    let t = spawn(&[("shop.yaml", wf), ("groups.yaml", common::GROUPS)], &[]).await;
    let body =
        serde_json::json!({ "group": "shop", "params": { "dir": scratch.path() } }).to_string();
    let id = t.create(&body).await;
    let run = t
        .wait_for(&id, "the run to end", |r| r["finished_at"].is_string())
        .await;
    assert_eq!(stage(&run, "flaky")["attempts"], 3, "{run:#}");
    assert_eq!(stage(&run, "flaky")["state"], "succeeded");
    let retries = run["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "stage.retrying" && e["stage"] == "flaky")
        .count();
    assert_eq!(retries, 2);
    assert!(
        stage(&run, "flaky")["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("simulated:")
    );
    // Three attempts of the command, the last one passing.
    assert_eq!(stage(&run, "counted")["attempts"], 3, "{run:#}");
    assert_eq!(
        std::fs::read_to_string(scratch.path().join("tries"))
            .expect("tries")
            .trim(),
        "3"
    );
    assert_eq!(run["state"], "succeeded");
    t.shutdown().await;
}

#[tokio::test]
async fn retries_run_out_then_the_run_fails_and_dependents_are_skipped() {
    let wf = r#"
name: shop
stages:
  broken:
    agent: exec
    spec: { command: [sh, -c, "echo no disk >&2; exit 3"] }
    retry: { max_attempts: 2, initial_backoff: 50ms, max_backoff: 50ms }
  never:
    agent: noop
"#;
    let t = spawn(&[("shop.yaml", wf), ("groups.yaml", common::GROUPS)], &[]).await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "failed").await;
    let broken = stage(&run, "broken");
    assert_eq!(broken["attempts"], 2);
    assert_eq!(broken["message"], "exit code 3: no disk (attempt 2 of 2)");
    assert_eq!(stage(&run, "never")["state"], "skipped");
    assert_eq!(
        run["message"],
        "stage `broken` failed: exit code 3: no disk (attempt 2 of 2)"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a_command_that_cannot_start_fails_at_once() {
    let wf = r#"
name: shop
stages:
  missing:
    agent: exec
    spec: { command: [/nonexistent/lifeboat-tool] }
"#;
    let t = spawn(&[("shop.yaml", wf), ("groups.yaml", common::GROUPS)], &[]).await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "failed").await;
    assert_eq!(stage(&run, "missing")["attempts"], 1, "permanent: no retry");
    assert!(
        stage(&run, "missing")["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot start `/nonexistent/lifeboat-tool`")
    );
    t.shutdown().await;
}

/// A stopped attempt stops whole: what the command started in the background goes with it.
#[tokio::test]
async fn an_attempt_past_its_timeout_is_stopped_and_retried() {
    let scratch = tempfile::tempdir().expect("scratch");
    let late = scratch.path().join("late");
    let wf = format!(
        r#"
name: shop
stages:
  hang:
    agent: exec
    spec: {{ command: [sh, -c, '(sleep 1; echo late >> {}) & wait'] }}
    timeout: 300ms
    retry: {{ max_attempts: 2, initial_backoff: 10ms, max_backoff: 10ms }}
"#,
        late.display()
    );
    let t = spawn(&[("shop.yaml", &wf), ("groups.yaml", common::GROUPS)], &[]).await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "failed").await;
    let hang = stage(&run, "hang");
    assert_eq!(hang["attempts"], 2);
    assert_eq!(hang["message"], "timed out after 300ms (attempt 2 of 2)");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !late.exists(),
        "a background process of a stopped attempt ran on"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let scratch = tempfile::tempdir().expect("scratch");
    let wf = r#"
name: shop
params: { dir: "" }
stages:
  touch:
    agent: exec
    spec: { command: [touch, must-not-exist], workdir: "${dir}" }
  scale:
    agent: capacity
    approval: required
    spec: { cluster: k8s, namespace: shop, replicas: 3 }
"#;
    let t = spawn(&[("shop.yaml", wf), ("groups.yaml", common::GROUPS)], &[]).await;
    let body = serde_json::json!({ "group": "shop", "dry_run": true, "params": { "dir": scratch.path() } }).to_string();
    let id = t.create(&body).await;
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(
        stage(&run, "touch")["message"],
        "dry run: would run touch must-not-exist"
    );
    assert_eq!(
        stage(&run, "scale")["message"],
        "simulated dry run: would scale all workloads in k8s/shop to 3 replicas"
    );
    assert_eq!(stage(&run, "scale")["approved_by"], "dry-run");
    assert!(!scratch.path().join("must-not-exist").exists());
    t.shutdown().await;
}

#[tokio::test]
async fn http_and_wait_agents_talk_to_real_endpoints() {
    // A first app is the target: its health endpoint is a real HTTP server on loopback.
    let target = spawn(
        &[
            ("shop.yaml", "name: shop\nstages:\n  x: { agent: noop }\n"),
            ("groups.yaml", common::GROUPS),
        ],
        &[],
    )
    .await;
    let port = target.addr.port();
    let scratch = tempfile::tempdir().expect("scratch");
    let db = scratch.path().join("probe.db").display().to_string();
    let wf = format!(
        r#"
name: shop
stages:
  healthy:
    agent: http
    spec: {{ url: "http://127.0.0.1:{port}/healthz", expect_status: 200, expect_body: '"ok"' }}
  port-open:
    agent: wait
    after: []
    spec: {{ tcp: "127.0.0.1:{port}", interval: 50ms, timeout: 2s }}
  url-up:
    agent: wait
    after: []
    spec: {{ url: "http://127.0.0.1:{port}/readyz", interval: 50ms, timeout: 2s }}
  sql-up:
    agent: wait
    after: []
    spec: {{ sql: "sqlite://{db}?mode=rwc", interval: 50ms, timeout: 2s }}
  wrong:
    agent: http
    after: [healthy, port-open, url-up, sql-up]
    spec: {{ url: "http://127.0.0.1:{port}/api/v1/nothing", expect_status: [200, 204] }}
"#
    );
    let t = spawn(&[("shop.yaml", &wf), ("groups.yaml", common::GROUPS)], &[]).await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "failed").await;
    assert_eq!(
        stage(&run, "healthy")["message"],
        format!("GET http://127.0.0.1:{port}/healthz answered 200")
    );
    assert_eq!(
        stage(&run, "port-open")["message"],
        format!("127.0.0.1:{port} accepts connections")
    );
    assert_eq!(
        stage(&run, "url-up")["message"],
        format!("http://127.0.0.1:{port}/readyz answered 200")
    );
    assert_eq!(
        stage(&run, "sql-up")["message"],
        "database answers SELECT 1"
    );
    let wrong = stage(&run, "wrong");
    assert_eq!(wrong["attempts"], 1, "a 404 is permanent");
    assert_eq!(
        wrong["message"],
        format!("GET http://127.0.0.1:{port}/api/v1/nothing answered 404")
    );
    t.shutdown().await;
    target.shutdown().await;
}

#[tokio::test]
async fn two_runs_never_hold_one_resource_at_once() {
    // Two groups whose workflows scale the same namespace: the lease serialises them.
    let wf = |name: &str| {
        format!(
            "name: {name}\nstages:\n  scale:\n    agent: capacity\n    spec: {{ cluster: shared, namespace: ns, replicas: 2, duration: 400ms }}\n"
        )
    };
    let groups =
        "groups:\n  a:\n    workflows: { failover: wa }\n  b:\n    workflows: { failover: wb }\n";
    let t = spawn(
        &[
            ("wa.yaml", &wf("wa")),
            ("wb.yaml", &wf("wb")),
            ("groups.yaml", groups),
        ],
        &[],
    )
    .await;
    let a = t.create(r#"{"group": "a"}"#).await;
    let b = t.create(r#"{"group": "b"}"#).await;
    let ra = t.wait_state(&a, "succeeded").await;
    let rb = t.wait_state(&b, "succeeded").await;
    let (sa, sb) = (stage(&ra, "scale"), stage(&rb, "scale"));
    // Intervals of lease holding (running) do not overlap: one finished before the other ran.
    let a_run = ra["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "stage.running")
        .map(|e| ms(&e["at"]))
        .expect("a ran");
    let b_run = rb["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "stage.running")
        .map(|e| ms(&e["at"]))
        .expect("b ran");
    let (first_end, second_start) = if a_run <= b_run {
        (ms(&sa["finished_at"]), b_run)
    } else {
        (ms(&sb["finished_at"]), a_run)
    };
    assert!(
        second_start >= first_end,
        "the second run took the lease at {second_start}, before the first released it at {first_end}"
    );
    t.shutdown().await;
}

/// Every lifecycle event has an id of its own: the key by which a consumer that must act
/// once (a chat notifier) recognises an event delivered again.
#[tokio::test]
async fn lifecycle_events_carry_distinct_ids() {
    let wf =
        "name: shop\nstages:\n  a: { agent: noop }\n  b: { agent: noop }\n  c: { agent: noop }\n";
    let t = spawn(&[("shop.yaml", wf), ("groups.yaml", common::GROUPS)], &[]).await;
    let bus = t.app().bus.clone();
    let mut events = bus
        .subscribe(lifeboat::bus::EVENTS_TOPIC, "test")
        .await
        .expect("subscribe");
    let id = t.create(r#"{"group": "shop"}"#).await;
    let mut seen: Vec<lifeboat::bus::RunEvent> = Vec::new();
    while !seen.iter().any(|e| e.kind.to_string() == "run.succeeded") {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("an event")
            .expect("the bus is open");
        seen.push(serde_json::from_slice(&m.payload).expect("a run event"));
    }
    let ids: std::collections::HashSet<&str> = seen.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), seen.len(), "{seen:#?}");
    for e in &seen {
        assert!(e.id.starts_with(&format!("{id}/")), "{e:?}");
    }
    // One write may carry several events (a stage's success and the next one's dispatch).
    assert!(seen.iter().any(|e| e.id.ends_with("/2")), "{seen:#?}");
    t.shutdown().await;
}

/// Runs asked for back to back on one group, each as the one before may be finishing: each
/// answer is 201 (the group was free) or 409 (it was not), never a 500 for a run that ended
/// between the refused insert and the look-up of who held the group.
#[tokio::test]
async fn runs_started_back_to_back_on_one_group_get_201_or_409() {
    let t = common::spawn(
        &[
            ("shop.yaml", "name: shop\nstages:\n  a: { agent: noop }\n"),
            ("groups.yaml", common::GROUPS),
        ],
        &[],
    )
    .await;
    let (mut created, mut busy) = (0, 0);
    for _ in 0..300 {
        let (status, body) = t.post("/api/v1/runs", r#"{"group": "shop"}"#).await;
        match status {
            201 => created += 1,
            409 => busy += 1,
            other => panic!("{other}: {body}"),
        }
    }
    assert!(created > 1 && busy > 0, "{created} created, {busy} busy");
    t.shutdown().await;
}

/// A store that stops answering is an outage, told apart from a bug: reads, starts and
/// controls answer 503 (try later) with the cause, not a 500.
#[tokio::test]
async fn a_store_that_stops_answering_is_a_503_not_a_500() {
    let (t, id) = common::holding_run().await;
    t.app().store.close().await;
    let (status, body) = t.get("/api/v1/runs").await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("the store is unavailable")),
        "{body}"
    );
    assert!(
        body.get("error_id").is_none(),
        "an outage is not a bug: {body}"
    );
    let (status, body) = t.post("/api/v1/runs", r#"{"group": "shop"}"#).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = t.post(&format!("/api/v1/runs/{id}/cancel"), "").await;
    assert_eq!(status, 503, "{body}");
    t.shutdown().await;
}
