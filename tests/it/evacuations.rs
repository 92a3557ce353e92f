//! Evacuations: many groups at once, in dependency order (`depends_on`), a failure holding
//! its dependents until a person resumes it, skips it, or aborts the rest; asked wrongly,
//! refused with what and where; and a `serve` killed mid-evacuation finishing it after a
//! restart with each group's run made once.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, TestApp};

fn workflow(name: &str, spec: &str) -> String {
    format!(
        "name: {name}\nstages:\n  move:\n    agent: capacity\n    retry: {{ max_attempts: 1 }}\n    spec: {{ cluster: k8s-{name}, namespace: {name}, replicas: 2, {spec} }}\n"
    )
}

const GROUPS: &str = r#"
groups:
  db:
    workflows: { failover: db }
  auth:
    workflows: { failover: auth }
    depends_on: [db]
  app:
    workflows: { failover: app }
    depends_on: [auth, db]
  edge:
    workflows: { failover: edge }
  bad:
    workflows: { failover: bad }
  after-bad:
    workflows: { failover: app }
    depends_on: [bad]
  flaky:
    workflows: { failover: flaky }
  after-flaky:
    workflows: { failover: app }
    depends_on: [flaky]
  locked:
    workflows: { failover: app }
    allow: { api: [someone-else] }
"#;

