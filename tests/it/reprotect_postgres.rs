//! Re-protect on a real primary and streaming replica: after a failover promotes the
//! replica and fences the old writer, a `role: replica` stage turns the old writer into a
//! streaming replica of the new one: by `pg_rewind` when the server allows it
//! (`wal_log_hints`), and by a fresh `pg_basebackup` when it does not, keeping the old data
//! directory beside it. A dry run changes nothing, and a second run finds it done.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::services::PrivatePostgres;
use common::{TestApp, stage};
use lifeboat::app::Options;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::provider_postgres::{connect, in_recovery};

const WORKFLOW: &str = r#"
name: pg-failover
stages:
  promote:
    agent: database
    spec: { cluster: pg-region-a, role: writer }
    retry: { max_attempts: 1 }
  demote:
    agent: database
    after: [promote]
    spec: { cluster: pg-region-b, role: reader }
    retry: { max_attempts: 1 }
  reprotect:
    agent: database
    after: [demote]
    spec: { cluster: pg-region-b, role: replica, source: pg-region-a }
    retry: { max_attempts: 1 }
    timeout: 2m
"#;

/// The way back once region-b is re-protected: a planned switchover to region-b, losing
/// nothing, then region-a made a replica of it.
const FAILBACK: &str = r#"
name: pg-failback
stages:
  switchover:
    agent: database
    spec: { cluster: pg-region-b, role: writer, from: pg-region-a, switchover: true }
    retry: { max_attempts: 1 }
  reprotect:
    agent: database
    after: [switchover]
    spec: { cluster: pg-region-a, role: replica, source: pg-region-b }
    retry: { max_attempts: 1 }
    timeout: 2m
"#;

/// `pg` fails back by its written workflow; `record` has none, so its failback is worked
/// out from its last failover.
const GROUPS: &str = "groups:\n  pg:\n    workflows: { failover: pg-failover, failback: pg-failback }\n  record:\n    workflows: { failover: pg-failover }\n";

/// A primary (with `wal_log_hints` when `hints`, keeping 128 MB of WAL when `keep_wal`)
/// holding a table, and a replica of it.
async fn pair(hints: bool, keep_wal: bool) -> Option<(PrivatePostgres, PrivatePostgres)> {
    let primary = PrivatePostgres::start()?;
    let mut c = connect(&primary.url()).await;
    sqlx::query("CREATE TABLE pets (id serial PRIMARY KEY, name text)")
        .execute(&mut c)
        .await
        .expect("create");
    if hints {
        sqlx::query("ALTER SYSTEM SET wal_log_hints = on")
            .execute(&mut c)
            .await
            .expect("wal_log_hints");
    }
    if keep_wal {
        // What pg_rewind reads back to the point the two diverged.
        sqlx::query("ALTER SYSTEM SET wal_keep_size = '128MB'")
            .execute(&mut c)
            .await
            .expect("wal_keep_size");
    }
    let _ = c.close().await;
    if hints {
        primary.stop();
        primary.start_again();
    }
    let replica = PrivatePostgres::replica_of(&primary);
    Some((primary, replica))
}

/// targets.yaml: region-a the replica, region-b the primary, each with its host's details.
fn targets(dir: &Path, replica: &PrivatePostgres, primary: &PrivatePostgres) -> String {
    let mut out = String::from("databases:\n");
    for (region, server) in [("a", replica), ("b", primary)] {
        let url = dir.join(format!("region-{region}.url"));
        std::fs::write(&url, server.url()).expect("write");
        let start = serde_json::to_string(&server.start_command()).expect("json");
        out.push_str(&format!(
            "  pg-region-{region}:\n    provider: postgres\n    url: \"${{file:{}}}\"\n    data_dir: {}\n    bin_dir: {}\n    start: {start}\n",
            url.display(),
            server.data_dir().display(),
            server.bin_dir().display(),
        ));
    }
    out
}

async fn spawn(targets: &str) -> TestApp {
    common::spawn_configured(
        &[
            ("pg.yaml", WORKFLOW),
            ("back.yaml", FAILBACK),
            ("groups.yaml", GROUPS),
            ("targets.yaml", targets),
        ],
        &[],
        Options::default(),
        |_| {},
    )
    .await
}

