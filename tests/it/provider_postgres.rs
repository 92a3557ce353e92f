//! The `postgres` database provider against a real primary and streaming replica (made with
//! `initdb` and `pg_basebackup -R`): promote, fence, a second run that changes nothing,
//! lag refused before anything changes, an unreachable writer, and dry runs that change
//! nothing and say what a run would.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::services::PrivatePostgres;
use common::{TestApp, changes, stage};
use lifeboat::app::Options;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

const WORKFLOW: &str = r#"
name: pg-failover
params: { from: region-b, to: region-a }
stages:
  promote-database:
    agent: database
    spec: { cluster: "pg-${to}", role: writer, max_lag: 10s }
    retry: { max_attempts: 1 }
  demote-database:
    agent: database
    after: [promote-database]
    spec: { cluster: "pg-${from}", role: reader }
    retry: { max_attempts: 1 }
"#;

pub(crate) const GROUPS: &str = "groups:\n  pg:\n    workflows: { failover: pg-failover }\n";

/// targets.yaml for the pair, each URL read from a file beside it.
pub(crate) fn targets(dir: &Path, replica: &str, primary: &str) -> String {
    let a = dir.join("region-a.url");
    let b = dir.join("region-b.url");
    std::fs::write(&a, format!("{replica}\n")).expect("write");
    std::fs::write(&b, primary).expect("write");
    format!(
        "databases:\n  pg-region-a: {{ provider: postgres, url: \"${{file:{}}}\" }}\n  pg-region-b: {{ provider: postgres, url: \"${{file:{}}}\" }}\n",
        a.display(),
        b.display()
    )
}

pub(crate) async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connects")
}

pub(crate) async fn in_recovery(url: &str) -> bool {
    let mut c = connect(url).await;
    sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut c)
        .await
        .expect("asks")
}

