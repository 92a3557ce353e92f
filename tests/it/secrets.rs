//! Secrets never reach the output: `lifeboat serve` with a password in its database URL
//! and an API token set prints neither, at the most talkative log level, whether it
//! serves or fails to start; it names the database with the password masked.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::signal;
use common::{Proc, free_port, until};

/// `lifeboat serve` with these settings, its stdout and stderr in one file.
fn serve(dir: &std::path::Path, database: &str, token: &str, port: u16) -> Proc {
    let workflows = common::write_workflows(
        dir,
        &[
            ("shop.yaml", "name: shop\nstages:\n  a: { agent: noop }\n"),
            ("groups.yaml", common::GROUPS),
        ],
    );
    let out = std::fs::File::create(dir.join("serve.log")).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .arg("serve")
        .env_remove("LIFEBOAT_CONFIG")
        .env_remove("LIFEBOAT_KAFKA_BROKERS")
        .env("LIFEBOAT_DATABASE_URL", database)
        .env("LIFEBOAT_API_TOKENS", format!("ops:{token}"))
        .env("LIFEBOAT_LISTEN", format!("127.0.0.1:{port}"))
        .env("LIFEBOAT_WORKFLOWS", workflows)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start lifeboat serve");
    Proc(child)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL"]
async fn serve_prints_neither_its_database_password_nor_its_token() {
    use sqlx::Connection;
    let Some(admin) = common::postgres_url() else {
        return;
    };
    // A role and a database of its own, with a password that appears nowhere else.
    let role = unique("lifeboat_secret_");
    let password = unique("pw-");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect as the test role");
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        // Membership lets the test role give it a database of its own.
        format!("GRANT {role} TO CURRENT_USER"),
        format!("CREATE DATABASE {role} OWNER {role}"),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.expect(&sql);
    }
    let host = admin
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, _)| host.to_string())
        .expect("the URL names a host");
    let database = format!("postgres://{role}:{password}@{host}/{role}");
    let token = unique("tok-");

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut proc = serve(dir.path(), &database, &token, port);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    common::until_ready(&client, &base).await;
    // Requests that carry the token, right and wrong, and a run that moves.
    let created = client
        .post(format!("{base}/api/v1/runs"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "group": "shop" }))
        .send()
        .await
        .expect("create a run");
    assert_eq!(created.status(), 201);
    let wrong = client
        .get(format!("{base}/api/v1/runs"))
        .bearer_auth(format!("{token}-wrong"))
        .send()
        .await
        .expect("a wrong token");
    assert_eq!(wrong.status(), 401);
    signal(proc.0.id(), "-TERM");
    let exited = until("serve to stop", Duration::from_secs(30), async || {
        proc.0.try_wait().ok().flatten()
    })
    .await;
    assert!(exited.success(), "serve exits cleanly on SIGTERM");

    let log = std::fs::read_to_string(dir.path().join("serve.log")).expect("the log");
    assert!(!log.contains(&password), "the password leaked:\n{log}");
    assert!(!log.contains(&token), "the token leaked:\n{log}");
    assert!(
        log.contains(&format!("postgres://{role}:***@{host}/{role}")),
        "the database is named, masked:\n{log}"
    );

    sqlx::query(&format!("DROP DATABASE {role} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .expect("drop the database");
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&mut conn)
        .await
        .expect("drop the role");
}

