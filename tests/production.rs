//! The production deployment against real services: a Kafka-protocol broker and
//! PostgreSQL. Runs when LIFEBOAT_TEST_KAFKA_BROKERS and LIFEBOAT_TEST_POSTGRES_URL are set
//! (`scripts/kafka.sh`, `scripts/postgres.sh`).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, free_port, until};
use lifeboat::bus::Bus;
use lifeboat::bus::kafka::{KafkaBus, KafkaSettings};
use serde_json::Value;

fn lifeboat(args: &[&str], env: &[(&str, String)], log: &std::path::Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    cmd.args(args)
        .env_remove("LIFEBOAT_API_TOKENS")
        .env_remove("LIFEBOAT_CONFIG")
        .env("RUST_LOG", "info,lifeboat=debug")
        .stdout(Stdio::null())
        .stderr(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().expect("start lifeboat"))
}

#[tokio::test]
async fn kafka_bus_delivers_by_key_to_each_group_once() {
    let Some(brokers) = common::kafka_brokers() else {
        return;
    };
    let topic = format!("lifeboat.test.{}", uuid::Uuid::now_v7().simple());
    let bus = KafkaBus::connect(KafkaSettings::new(&brokers), std::slice::from_ref(&topic))
        .await
        .expect("connect");
    // Creating topics again is fine: they exist.
    KafkaBus::connect(KafkaSettings::new(&brokers), std::slice::from_ref(&topic))
        .await
        .expect("connect again");
    let mut a = bus.subscribe(&topic, "group-a").await.expect("subscribe a");
    let mut b = bus.subscribe(&topic, "group-b").await.expect("subscribe b");
    assert!(bus.ready().await);
    for i in 0..3 {
        bus.publish(&topic, "run-1", format!("m{i}").into_bytes())
            .await
            .expect("publish");
    }
    for sub in [&mut a, &mut b] {
        let mut got = Vec::new();
        while got.len() < 3 {
            let m = tokio::time::timeout(Duration::from_secs(30), sub.next())
                .await
                .expect("a message")
                .expect("open");
            assert_eq!(m.key, "run-1");
            got.push(String::from_utf8(m.payload).expect("utf8"));
        }
        assert_eq!(got, ["m0", "m1", "m2"], "one key keeps its order");
        sub.commit().await.expect("commit");
    }
}

fn find_stage<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .expect("stage")
}

/// What is stopped while the slow stage runs.
///
/// Not here: `kill -9` of the agent holding the stage. Its lease expires and the orchestrator
/// retries (tests/crash.rs shows that path), but on Kafka the retry is keyed to the run's
/// partition, which the dead consumer still owns until the broker rebalances the group. The
/// broker these tests run on (tansu 0.6) drops a member that misses its heartbeats without
/// rebalancing the others, so that partition would wait until a broker restart.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    /// SIGTERM to the agent holding the stage.
    Term,
    /// `kill -9` of the replica the run was started on.
    Replica,
}