fn check<'a>(stage: &'a Value, name: &str) -> &'a Value {
    stage["report"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {stage:#}"))
}

/// How many pets `url` has, once it has at least `n` (a replica catching up), within 30 s.
async fn pets_reach(url: &str, n: i64) -> i64 {
    let url = url.to_string();
    common::until("the rows to arrive", Duration::from_secs(30), async || {
        let mut c = PgConnection::connect(&url).await.ok()?;
        let have: i64 = sqlx::query_scalar("SELECT count(*) FROM pets")
            .fetch_one(&mut c)
            .await
            .ok()?;
        (have >= n).then_some(have)
    })
    .await
}

async fn write(url: &str, rows: usize) {
    let mut c = connect(url).await;
    for _ in 0..rows {
        sqlx::query("INSERT INTO pets (name) VALUES ('after')")
            .execute(&mut c)
            .await
            .expect("a write on the new writer");
    }
}

/// Fails over, re-protecting the old writer: `chosen` is the method picked, `method` the
/// one that did it. Checks it streams from the new writer and the new writer's rows reach
/// it.
async fn fail_over_and_reprotect(hints: bool, keep_wal: bool, chosen: &str, method: &str) {
    let Some((primary, replica)) = pair(hints, keep_wal).await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let t = spawn(&targets(scratch.path(), &replica, &primary)).await;

    // A dry run says how, and changes nothing.
    let id = t.create(r#"{"group": "pg", "dry_run": true}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    let drill = stage(&run, "reprotect");
    assert!(
        check(drill, "method")["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with(&format!("{chosen}: "))),
        "{drill:#}"
    );
    assert!(
        !in_recovery(&primary.url()).await,
        "a dry run changes nothing"
    );

    let id = t.create(r#"{"group": "pg"}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    let reprotect = stage(&run, "reprotect");
    assert_eq!(
        check(reprotect, "streaming")["detail"],
        "pg-region-b streams from pg-region-a",
        "{run:#}"
    );
    assert!(
        reprotect["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!(
                "pg-region-b is a replica of pg-region-a again, by {method}"
            ))),
        "{run:#}"
    );
    assert!(!in_recovery(&replica.url()).await, "region-a writes now");
    assert!(in_recovery(&primary.url()).await, "region-b replicates now");
    let before = pets_reach(&replica.url(), 0).await;
    write(&replica.url(), 3).await;
    assert_eq!(pets_reach(&primary.url(), before + 3).await, before + 3);
    if method == "clone" {
        let kept = std::fs::read_dir(primary.data_dir().parent().expect("a parent"))
            .expect("the directory")
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("data.before-reprotect-")
            });
        assert!(kept, "the old data directory is kept");
    }

    // Again: the re-protect finds it done.
    let id = t.create(r#"{"group": "pg"}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(
        stage(&run, "reprotect")["message"],
        "pg-region-b is already a replica of pg-region-a; nothing to do",
        "{run:#}"
    );
    t.shutdown().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn the_old_writer_is_rewound_into_a_replica_when_wal_log_hints_is_on() {
    fail_over_and_reprotect(true, true, "rewind", "rewind").await;
}

/// pg_rewind needs the old writer's WAL back to where the two diverged; without it (no
/// archive, no `wal_keep_size`), `auto` clones instead.
#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn a_rewind_without_the_wal_it_needs_falls_back_to_a_clone() {
    fail_over_and_reprotect(true, false, "rewind", "clone").await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn the_old_writer_is_cloned_into_a_replica_when_it_cannot_be_rewound() {
    fail_over_and_reprotect(false, false, "clone", "clone").await;
}

/// The switchover stage waited until region-b had replayed all region-a wrote.
fn caught_up(run: &Value, switchover: &str) {
    assert!(
        check(stage(run, switchover), "caught up")["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("pg-region-b has replayed pg-region-a up to ")),
        "{run:#}"
    );
}

/// Back where it began: region-b writes and has all `written` rows, region-a replicates it.
async fn back_home(primary: &PrivatePostgres, replica: &PrivatePostgres, written: i64) {
    assert!(!in_recovery(&primary.url()).await, "region-b writes again");
    assert_eq!(pets(&primary.url()).await, written, "no row was lost");
    assert!(
        in_recovery(&replica.url()).await,
        "region-a replicates again"
    );
    write(&primary.url(), 2).await;
    assert_eq!(pets_reach(&replica.url(), written + 2).await, written + 2);
}

async fn pets(url: &str) -> i64 {
    let mut c = connect(url).await;
    sqlx::query_scalar("SELECT count(*) FROM pets")
        .fetch_one(&mut c)
        .await
        .expect("count")
}

/// Failover, re-protect, writes on the new writer, then back by a planned switchover: every
/// row written on region-a is on region-b, which writes again, and region-a replicates it.
#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn a_planned_switchover_back_loses_no_row_and_restores_both_roles() {
    let Some((primary, replica)) = pair(true, true).await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let t = spawn(&targets(scratch.path(), &replica, &primary)).await;
    let id = t.create(r#"{"group": "pg"}"#).await;
    t.wait_state(&id, "succeeded").await;
    write(&replica.url(), 25).await;
    let written = pets(&replica.url()).await;

    let id = t.create(r#"{"group": "pg", "action": "failback"}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    caught_up(&run, "switchover");
    back_home(&primary, &replica, written).await;
    t.shutdown().await;
}

/// The same way back, worked out from the record for a group with no failback workflow:
/// the failover promoted region-a in place of region-b (fenced by its demote) and
/// re-protected region-b, so the failback switches over to region-b and re-protects
/// region-a, and no row written since the failover is lost.
#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn a_failback_worked_out_from_the_record_loses_no_row() {
    let Some((primary, replica)) = pair(true, true).await else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let t = spawn(&targets(scratch.path(), &replica, &primary)).await;
    let failover = t.create(r#"{"group": "record"}"#).await;
    t.wait_state(&failover, "succeeded").await;
    write(&replica.url(), 25).await;
    let written = pets(&replica.url()).await;

    let (status, plan) = t.get("/api/v1/groups/record/plan?action=failback").await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["from_run"], failover.as_str());
    let id = t
        .create(r#"{"group": "record", "action": "failback"}"#)
        .await;
    let run = t.wait_state(&id, "succeeded").await;
    caught_up(&run, "back-promote");
    back_home(&primary, &replica, written).await;
    t.shutdown().await;
}
