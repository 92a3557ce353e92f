//! `lifeboat bench` on Kafka and PostgreSQL can be run again on the same database: each
//! invocation has groups of its own, and counts only the runs it started, although the
//! database re-sends what its outbox held when the last one stopped.

use crate::common;

use std::process::Command;

fn bench(brokers: &str, database: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["bench", "--runs", "3", "--stages", "2"])
        .args(["--kafka", brokers, "--database", database])
        .env_remove("LIFEBOAT_CONFIG")
        .output()
        .expect("lifeboat bench runs");
    assert!(
        out.status.success(),
        "bench failed\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_KAFKA_BROKERS"]
async fn bench_runs_twice_on_one_database() {
    let Some(brokers) = common::kafka_brokers() else {
        return;
    };
    let Some((url, name)) = common::fresh_postgres().await else {
        return;
    };
    for round in 1..=2 {
        let report = bench(&brokers, &url);
        let production = &report[1];
        assert_eq!(production["deployment"], "kafka+postgres", "{report:#}");
        assert_eq!(production["failed_runs"], 0, "round {round}: {report:#}");
        // One sample per stage after the first of each of the 100 chains: no other run's.
        assert_eq!(
            production["stage_overhead_ms"]["samples"], 100,
            "round {round}: {report:#}"
        );
        // Every work request is checked against the store before it runs: in phase one,
        // at least one check per stage of the 100 two-stage chains.
        for deployment in [&report[0], production] {
            let checks = deployment["work_check_ms"]["samples"].as_u64().unwrap_or(0);
            assert!(checks >= 200, "round {round}: {report:#}");
            // What the host's hypervisor took while each measured phase ran. Three runs
            // can end within one clock tick, and then nothing was measured.
            let steal = &deployment["host_steal_pct"];
            let share = |v: &serde_json::Value| v.as_f64().filter(|p| (0.0..=100.0).contains(p));
            assert!(
                share(&steal["phase_one"]).is_some(),
                "round {round}: {report:#}"
            );
            assert!(
                steal["phase_two"].is_null() || share(&steal["phase_two"]).is_some(),
                "round {round}: {report:#}"
            );
        }
    }
    common::drop_postgres(&name).await;
}
