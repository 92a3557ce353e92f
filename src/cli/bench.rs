//! `lifeboat bench`: the engine measured with no-op agents on the embedded deployment.
//!
//! Phase one runs chains one at a time and records, for every stage after the first, the
//! time from its predecessor's successful lease release to its own dispatch: the
//! orchestration overhead. Phase two starts many runs at once, `STARTS_AT_ONCE` asked for
//! together, and measures throughput and peak memory. Phases three and four send alerts to
//! the service's webhook (`bench_alerts`): alert to dispatch, and ingestion during a storm.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use super::bench_alerts;
use crate::agents::Registry;
use crate::agents::runtime::Runtime;
use crate::app::{App, Options, instance_name};
use crate::bus::{self, RunEvent};
use crate::config::Settings;
use crate::domain::{Actor, EventKind, RunId, RunState};
use crate::orchestrator::OverheadLog;
use crate::secret::DatabaseUrl;
use crate::semaphore::Semaphore;
use crate::startup::Service;
use crate::trigger::{self, Trigger};
use crate::workflow::{Action, Catalog};

const LATENCY_RUNS: usize = 100;
/// Phase two's starts in flight at once: in a region's outage many people, alert routes
/// and API clients ask together, and each start waits on the store's commit of its run.
const STARTS_AT_ONCE: usize = 64;

/// Writes the benchmark's workflow and `groups` groups, named after `prefix`: each bench
/// invocation has groups of its own, so that one that failed midway, leaving runs active,
/// does not keep the next from starting its own.
fn write_catalog(
    dir: &std::path::Path,
    prefix: &str,
    groups: usize,
    stages: usize,
) -> anyhow::Result<Catalog> {
    let wf = dir.join("workflows");
    std::fs::create_dir_all(&wf)?;
    let mut yaml = String::from("name: bench\nstages:\n");
    for i in 0..stages {
        yaml.push_str(&format!("  s{i}:\n    agent: noop\n"));
    }
    std::fs::write(wf.join("bench.yaml"), yaml)?;
    let mut g = String::from("groups:\n");
    for i in 0..groups {
        g.push_str(&format!(
            "  {}:\n    workflows: {{ failover: bench }}\n",
            group(prefix, i)
        ));
    }
    // The alert storm's group: no run of the others' cooldown in its way.
    g.push_str(&format!(
        "  {}:\n    workflows: {{ failover: bench }}\n",
        storm_group(prefix)
    ));
    std::fs::write(wf.join("groups.yaml"), g)?;
    std::fs::write(wf.join("routes.yaml"), bench_alerts::ROUTES)?;
    Catalog::load(&wf, Arc::new(Registry::builtin()))
        .map_err(|d| anyhow::anyhow!("bench catalog: {}", d[0]))
}

/// How every benchmark's groups begin.
const GROUP_PREFIX: &str = "bench-";

fn group(prefix: &str, i: usize) -> String {
    format!("{prefix}-g{i}")
}

fn storm_group(prefix: &str) -> String {
    format!("{prefix}-storm")
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

pub(super) fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The host's CPU time so far, from `/proc/stat`: (ticks the hypervisor gave to other
/// guests, all ticks); `None` where there is no such file.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    // user, nice, system, idle, iowait, irq, softirq, steal; guest time is inside user's.
    let ticks: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    Some((*ticks.get(7)?, ticks.iter().sum()))
}

/// The share of the host's CPU time taken by its hypervisor between two readings, in
/// percent: a phase run while it was high measured the machine, not the engine.
fn steal_pct(from: Option<(u64, u64)>, to: Option<(u64, u64)>) -> Option<f64> {
    let ((s0, t0), (s1, t1)) = (from?, to?);
    let total = t1.checked_sub(t0).filter(|&t| t > 0)?;
    let stolen = s1.saturating_sub(s0);
    Some((stolen as f64 * 1000.0 / total as f64).round() / 10.0)
}

/// Starts a failover of each of these groups, `at_once` asked for at a time; the runs
/// started.
async fn start_runs(
    app: &App,
    prefix: &str,
    groups: std::ops::Range<usize>,
    at_once: usize,
) -> anyhow::Result<HashSet<RunId>> {
    futures_util::stream::iter(groups)
        .map(|i| async move {
            let t = Trigger::new(
                Actor::Terminal("bench".into()),
                group(prefix, i),
                Action::Failover,
            );
            Ok(trigger::start(&app.orchestrator, t).await?.id)
        })
        .buffer_unordered(at_once)
        .try_collect()
        .await
}

