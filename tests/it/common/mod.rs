//! Test harness: the real embedded app (SQLite file, in-process bus and agents) on a free
//! loopback port, with workflows written into a fresh directory.
#![allow(dead_code)]

pub mod alertmanager;
pub mod cluster;
pub mod console;
pub mod crash;
pub mod discord;
pub mod dns;
pub mod evacuation;
pub mod forgery;
pub mod kafka_secure;
pub mod mattermost;
pub mod services;
pub mod slack;
pub mod toy;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat::app::{App, Options};
use lifeboat::config::{ApiToken, Settings};
use lifeboat::startup::Service;
use serde_json::Value;

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub token: Option<String>,
    service: Option<Service>,
}

pub fn write_workflows(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let wf = dir.join("workflows");
    std::fs::create_dir_all(&wf).expect("workflows dir");
    for (name, text) in files {
        std::fs::write(wf.join(name), text).expect("write workflow");
    }
    wf
}

pub async fn spawn(files: &[(&str, &str)], tokens: &[(&str, &str)]) -> TestApp {
    spawn_with(files, tokens, Options::default()).await
}

/// The app on these workflows and tokens, started with `options` (a registry of agents of
/// its own, another clock).
pub async fn spawn_with(
    files: &[(&str, &str)],
    tokens: &[(&str, &str)],
    options: Options,
) -> TestApp {
    spawn_configured(files, tokens, options, |_| {}).await
}

/// The app with its settings changed by `configure` first (Slack, Discord).
pub async fn spawn_configured(
    files: &[(&str, &str)],
    tokens: &[(&str, &str)],
    options: Options,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = {
        let mut s = Settings::embedded(
            format!("sqlite://{}", dir.path().join("test.db").display()),
            write_workflows(dir.path(), files),
        );
        s.api_tokens = tokens.iter().map(|(n, t)| ApiToken::new(*n, *t)).collect();
        configure(&mut s);
        s
    };
    let service = Service::start(&settings, options)
        .await
        .expect("the service starts");
    TestApp {
        addr: service.addr,
        client: reqwest::Client::new(),
        dir,
        token: tokens.first().map(|(_, t)| t.to_string()),
        service: Some(service),
    }
}

