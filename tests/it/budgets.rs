//! Budgets (`limits:` in targets.yaml): however many groups fail over at once, no more
//! stages than the limit run at a time. Each stage here is a command that counts the
//! commands running beside it (a marker file each, in one directory), so the count is
//! what actually ran at once, not what Lifeboat believes.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, TestApp};

const GROUPS: usize = 50;
const LIMIT: usize = 2;

/// One exec stage that marks itself running, writes how many marked commands are alive
/// (a command killed with its agent leaves its mark, and may linger as a zombie, but is not
/// alive), sleeps, and logs
/// its run when it ends.
fn workflow(dir: &Path, retries: u32) -> String {
    let d = dir.display();
    format!(
        "name: shop\nstages:\n  move:\n    agent: exec\n    retry: {{ max_attempts: {retries} }}\n    spec:\n      command: [sh, -c, 'mkdir -p {d}/running; touch {d}/running/$$; n=0; for f in {d}/running/*; do s=$(cut -d\" \" -f3 /proc/$(basename $f)/stat 2>/dev/null); [ -n \"$s\" ] && [ $s != Z ] && n=$((n+1)); done; echo $n >> {d}/counts; sleep 0.2; rm {d}/running/$$; echo $LIFEBOAT_RUN_ID >> {d}/ran']\n"
    )
}

fn groups() -> String {
    let mut g = String::from("groups:\n");
    for i in 0..GROUPS {
        g.push_str(&format!(
            "  g{i:02}:\n    workflows: {{ failover: shop }}\n"
        ));
        // A second tier: each of g10..g49 after one of g00..g09.
        if i >= 10 {
            g.push_str(&format!("    depends_on: [g{:02}]\n", i % 10));
        }
    }
    g
}

const TARGETS: &str = "limits:\n  agents: { exec: 2 }\n";

