//! What a workflow's command can see and do to its agent: `lifeboat serve` with chat, API
//! and cloud secrets in its environment runs an `exec` stage that dumps its environment
//! and prints far more than it keeps. The command sees none of the secrets, and what it
//! printed is cut to its last 64 KiB with the rest counted.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, free_port, until};
use serde_json::{Value, json};

const TOKEN: &str = "api-token-for-exec-test-93f1";
const SLACK: &str = "xoxb-slack-secret-for-exec-test";
const CLOUD: &str = "aws-secret-for-exec-test-7c2e";

#[tokio::test]
async fn a_command_sees_none_of_the_agents_secrets_and_its_output_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seen = dir.path().join("env.txt");
    let workflow = format!(
        "name: shop\nstages:\n  dump:\n    agent: exec\n    spec:\n      command: [sh, -c, 'env > {}; head -c 3000000 /dev/zero | tr \"\\\\0\" x; echo; echo last line']\n      env: {{ GREETING: hello }}\n",
        seen.display()
    );
    let workflows = common::write_workflows(
        dir.path(),
        &[("shop.yaml", &workflow), ("groups.yaml", common::GROUPS)],
    );
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("serve.log")).expect("log file");
    let _serve = Proc(
        Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .arg("serve")
            .env_remove("LIFEBOAT_CONFIG")
            .env_remove("LIFEBOAT_KAFKA_BROKERS")
            .env(
                "LIFEBOAT_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("lifeboat.db").display()),
            )
            .env("LIFEBOAT_API_TOKENS", format!("ops:{TOKEN}"))
            .env("LIFEBOAT_LISTEN", format!("127.0.0.1:{port}"))
            .env("LIFEBOAT_WORKFLOWS", &workflows)
            // Slack on, pointed nowhere: its token is in the agent's environment.
            .env("SLACK_BOT_TOKEN", SLACK)
            .env("SLACK_API_URL", "http://127.0.0.1:9")
            .env("AWS_SECRET_ACCESS_KEY", CLOUD)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start lifeboat serve"),
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    common::until_ready(&client, &base).await;
    let (status, created) = common::post_json(
        &client,
        &format!("{base}/api/v1/runs"),
        Some(TOKEN),
        &json!({ "group": "shop" }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let run: Value = until("the run to finish", Duration::from_secs(60), async || {
        common::get_json(&client, &format!("{base}/api/v1/runs/{id}"), Some(TOKEN))
            .await
            .filter(|r| r["state"] == "succeeded" || r["state"] == "failed")
    })
    .await;
    assert_eq!(run["state"], "succeeded", "{run}");

    let env = std::fs::read_to_string(&seen).expect("the command wrote its environment");
    for secret in [
        TOKEN,
        SLACK,
        CLOUD,
        "LIFEBOAT_DATABASE_URL",
        "LIFEBOAT_API_TOKENS",
    ] {
        assert!(!env.contains(secret), "the command saw {secret}:\n{env}");
    }
    for given in [
        "PATH=",
        "GREETING=hello",
        "LIFEBOAT_STAGE=dump",
        &format!("LIFEBOAT_RUN_ID={id}"),
    ] {
        assert!(env.contains(given), "the command lacks {given}:\n{env}");
    }
    let message = run["stages"][0]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("exit 0: "), "{message}");
    assert!(message.contains("last line"), "{message}");
    let dropped: u64 = message
        .rsplit_once(" (")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the dropped bytes are counted: {message}"));
    // 3,000,000 x's, two newlines and "last line", less the 65,536 kept.
    assert_eq!(dropped, 3_000_000 + 2 + 9 - 65_536, "{message}");
}
