//! The alert phases of `lifeboat bench`, over the service's own HTTP listener.
//!
//! Alert to dispatch: one alert at a time, each for a group with nothing active, on an
//! `auto` route; from just before the webhook request is sent to the moment the first
//! stage's work request reaches a consumer of the work topic (as an agent would see it).
//!
//! Ingest: a storm for one group, in Alertmanager-style notifications of ten alerts from
//! sixteen connections at once, every notification sent twice (the second time a re-send
//! to be recognised and counted); alerts accepted per second, from the first request to
//! the last answer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::bus::{self, Bus, WorkRequest};
use crate::domain::RunId;

pub const TOKEN: &str = "bench-alertmanager-token";
/// The route the bench's groups are alerted through.
pub const ROUTES: &str = "\
routes:
  - name: bench
    source: alertmanager
    match: { alertname: BenchDown }
    group_label: dr_group
    mode: auto
    cooldown: 1h
    starts_per_minute: 1000000
";

const LATENCY_ALERTS: usize = 100;
const STORM_NOTIFICATIONS: usize = 1000;
const ALERTS_PER_NOTIFICATION: usize = 10;
const CONNECTIONS: usize = 16;

/// Callers put `group`, which is this invocation's own, into every fingerprint: a bench run
/// again on the same database must not find its alerts already filed.
fn notification(group: &str, alerts: &[(String, String)]) -> String {
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|(fingerprint, instance)| {
            json!({
                "status": "firing",
                "labels": { "alertname": "BenchDown", "dr_group": group, "instance": instance },
                "annotations": {},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fingerprint,
            })
        })
        .collect();
    json!({ "version": "4", "status": "firing", "receiver": "lifeboat", "alerts": alerts })
        .to_string()
}

async fn send(client: &reqwest::Client, url: &str, body: String) -> anyhow::Result<Value> {
    let resp = client
        .post(url)
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    anyhow::ensure!(status.is_success(), "the webhook answered {status}: {body}");
    Ok(body)
}

/// Alert to dispatch, one alert at a time for each of `groups`; waits for each run to end
/// before the next. Samples in microseconds, sorted.
pub async fn to_dispatch(
    base: &str,
    bus: &std::sync::Arc<dyn Bus>,
    groups: &[String],
    mut finished: impl AsyncFnMut(RunId) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<u32>> {
    let client = reqwest::Client::new();
    let url = format!("{base}/webhooks/alertmanager");
    let mut work = bus
        .subscribe(&bus::work_topic("noop"), "bench-dispatch")
        .await?;
    let mut first_seen: HashMap<RunId, Instant> = HashMap::new();
    // A consumer that joins reads the topic from its start: what earlier phases sent is
    // read first, before anything is timed.
    while let Ok(m) = tokio::time::timeout(Duration::from_millis(500), work.next()).await {
        record(&mut first_seen, m)?;
    }
    let mut samples = Vec::with_capacity(LATENCY_ALERTS);
    for (i, group) in groups.iter().take(LATENCY_ALERTS).enumerate() {
        let body = notification(group, &[(format!("{group}-latency-{i}"), format!("i{i}"))]);
        let sent = Instant::now();
        let reply = {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move { send(&client, &url, body).await })
        };
        // The work request may come before the answer: read it while waiting.
        let reply = {
            tokio::pin!(reply);
            loop {
                tokio::select! {
                    r = &mut reply => break r??,
                    m = work.next() => record(&mut first_seen, m)?,
                }
            }
        };
        let run: RunId = reply["alerts"][0]["offer_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("the bench alert started no run: {reply}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !first_seen.contains_key(&run) {
            anyhow::ensure!(Instant::now() < deadline, "run {run} was never dispatched");
            let m = tokio::time::timeout(Duration::from_secs(30), work.next())
                .await
                .map_err(|_| anyhow::anyhow!("no work request for run {run}"))?;
            record(&mut first_seen, m)?;
        }
        let at = first_seen[&run];
        samples.push(
            at.saturating_duration_since(sent)
                .as_micros()
                .min(u32::MAX as u128) as u32,
        );
        finished(run).await?;
    }
    samples.sort_unstable();
    Ok(samples)
}

fn record(first_seen: &mut HashMap<RunId, Instant>, m: Option<bus::Message>) -> anyhow::Result<()> {
    let m = m.ok_or_else(|| anyhow::anyhow!("the work topic closed"))?;
    let w: WorkRequest = serde_json::from_slice(&m.payload)?;
    if w.stage == "s0" {
        first_seen.entry(w.run_id).or_insert_with(Instant::now);
    }
    Ok(())
}

/// A storm for `group`; alerts accepted per second, and the runs it started.
pub async fn ingest(base: &str, group: &str) -> anyhow::Result<(f64, usize, Vec<RunId>)> {
    let client = reqwest::Client::new();
    let url = format!("{base}/webhooks/alertmanager");
    let bodies: Vec<String> = (0..STORM_NOTIFICATIONS)
        .map(|n| {
            let alerts: Vec<(String, String)> = (0..ALERTS_PER_NOTIFICATION)
                .map(|i| (format!("{group}-{n}-{i}"), format!("i{n}-{i}")))
                .collect();
            notification(group, &alerts)
        })
        .collect();
    let all: Vec<String> = bodies.iter().chain(bodies.iter()).cloned().collect();
    let alerts = all.len() * ALERTS_PER_NOTIFICATION;
    let started = Instant::now();
    let mut answers = futures_util::stream::iter(all.into_iter().map(|body| {
        let client = client.clone();
        let url = url.clone();
        async move { send(&client, &url, body).await }
    }))
    .buffer_unordered(CONNECTIONS);
    let mut runs = Vec::new();
    while let Some(answer) = answers.next().await {
        for a in answer?["alerts"].as_array().into_iter().flatten() {
            if a["decision"] == "started"
                && a["repeat"] != true
                && let Some(id) = a["offer_id"].as_str().and_then(|s| s.parse().ok())
            {
                runs.push(id);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(((alerts as f64 / elapsed).round(), alerts, runs))
}