/// The most commands that ran at once, and how many ran in all.
fn counted(dir: &Path) -> (usize, usize) {
    let counts: Vec<usize> = std::fs::read_to_string(dir.join("counts"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    (counts.iter().copied().max().unwrap_or(0), counts.len())
}

fn ran(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("ran"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn evacuation_ends(t: &TestApp, id: &str) -> Value {
    common::until(
        "the evacuation to end",
        Duration::from_secs(120),
        async || {
            let (status, e) = t.get(&format!("/api/v1/evacuations/{id}")).await;
            assert_eq!(status, 200, "{e}");
            (e["state"] != "going").then_some(e)
        },
    )
    .await
}

#[tokio::test]
async fn fifty_groups_at_once_never_run_more_stages_than_the_budget() {
    let work = tempfile::tempdir().expect("tempdir");
    let wf = workflow(work.path(), 1);
    let groups = groups();
    let t = common::spawn(
        &[
            ("shop.yaml", wf.as_str()),
            ("groups.yaml", groups.as_str()),
            ("targets.yaml", TARGETS),
        ],
        &[("ops", "secret-ops")],
    )
    .await;
    let (status, e) = t
        .post(
            "/api/v1/evacuations",
            &json!({"groups": "all", "reason": "budget test"}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{e}");
    let id = e["id"].as_str().unwrap_or_default().to_string();

    // While it goes, a stage waits for the budget and says so.
    let waiting = common::until(
        "a stage to wait for budget",
        Duration::from_secs(30),
        async || {
            let (_, runs) = t.get("/api/v1/runs?limit=100").await;
            runs["runs"].as_array()?.iter().find_map(|r| {
                r["stages"].as_array()?.iter().find_map(|s| {
                    let m = s["message"].as_str()?;
                    m.starts_with("waiting for budget").then(|| m.to_string())
                })
            })
        },
    )
    .await;
    assert_eq!(waiting, "waiting for budget (agent exec 2/2)");

    let e = evacuation_ends(&t, &id).await;
    assert_eq!(e["state"], "succeeded", "{e:#}");
    let (most, all) = counted(work.path());
    assert_eq!(all, GROUPS, "each group's stage ran once");
    assert_eq!(
        most, LIMIT,
        "never more than the budget at once, and the budget used"
    );
    let mut ran = ran(work.path());
    ran.sort();
    ran.dedup();
    assert_eq!(ran.len(), GROUPS, "one run per group");
    // The wait is counted: in the evacuation's scorecard, and in a waiting run's.
    let waited = e["scorecard"]["budget_wait_ms"]
        .as_i64()
        .unwrap_or_default();
    assert!(waited > 1_000, "{e:#}");
    t.shutdown().await;
}

/// `lifeboat serve` killed while stages wait for the budget: after the restart the
/// evacuation completes, each group's stage ran once to its end, and never more than
/// the budget at once.
#[tokio::test]
async fn a_killed_service_keeps_to_the_budget_after_its_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    // Retried: an attempt the kill cut short is tried again once its lease expires.
    let wf = workflow(work.path(), 3);
    let groups = groups();
    common::write_workflows(
        dir.path(),
        &[
            ("shop.yaml", &wf),
            ("groups.yaml", &groups),
            ("targets.yaml", TARGETS),
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
        &json!({"groups": "all", "reason": "crash test"}),
    )
    .await;
    assert_eq!(status, 201, "{e}");
    let id = e["id"].as_str().unwrap_or_default().to_string();
    common::until(
        "some stages to have run",
        Duration::from_secs(30),
        async || (counted(work.path()).1 >= 6).then_some(()),
    )
    .await;
    serve.0.kill().expect("kill -9");
    let _ = serve.0.wait();
    // The commands the killed process started finish on their own before it is back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _serve = common::serve(dir.path(), port, &[]);
    common::until_ready(&client, &base).await;
    let url = format!("{base}/api/v1/evacuations/{id}");
    let e = common::until(
        "the evacuation to end",
        Duration::from_secs(120),
        async || {
            let e = common::get_json(&client, &url, None).await?;
            (e["state"] != "going").then_some(e)
        },
    )
    .await;
    assert_eq!(e["state"], "succeeded", "{e:#}");
    let (most, _) = counted(work.path());
    assert_eq!(
        most,
        LIMIT,
        "never more than the budget at once: {:?}",
        std::fs::read_to_string(work.path().join("counts"))
    );
    let ran = ran(work.path());
    let mut once = ran.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), GROUPS, "every group's stage ran to its end");
    assert_eq!(ran.len(), GROUPS, "and none twice: {ran:?}");
}

/// Kafka and PostgreSQL, two `lifeboat agent` processes: the budget is kept across them.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn two_agent_processes_on_kafka_keep_to_one_budget() {
    use crate::common::cluster::Cluster;
    let Some(brokers) = common::kafka_brokers() else {
        return;
    };
    let Some((db, db_name)) = common::fresh_postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let wf = workflow(work.path(), 1);
    let groups = groups();
    let mut cluster = Cluster::in_dir(
        dir,
        &brokers,
        &db,
        &[
            ("shop.yaml", &wf),
            ("groups.yaml", &groups),
            ("targets.yaml", TARGETS),
        ],
    );
    let (_serve, base) = cluster.serve("serve").await;
    let _one = cluster.agent("agent-1");
    let _two = cluster.agent("agent-2");
    let agents = format!("{base}/api/v1/agents");
    common::until(
        "both agents to be live",
        Duration::from_secs(30),
        async || {
            let a = common::get_json(&cluster.client, &agents, None).await?;
            let live = a["agents"].as_array()?.iter().filter(|a| a["live"] == true);
            (live.count() == 2).then_some(())
        },
    )
    .await;
    let (status, e) = common::post_json(
        &cluster.client,
        &format!("{base}/api/v1/evacuations"),
        None,
        &json!({"groups": "all", "reason": "budget on kafka"}),
    )
    .await;
    assert_eq!(status, 201, "{e}");
    let url = format!(
        "{base}/api/v1/evacuations/{}",
        e["id"].as_str().unwrap_or("")
    );
    let e = common::until(
        "the evacuation to end",
        Duration::from_secs(180),
        async || {
            let e = common::get_json(&cluster.client, &url, None).await?;
            (e["state"] != "going").then_some(e)
        },
    )
    .await;
    assert_eq!(e["state"], "succeeded", "{e:#}\n{}", cluster.logs());
    let (most, all) = counted(work.path());
    assert_eq!(all, GROUPS, "each group's stage ran once");
    assert_eq!(
        most, LIMIT,
        "never more than the budget at once, across both agents"
    );
    drop(cluster);
    common::drop_postgres(&db_name).await;
}

/// A run cancelled while its stage waits for a budget: its agent lets the wait go, rather
/// than keep saying it waits (and noting so in the store) until a slot comes back.
#[tokio::test]
async fn a_cancelled_run_waiting_for_a_budget_lets_the_wait_go() {
    let wf =
        "name: shop\nstages:\n  move:\n    agent: exec\n    spec: { command: [sleep, '15'] }\n";
    let groups = "groups:\n  a:\n    workflows: { failover: shop }\n  b:\n    workflows: { failover: shop }\n";
    let t = common::spawn(
        &[
            ("shop.yaml", wf),
            ("groups.yaml", groups),
            ("targets.yaml", "limits:\n  agents: { exec: 1 }\n"),
        ],
        &[],
    )
    .await;
    let a = t.create(r#"{"group": "a"}"#).await;
    t.wait_for(&a, "a's stage to run", |r| {
        r["stages"][0]["state"] == "running"
    })
    .await;
    let b = t.create(r#"{"group": "b"}"#).await;
    t.wait_for(&b, "b to wait for the budget", |r| {
        r["stages"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("waiting for budget"))
    })
    .await;
    let request = format!("{b}/move/1");
    let store = &t.app().store;
    assert_eq!(
        store
            .budget_waiters(&[request.as_str()])
            .await
            .expect("read")
            .len(),
        1
    );
    let (status, body) = t.post(&format!("/api/v1/runs/{b}/cancel"), "{}").await;
    assert_eq!(status, 200, "{body}");
    // Past the next time the agent would have said it waits again.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        store
            .budget_waiters(&[request.as_str()])
            .await
            .expect("read")
            .is_empty(),
        "the cancelled request is no longer waited for"
    );
    t.shutdown().await;
}
