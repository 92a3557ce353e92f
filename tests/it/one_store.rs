//! One embedded process per store. With `lifeboat serve` running a long stage in a
//! directory, a `lifeboat run` in the same directory exits 2 at once, says who holds the
//! store and what to do instead, and changes nothing: serve's stage runs once. `run
//! --server` starts the run on the service instead. A `kill -9` lets go of the store.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn lifeboat(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .current_dir(dir)
        .env(
            "LIFEBOAT_DATABASE_URL",
            format!("sqlite://{}", dir.join("lifeboat.db").display()),
        )
        .env("LIFEBOAT_WORKFLOWS", dir.join("workflows"))
        .env_remove("LIFEBOAT_API_TOKENS")
        .env_remove("LIFEBOAT_API_TOKEN")
        .env_remove("LIFEBOAT_CONFIG")
        .env_remove("LIFEBOAT_KAFKA_BROKERS")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("lifeboat runs")
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("ran.log");
    let shop = format!(
        "name: shop\nstages:\n  slow:\n    agent: exec\n    spec: {{ command: [sh, -c, 'sleep 4; echo slow >> {}'] }}\n",
        log.display()
    );
    let drill = format!(
        "name: drill\nstages:\n  quick:\n    agent: exec\n    spec: {{ command: [sh, -c, 'echo quick >> {}'] }}\n",
        log.display()
    );
    common::write_workflows(
        dir.path(),
        &[
            ("shop.yaml", &shop),
            ("drill.yaml", &drill),
            (
                "groups.yaml",
                "groups:\n  shop:\n    workflows: { failover: shop }\n  other:\n    workflows: { failover: drill }\n",
            ),
        ],
    );
    dir
}

fn ran(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("ran.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_second_embedded_process_is_refused_and_serve_runs_its_stage_once() {
    let dir = setup();
    let port = common::free_port();
    let serve = common::serve(dir.path(), port, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    common::until_ready(&client, &base).await;
    let id = common::create_run_at(&client, &base, "shop").await;
    let url = format!("{base}/api/v1/runs/{id}");
    common::until("slow to run", Duration::from_secs(20), async || {
        let run = common::get_json(&client, &url, None).await?;
        (common::stage(&run, "slow")["state"] == "running").then_some(())
    })
    .await;

    let asked = Instant::now();
    let out = lifeboat(dir.path(), &["run", "other", "--yes"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(asked.elapsed() < Duration::from_secs(3), "not at once");
    let pid = serve.0.id().to_string();
    for part in [
        "is in use by",
        "serve",
        pid.as_str(),
        "started 20",
        "--database",
        &format!("--server http://127.0.0.1:{port}"),
        "Nothing was changed",
    ] {
        assert!(said.contains(part), "{part:?} missing from: {said}");
    }

    // A second `serve` on the same store and address hears who holds it, not that the
    // address is taken.
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .arg("serve")
        .current_dir(dir.path())
        .env(
            "LIFEBOAT_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("lifeboat.db").display()),
        )
        .env("LIFEBOAT_WORKFLOWS", dir.path().join("workflows"))
        .env("LIFEBOAT_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("LIFEBOAT_API_TOKENS")
        .env_remove("LIFEBOAT_CONFIG")
        .env_remove("LIFEBOAT_KAFKA_BROKERS")
        .output()
        .expect("lifeboat runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("is in use by") && said.contains(&pid),
        "{said}"
    );

    // Driving the service instead: the same live progress, the same exit code.
    let out = lifeboat(dir.path(), &["run", "other", "--yes", "--server", &base]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("quick") && stdout.contains("succeeded"),
        "{stdout}"
    );

    let done: Value = common::until("the run to end", Duration::from_secs(30), async || {
        let run = common::get_json(&client, &url, None).await?;
        (run["state"] == "succeeded").then_some(run)
    })
    .await;
    assert_eq!(common::stage(&done, "slow")["attempts"], 1, "{done:#}");
    let mut lines = ran(dir.path());
    lines.sort();
    assert_eq!(lines, ["quick", "slow"], "each stage ran once");

    // A killed holder lets go of the store: the next process takes it.
    drop(serve);
    let out = lifeboat(dir.path(), &["run", "other", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ran(dir.path()).len(), 3);
}

#[tokio::test]
async fn run_on_a_server_that_refuses_says_so() {
    let dir = setup();
    let port = common::free_port();
    let _serve = common::serve(
        dir.path(),
        port,
        &[("LIFEBOAT_API_TOKENS", "ops:ops-token-0123456789")],
    );
    let base = format!("http://127.0.0.1:{port}");
    common::until_ready(&reqwest::Client::new(), &base).await;
    let out = lifeboat(dir.path(), &["run", "other", "--server", &base]);
    assert_eq!(out.status.code(), Some(2), "no token: 401");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused (401 Unauthorized)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["run", "nowhere", "--server", &base])
        .env("LIFEBOAT_API_TOKEN", "ops-token-0123456789")
        .env_remove("LIFEBOAT_CONFIG")
        .output()
        .expect("lifeboat runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "an unknown group: {said}");
    assert!(said.contains("nowhere"), "{said}");
}