/// Whether a new session may write.
pub(crate) async fn writable(url: &str) -> Result<(), String> {
    let mut c = connect(url).await;
    sqlx::query("INSERT INTO pets (name) VALUES ('check')")
        .execute(&mut c)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A primary with a table, and a replica that has replayed a row written after it began.
pub(crate) async fn pair() -> Option<(PrivatePostgres, PrivatePostgres)> {
    let primary = PrivatePostgres::start()?;
    let mut c = connect(&primary.url()).await;
    sqlx::query("CREATE TABLE pets (id serial PRIMARY KEY, name text)")
        .execute(&mut c)
        .await
        .expect("create");
    let replica = PrivatePostgres::replica_of(&primary);
    // Streamed, not copied: the replica's replay lag is known once it has replayed it.
    sqlx::query("INSERT INTO pets (name) VALUES ('rex')")
        .execute(&mut c)
        .await
        .expect("insert");
    let url = replica.url();
    common::until(
        "the replica to replay the row",
        Duration::from_secs(30),
        async || {
            let mut c = PgConnection::connect(&url).await.ok()?;
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pets")
                .fetch_one(&mut c)
                .await
                .ok()?;
            (n == 1).then_some(())
        },
    )
    .await;
    Some((primary, replica))
}

async fn spawn(targets: &str) -> TestApp {
    common::spawn_configured(
        &[
            ("pg.yaml", WORKFLOW),
            ("groups.yaml", GROUPS),
            ("targets.yaml", targets),
        ],
        &[],
        Options::default(),
        |_| {},
    )
    .await
}

fn checks(stage: &Value) -> Vec<(String, bool)> {
    stage["report"]["checks"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or("").to_string(),
                        c["ok"] == true,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn a_failover_promotes_the_replica_and_fences_the_old_writer_once() {
    let Some((primary, replica)) = pair().await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let t = spawn(&targets(scratch.path(), &replica.url(), &primary.url())).await;

    // A dry run checks and says what would change, and changes nothing.
    let id = t
        .create(r#"{"group": "pg", "action": "failover", "dry_run": true}"#)
        .await;
    let run = t.wait_state(&id, "succeeded").await;
    let promote = stage(&run, "promote-database");
    assert_eq!(
        changes(promote),
        ["pg-region-a: replica (in recovery) → writer"],
        "{run:#}"
    );
    assert_eq!(
        checks(promote),
        [
            ("in recovery".to_string(), true),
            ("replica lag".to_string(), true),
            // Measured at every promote; with no writer named, estimated from the replica.
            ("recovery point".to_string(), true)
        ]
    );
    assert_eq!(
        changes(stage(&run, "demote-database")),
        ["pg-region-b default_transaction_read_only: off → on"]
    );
    assert!(
        in_recovery(&replica.url()).await,
        "the dry run promoted nothing"
    );
    writable(&primary.url())
        .await
        .expect("the dry run fenced nothing");

    // A session in the middle of a write on the old writer is ended by the fence.
    let mut writer = connect(&primary.url()).await;
    sqlx::query("BEGIN")
        .execute(&mut writer)
        .await
        .expect("begin");
    sqlx::query("INSERT INTO pets (name) VALUES ('in flight')")
        .execute(&mut writer)
        .await
        .expect("insert");

    let id = t.create(r#"{"group": "pg", "action": "failover"}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    assert!(
        !in_recovery(&replica.url()).await,
        "the replica was promoted"
    );
    writable(&replica.url())
        .await
        .expect("the promoted replica takes writes");
    let refused = writable(&primary.url())
        .await
        .expect_err("a new session on the old writer may not write");
    assert!(refused.contains("read-only transaction"), "{refused}");
    assert!(
        sqlx::query("COMMIT").execute(&mut writer).await.is_err(),
        "the session holding a write was ended"
    );
    let fenced = changes(stage(&run, "demote-database"));
    assert_eq!(
        fenced.first().map(String::as_str),
        Some("pg-region-b default_transaction_read_only: off → on")
    );
    assert!(
        fenced
            .get(1)
            .is_some_and(|c| c.starts_with("pg-region-b open sessions: ")
                && c.ends_with("→ 0 (ended; clients reconnect read-only)")),
        "{fenced:?}"
    );
    let demoted = stage(&run, "demote-database")["message"]
        .as_str()
        .unwrap_or("");
    assert!(
        demoted.starts_with("pg-region-b is read-only; ended ")
            && demoted.ends_with(" open sessions"),
        "{demoted}"
    );

    // Again: both are where they should be, so nothing changes.
    let id = t.create(r#"{"group": "pg", "action": "failover"}"#).await;
    let again = t.wait_state(&id, "succeeded").await;
    assert_eq!(
        stage(&again, "promote-database")["message"],
        "pg-region-a is already the writer; nothing to do"
    );
    assert_eq!(
        stage(&again, "demote-database")["message"],
        "pg-region-b is read-only already; nothing to do"
    );
    assert!(changes(stage(&again, "promote-database")).is_empty());
    assert!(changes(stage(&again, "demote-database")).is_empty());
    t.shutdown().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn a_replica_past_max_lag_is_refused_before_anything_changes() {
    let Some((primary, replica)) = pair().await else {
        return;
    };
    let mut r = connect(&replica.url()).await;
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut r)
        .await
        .expect("pause replay");
    writable(&primary.url())
        .await
        .expect("a write to lag behind");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let scratch = tempfile::tempdir().expect("tempdir");
    let t = common::spawn_configured(
        &[
            ("pg.yaml", &WORKFLOW.replace("max_lag: 10s", "max_lag: 1s")),
            ("groups.yaml", GROUPS),
            (
                "targets.yaml",
                &targets(scratch.path(), &replica.url(), &primary.url()),
            ),
        ],
        &[],
        Options::default(),
        |_| {},
    )
    .await;
    let id = t.create(r#"{"group": "pg", "action": "failover"}"#).await;
    let run = t.wait_state(&id, "failed").await;
    let promote = stage(&run, "promote-database");
    let message = promote["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("database `pg-region-a`: replica lag ") && message.contains("> 1s"),
        "{message}"
    );
    assert_eq!(
        checks(promote).last(),
        Some(&("replica lag".to_string(), false))
    );
    assert_eq!(stage(&run, "demote-database")["state"], "skipped");
    assert!(in_recovery(&replica.url()).await, "nothing was promoted");
    writable(&primary.url()).await.expect("nothing was fenced");
    t.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_writer_fails_retryably_unless_it_counts_as_fenced() {
    let nobody = format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        common::free_port()
    );
    let scratch = tempfile::tempdir().expect("tempdir");
    let url = scratch.path().join("gone.url");
    std::fs::write(&url, &nobody).expect("write");
    let targets = format!(
        "databases:\n  gone: {{ provider: postgres, url: \"${{file:{}}}\" }}\n",
        url.display()
    );
    let workflow = |unreachable: &str| {
        format!(
            "name: fence\nstages:\n  demote:\n    agent: database\n    spec: {{ cluster: gone, role: reader, unreachable: {unreachable} }}\n    retry: {{ max_attempts: 2, initial_backoff: 50ms, max_backoff: 50ms }}\n"
        )
    };
    for (unreachable, state) in [("fail", "failed"), ("ok", "succeeded")] {
        let t = common::spawn_configured(
            &[
                ("fence.yaml", &workflow(unreachable)),
                (
                    "groups.yaml",
                    "groups:\n  pg:\n    workflows: { failover: fence }\n",
                ),
                ("targets.yaml", &targets),
            ],
            &[],
            Options::default(),
            |_| {},
        )
        .await;
        let id = t.create(r#"{"group": "pg"}"#).await;
        let run = t.wait_state(&id, state).await;
        let demote = stage(&run, "demote");
        let message = demote["message"].as_str().unwrap_or("");
        if unreachable == "fail" {
            assert_eq!(demote["attempts"], 2, "retried: {run:#}");
            assert!(
                message.starts_with("cannot reach database `gone`"),
                "{message}"
            );
        } else {
            assert_eq!(
                message,
                "gone is unreachable, treated as fenced (unreachable: ok)"
            );
        }
        t.shutdown().await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn lifeboat_run_dry_run_prints_what_would_change() {
    let Some((primary, replica)) = pair().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let workflows = common::write_workflows(
        dir.path(),
        &[
            ("pg.yaml", WORKFLOW),
            ("groups.yaml", GROUPS),
            (
                "targets.yaml",
                "databases:\n  pg-region-a: { provider: postgres, url: \"${env:PG_A_URL}\" }\n  pg-region-b: { provider: postgres, url: \"${env:PG_B_URL}\" }\n",
            ),
        ],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["run", "pg", "--action", "failover", "--dry-run"])
        .current_dir(dir.path())
        .env("LIFEBOAT_WORKFLOWS", &workflows)
        .env("PG_A_URL", replica.url())
        .env("PG_B_URL", primary.url())
        .env_remove("LIFEBOAT_CONFIG")
        .output()
        .expect("lifeboat runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("what a run would change:"), "{stdout}");
    assert!(
        stdout.contains("pg-region-a: replica (in recovery) → writer"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pg-region-b default_transaction_read_only: off → on"),
        "{stdout}"
    );
    assert!(
        in_recovery(&replica.url()).await,
        "the dry run changed nothing"
    );
}

/// Readiness from a real replica: drilled every second, the group is ready while the
/// replica keeps up; with its replay paused and the primary written to, the next drill
/// finds the lag over `max_lag` and the group is not ready, the check saying by how much
/// and the lag in readiness and the metrics; replay resumed, it is ready again.
#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn a_replica_with_replay_paused_makes_the_group_not_ready() {
    let Some((primary, replica)) = pair().await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let t = common::spawn_configured(
        &[
            ("pg.yaml", &WORKFLOW.replace("max_lag: 10s", "max_lag: 2s")),
            (
                "groups.yaml",
                &format!("{GROUPS}    drill: {{ every: 1s }}\n"),
            ),
            (
                "targets.yaml",
                &targets(scratch.path(), &replica.url(), &primary.url()),
            ),
        ],
        &[],
        Options::default(),
        |_| {},
    )
    .await;
    let readiness = async || {
        let (status, body) = t.get("/api/v1/readiness").await;
        assert_eq!(status, 200, "{body}");
        body["groups"][0].clone()
    };
    let ready = common::until("a drill that passes", Duration::from_secs(30), async || {
        let pg = readiness().await;
        (pg["ready"] == true).then_some(pg)
    })
    .await;
    assert_eq!(
        ready["replica_lag"][0]["target"], "pg-region-a",
        "{ready:#}"
    );

    let mut r = connect(&replica.url()).await;
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut r)
        .await
        .expect("pause replay");
    writable(&primary.url())
        .await
        .expect("a write to lag behind");
    let behind = common::until(
        "a drill that finds the lag",
        Duration::from_secs(30),
        async || {
            let pg = readiness().await;
            (pg["ready"] == false).then_some(pg)
        },
    )
    .await;
    let lag = behind["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "replica lag").cloned())
        .unwrap_or(Value::Null);
    assert_eq!(lag["ok"], false, "{behind:#}");
    assert_eq!(lag["stage"], "promote-database");
    let detail = lag["detail"].as_str().unwrap_or("");
    assert!(detail.ends_with("s > 2s"), "value and limit: {detail}");
    let seconds = behind["replica_lag"][0]["seconds"].as_f64().unwrap_or(0.0);
    assert!(seconds > 2.0, "{behind:#}");
    let metrics = t.metrics().await;
    assert!(
        metrics.contains("lifeboat_replica_lag_seconds{group=\"pg\",target=\"pg-region-a\"}")
            && metrics.contains("lifeboat_group_ready{group=\"pg\"} 0"),
        "{metrics}"
    );
    assert!(
        in_recovery(&replica.url()).await,
        "a drill promotes nothing"
    );

    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut r)
        .await
        .expect("resume replay");
    common::until("ready again", Duration::from_secs(30), async || {
        (readiness().await["ready"] == true).then_some(())
    })
    .await;
    t.shutdown().await;
}
