//! The production deployment against real services: a Kafka-protocol broker and
//! PostgreSQL. Runs when LIFEBOAT_TEST_KAFKA_BROKERS and LIFEBOAT_TEST_POSTGRES_URL are set
//! (`scripts/kafka.sh`, `scripts/postgres.sh`).

use crate::common;

use std::time::Duration;

use common::cluster::{Cluster, actor_pid, attempts, retry_message, running_events, signal};
use lifeboat::bus::Bus;
use lifeboat::bus::kafka::{KafkaBus, KafkaSettings};

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_KAFKA_BROKERS"]
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

/// Two `serve` replicas and two agents on PostgreSQL and Kafka, running one, slow, three.
/// Returns the cluster, its replicas' URLs (the run is started on the first), the agents,
/// and the run id once `slow` is running, with the pid of the agent running it.
struct Running {
    cluster: Cluster,
    replicas: Vec<(common::Proc, String)>,
    agents: Vec<common::Proc>,
    id: String,
    holder: u32,
    db_name: String,
}

impl Running {
    /// The agent process running `slow`, no longer stopped with the others.
    fn take_holder(&mut self) -> common::Proc {
        let at = self
            .agents
            .iter()
            .position(|p| p.0.id() == self.holder)
            .expect("the holder is one of our agents");
        self.agents.remove(at)
    }

    /// Stops every process, then drops the database.
    async fn stop(self) {
        let db_name = self.db_name.clone();
        drop(self);
        common::drop_postgres(&db_name).await;
    }
}

async fn start_with_slow_running() -> Option<Running> {
    let brokers = common::kafka_brokers()?;
    let (db, db_name) = common::fresh_postgres().await?;
    let mut cluster = Cluster::new(&brokers, &db, &[("one", 0), ("slow", 6), ("three", 0)]);
    let replicas = vec![
        cluster.serve("serve-a").await,
        cluster.serve("serve-b").await,
    ];
    let agents = vec![cluster.agent("agent-1"), cluster.agent("agent-2")];
    let id = common::create_run_at(&cluster.client, &replicas[0].1, "shop").await;
    let holder = cluster
        .wait_run(
            &replicas[0].1,
            &id,
            "`slow` to run",
            Duration::from_secs(60),
            |run| {
                running_events(run, "slow")
                    .first()
                    .and_then(|e| actor_pid(e))
            },
        )
        .await;
    Some(Running {
        cluster,
        replicas,
        agents,
        id,
        holder,
        db_name,
    })
}

/// The agent holding a stage is `kill -9`'d: its lease expires and the other agent runs
/// the stage. Later the replica that started the run is `kill -9`'d too: the other replica
/// adopts the run and finishes it. Every completed stage ran exactly once.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn a_run_survives_its_agent_and_then_its_replica_being_killed() {
    let Some(mut r) = start_with_slow_running().await else {
        return;
    };
    let mut killed = r.take_holder();
    killed.0.kill().expect("kill -9 the agent");
    killed.0.wait().expect("reap");

    // The lease expires (15 s without a heartbeat) and the survivor takes the retry.
    let base_a = r.replicas[0].1.clone();
    let survivor = r.agents[0].0.id();
    r.cluster
        .wait_run(
            &base_a,
            &r.id,
            "`slow` to run again",
            Duration::from_secs(60),
            |run| {
                running_events(run, "slow")
                    .iter()
                    .any(|e| e["attempt"] == 2 && actor_pid(e) == Some(survivor))
                    .then_some(())
            },
        )
        .await;
    let (mut replica_a, _) = r.replicas.remove(0);
    replica_a.0.kill().expect("kill -9 the replica");
    replica_a.0.wait().expect("reap");

    let base_b = &r.replicas[0].1;
    let done = r
        .cluster
        .finished(base_b, &r.id, Duration::from_secs(60))
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}\n{}", r.cluster.logs());
    assert_eq!(r.cluster.ran(), ["one", "slow", "three"], "{done:#}");
    assert_eq!(attempts(&done, "one"), 1);
    assert_eq!(attempts(&done, "slow"), 2, "{done:#}");
    assert_eq!(attempts(&done, "three"), 1);
    assert_eq!(
        retry_message(&done, "slow"),
        "lease expired: the agent stopped heartbeating"
    );

    // A new agent reads every request still in the topic (one, slow twice, three) and
    // runs none of them again: each has ended.
    let mut late = r.cluster.agent("agent-late");
    let log = r.cluster.dir.path().join("agent-late.log");
    common::until(
        "the new agent to skip all four requests",
        Duration::from_secs(30),
        async || {
            let text = std::fs::read_to_string(&log).ok()?;
            (text.matches("Skipping work").count() >= 4).then_some(())
        },
    )
    .await;
    assert_eq!(r.cluster.ran(), ["one", "slow", "three"]);
    assert!(
        late.0.try_wait().expect("the late agent").is_none(),
        "still running"
    );
    r.stop().await;
}

/// SIGTERM: no new work, a grace period for running work, then the stage is released as
/// retryable and the other agent runs it at once (not after the 15 s a dead holder costs).
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn a_stopped_agent_releases_its_stage_for_another_at_once() {
    let Some(mut r) = start_with_slow_running().await else {
        return;
    };
    let mut stopped = r.take_holder();
    signal(r.holder, "-TERM");
    let status = stopped.0.wait().expect("reap");
    assert!(
        status.success(),
        "a SIGTERM'd agent exits cleanly: {status:?}"
    );

    let done = r
        .cluster
        .finished(&r.replicas[1].1, &r.id, Duration::from_secs(60))
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}\n{}", r.cluster.logs());
    assert_eq!(r.cluster.ran(), ["one", "slow", "three"], "{done:#}");
    assert_eq!(attempts(&done, "slow"), 2, "{done:#}");
    assert_eq!(
        retry_message(&done, "slow"),
        "the agent was stopped; another agent will retry"
    );
    r.stop().await;
}
