//! The data-loss gate on a real primary and streaming replica. With replay paused on the
//! replica while a client keeps writing, the promote measures what it would lose against
//! the writer (WAL bytes and seconds), stops at the gate with the replica untouched, fails
//! for good when rejected, and promotes once approved. With the writer gone, the loss is
//! estimated from the replica alone.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TestApp, stage};
use lifeboat::app::Options;
use serde_json::Value;

use crate::provider_postgres::{GROUPS, connect, in_recovery, pair, targets};

const WORKFLOW: &str = r#"
name: pg-failover
params: { from: region-b, to: region-a }
stages:
  promote-database:
    agent: database
    spec: { cluster: "pg-${to}", role: writer, from: "pg-${from}", max_data_loss: 1s, catchup: 2s }
    retry: { max_attempts: 1 }
"#;

async fn spawn(targets: &str) -> TestApp {
    common::spawn_configured(
        &[
            ("pg.yaml", WORKFLOW),
            ("groups.yaml", GROUPS),
            ("targets.yaml", targets),
        ],
        &[("ops", "ops-token-0123456789")],
        Options::default(),
        |_| {},
    )
    .await
}

/// Writes a row on `url` every 20 ms until `stop`; how many it wrote.
fn keep_writing(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut c = connect(&url).await;
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            if sqlx::query("INSERT INTO pets (name) VALUES ('busy')")
                .execute(&mut c)
                .await
                .is_ok()
            {
                n += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n
    })
}

fn rpo(stage: &Value) -> &Value {
    &stage["report"]["rpo"]
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn a_lagging_replica_stops_at_the_gate_with_its_loss_measured_against_the_writer() {
    let Some((primary, replica)) = pair().await else {
        return;
    };
    let mut r = connect(&replica.url()).await;
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut r)
        .await
        .expect("pause replay");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(primary.url(), stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let scratch = tempfile::tempdir().expect("tempdir");
    let t = spawn(&targets(scratch.path(), &replica.url(), &primary.url())).await;

    // Rejected: the promote fails for good, and the replica is still a replica.
    let id = t.create(r#"{"group": "pg"}"#).await;
    let run = t.wait_state(&id, "awaiting_approval").await;
    let promote = stage(&run, "promote-database");
    let loss = rpo(promote);
    assert_eq!(loss["basis"], "measured", "{run:#}");
    assert!(loss["bytes"].as_u64().is_some_and(|b| b > 0), "{loss}");
    assert!(loss["seconds"].as_f64().is_some_and(|s| s > 1.0), "{loss}");
    let held = promote["held"].as_str().unwrap_or("");
    assert!(
        held.starts_with("promoting pg-region-a now loses about ")
            && held.ends_with("of writes (measured)"),
        "{held}"
    );
    assert!(in_recovery(&replica.url()).await, "nothing was promoted");
    let (status, body) = t
        .post(
            &format!("/api/v1/runs/{id}/reject"),
            r#"{"reason": "wait"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let run = t.wait_state(&id, "failed").await;
    assert_eq!(stage(&run, "promote-database")["attempts"], 1);
    assert!(
        in_recovery(&replica.url()).await,
        "a rejected gate promotes nothing"
    );

    // Approved: the same loss, accepted, and the replica promoted.
    let id = t.create(r#"{"group": "pg"}"#).await;
    t.wait_state(&id, "awaiting_approval").await;
    let (status, body) = t.post(&format!("/api/v1/runs/{id}/approve"), "{}").await;
    assert_eq!(status, 200, "{body}");
    let run = t.wait_state(&id, "succeeded").await;
    let promote = stage(&run, "promote-database");
    assert_eq!(promote["attempts"], 2, "{run:#}");
    assert_eq!(rpo(promote)["basis"], "measured");
    assert!(!in_recovery(&replica.url()).await, "promoted once approved");
    stop.store(true, Ordering::Relaxed);
    let wrote = writer.await.expect("the writer");
    assert!(wrote > 10, "the client kept writing ({wrote} rows)");
    t.shutdown().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn with_the_writer_gone_the_loss_is_estimated_from_the_replica() {
    let Some((primary, replica)) = pair().await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let targets = targets(scratch.path(), &replica.url(), &primary.url());
    primary.stop();
    // The replica notices its writer is gone; a few seconds pass without word from it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = spawn(&targets).await;
    let id = t.create(r#"{"group": "pg"}"#).await;
    let run = t.wait_state(&id, "awaiting_approval").await;
    let loss = rpo(stage(&run, "promote-database"));
    assert_eq!(loss["basis"], "estimated", "{run:#}");
    assert!(loss["seconds"].as_f64().is_some_and(|s| s > 1.0), "{loss}");
    assert!(in_recovery(&replica.url()).await);
    t.shutdown().await;
}
