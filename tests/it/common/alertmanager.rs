//! A real Alertmanager (Debian's `prometheus-alertmanager`, from scripts/alertmanager.sh) of a
//! test's own, running the repository's `alertmanager/alertmanager.yml` with only the
//! `lifeboat` receiver's URL and token and the route timings changed, so that a test
//! exercises the configuration operators deploy.
//!
//! What Alertmanager 0.25 sends (seen on the wire): `POST /webhooks/alertmanager` with
//! `User-Agent: Alertmanager/0.25.0`, `Content-Type: application/json` and
//! `Authorization: Bearer <token>` (the credentials file is read, and trimmed, on every
//! request); the body is webhook version "4" with `receiver`, `status`, `alerts` (each with
//! `status`, `labels`, `annotations`, `startsAt`, `endsAt` — `0001-01-01T00:00:00Z` while
//! firing —, `generatorURL`, `fingerprint`), `groupLabels`, `commonLabels`,
//! `commonAnnotations`, `externalURL`, `groupKey` and `truncatedAlerts`. A 5xx answer is
//! retried with backoff; any other non-2xx is not retried within that flush, but the group
//! is sent again at its next `group_interval`.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Proc, free_port, required};

/// The Alertmanager binary for tests, or `None` to skip (a failure under
/// LIFEBOAT_REQUIRE_SERVICES=1).
pub fn binary() -> Option<String> {
    match std::env::var("LIFEBOAT_TEST_ALERTMANAGER") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            required("LIFEBOAT_TEST_ALERTMANAGER (scripts/alertmanager.sh)");
            None
        }
    }
}

/// The route tree's timings, which replace the repository's (10s / 1m / 1h).
///
/// Alertmanager 0.25 takes sub-second values; `group_interval` and `repeat_interval` must
/// not be zero. A new group is sent `group_wait` after its first alert; changes
/// (a resolution, a new alert in the group) go out at the next `group_interval` tick; an
/// unchanged group is sent again at the first tick after `repeat_interval` has passed in
/// full (1s / 2s gives a repeat every 3s).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
}

impl Default for Timing {
    /// Fast delivery, and no repeat within a test.
    fn default() -> Timing {
        Timing {
            group_wait: Duration::from_millis(100),
            group_interval: Duration::from_millis(100),
            repeat_interval: Duration::from_secs(3600),
        }
    }
}

pub struct Alertmanager {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    client: reqwest::Client,
    // Declared before `dir`: the process dies before its directory goes.
    child: Proc,
    dir: tempfile::TempDir,
}

/// A duration in the only unit every Alertmanager accepts at any size.
fn duration(d: Duration) -> Value {
    Value::String(format!("{}ms", d.as_millis()))
}

/// Sets the timings on the route and on every sub-route that overrides them.
fn set_timing(route: &mut Value, timing: &Timing, root: bool) {
    let Some(map) = route.as_object_mut() else {
        return;
    };
    for (key, value) in [
        ("group_wait", timing.group_wait),
        ("group_interval", timing.group_interval),
        ("repeat_interval", timing.repeat_interval),
    ] {
        if root || map.contains_key(key) {
            map.insert(key.to_string(), duration(value));
        }
    }
    if let Some(children) = map.get_mut("routes").and_then(Value::as_array_mut) {
        for child in children {
            set_timing(child, timing, false);
        }
    }
}

/// The repository's configuration, sending the `lifeboat` receiver's webhooks to
/// `webhook_url` with the token in `token_file`, on `timing`.
fn config(webhook_url: &str, token_file: &str, timing: &Timing) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/alertmanager/alertmanager.yml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut config: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    set_timing(
        config
            .get_mut("route")
            .expect("alertmanager.yml has a route"),
        timing,
        true,
    );
    let receiver = config["receivers"]
        .as_array_mut()
        .and_then(|r| r.iter_mut().find(|r| r["name"] == "lifeboat"))
        .expect("alertmanager.yml has a receiver `lifeboat`");
    let webhooks = receiver["webhook_configs"]
        .as_array_mut()
        .filter(|w| !w.is_empty())
        .expect("the `lifeboat` receiver has webhook_configs");
    for webhook in webhooks {
        webhook["url"] = json!(webhook_url);
        let auth = &mut webhook["http_config"]["authorization"];
        assert!(
            auth["credentials_file"].is_string(),
            "the `lifeboat` webhook authenticates with http_config.authorization.credentials_file: {auth}"
        );
        auth["credentials_file"] = json!(token_file);
    }
    config
}

