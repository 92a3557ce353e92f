//! Scheduled drills: a group with `drill: { every: 1s }` is drilled by the service at
//! each second, as a dry run whose gates pass by themselves, each time once; never while a
//! real run of the group is going; and a bad schedule is refused where it is written.

use std::time::Duration;

use serde_json::Value;

use crate::common::{self, TestApp};

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

const HOLD: &str = r#"
name: hold
stages:
  hold:
    agent: capacity
    spec: { cluster: k8s, namespace: shop, replicas: 3, duration: 60s }
"#;

const GROUPS: &str = r#"
groups:
  shop:
    workflows: { failover: shop }
    drill: { every: 1s }
  held:
    workflows: { failover: hold, drill: shop }
    drill: { every: 1s }
"#;

async fn runs_of(t: &TestApp, group: &str) -> Vec<Value> {
    let (status, body) = t
        .get(&format!("/api/v1/runs?group={group}&limit=500"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["runs"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_group_is_drilled_on_its_schedule_once_a_time_and_never_over_a_real_run() {
    let t = common::spawn(
        &[
            ("shop.yaml", SHOP),
            ("hold.yaml", HOLD),
            ("groups.yaml", GROUPS),
        ],
        &[],
    )
    .await;
    // A real failover of `held` goes on for a minute: its drills are skipped meanwhile.
    let real = t
        .create(r#"{"group": "held", "reason": "the real thing"}"#)
        .await;
    t.wait_state(&real, "running").await;

    let drills = common::until(
        "three drills of shop",
        Duration::from_secs(20),
        async || {
            let done: Vec<Value> = runs_of(&t, "shop")
                .await
                .into_iter()
                .filter(|r| r["state"] == "succeeded")
                .collect();
            (done.len() >= 3).then_some(done)
        },
    )
    .await;
    for d in &drills {
        assert_eq!(d["action"], "drill", "{d}");
        assert_eq!(d["dry_run"], true);
        assert_eq!(d["requested_by"], "schedule");
        assert!(
            d["reason"]
                .as_str()
                .is_some_and(|r| r.contains("scheduled drill (every 1s)"))
        );
    }
    // Each time once: one drill a second at most, never two at once.
    let created: Vec<i64> = runs_of(&t, "shop")
        .await
        .iter()
        .filter_map(|r| r["created_at"].as_str())
        .filter_map(|c| humantime::parse_rfc3339(c).ok())
        .filter_map(|c| c.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .collect();
    let mut seconds: Vec<i64> = created.iter().map(|ms| ms / 1000).collect();
    seconds.sort();
    let mut unique = seconds.clone();
    unique.dedup();
    assert_eq!(seconds, unique, "two drills in one second: {created:?}");

    let held: Vec<Value> = runs_of(&t, "held").await;
    assert_eq!(
        held.len(),
        1,
        "no drill while the real run goes on: {held:?}"
    );
    let skipped = t.app().store.drills("held", 10).await.expect("the drills");
    assert!(skipped.len() >= 2, "{skipped:?}");
    assert!(skipped.iter().all(|d| {
        d.run.is_none()
            && d.skipped
                .as_deref()
                .is_some_and(|s| s.contains("a real run of the group is going"))
    }));

    // Once the real run is over, the group is drilled again.
    let (status, _) = t
        .post(
            &format!("/api/v1/runs/{real}/cancel"),
            r#"{"reason": "done"}"#,
        )
        .await;
    assert_eq!(status, 200);
    common::until("a drill of held", Duration::from_secs(10), async || {
        runs_of(&t, "held")
            .await
            .iter()
            .any(|r| r["action"] == "drill")
            .then_some(())
    })
    .await;
    t.shutdown().await;
}

/// Two `serve` replicas on one PostgreSQL and one Kafka namespace both follow the group's
/// schedule: each time is drilled once, by whichever replica took it.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn on_two_replicas_each_scheduled_drill_runs_once() {
    use crate::common::cluster::Cluster;
    let Some(brokers) = common::kafka_brokers() else {
        return;
    };
    let Some((db, db_name)) = common::fresh_postgres().await else {
        return;
    };
    let groups = "groups:\n  shop:\n    workflows: { failover: shop }\n    drill: { every: 1s }\n";
    let mut cluster = Cluster::with_groups(&brokers, &db, &[("one", 0), ("two", 0)], groups);
    let (_a, base_a) = cluster.serve("serve-a").await;
    let (_b, _base_b) = cluster.serve("serve-b").await;
    let _agent = cluster.agent("agent-1");
    let url = format!("{base_a}/api/v1/runs?group=shop&action=drill&state=succeeded&limit=500");
    let drills = common::until("four drills done", Duration::from_secs(60), async || {
        let body = common::get_json(&cluster.client, &url, None).await?;
        let runs = body["runs"].as_array()?.clone();
        (runs.len() >= 4).then_some(runs)
    })
    .await;
    // Every replica asked for every time; a time drilled twice would show as two runs
    // created in the same second.
    let all = common::get_json(
        &cluster.client,
        &format!("{base_a}/api/v1/runs?group=shop&limit=500"),
        None,
    )
    .await
    .expect("the runs");
    let mut seconds: Vec<String> = all["runs"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|r| r["created_at"].as_str())
                .map(|c| c.get(..19).unwrap_or(c).to_string())
                .collect()
        })
        .unwrap_or_default();
    let count = seconds.len();
    seconds.dedup();
    assert_eq!(
        seconds.len(),
        count,
        "a time drilled twice: {all:#}\n{}",
        cluster.logs()
    );
    assert!(
        drills
            .iter()
            .all(|d| d["requested_by"] == "schedule" && d["dry_run"] == true)
    );
    assert!(cluster.ran().is_empty(), "a drill runs no command");
    drop(cluster);
    common::drop_postgres(&db_name).await;
}

const PROMOTE: &str = r#"
name: promote
stages:
  promote:
    agent: database
    retry: { max_attempts: 1 }
    spec: { cluster: "${db}", role: writer, max_lag: 30s }
params: { db: shop-db }
"#;

const TARGETS: &str = r#"
databases:
  shop-db: { provider: sim, lag: 45s }
  fine-db: { provider: sim }
"#;

const READY_GROUPS: &str = r#"
groups:
  shop:
    workflows: { failover: promote }
    drill: { every: 1s }
  fine:
    workflows: { failover: promote }
    params: { db: fine-db }
    drill: { every: 1s }
  never:
    workflows: { failover: promote }
"#;

/// Readiness is what the last drill found: a replica behind its `max_lag` makes the group
/// not ready, with the check that failed and its value and limit; a group whose drill
/// passed is ready; a group never drilled is not known to be either.
#[tokio::test]
async fn readiness_is_what_the_last_drill_found() {
    let t = common::spawn(
        &[
            ("promote.yaml", PROMOTE),
            ("targets.yaml", TARGETS),
            ("groups.yaml", READY_GROUPS),
        ],
        &[],
    )
    .await;
    let of = |body: &Value, group: &str| {
        body["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["group"] == group))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let body = common::until("both drilled", Duration::from_secs(20), async || {
        let (status, body) = t.get("/api/v1/readiness").await;
        assert_eq!(status, 200, "{body}");
        (of(&body, "shop")["ready"].is_boolean() && of(&body, "fine")["ready"].is_boolean())
            .then_some(body)
    })
    .await;
    let shop = of(&body, "shop");
    assert_eq!(shop["ready"], false, "{shop:#}");
    assert_eq!(shop["last_drill"]["ok"], false);
    assert_eq!(shop["schedule"], "every 1s");
    assert!(shop["next_drill"].is_string());
    let failing: Vec<&Value> = shop["checks"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["ok"] == false).collect())
        .unwrap_or_default();
    assert!(
        failing.iter().any(|c| c["stage"] == "promote"
            && c["name"] == "replica lag"
            && c["detail"]
                .as_str()
                .is_some_and(|d| d.contains("45.0s > 30s"))),
        "the failing check, with its value and limit: {shop:#}"
    );
    let fine = of(&body, "fine");
    assert_eq!(fine["ready"], true, "{fine:#}");
    assert!(
        fine["checks"]
            .as_array()
            .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["ok"] == true))
    );
    let never = of(&body, "never");
    assert!(
        never["ready"].is_null() && never["last_drill"].is_null(),
        "{never:#}"
    );

    let metrics = t.metrics().await;
    assert!(
        metrics.contains("lifeboat_group_ready{group=\"shop\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lifeboat_group_ready{group=\"fine\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("lifeboat_group_ready{group=\"never\"}"));
    // The lag each drill measured, by group and database.
    assert!(
        metrics.contains("lifeboat_replica_lag_seconds{group=\"shop\",target=\"shop-db\"} 45.0"),
        "{metrics}"
    );
    assert_eq!(shop["replica_lag"][0]["target"], "shop-db", "{shop:#}");
    assert_eq!(shop["replica_lag"][0]["seconds"], 45.0);
    assert!(metrics.contains("lifeboat_drill_last_success_timestamp_seconds{group=\"fine\"}"));
    assert!(!metrics.contains("lifeboat_drill_last_success_timestamp_seconds{group=\"shop\"}"));
    t.shutdown().await;
}

const SLOW: &str = r#"
name: slow
stages:
  scale:
    agent: capacity
    spec: { cluster: k8s, namespace: shop, replicas: 3, duration: 1500ms }
  promote:
    agent: database
    after: [scale]
    spec: { cluster: shop-db, role: writer, rpo: 3s, duration: 10ms }
"#;

/// Objectives against the forecast: the last real failover's critical path (1.5 s) and
/// the recovery point the last drill measured (3 s) are both over a group's objectives of
/// a second, so the group is not ready, and each check says by how much; the real run's
/// scorecard is set against the objectives too.
#[tokio::test]
async fn a_forecast_over_an_objective_makes_a_group_not_ready() {
    let groups = "groups:\n  shop:\n    workflows: { failover: slow }\n    objectives: { rto: 1s, rpo: 1s }\n    drill: { every: 1s }\n  easy:\n    workflows: { failover: slow }\n    objectives: { rto: 1h, rpo: 10s }\n";
    let t = common::spawn(&[("slow.yaml", SLOW), ("groups.yaml", groups)], &[]).await;
    // The drills are skipped while this real failover goes on.
    let real = t
        .create(r#"{"group": "shop", "reason": "the real thing"}"#)
        .await;
    t.wait_state(&real, "succeeded").await;
    let (status, report) = t.get(&format!("/api/v1/runs/{real}/report")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["objectives"]["rto_met"], false, "{report:#}");
    assert_eq!(report["objectives"]["rpo_met"], false, "{report:#}");
    assert_eq!(report["objectives"]["rto_s"], 1.0);

    let shop = common::until(
        "a drill after the failover",
        Duration::from_secs(20),
        async || {
            let (_, body) = t.get("/api/v1/readiness").await;
            let shop = body["groups"]
                .as_array()?
                .iter()
                .find(|g| g["group"] == "shop")?
                .clone();
            shop["forecast"]["rpo_s"].is_number().then_some(shop)
        },
    )
    .await;
    assert_eq!(shop["ready"], false, "{shop:#}");
    assert_eq!(shop["forecast"]["rto_from"], real.as_str());
    assert!(
        shop["forecast"]["rto_s"].as_f64().is_some_and(|s| s >= 1.5),
        "{shop:#}"
    );
    assert_eq!(shop["forecast"]["rpo_s"], 3.0);
    assert_eq!(shop["objectives"]["rto_s"], 1.0);
    let objective = |name: &str| {
        shop["checks"]
            .as_array()
            .and_then(|c| {
                c.iter()
                    .find(|c| c["stage"] == "objectives" && c["name"] == name)
                    .cloned()
            })
            .unwrap_or(Value::Null)
    };
    let rto = objective("rto");
    assert_eq!(rto["ok"], false, "{shop:#}");
    assert!(
        rto["detail"]
            .as_str()
            .is_some_and(|d| d.contains("over the objective 1.0s by")),
        "{rto}"
    );
    let rpo = objective("rpo");
    assert_eq!(
        rpo["detail"], "expected 3.0s, over the objective 1.0s by 2.0s",
        "{rpo}"
    );

    // No real failover yet and no drill: nothing to forecast, nothing over.
    let (_, body) = t.get("/api/v1/readiness").await;
    let easy = body["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["group"] == "easy").cloned())
        .unwrap_or(Value::Null);
    assert!(
        easy["ready"].is_null() && easy["forecast"]["rto_s"].is_null(),
        "{easy:#}"
    );
    assert_eq!(easy["objectives"]["rto_s"], 3600.0);
    t.shutdown().await;
}

const VERSIONED: &str = r#"
name: promote
params: { db: shop-db }
stages:
  promote:
    agent: database
    spec: { cluster: "${db}", role: writer, duration: 10ms }
"#;

/// The readiness of `group`, as the API answers it.
async fn readiness_of(t: &TestApp, group: &str) -> Value {
    let (status, body) = t.get("/api/v1/readiness").await;
    assert_eq!(status, 200, "{body}");
    body["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["group"] == group).cloned())
        .unwrap_or(Value::Null)
}

/// Verified follows what the group would run: unverified before any real failover (a
/// drill is not one), verified after one, unverified again once its workflow file, or a
/// target it names, is edited (the service restarted on the same store), saying which and
/// since when, and verified again by the next real failover (set against what that run,
/// with the params it was asked with, would use today). The forecast's RTO comes only from
/// a failover of the version it runs now.
#[tokio::test]
async fn verified_follows_a_workflow_edit_until_the_next_real_failover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let groups = "groups:\n  shop:\n    workflows: { failover: promote }\n";
    let targets = "databases:\n  shop-db: { provider: sim }\n  other-db: { provider: sim }\n";
    let settings = lifeboat::config::Settings::embedded(
        format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        common::write_workflows(
            dir.path(),
            &[
                ("promote.yaml", VERSIONED),
                ("groups.yaml", groups),
                ("targets.yaml", targets),
            ],
        ),
    );
    let t = common::TestApp::start(&settings).await;
    let drill = t.create(r#"{"group": "shop", "action": "drill"}"#).await;
    t.wait_state(&drill, "succeeded").await;
    let shop = readiness_of(&t, "shop").await;
    assert_eq!(shop["verified"]["ok"], false, "{shop:#}");
    assert_eq!(
        shop["verified"]["since"], "never failed over with workflow promote",
        "a drill proves readiness, not recovery: {shop:#}"
    );

    let real = t.create(r#"{"group": "shop", "reason": "tested"}"#).await;
    t.wait_state(&real, "succeeded").await;
    let shop = readiness_of(&t, "shop").await;
    assert_eq!(shop["verified"]["ok"], true, "{shop:#}");
    assert_eq!(shop["verified"]["run"], real.as_str());
    let summary: lifeboat::readiness::Readiness =
        serde_json::from_value(shop.clone()).expect("the CLI reads the answer");
    assert!(
        summary
            .summary()
            .contains(&format!("verified (unchanged since run {real})")),
        "{}",
        summary.summary()
    );
    t.shutdown().await;

    // The workflow is edited (a comment is enough: its file hashes differently).
    let file = dir.path().join("workflows/promote.yaml");
    std::fs::write(&file, format!("# retried once more\n{VERSIONED}")).expect("edit");
    let t = common::TestApp::start(&settings).await;
    let shop = readiness_of(&t, "shop").await;
    assert_eq!(shop["verified"]["ok"], false, "{shop:#}");
    assert_eq!(
        shop["verified"]["since"], "workflow promote changed just now",
        "{shop:#}"
    );
    assert_eq!(shop["verified"]["changed"][0]["part"], "workflow");
    // Nor is a failover of another version a forecast of this one's RTO.
    assert!(shop["forecast"]["rto_from"].is_null(), "{shop:#}");
    assert!(shop["verified"]["changed"][0]["at"].is_string());
    // A drill does not verify it again.
    let drill = t.create(r#"{"group": "shop", "action": "drill"}"#).await;
    t.wait_state(&drill, "succeeded").await;
    assert_eq!(readiness_of(&t, "shop").await["verified"]["ok"], false);
    let real = t
        .create(r#"{"group": "shop", "reason": "tested again", "params": {"db": "other-db"}}"#)
        .await;
    t.wait_state(&real, "succeeded").await;
    let shop = readiness_of(&t, "shop").await;
    assert_eq!(shop["verified"]["ok"], true);
    assert_eq!(shop["forecast"]["rto_from"], real.as_str());
    t.shutdown().await;

    // A target the last failover named (with the params it was asked with) is changed in
    // targets.yaml: the targets part changed.
    std::fs::write(
        dir.path().join("workflows/targets.yaml"),
        "databases:\n  shop-db: { provider: sim }\n  other-db: { provider: sim, lag: 1s }\n",
    )
    .expect("edit targets");
    let t = common::TestApp::start(&settings).await;
    let shop = readiness_of(&t, "shop").await;
    let since = shop["verified"]["since"].as_str().unwrap_or("");
    assert!(
        since.starts_with("the targets of workflow promote changed"),
        "{shop:#}"
    );
    t.shutdown().await;
}