/// Runs one, slow, three on two `serve` replicas and two `lifeboat agent` processes over
/// Kafka and PostgreSQL, stops a part while `slow` runs, and returns the finished run as
/// the surviving replica tells it. Every completed stage must have run exactly once.
async fn hand_off(stop: Stop) -> Option<Value> {
    let brokers = common::kafka_brokers()?;
    let (db, db_name) = common::fresh_postgres().await?;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("ran.log");
    let step = |name: &str, script: &str| {
        format!("  {name}:\n    agent: exec\n    spec: {{ command: [sh, -c, '{script}'] }}\n")
    };
    let wf = format!(
        "name: shop\nstages:\n{}{}{}",
        step("one", &format!("echo one >> {}", log.display())),
        step("slow", &format!("sleep 6; echo slow >> {}", log.display())),
        step("three", &format!("echo three >> {}", log.display())),
    );
    let workflows = common::write_workflows(
        dir.path(),
        &[("shop.yaml", &wf), ("groups.yaml", common::GROUPS)],
    );
    let (port_a, port_b) = (free_port(), free_port());
    let mut env = vec![
        ("LIFEBOAT_KAFKA_BROKERS", brokers.clone()),
        // Topics and consumer groups of their own: tests on one broker never share work.
        (
            "LIFEBOAT_KAFKA_NAMESPACE",
            format!("test-{}", uuid::Uuid::now_v7().simple()),
        ),
        ("LIFEBOAT_DATABASE_URL", db.clone()),
        ("LIFEBOAT_WORKFLOWS", workflows.display().to_string()),
        ("LIFEBOAT_LISTEN", format!("127.0.0.1:{port_a}")),
    ];
    let mut serve_a = lifeboat(&["serve"], &env, &dir.path().join("serve-a.log"));
    env[4].1 = format!("127.0.0.1:{port_b}");
    let serve_b = lifeboat(&["serve"], &env, &dir.path().join("serve-b.log"));
    let agent_args = ["agent", "--agents", "exec", "--grace", "500ms"];
    let mut agents = vec![
        lifeboat(&agent_args, &env, &dir.path().join("agent-1.log")),
        lifeboat(&agent_args, &env, &dir.path().join("agent-2.log")),
    ];
    let client = reqwest::Client::new();
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    for base in [&base_a, &base_b] {
        until("serve to be ready", Duration::from_secs(30), async || {
            client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
        })
        .await;
    }

    let id = common::create_run_at(&client, &base_a, "shop").await;
    // The agent running `slow` says so in the audit trail: `agent:agent:HOST:PID`.
    let run_a = format!("{base_a}/api/v1/runs/{id}");
    let holder: u32 = until("`slow` to run", Duration::from_secs(60), async || {
        let run: Value = client.get(&run_a).send().await.ok()?.json().await.ok()?;
        let event = run["events"]
            .as_array()?
            .iter()
            .find(|e| e["kind"] == "stage.running" && e["stage"] == "slow")?;
        event["actor"].as_str()?.rsplit(':').next()?.parse().ok()
    })
    .await;
    match stop {
        Stop::Replica => {
            serve_a.0.kill().expect("kill -9 the replica");
            serve_a.0.wait().expect("reap");
        }
        Stop::Term => {
            let victim = agents
                .iter()
                .position(|p| p.0.id() == holder)
                .expect("the holder is one of our agents");
            let mut stopped = agents.remove(victim);
            let sent = Command::new("kill")
                .args(["-TERM", &holder.to_string()])
                .status()
                .expect("kill -TERM");
            assert!(sent.success());
            let status = stopped.0.wait().expect("reap");
            assert!(
                status.success(),
                "a SIGTERM'd agent exits cleanly: {status:?}"
            );
        }
    }

    // The other replica answers for the run: any replica can tell any run.
    let run_b = format!("{base_b}/api/v1/runs/{id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut last = Value::Null;
    let done = loop {
        if let Some(run) = async {
            client
                .get(&run_b)
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()
        }
        .await
        {
            if run["finished_at"].is_string() {
                break run;
            }
            last = run;
        }
        if tokio::time::Instant::now() > deadline {
            let logs: Vec<String> = ["serve-a", "serve-b", "agent-1", "agent-2"]
                .iter()
                .map(|n| {
                    let text = std::fs::read_to_string(dir.path().join(format!("{n}.log")))
                        .unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    format!(
                        "--- {n}.log (last lines, newest first)\n{}",
                        tail.join("\n")
                    )
                })
                .collect();
            panic!(
                "the run did not finish after {:?}:\n{last:#}\n{}",
                stop_name(stop),
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(
        std::fs::read_to_string(&log).expect("log"),
        "one\nslow\nthree\n"
    );
    let slow_attempts = if stop == Stop::Replica { 1 } else { 2 };
    assert_eq!(
        find_stage(&done, "slow")["attempts"],
        slow_attempts,
        "{done:#}"
    );
    assert_eq!(find_stage(&done, "one")["attempts"], 1);
    assert_eq!(find_stage(&done, "three")["attempts"], 1);
    drop((agents, serve_a, serve_b));
    common::drop_postgres(&db_name).await;
    Some(done)
}

fn stop_name(stop: Stop) -> &'static str {
    match stop {
        Stop::Term => "SIGTERM to the agent",
        Stop::Replica => "kill -9 of the replica",
    }
}

fn retry_message(run: &Value) -> String {
    run["events"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|e| e["kind"] == "stage.retrying" && e["stage"] == "slow")
        })
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// SIGTERM: no new work, a grace period for running work, then the stage is released as
/// retryable and another agent runs it at once (not after the 15 s a dead holder costs).
#[tokio::test]
async fn a_stopped_agent_releases_its_stage_for_another_at_once() {
    let Some(done) = hand_off(Stop::Term).await else {
        return;
    };
    assert_eq!(
        retry_message(&done),
        "the agent was stopped; another agent will retry"
    );
}

/// The replica that started the run dies: the other adopts the run and finishes it, and no
/// stage runs again.
#[tokio::test]
async fn a_dead_replica_s_run_is_finished_by_another() {
    let Some(done) = hand_off(Stop::Replica).await else {
        return;
    };
    assert_eq!(retry_message(&done), "", "no stage was retried: {done:#}");
}