/// Waits until each of `runs` has ended; how many did not succeed. Events of other runs
/// are passed over, and so is an event delivered twice: a database that served an earlier
/// benchmark re-sends what its outbox still held when that one stopped.
async fn wait_finished(
    events: &mut Box<dyn bus::Subscription>,
    mut runs: HashSet<RunId>,
) -> anyhow::Result<usize> {
    let mut failed = 0;
    while !runs.is_empty() {
        let m = events
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("event stream ended"))?;
        let e: RunEvent = serde_json::from_slice(&m.payload)?;
        if e.kind.ends_run()
            && runs.remove(&e.run_id)
            && e.kind != EventKind::Run(RunState::Succeeded)
        {
            failed += 1;
        }
    }
    Ok(failed)
}

/// Lets runs that an earlier, interrupted benchmark left unfinished in the database end
/// first (the engine adopts them at start-up), so that they are not measured with these.
/// Runs of other groups are none of its business.
async fn settle(app: &App) -> anyhow::Result<()> {
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);
    let deadline = Instant::now() + PATIENCE;
    let mut told = false;
    loop {
        let mut left = 0;
        for (id, _) in app.store.active_versions().await? {
            let benched = app
                .store
                .load_run(id)
                .await?
                .is_some_and(|r| !r.state.is_final() && r.group.starts_with(GROUP_PREFIX));
            left += usize::from(benched);
        }
        if left == 0 {
            return Ok(());
        }
        if !told {
            eprintln!(
                "bench: {left} runs of an earlier benchmark are unfinished here; letting them end first"
            );
            told = true;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{left} runs of an earlier benchmark did not end within {}s",
            PATIENCE.as_secs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Where the engine is measured.
pub enum Deployment {
    /// SQLite in a temporary directory, the in-process bus and agents.
    Embedded,
    /// Kafka and PostgreSQL, with no-op agents consuming their work topic over Kafka.
    KafkaPostgres {
        brokers: String,
        database: DatabaseUrl,
        fetch_wait_ms: u32,
    },
}

pub async fn run(
    concurrent: usize,
    stages: usize,
    deployment: Deployment,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        concurrent >= 1 && stages >= 2,
        "bench needs at least 1 run and 2 stages"
    );
    let dir = std::env::temp_dir().join(format!("lifeboat-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let prefix = format!("{GROUP_PREFIX}{}", uuid::Uuid::now_v7().simple());
    let catalog = Arc::new(write_catalog(
        &dir,
        &prefix,
        concurrent.max(LATENCY_RUNS),
        stages,
    )?);
    let (name, mut settings) = match &deployment {
        Deployment::Embedded => (
            "embedded",
            Settings::embedded(
                format!("sqlite://{}", dir.join("bench.db").display()),
                dir.join("workflows"),
            ),
        ),
        Deployment::KafkaPostgres {
            brokers,
            database,
            fetch_wait_ms,
        } => {
            let mut s = Settings::embedded(database.expose(), dir.join("workflows"));
            s.kafka_brokers = Some(brokers.clone());
            s.kafka_fetch_wait_ms = *fetch_wait_ms;
            // Topics and groups of its own: a benchmark never meets another deployment's work.
            s.kafka_namespace = Some(prefix.clone());
            ("kafka+postgres", s)
        }
    };
    settings.alerts =
        std::mem::take(&mut settings.alerts).with_secret("alertmanager", bench_alerts::TOKEN);
    let overhead = Arc::new(Mutex::new(Vec::new()));
    let checks: OverheadLog = Arc::new(Mutex::new(Vec::new()));
    let service = Service::start(
        &settings,
        Options {
            overhead: Some(overhead.clone()),
            work_checks: Some(checks.clone()),
            catalog: Some(catalog),
            ..Options::default()
        },
    )
    .await?;
    let app = &service.app;
    let mut events = app.bus.subscribe(bus::EVENTS_TOPIC, "bench").await?;
    // With Kafka the agents are not in the service: run no-op agents beside it, over the bus.
    let agents = match deployment {
        Deployment::Embedded => None,
        Deployment::KafkaPostgres { .. } => {
            let semaphore = Semaphore::new(app.store.clone(), None);
            let runtime = Runtime::new(app.bus.clone(), semaphore, instance_name("bench-agent"))
                .with_check_log(Some(checks.clone()));
            let registry = Registry::builtin();
            let env = registry.env(app.catalog.targets.clone());
            let mut noop = registry.build(&["noop"], &env)?;
            let noop = noop.pop().ok_or_else(|| anyhow::anyhow!("no noop agent"))?;
            let consumer = runtime.spawn(noop).await?;
            // Announced before any run is asked for, or the preflight refuses it.
            let heartbeat = runtime.announce().await;
            Some((consumer, heartbeat, runtime))
        }
    };

    settle(app).await?;
    overhead
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clear();
    checks.lock().map_err(|_| anyhow::anyhow!("lock"))?.clear();

    // Phase one: one run at a time, so the overhead is the engine's, not a queue's.
    let phase_one_from = cpu_ticks();
    for i in 0..LATENCY_RUNS {
        let run = start_runs(app, &prefix, i..i + 1, 1).await?;
        wait_finished(&mut events, run).await?;
    }
    let mut samples = overhead
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clone();
    samples.sort_unstable();
    let phase_one_steal = steal_pct(phase_one_from, cpu_ticks());
    let mut checked = checks.lock().map_err(|_| anyhow::anyhow!("lock"))?.clone();
    checked.sort_unstable();

    // Phase two: everything at once.
    let started = Instant::now();
    let phase_two_from = cpu_ticks();
    let runs = start_runs(app, &prefix, 0..concurrent, STARTS_AT_ONCE).await?;
    let failed = wait_finished(&mut events, runs).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let phase_two_steal = steal_pct(phase_two_from, cpu_ticks());
    // The engine's memory, before the alert phases hold their request bodies.
    let peak_rss = peak_rss_mb();

    // Phase three: alert to dispatch, one alert at a time.
    let groups: Vec<String> = (0..LATENCY_RUNS).map(|i| group(&prefix, i)).collect();
    let dispatch = bench_alerts::to_dispatch(&service.url(), &app.bus, &groups, async |run| {
        wait_finished(&mut events, HashSet::from([run]))
            .await
            .map(drop)
    })
    .await?;
    // Phase four: a storm for one group.
    let (ingest_per_s, storm_alerts, storm_runs) =
        bench_alerts::ingest(&service.url(), &storm_group(&prefix)).await?;
    anyhow::ensure!(
        storm_runs.len() == 1,
        "the storm started {} runs, not one",
        storm_runs.len()
    );
    wait_finished(&mut events, storm_runs.into_iter().collect()).await?;

    let report = json!({
        "deployment": name,
        "stage_overhead_ms": {
            "p50": percentile(&samples, 0.50),
            "p99": percentile(&samples, 0.99),
            "samples": samples.len(),
        },
        // Each work request's check against the store, before anything runs (phase one).
        "work_check_ms": {
            "p50": percentile(&checked, 0.50),
            "p99": percentile(&checked, 0.99),
            "samples": checked.len(),
        },
        "runs_per_s": (concurrent as f64 / elapsed * 10.0).round() / 10.0,
        "concurrent_runs": concurrent,
        "stages_per_run": stages,
        "failed_runs": failed,
        "concurrent_phase_s": (elapsed * 100.0).round() / 100.0,
        "alert_to_dispatch_ms": {
            "p50": percentile(&dispatch, 0.50),
            "p99": percentile(&dispatch, 0.99),
            "samples": dispatch.len(),
        },
        "alert_ingest_per_s": ingest_per_s,
        "storm_alerts": storm_alerts,
        "peak_rss_mb": (peak_rss * 10.0).round() / 10.0,
        "host_steal_pct": {
            "phase_one": phase_one_steal,
            "phase_two": phase_two_steal,
        },
    });
    if let Some((consumer, heartbeat, runtime)) = agents {
        runtime.stop().await;
        let _ = heartbeat.await;
        consumer.abort();
    }
    service.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_share_of_the_ticks_between_two_readings() {
        assert_eq!(steal_pct(Some((10, 1_000)), Some((60, 2_000))), Some(5.0));
        assert_eq!(steal_pct(Some((10, 1_000)), Some((10, 1_000))), None);
        assert_eq!(steal_pct(None, Some((10, 1_000))), None);
        // Counters read out of order say nothing, rather than a share below zero.
        assert_eq!(steal_pct(Some((10, 2_000)), Some((5, 1_000))), None);
        if cfg!(target_os = "linux") {
            let (steal, total) = cpu_ticks().expect("/proc/stat on Linux");
            assert!(steal <= total && total > 0);
        }
    }
}