impl TestApp {
    /// The service on `settings`, as `lifeboat serve` starts it: to start it again on the
    /// same store.
    pub async fn start(settings: &Settings) -> TestApp {
        let service = Service::start(settings, Options::default())
            .await
            .expect("the service starts");
        TestApp {
            addr: service.addr,
            client: reqwest::Client::new(),
            dir: tempfile::tempdir().expect("tempdir"),
            token: None,
            service: Some(service),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let resp = self
            .auth(self.client.post(self.url(path)))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A POST as the holder of `token`, not the app's first token.
    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        post_json(&self.client, &self.url(path), Some(token), body).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .auth(self.client.get(self.url(path)))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The Prometheus text at `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub async fn create(&self, body: &str) -> String {
        let (status, run) = self.post("/api/v1/runs", body).await;
        assert_eq!(status, 201, "create run: {run}");
        run["id"].as_str().expect("run id").to_string()
    }

    /// Polls the run until `done` holds or 30 s pass. A run an alert starts is made just
    /// after the webhook is answered, so a 404 is waited out too.
    pub async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (status, run) = self.get(&format!("/api/v1/runs/{id}")).await;
            assert!(status == 200 || status == 404, "{status}: {run}");
            if status == 200 && done(&run) {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {run:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_state(&self, id: &str, state: &str) -> Value {
        self.wait_for(id, state, |r| r["state"] == state).await
    }

    /// The app behind the API.
    pub fn app(&self) -> &App {
        &self.service.as_ref().expect("the service runs").app
    }

    pub async fn shutdown(mut self) {
        if let Some(service) = self.service.take() {
            service.stop().await;
        }
    }
}

/// A stage's reported changes, each as `target: from → to`.
pub fn changes(stage: &Value) -> Vec<String> {
    stage["report"]["changes"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| format!("{}: {} → {}", c["target"], c["from"], c["to"]).replace('"', ""))
                .collect()
        })
        .unwrap_or_default()
}

pub fn stage<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no stage {name} in {run:#}"))
}

/// Says that a service-backed test skips for want of `what`; under
/// LIFEBOAT_REQUIRE_SERVICES=1 (CI) a missing service fails the test instead.
pub fn required(what: &str) {
    assert!(
        std::env::var("LIFEBOAT_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "LIFEBOAT_REQUIRE_SERVICES=1 but this test needs {what}"
    );
    eprintln!("skipping: this test needs {what}");
}

/// A PostgreSQL URL for tests, or `None` to skip; with LIFEBOAT_REQUIRE_SERVICES=1 a missing
/// server is a failure.
pub fn postgres_url() -> Option<String> {
    match std::env::var("LIFEBOAT_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            required("LIFEBOAT_TEST_POSTGRES_URL (scripts/postgres.sh)");
            None
        }
    }
}

/// Kafka brokers for tests, or `None` to skip (a failure under LIFEBOAT_REQUIRE_SERVICES=1).
pub fn kafka_brokers() -> Option<String> {
    match std::env::var("LIFEBOAT_TEST_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            required("LIFEBOAT_TEST_KAFKA_BROKERS (scripts/kafka.sh)");
            None
        }
    }
}

/// A connection to the test server's administrative database.
async fn postgres_admin(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL")
}

/// A fresh PostgreSQL database: its URL and name (for `drop_postgres`), or `None` to skip.
pub async fn fresh_postgres() -> Option<(String, String)> {
    use sqlx::Connection;
    let admin = postgres_url()?;
    let name = format!("lifeboat_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = postgres_admin(&admin).await;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let _ = conn.close().await;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b)
        .expect("the URL names a database");
    Some((format!("{base}/{name}"), name))
}

pub async fn drop_postgres(name: &str) {
    let Some(admin) = postgres_url() else { return };
    // Clean-up only: a session the server will not end for this role (another role's
    // backend still attached) leaves the database for the next run's drop, and fails no
    // test that passed.
    if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut postgres_admin(&admin).await)
        .await
    {
        eprintln!("could not drop test database {name}: {e}");
    }
}

/// `first` logs a line; `fixed` runs `./fix.sh`, which is missing until a person puts it
/// there (a command that cannot start fails for good); `last` logs a line after it.
pub const FIXABLE: &str = r#"
name: shop
params: { dir: "" }
stages:
  first:
    agent: exec
    spec: { command: [sh, -c, "echo ran >> first.log"], workdir: "${dir}" }
  fixed:
    agent: exec
    after: [first]
    spec: { command: [./fix.sh], workdir: "${dir}" }
  last:
    agent: exec
    after: [fixed]
    spec: { command: [sh, -c, "echo ran >> last.log"], workdir: "${dir}" }
"#;

/// Puts `fix.sh` where `FIXABLE`'s `fixed` stage looks for it: the fix a person makes.
pub fn put_fix(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let fix = dir.join("fix.sh");
    std::fs::write(&fix, "#!/bin/sh\necho fixed >> fixed.log\n").expect("write fix.sh");
    std::fs::set_permissions(&fix, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// POSTs `body` to `url`, with `token` if one is given: the status and the JSON answer.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut req = client.post(url).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("a request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// GETs `url`, with `token` if one is given: the JSON answer, if one came (for polling a
/// service that may be starting).
pub async fn get_json(client: &reqwest::Client, url: &str, token: Option<&str>) -> Option<Value> {
    let mut req = client.get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.ok()?.json().await.ok()
}

pub const GROUPS: &str = "groups:\n  shop:\n    workflows: { failover: shop }\n";

/// The app with group `shop`, whose one stage holds its run for a minute, and that run
/// started and running.
pub async fn holding_run() -> (TestApp, String) {
    const HOLD: &str = "name: shop\nstages:\n  hold: { agent: capacity, spec: { cluster: k8s, namespace: shop, replicas: 2, duration: 60s } }\n";
    let t = spawn(&[("shop.yaml", HOLD), ("groups.yaml", GROUPS)], &[]).await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&id, "running").await;
    (t, id)
}

/// A fresh id, as Slack's `trigger_id` and Discord's interaction id are for every
/// interaction (Lifeboat takes each one once).
pub fn fresh_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}{n:06}", 1_300_000_000_000u64)
}

/// Serves `router` on a free loopback port; its base URL.
pub async fn serve_loopback(router: axum::Router, what: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind the {what}: {e}"));
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// A child process killed when the test lets go of it, pass or fail.
/// `lifeboat serve` on the embedded store in `dir` (its workflows in `dir/workflows`) on
/// `port`, with `env` besides; its log goes to `dir/serve-PORT.log`.
pub fn serve(dir: &Path, port: u16, env: &[(&str, &str)]) -> Proc {
    let log = std::fs::File::create(dir.join(format!("serve-{port}.log"))).expect("a log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    command
        .arg("serve")
        .env("LIFEBOAT_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "LIFEBOAT_DATABASE_URL",
            format!("sqlite://{}", dir.join("lifeboat.db").display()),
        )
        .env("LIFEBOAT_WORKFLOWS", dir.join("workflows"))
        .env_remove("LIFEBOAT_API_TOKENS")
        .env_remove("LIFEBOAT_CONFIG")
        .env_remove("LIFEBOAT_KAFKA_BROKERS")
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(log);
    for (k, v) in env {
        command.env(k, v);
    }
    Proc(command.spawn().expect("start lifeboat serve"))
}

pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port below the kernel's ephemeral range, so that no outgoing
/// connection takes it while a service that owns it is stopped for a restart.
pub fn free_port() -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    // Each call starts somewhere else, so that two tests asking at once get two ports.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let span = u32::from(low.saturating_sub(10000).max(1));
    let start = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(call.wrapping_mul(101))
        % span;
    (0..span)
        .map(|i| 10000 + ((start + i) % span) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port")
}

/// Polls `probe` every 100 ms until it answers, or fails the test after `limit`.
pub async fn until<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the service at `base` answers `/readyz` with 200.
pub async fn until_ready(client: &reqwest::Client, base: &str) {
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

/// The run once it has finished, read from the store.
pub async fn finished(
    store: &lifeboat::store::Store,
    id: lifeboat::domain::RunId,
) -> lifeboat::domain::Run {
    until("the run to finish", Duration::from_secs(30), async || {
        store
            .load_run(id)
            .await
            .expect("load the run")
            .filter(|r| r.state.is_final())
    })
    .await
}

/// Starts a failover of `group` through the HTTP API of the service at `base`; its run id.
/// Agent processes started just before may not have sent their first heartbeat: the
/// preflight's refusal is waited out.
pub async fn create_run_at(client: &reqwest::Client, base: &str, group: &str) -> String {
    until(
        "the run to be accepted",
        Duration::from_secs(30),
        async || {
            let resp = client
                .post(format!("{base}/api/v1/runs"))
                .json(&serde_json::json!({ "group": group }))
                .send()
                .await
                .expect("create a run");
            let status = resp.status().as_u16();
            let created: Value = resp.json().await.expect("a JSON answer");
            let waiting = status == 409
                && created["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("no live agent"));
            if waiting {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return None;
            }
            Some(
                created["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a run id: {created}"))
                    .to_string(),
            )
        },
    )
    .await
}

/// Starts a failover of `group` straight through the orchestrator.
pub async fn start_failover(app: &App, group: &str) -> lifeboat::domain::Run {
    app.orchestrator
        .create(lifeboat::orchestrator::NewRun {
            group: group.into(),
            action: lifeboat::workflow::Action::Failover,
            dry_run: false,
            reason: None,
            params: Default::default(),
            requested_by: lifeboat::domain::Actor::Terminal("test".into()),
            id: None,
            force: false,
        })
        .await
        .expect("create a run")
}
