//! `lifeboat bench`: the engine measured with no-op agents on the embedded deployment.
//!
//! Phase one runs chains one at a time and records, for every stage after the first, the
//! time from its predecessor's successful lease release to its own dispatch: the
//! orchestration overhead. Phase two starts many runs at once and measures throughput and
//! peak memory.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

use crate::app::{App, Options};
use crate::bus::{self, RunEvent};
use crate::config::Settings;
use crate::trigger::{self, Actor, Trigger};
use crate::workflow::{Action, Catalog};

const LATENCY_RUNS: usize = 100;

fn write_catalog(dir: &std::path::Path, groups: usize, stages: usize) -> anyhow::Result<Catalog> {
    let wf = dir.join("workflows");
    std::fs::create_dir_all(&wf)?;
    let mut yaml = String::from("name: bench\nstages:\n");
    for i in 0..stages {
        yaml.push_str(&format!("  s{i}:\n    agent: noop\n"));
    }
    std::fs::write(wf.join("bench.yaml"), yaml)?;
    let mut g = String::from("groups:\n");
    for i in 0..groups {
        g.push_str(&format!("  g{i}:\n    workflows: {{ failover: bench }}\n"));
    }
    std::fs::write(wf.join("groups.yaml"), g)?;
    Catalog::load(&wf).map_err(|d| anyhow::anyhow!("bench catalog: {}", d[0]))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn peak_rss_mb() -> f64 {
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

async fn start_runs(app: &App, groups: std::ops::Range<usize>) -> anyhow::Result<()> {
    for i in groups {
        let t = Trigger {
            actor: Actor::Terminal("bench".into()),
            group: format!("g{i}"),
            action: Action::Failover,
            dry_run: false,
            reason: None,
            params: Default::default(),
        };
        trigger::start(&app.orchestrator, t).await?;
    }
    Ok(())
}

async fn wait_finished(
    events: &mut Box<dyn bus::Subscription>,
    count: usize,
) -> anyhow::Result<usize> {
    let mut done = 0;
    let mut failed = 0;
    while done < count {
        let m = events
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("event stream ended"))?;
        let e: RunEvent = serde_json::from_slice(&m.payload)?;
        match e.kind.as_str() {
            "run.succeeded" => done += 1,
            "run.failed" | "run.cancelled" => {
                done += 1;
                failed += 1;
            }
            _ => {}
        }
    }
    Ok(failed)
}

/// Where the engine is measured.
pub enum Deployment {
    /// SQLite in a temporary directory, the in-process bus and agents.
    Embedded,
    /// Kafka and PostgreSQL, with no-op agents consuming their work topic over Kafka.
    KafkaPostgres {
        brokers: String,
        database: String,
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
    let catalog = Arc::new(write_catalog(&dir, concurrent.max(LATENCY_RUNS), stages)?);
    let (name, settings) = match &deployment {
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
            let mut s = Settings::embedded(database.clone(), dir.join("workflows"));
            s.kafka_brokers = Some(brokers.clone());
            s.kafka_fetch_wait_ms = *fetch_wait_ms;
            // Topics and groups of its own: a benchmark never meets another deployment's work.
            s.kafka_namespace = Some(format!("bench-{}", uuid::Uuid::now_v7().simple()));
            ("kafka+postgres", s)
        }
    };
    let overhead = Arc::new(Mutex::new(Vec::new()));
    let app = App::start_with(
        &settings,
        catalog,
        Options {
            overhead: Some(overhead.clone()),
        },
    )
    .await?;
    let mut events = app.bus.subscribe(bus::EVENTS_TOPIC, "bench").await?;
    // With Kafka the agents are not in the service: run no-op agents beside it, over the bus.
    let agents = match deployment {
        Deployment::Embedded => None,
        Deployment::KafkaPostgres { .. } => {
            let semaphore = crate::semaphore::Semaphore::new(app.store.clone(), None);
            let runtime = crate::agents::runtime::Runtime::new(
                app.bus.clone(),
                semaphore,
                crate::app::instance_name("bench-agent"),
            );
            let noop =
                crate::agents::builtin("noop").ok_or_else(|| anyhow::anyhow!("no noop agent"))?;
            Some((runtime.spawn(noop).await?, runtime))
        }
    };

    // Phase one: one run at a time, so the overhead is the engine's, not a queue's.
    for i in 0..LATENCY_RUNS {
        start_runs(&app, i..i + 1).await?;
        wait_finished(&mut events, 1).await?;
    }
    let mut samples = overhead
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clone();
    samples.sort_unstable();

    // Phase two: everything at once.
    let started = Instant::now();
    start_runs(&app, 0..concurrent).await?;
    let failed = wait_finished(&mut events, concurrent).await?;
    let elapsed = started.elapsed().as_secs_f64();

    let report = json!({
        "deployment": name,
        "stage_overhead_ms": {
            "p50": percentile(&samples, 0.50),
            "p99": percentile(&samples, 0.99),
            "samples": samples.len(),
        },
        "runs_per_s": (concurrent as f64 / elapsed * 10.0).round() / 10.0,
        "concurrent_runs": concurrent,
        "stages_per_run": stages,
        "failed_runs": failed,
        "concurrent_phase_s": (elapsed * 100.0).round() / 100.0,
        "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
    });
    if let Some((consumer, runtime)) = agents {
        runtime.stop().await;
        consumer.abort();
    }
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}
