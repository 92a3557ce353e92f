//! The production shape as real processes: `lifeboat serve` replicas and `lifeboat agent`
//! processes on one PostgreSQL database and one Kafka namespace. Each exec stage appends its
//! name to `ran.log`, which is how a test tells that every stage ran exactly once.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{GROUPS, Proc, free_port};

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    env: Vec<(&'static str, String)>,
    logs: Vec<String>,
}

/// A `shop` workflow of exec stages run in order; each is `(name, seconds it sleeps)`
/// and logs its name to `ran.log` when it ends.
fn workflow(log: &std::path::Path, stages: &[(&str, u32)]) -> String {
    let mut wf = String::from("name: shop\nstages:\n");
    for (name, sleep) in stages {
        let script = match sleep {
            0 => format!("echo {name} >> {}", log.display()),
            s => format!("sleep {s}; echo {name} >> {}", log.display()),
        };
        wf.push_str(&format!(
            "  {name}:\n    agent: exec\n    spec: {{ command: [sh, -c, '{script}'] }}\n"
        ));
    }
    wf
}

impl Cluster {
    pub fn new(brokers: &str, database: &str, stages: &[(&str, u32)]) -> Cluster {
        Cluster::with_groups(brokers, database, stages, GROUPS)
    }

    /// A cluster whose groups.yaml is `groups` (its `shop` workflow as `new` makes it).
    pub fn with_groups(
        brokers: &str,
        database: &str,
        stages: &[(&str, u32)],
        groups: &str,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let wf = workflow(&dir.path().join("ran.log"), stages);
        Cluster::in_dir(
            dir,
            brokers,
            database,
            &[("shop.yaml", &wf), ("groups.yaml", groups)],
        )
    }

    /// A cluster on workflow files of its own, in `dir`.
    pub fn in_dir(
        dir: tempfile::TempDir,
        brokers: &str,
        database: &str,
        files: &[(&str, &str)],
    ) -> Cluster {
        let workflows = super::write_workflows(dir.path(), files);
        let env = vec![
            ("LIFEBOAT_KAFKA_BROKERS", brokers.to_string()),
            // Topics and consumer groups of their own: tests on one broker never share work.
            (
                "LIFEBOAT_KAFKA_NAMESPACE",
                format!("test-{}", uuid::Uuid::now_v7().simple()),
            ),
            ("LIFEBOAT_DATABASE_URL", database.to_string()),
            ("LIFEBOAT_WORKFLOWS", workflows.display().to_string()),
        ];
        Cluster {
            dir,
            client: reqwest::Client::new(),
            env,
            logs: Vec::new(),
        }
    }

    fn start(&mut self, name: &str, args: &[&str], extra: &[(&str, String)]) -> Proc {
        let log = self.dir.path().join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        cmd.args(args)
            .env_remove("LIFEBOAT_API_TOKENS")
            .env_remove("LIFEBOAT_CONFIG")
            .env("RUST_LOG", "info,lifeboat=debug")
            .stdout(Stdio::null())
            .stderr(out);
        for (k, v) in self
            .env
            .iter()
            .map(|(k, v)| (*k, v))
            .chain(extra.iter().map(|(k, v)| (*k, v)))
        {
            cmd.env(k, v);
        }
        self.logs.push(name.to_string());
        Proc(cmd.spawn().expect("start lifeboat"))
    }

    /// A `serve` replica, and its base URL once it is ready.
    pub async fn serve(&mut self, name: &str) -> (Proc, String) {
        let port = free_port();
        let proc = self.start(
            name,
            &["serve"],
            &[("LIFEBOAT_LISTEN", format!("127.0.0.1:{port}"))],
        );
        let base = format!("http://127.0.0.1:{port}");
        super::until_ready(&self.client, &base).await;
        (proc, base)
    }

    /// A `lifeboat agent` process running exec stages.
    pub fn agent(&mut self, name: &str) -> Proc {
        self.agent_with(name, &[])
    }

    /// A `lifeboat agent` process running exec stages, with `extra` in its environment.
    pub fn agent_with(&mut self, name: &str, extra: &[(&str, String)]) -> Proc {
        self.start(
            name,
            &["agent", "--agents", "exec", "--grace", "500ms"],
            extra,
        )
    }

    /// Sets a variable for every process started from now on.
    pub fn set_env(&mut self, key: &'static str, value: impl Into<String>) {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
    }

    /// The prefix of this cluster's topics and consumer groups.
    pub fn namespace(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| *k == "LIFEBOAT_KAFKA_NAMESPACE")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// A command line of the lifeboat binary with this cluster's environment, run to its
    /// end: (exit code, stderr).
    pub fn lifeboat(&self, args: &[&str], limit: Duration) -> (Option<i32>, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        cmd.args(args)
            .env_remove("LIFEBOAT_API_TOKENS")
            .env_remove("LIFEBOAT_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start lifeboat");
        let started = std::time::Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status.code();
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (code, err)
    }

    /// Names of the stages that ran to the end, in order.
    pub fn ran(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("ran.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The whole log of the process started as `name`.
    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The last lines of every process's log, for a failure message.
    pub fn logs(&self) -> String {
        self.logs
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("{n}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                format!(
                    "--- {n}.log (last lines, newest first)\n{}",
                    tail.join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn get_run(&self, base: &str, id: &str) -> Option<Value> {
        self.client
            .get(format!("{base}/api/v1/runs/{id}"))
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()
    }

    /// Polls the run at `base` until `probe` answers; fails with the run and every log.
    pub async fn wait_run<T>(
        &self,
        base: &str,
        id: &str,
        what: &str,
        limit: Duration,
        probe: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = Value::Null;
        loop {
            if let Some(run) = self.get_run(base, id).await {
                if let Some(v) = probe(&run) {
                    return v;
                }
                last = run;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}:\n{last:#}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The run once it has finished.
    pub async fn finished(&self, base: &str, id: &str, limit: Duration) -> Value {
        self.wait_run(base, id, "the run to finish", limit, |run| {
            run["finished_at"].is_string().then(|| run.clone())
        })
        .await
    }

    /// `/readyz` at `base`: its status code and body, or `None` when it does not answer.
    pub async fn readyz(&self, base: &str) -> Option<(u16, Value)> {
        let r = self
            .client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .ok()?;
        Some((r.status().as_u16(), r.json().await.ok()?))
    }
}

/// The pid of the agent process in an audit actor (`agent:agent:HOST:PID:NONCE`).
pub fn actor_pid(event: &Value) -> Option<u32> {
    event["actor"].as_str()?.rsplit(':').nth(1)?.parse().ok()
}

/// The `stage.running` events of `stage`, oldest first.
pub fn running_events<'a>(run: &'a Value, stage: &str) -> Vec<&'a Value> {
    run["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["kind"] == "stage.running" && e["stage"] == stage)
                .collect()
        })
        .unwrap_or_default()
}

/// Why `stage` was first retried, from its `stage.retrying` event; empty if it never was.
pub fn retry_message(run: &Value, stage: &str) -> String {
    run["events"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|e| e["kind"] == "stage.retrying" && e["stage"] == stage)
        })
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

pub fn attempts(run: &Value, stage: &str) -> i64 {
    super::stage(run, stage)["attempts"].as_i64().unwrap_or(-1)
}

/// Sends `signal` (e.g. `-TERM`) to a process.
pub fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill {signal} {pid}");
}
