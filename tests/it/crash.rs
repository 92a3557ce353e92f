//! `kill -9` of `lifeboat serve` in the middle of a run, then a restart: the run completes
//! and no stage whose lease was released with success runs again. Each `exec` stage appends
//! its name to a file, so the file is the record of what ran.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, free_port, until};

const LIMIT: Duration = Duration::from_secs(30);
use serde_json::Value;

fn serve(dir: &std::path::Path, port: u16) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .arg("serve")
        .env("LIFEBOAT_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "LIFEBOAT_DATABASE_URL",
            format!("sqlite://{}", dir.join("lifeboat.db").display()),
        )
        .env("LIFEBOAT_WORKFLOWS", dir.join("workflows"))
        .env_remove("LIFEBOAT_API_TOKENS")
        .env_remove("LIFEBOAT_CONFIG")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lifeboat serve");
    Proc(child)
}

async fn get(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

fn stage_state(run: &Value, name: &str) -> String {
    run["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .and_then(|s| s["state"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_killed_server_resumes_the_run_without_repeating_finished_stages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("ran.log");
    let wf = format!(
        r#"
name: steps
params: {{ log: "{}" }}
stages:
  one:
    agent: exec
    spec: {{ command: [sh, -c, 'echo one >> "$LOG"'], env: {{ LOG: "${{log}}" }} }}
  two:
    agent: exec
    spec: {{ command: [sh, -c, 'echo two >> "$LOG"'], env: {{ LOG: "${{log}}" }} }}
  slow:
    agent: exec
    spec: {{ command: [sh, -c, 'sleep 2; echo slow >> "$LOG"'], env: {{ LOG: "${{log}}" }} }}
  four:
    agent: exec
    spec: {{ command: [sh, -c, 'echo four >> "$LOG"'], env: {{ LOG: "${{log}}" }} }}
"#,
        log.display()
    );
    std::fs::create_dir_all(dir.path().join("workflows")).expect("mkdir");
    std::fs::write(dir.path().join("workflows/steps.yaml"), wf).expect("write");
    std::fs::write(
        dir.path().join("workflows/groups.yaml"),
        "groups:\n  shop:\n    workflows: { failover: steps }\n",
    )
    .expect("write");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = serve(dir.path(), port);
    until("the server to answer", LIMIT, async || {
        get(&client, &format!("{base}/healthz")).await
    })
    .await;

    let id = common::create_run_at(&client, &base, "shop").await;
    let run_url = format!("{base}/api/v1/runs/{id}");
    until("stage `slow` to run", LIMIT, async || {
        get(&client, &run_url)
            .await
            .filter(|r| stage_state(r, "slow") == "running")
    })
    .await;

    // SIGKILL: no shutdown code runs.
    server.0.kill().expect("kill -9");
    server.0.wait().expect("reap");
    let before = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        before, "one\ntwo\n",
        "the interrupted stage had not finished"
    );
    // Its child was killed with the server: nothing appends after the fact.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(std::fs::read_to_string(&log).expect("log"), before);

    let _server = serve(dir.path(), port);
    let done = until("the run to finish after the restart", LIMIT, async || {
        get(&client, &run_url)
            .await
            .filter(|r| r["finished_at"].is_string())
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(
        std::fs::read_to_string(&log).expect("log"),
        "one\ntwo\nslow\nfour\n"
    );
    let slow = done["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "slow"))
        .expect("slow");
    assert_eq!(
        slow["attempts"], 2,
        "the killed attempt's lease expired and the stage ran again"
    );
    assert!(
        done["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["kind"] == "stage.retrying"
                && e["stage"] == "slow"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("lease expired")),
        "{done:#}"
    );
    for name in ["one", "two", "four"] {
        let s = done["stages"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name))
            .expect("stage");
        assert_eq!(s["attempts"], 1, "{name} ran once");
    }
}