#[tokio::test]
async fn serve_that_cannot_reach_its_database_prints_no_password() {
    let password = unique("pw-");
    let token = unique("tok-");
    let database = format!(
        "postgres://lifeboat:{password}@127.0.0.1:{}/lifeboat",
        free_port()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut proc = serve(dir.path(), &database, &token, free_port());
    let exited = until("serve to give up", Duration::from_secs(30), async || {
        proc.0.try_wait().ok().flatten()
    })
    .await;
    assert_eq!(exited.code(), Some(2), "a configuration error");
    let log = std::fs::read_to_string(dir.path().join("serve.log")).expect("the log");
    assert!(log.contains("cannot connect to PostgreSQL"), "{log}");
    assert!(!log.contains(&password), "the password leaked:\n{log}");
    assert!(!log.contains(&token), "the token leaked:\n{log}");
}

/// A stage spec's `${env:…}` and `${file:…}` are read by the agent when it runs: the
/// endpoint and the command get the values, while the store (the plan, the outbox of
/// work requests, the audit, the stage's message and report), the API's answers and the
/// log hold only the references, or `***` where an agent repeats a value.
#[tokio::test]
async fn secrets_in_stage_specs_are_read_at_run_time_and_kept_nowhere() {
    use std::sync::{Arc, Mutex};
    let token = unique("spec-token-");
    let key = unique("spec-key-");
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).expect("write the key");

    // The endpoint the http stage calls, keeping what it was sent.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let router = {
        let seen = seen.clone();
        axum::Router::new().route(
            "/health",
            axum::routing::get(
                move |headers: axum::http::HeaderMap, uri: axum::http::Uri| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    seen.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{auth} {uri}"));
                    "ok"
                },
            ),
        )
    };
    let endpoint = common::serve_loopback(router, "the endpoint").await;
    let workflow = format!(
        r#"
name: shop
stages:
  call:
    agent: http
    spec:
      url: "{endpoint}/health?key=${{file:{file}}}"
      headers: {{ Authorization: "Bearer ${{env:LIFEBOAT_SPEC_TOKEN}}" }}
  say:
    agent: exec
    spec:
      command: [sh, -c, 'echo "token $TOKEN and $${{HOME:+home}}"']
      env: {{ TOKEN: "${{env:LIFEBOAT_SPEC_TOKEN}}" }}
"#,
        file = key_file.display()
    );
    let workflows = common::write_workflows(
        dir.path(),
        &[("shop.yaml", &workflow), ("groups.yaml", common::GROUPS)],
    );
    let port = free_port();
    let log = dir.path().join("serve.log");
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let db = dir.path().join("lifeboat.db");
    let _proc = Proc(
        Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .arg("serve")
            .env_remove("LIFEBOAT_CONFIG")
            .env_remove("LIFEBOAT_KAFKA_BROKERS")
            .env_remove("LIFEBOAT_API_TOKENS")
            .env(
                "LIFEBOAT_DATABASE_URL",
                format!("sqlite://{}", db.display()),
            )
            .env("LIFEBOAT_LISTEN", format!("127.0.0.1:{port}"))
            .env("LIFEBOAT_WORKFLOWS", workflows)
            .env("LIFEBOAT_SPEC_TOKEN", &token)
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start lifeboat serve"),
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    common::until_ready(&client, &base).await;
    let id = common::create_run_at(&client, &base, "shop").await;
    let run = until("the run to end", Duration::from_secs(30), async || {
        let run = common::get_json(&client, &format!("{base}/api/v1/runs/{id}"), None).await?;
        matches!(run["state"].as_str(), Some("succeeded" | "failed")).then_some(run)
    })
    .await;
    assert_eq!(run["state"], "succeeded", "{run}");

    // The endpoint and the command had the values.
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen, [format!("Bearer {token} /health?key={key}")]);
    let said = run["stages"][1]["message"].as_str().unwrap_or_default();
    assert_eq!(said, "exit 0: token *** and home", "{run}");

    // Nowhere else: not in the API's answers, the store's file, or the log.
    let answers = [
        run.to_string(),
        common::get_json(&client, &format!("{base}/api/v1/runs/{id}/report"), None)
            .await
            .unwrap_or_default()
            .to_string(),
        common::get_json(&client, &format!("{base}/api/v1/runs"), None)
            .await
            .unwrap_or_default()
            .to_string(),
    ];
    let mut stored = Vec::new();
    for file in std::fs::read_dir(dir.path())
        .expect("the directory")
        .flatten()
    {
        if file
            .file_name()
            .to_string_lossy()
            .starts_with("lifeboat.db")
        {
            stored.extend(std::fs::read(file.path()).expect("the store"));
        }
    }
    let stored = String::from_utf8_lossy(&stored).into_owned();
    assert!(
        stored.contains("${env:LIFEBOAT_SPEC_TOKEN}"),
        "the plan keeps the reference"
    );
    let logged = std::fs::read_to_string(&log).expect("the log");
    for (place, text) in [
        ("the API", answers.join("\n")),
        ("the store", stored),
        ("the log", logged),
    ] {
        for secret in [&token, &key] {
            assert!(!text.contains(secret.as_str()), "{place} holds {secret}");
        }
    }
}