async fn spawn() -> TestApp {
    let files = [
        ("db.yaml", workflow("db", "duration: 300ms")),
        ("auth.yaml", workflow("auth", "duration: 200ms")),
        ("app.yaml", workflow("app", "duration: 50ms")),
        ("edge.yaml", workflow("edge", "duration: 50ms")),
        (
            "bad.yaml",
            workflow("bad", "duration: 10ms, fail_permanently: true"),
        ),
        (
            "flaky.yaml",
            workflow("flaky", "duration: 10ms, fail_attempts: 1"),
        ),
        ("groups.yaml", GROUPS.to_string()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    common::spawn(&files, &[("ops", "secret-ops")]).await
}

async fn evacuate(t: &TestApp, body: Value) -> String {
    let (status, e) = t.post("/api/v1/evacuations", &body.to_string()).await;
    assert_eq!(status, 201, "{e}");
    assert_eq!(e["state"], "going");
    e["id"].as_str().unwrap_or_default().to_string()
}

/// The evacuation once `done` says so of it.
async fn until(t: &TestApp, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::until(what, Duration::from_secs(30), async || {
        let (status, e) = t.get(&format!("/api/v1/evacuations/{id}")).await;
        assert_eq!(status, 200, "{e}");
        done(&e).then_some(e)
    })
    .await
}

fn group<'a>(e: &'a Value, name: &str) -> &'a Value {
    e["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["group"] == name))
        .unwrap_or(&Value::Null)
}

async fn run_of(t: &TestApp, e: &Value, name: &str) -> Value {
    let id = group(e, name)["run"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(status, 200, "{name}: {run}");
    run
}

fn millis(run: &Value, field: &str) -> i64 {
    run[field]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[tokio::test]
async fn groups_move_in_dependency_order_and_a_failure_holds_its_dependents() {
    let t = spawn().await;
    let id = evacuate(
        &t,
        json!({"groups": ["app", "auth", "db", "edge", "bad", "after-bad"], "reason": "region a is gone"}),
    )
    .await;
    let e = until(&t, &id, "the tiers to finish", |e| {
        ["app", "edge"]
            .iter()
            .all(|g| group(e, g)["state"] == "succeeded")
            && group(e, "after-bad")["state"] == "held"
    })
    .await;
    assert_eq!(e["state"], "going", "held for a person: {e:#}");
    assert_eq!(group(&e, "bad")["state"], "failed");
    assert_eq!(
        group(&e, "after-bad")["note"],
        "held: `bad`, which it depends on, is failed"
    );
    assert!(group(&e, "after-bad")["run"].is_null(), "never started");
    assert_eq!(group(&e, "app")["depends_on"], json!(["auth", "db"]));
    assert_eq!(e["counts"]["succeeded"], 4, "{e:#}");

    // Each tier started after the one before it ended.
    let db = run_of(&t, &e, "db").await;
    let auth = run_of(&t, &e, "auth").await;
    let app = run_of(&t, &e, "app").await;
    assert!(millis(&auth, "created_at") >= millis(&db, "finished_at"));
    assert!(millis(&app, "created_at") >= millis(&auth, "finished_at"));
    let edge = run_of(&t, &e, "edge").await;
    assert!(
        millis(&edge, "created_at") < millis(&db, "finished_at"),
        "a group on nothing starts at once"
    );
    assert_eq!(db["reason"], format!("evacuation {id}: region a is gone"));
    assert_eq!(db["requested_by"], "api:ops");

    // Skipped with a reason: its dependent goes on, and the evacuation ends.
    let (status, body) = t
        .post(
            &format!("/api/v1/evacuations/{id}/groups/bad/skip"),
            r#"{"reason": "bad moved by hand"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let e = until(&t, &id, "the evacuation to end", |e| e["state"] != "going").await;
    assert_eq!(e["state"], "succeeded", "{e:#}");
    assert_eq!(group(&e, "after-bad")["state"], "succeeded");
    assert_eq!(
        group(&e, "bad")["note"],
        "skipped by api:ops: bad moved by hand"
    );
    assert!(e["finished_at"].is_string());
    // The scorecard: the chain db → auth → app is the critical path (300 ms + 200 ms +
    // 50 ms of work at least), and db is the slowest run.
    let card = &e["scorecard"];
    assert_eq!(
        card["critical_path"],
        json!(["db", "auth", "app"]),
        "{card:#}"
    );
    assert!(
        card["critical_path_ms"]
            .as_i64()
            .is_some_and(|ms| ms >= 550)
    );
    assert!(card["total_ms"].as_i64() >= card["critical_path_ms"].as_i64());
    assert_eq!(card["slowest"][0]["group"], "db", "{card:#}");
    t.shutdown().await;
}

#[tokio::test]
async fn a_failed_group_is_resumed_or_the_rest_aborted() {
    let t = spawn().await;
    let id = evacuate(
        &t,
        json!({"groups": ["flaky", "after-flaky"], "reason": "drill day"}),
    )
    .await;
    let e = until(&t, &id, "flaky to fail", |e| {
        group(e, "after-flaky")["state"] == "held"
    })
    .await;
    let first = group(&e, "flaky")["run"].clone();
    // Only a failed group is resumed; a held one is not.
    let (status, _) = t
        .post(
            &format!("/api/v1/evacuations/{id}/groups/after-flaky/resume"),
            "",
        )
        .await;
    assert_eq!(status, 409);
    let (status, body) = t
        .post(&format!("/api/v1/evacuations/{id}/groups/flaky/resume"), "")
        .await;
    assert_eq!(status, 200, "{body}");
    let e = until(&t, &id, "the evacuation to end", |e| e["state"] != "going").await;
    assert_eq!(e["state"], "succeeded", "{e:#}");
    assert_eq!(group(&e, "flaky")["run"], first, "the same run, resumed");

    // Aborted: what waits never starts; the evacuation ends aborted.
    let id = evacuate(
        &t,
        json!({"groups": ["bad", "after-bad"], "reason": "again"}),
    )
    .await;
    until(&t, &id, "bad to fail", |e| {
        group(e, "after-bad")["state"] == "held"
    })
    .await;
    let (status, body) = t
        .post(
            &format!("/api/v1/evacuations/{id}/abort"),
            r#"{"reason": "not today"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let e = until(&t, &id, "the evacuation to end", |e| e["state"] != "going").await;
    assert_eq!(e["state"], "aborted", "{e:#}");
    assert_eq!(group(&e, "after-bad")["state"], "aborted");
    assert_eq!(
        group(&e, "after-bad")["note"],
        "aborted by api:ops: not today"
    );
    let (status, _) = t.post(&format!("/api/v1/evacuations/{id}/abort"), "").await;
    assert_eq!(status, 409, "ended already");
    t.shutdown().await;
}

#[tokio::test]
async fn an_evacuation_asked_wrongly_is_refused_and_starts_nothing() {
    let t = spawn().await;
    for (body, want, says) in [
        (
            json!({"groups": ["nope"], "reason": "x"}),
            404,
            "unknown group `nope`",
        ),
        (
            json!({"groups": ["db"], "reason": " "}),
            400,
            "the reason is empty",
        ),
        (
            json!({"groups": "some", "reason": "x"}),
            400,
            "\"all\" or a list",
        ),
        (
            json!({"groups": [], "reason": "x"}),
            400,
            "at least one group",
        ),
        (
            json!({"groups": ["db"], "reason": "x", "action": "explode"}),
            400,
            "explode",
        ),
        (
            json!({"groups": ["db"], "reason": "x", "extra": 1}),
            400,
            "extra",
        ),
        (
            json!({"groups": ["db", "locked"], "reason": "x"}),
            403,
            "`locked`",
        ),
    ] {
        let (status, answer) = t.post("/api/v1/evacuations", &body.to_string()).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(says)),
            "{body}: {answer}"
        );
    }
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(runs["runs"], json!([]), "nothing started");
    let id = evacuate(&t, json!({"groups": ["edge"], "reason": "x"})).await;
    for (path, body, want) in [
        (
            format!("/api/v1/evacuations/{id}/groups/edge/explode"),
            "{}",
            404,
        ),
        (
            format!("/api/v1/evacuations/{id}/groups/edge/skip"),
            "{}",
            400,
        ),
        (
            format!("/api/v1/evacuations/{id}/groups/nope/skip"),
            r#"{"reason": "r"}"#,
            404,
        ),
        (
            "/api/v1/evacuations/01890000-0000-7000-8000-000000000000/abort".to_string(),
            "{}",
            404,
        ),
        ("/api/v1/evacuations/not-an-id/abort".to_string(), "{}", 400),
    ] {
        let (status, answer) = t.post(&path, body).await;
        assert_eq!(status, want, "{path}: {answer}");
    }
    let e = until(&t, &id, "edge to move", |e| e["state"] == "succeeded").await;
    let (status, _) = t
        .post(
            &format!("/api/v1/evacuations/{id}/groups/edge/skip"),
            r#"{"reason": "r"}"#,
        )
        .await;
    assert_eq!(status, 409, "a group that succeeded is not skipped: {e:#}");
    t.shutdown().await;
}

/// `lifeboat serve` killed while the first tier runs: started again on the same store, it
/// finishes the evacuation, and each group has one run, the one the evacuation names.
#[tokio::test]
async fn a_killed_service_finishes_the_evacuation_with_each_run_made_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Retried: an attempt the kill cut short is tried again once its lease expires.
    let retried =
        |name: &str, spec: &str| workflow(name, spec).replace("max_attempts: 1", "max_attempts: 3");
    common::write_workflows(
        dir.path(),
        &[
            ("db.yaml", &retried("db", "duration: 1500ms")),
            ("auth.yaml", &retried("auth", "duration: 100ms")),
            ("app.yaml", &retried("app", "duration: 100ms")),
            ("edge.yaml", &retried("edge", "duration: 100ms")),
            ("bad.yaml", &retried("bad", "duration: 10ms")),
            ("flaky.yaml", &retried("flaky", "duration: 10ms")),
            ("groups.yaml", GROUPS),
        ],
    );
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut serve = common::serve(dir.path(), port, &[]);
    common::until_ready(&client, &base).await;
    let (status, e) = common::post_json(
        &client,
        &format!("{base}/api/v1/evacuations"),
        None,
        &json!({"groups": ["app", "auth", "db", "edge"], "reason": "crash test"}),
    )
    .await;
    assert_eq!(status, 201, "{e}");
    let id = e["id"].as_str().unwrap_or_default().to_string();
    let url = format!("{base}/api/v1/evacuations/{id}");
    common::until("db to run", Duration::from_secs(20), async || {
        let e = common::get_json(&client, &url, None).await?;
        (group(&e, "db")["state"] == "started").then_some(())
    })
    .await;
    serve.0.kill().expect("kill -9");
    let _ = serve.0.wait();
    let _serve = common::serve(dir.path(), port, &[]);
    common::until_ready(&client, &base).await;
    let e = common::until(
        "the evacuation to end",
        Duration::from_secs(60),
        async || {
            let e = common::get_json(&client, &url, None).await?;
            (e["state"] != "going").then_some(e)
        },
    )
    .await;
    assert_eq!(e["state"], "succeeded", "{e:#}");
    for name in ["app", "auth", "db", "edge"] {
        let runs = common::get_json(&client, &format!("{base}/api/v1/runs?group={name}"), None)
            .await
            .unwrap_or_default();
        let runs = runs["runs"].as_array().cloned().unwrap_or_default();
        assert_eq!(runs.len(), 1, "{name}: {runs:#?}");
        assert_eq!(runs[0]["state"], "succeeded");
        assert_eq!(runs[0]["id"], group(&e, name)["run"], "{name}");
    }
}

#[tokio::test]
async fn lifeboat_evacuate_follows_an_evacuation_to_its_end() {
    let t = spawn().await;
    let lifeboat = async |args: &[&str]| {
        // Not a blocking wait: the service it asks runs on this test's runtime.
        tokio::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(args)
            .env("LIFEBOAT_SERVER", t.url(""))
            .env("LIFEBOAT_API_TOKEN", "secret-ops")
            .env_remove("LIFEBOAT_CONFIG")
            .output()
            .await
            .expect("lifeboat runs")
    };
    let done = lifeboat(&["evacuate", "db", "auth", "--reason", "game day"]).await;
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{done:?}");
    assert!(said.starts_with("evacuation "), "{said}");
    assert!(said.contains("2 succeeded"), "{said}");
    assert!(said.trim_end().ends_with("succeeded"), "{said}");

    let failed = lifeboat(&["evacuate", "bad", "--reason", "game day"]).await;
    let said = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(1), "{said}");
    assert!(said.contains("  bad: failed (run "), "{said}");
    let refused = lifeboat(&["evacuate", "locked", "--reason", "x"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused (403 Forbidden)"));
    let usage = lifeboat(&["evacuate", "db"]).await;
    assert_eq!(usage.status.code(), Some(2), "--reason is required");
    t.shutdown().await;
}

/// Two `serve` replicas on Kafka and PostgreSQL, both moving the same evacuation: each
/// group's run is made once, in order, and each stage runs once.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn on_two_replicas_each_group_of_an_evacuation_runs_once() {
    use crate::common::cluster::Cluster;
    let Some(brokers) = common::kafka_brokers() else {
        return;
    };
    let Some((db, db_name)) = common::fresh_postgres().await else {
        return;
    };
    let mut groups = String::from("groups:\n");
    let names = ["a", "b", "c", "d", "e", "f"];
    for (i, name) in names.iter().enumerate() {
        groups.push_str(&format!("  {name}:\n    workflows: {{ failover: shop }}\n"));
        // a ← b ← c; d, e and f on nothing.
        if (1..3).contains(&i) {
            groups.push_str(&format!("    depends_on: [{}]\n", names[i - 1]));
        }
    }
    let mut cluster = Cluster::with_groups(&brokers, &db, &[("one", 0)], &groups);
    let (_a, base_a) = cluster.serve("serve-a").await;
    let (_b, base_b) = cluster.serve("serve-b").await;
    let _agent = cluster.agent("agent-1");
    // Started before an agent serves `exec`, each run would be refused by the preflight.
    let agents = format!("{base_a}/api/v1/agents");
    common::until(
        "the agent to be live",
        Duration::from_secs(30),
        async || {
            let a = common::get_json(&cluster.client, &agents, None).await?;
            a["agents"]
                .as_array()?
                .iter()
                .any(|a| a["live"] == true)
                .then_some(())
        },
    )
    .await;
    let (status, e) = common::post_json(
        &cluster.client,
        &format!("{base_a}/api/v1/evacuations"),
        None,
        &json!({"groups": "all", "reason": "two replicas"}),
    )
    .await;
    assert_eq!(status, 201, "{e}");
    let url = format!(
        "{base_b}/api/v1/evacuations/{}",
        e["id"].as_str().unwrap_or("")
    );
    let e = common::until(
        "the evacuation to end",
        Duration::from_secs(60),
        async || {
            let e = common::get_json(&cluster.client, &url, None).await?;
            (e["state"] != "going").then_some(e)
        },
    )
    .await;
    assert_eq!(e["state"], "succeeded", "{e:#}\n{}", cluster.logs());
    let mut created = Vec::new();
    for name in names {
        let runs = common::get_json(
            &cluster.client,
            &format!("{base_a}/api/v1/runs?group={name}"),
            None,
        )
        .await
        .unwrap_or_default();
        let runs = runs["runs"].as_array().cloned().unwrap_or_default();
        assert_eq!(runs.len(), 1, "{name}: {runs:#?}");
        created.push((
            runs[0]["created_at"].clone(),
            runs[0]["finished_at"].clone(),
        ));
    }
    // b after a ended, c after b (RFC 3339 in UTC sorts as time).
    assert!(
        created[1].0.as_str() >= created[0].1.as_str(),
        "{created:?}"
    );
    assert!(
        created[2].0.as_str() >= created[1].1.as_str(),
        "{created:?}"
    );
    assert_eq!(
        cluster.ran().len(),
        names.len(),
        "each stage once: {:?}",
        cluster.ran()
    );
    drop(cluster);
    common::drop_postgres(&db_name).await;
}