impl Alertmanager {
    /// Starts `binary` on the repository's configuration, its `lifeboat` receiver posting to
    /// `{lifeboat_base}/webhooks/alertmanager` with `token`, and waits until it is ready.
    pub async fn start(
        binary: &str,
        lifeboat_base: &str,
        token: &str,
        timing: Timing,
    ) -> Alertmanager {
        let mut dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token).expect("write the token file");
        let config = config(
            &format!(
                "{}/webhooks/alertmanager",
                lifeboat_base.trim_end_matches('/')
            ),
            token_file.to_str().expect("a UTF-8 path"),
            &timing,
        );
        // JSON is YAML: the configuration is written back without a YAML serializer.
        let config_file = dir.path().join("alertmanager.json");
        std::fs::write(
            &config_file,
            serde_json::to_string_pretty(&config).expect("JSON"),
        )
        .expect("write the configuration");
        let client = reqwest::Client::new();
        // The port is free when picked but may be taken before Alertmanager binds it.
        for attempt in 1..=3 {
            let port = free_port();
            let log = dir.path().join(format!("alertmanager-{attempt}.log"));
            let out = std::fs::File::create(&log).expect("log file");
            let child = Command::new(binary)
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!(
                    "--storage.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // No clustering: it would listen on 0.0.0.0:9094, shared by every test.
                .arg("--cluster.listen-address=")
                .arg("--log.level=debug")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log file"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
            let mut am = Alertmanager {
                url: format!("http://127.0.0.1:{port}"),
                client: client.clone(),
                child: Proc(child),
                dir,
            };
            match am.until_ready(&log).await {
                Ok(()) => return am,
                Err(text) if text.contains("address already in use") && attempt < 3 => {
                    dir = am.take_dir();
                }
                Err(text) => panic!(
                    "Alertmanager did not start ({binary}, {}):\n{text}",
                    log.display()
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Waits up to 20 s for `GET /-/ready` to answer 200; the log when it exits or never does.
    async fn until_ready(&mut self, log: &std::path::Path) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self
                .client
                .get(format!("{}/-/ready", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            let exited = self.child.0.try_wait().expect("try_wait");
            if exited.is_some() || tokio::time::Instant::now() > deadline {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                return Err(match exited {
                    Some(status) => format!("exited with {status}; its log:\n{text}"),
                    None => format!("not ready within 20s; its log:\n{text}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The temporary directory, taken out of an instance that failed to start.
    fn take_dir(self) -> tempfile::TempDir {
        let Alertmanager { child, dir, .. } = self;
        drop(child);
        dir
    }

    /// Posts alerts to `/api/v2/alerts`: an array of `{labels, annotations, startsAt,
    /// endsAt, generatorURL}`, all but `labels` optional. An alert without `endsAt` fires;
    /// posting the same labels again with `endsAt` now or past resolves it.
    pub async fn post_alerts(&self, alerts: &Value) {
        let resp = self
            .client
            .post(format!("{}/api/v2/alerts", self.url))
            .json(alerts)
            .send()
            .await
            .expect("Alertmanager answers");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "POST /api/v2/alerts answered {status}: {body}\n{alerts:#}"
        );
    }

    /// Fires one alert with these labels and annotations.
    pub async fn fire(&self, labels: &Value, annotations: &Value) {
        self.post_alerts(&json!([{
            "labels": labels,
            "annotations": annotations,
            "generatorURL": "http://prometheus.test/graph",
        }]))
        .await;
    }

    /// Resolves the alert with these labels (its `endsAt` becomes now).
    pub async fn resolve(&self, labels: &Value) {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        self.post_alerts(&json!([{
            "labels": labels,
            "endsAt": now,
            "generatorURL": "http://prometheus.test/graph",
        }]))
        .await;
    }

    /// The alerts Alertmanager holds (`GET /api/v2/alerts`), for assertions and messages.
    pub async fn alerts(&self) -> Value {
        self.client
            .get(format!("{}/api/v2/alerts", self.url))
            .send()
            .await
            .expect("Alertmanager answers")
            .json()
            .await
            .expect("JSON alerts")
    }

    /// Its log so far (at debug level: it names every notification attempt and failure).
    pub fn log(&self) -> String {
        let mut logs: Vec<_> = std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        logs.last()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}
