//! Wiring: builds the service from settings — store, bus, semaphore, engine, agents — and
//! returns handles for the HTTP layer, the CLI and tests. The embedded deployment (SQLite,
//! in-process bus, in-process agents) is this same code with the defaults.

use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::agents::{self, runtime::Runtime};
use crate::bus::{self, Bus, memory::MemoryBus};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::orchestrator::engine::{Engine, OverheadLog};
use crate::orchestrator::{self, Orchestrator};
use crate::semaphore::Semaphore;
use crate::store::Store;
use crate::workflow::{Catalog, Diagnostic};

/// Workflows that fail validation: nothing starts.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the workflows:\n{}", .0.len(), .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct InvalidWorkflows(pub Vec<Diagnostic>);

pub struct App {
    pub orchestrator: Orchestrator,
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    pub metrics: Arc<Metrics>,
    pub catalog: Arc<Catalog>,
    pub instance: String,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Default)]
pub struct Options {
    /// Record release-to-dispatch overhead samples (the benchmark).
    pub overhead: Option<OverheadLog>,
}

pub fn instance_name(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{role}:{host}:{}", std::process::id())
}

impl App {
    pub async fn start(settings: &Settings, options: Options) -> anyhow::Result<App> {
        let catalog = Catalog::load(&settings.workflows).map_err(InvalidWorkflows)?;
        Self::start_with(settings, Arc::new(catalog), options).await
    }

    pub async fn start_with(
        settings: &Settings,
        catalog: Arc<Catalog>,
        options: Options,
    ) -> anyhow::Result<App> {
        if settings.kafka_brokers.is_some() {
            anyhow::bail!(
                "LIFEBOAT_KAFKA_BROKERS is set, but the Kafka bus is not available in this version; unset it to use the in-process bus"
            );
        }
        let store = Store::connect(&settings.database_url).await?;
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
        let metrics = Arc::new(Metrics::new());
        let instance = instance_name("embedded");

        let (cmd_tx, cmd_rx) = orchestrator::channel();
        let orchestrator = Orchestrator::new(cmd_tx, store.clone(), catalog.clone());
        let sink = orchestrator.clone();
        let semaphore = Semaphore::new(store.clone(), Some(Arc::new(move |o| sink.outcome(o))));
        // Only this process holds leases on the embedded store: the previous incarnation's
        // leases are expired now rather than after their TTL.
        let expired = semaphore
            .expire(Some("embedded:"))
            .await
            .context("expiring old leases")?;
        if !expired.is_empty() {
            tracing::info!(
                count = expired.len(),
                "Expired the leases of a previous run of this process."
            );
        }

        let mut tasks = Vec::new();

        // Agents subscribe first so that recovery's re-sent work finds them.
        let runtime = Runtime {
            bus: bus.clone(),
            semaphore: semaphore.clone(),
            instance: instance.clone(),
        };
        for kind in agents::RUNNABLE {
            if let Some(agent) = agents::builtin(kind) {
                tasks.push(runtime.spawn(agent).await?);
            }
        }
        let mut progress = bus.subscribe(bus::PROGRESS_TOPIC, "orchestrator").await?;

        let mut engine = Engine::new(
            store.clone(),
            bus.clone(),
            semaphore.clone(),
            metrics.clone(),
        );
        if let Some(log) = options.overhead {
            engine.record_overhead(log);
        }
        let recovered = engine
            .recover()
            .await
            .context("recovering unfinished runs")?;
        tasks.push(tokio::spawn(engine.run(cmd_rx, recovered)));

        let o = orchestrator.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(msg) = progress.next().await {
                match serde_json::from_slice(&msg.payload) {
                    Ok(p) => o.progress(p),
                    Err(e) => tracing::warn!(error = %e, "Dropping malformed progress."),
                }
            }
        }));
        tasks.push(tokio::spawn(semaphore.clone().sweep_forever()));

        Ok(App {
            orchestrator,
            store,
            bus,
            metrics,
            catalog,
            instance,
            tasks,
        })
    }

    /// Stops the background tasks; stored state stays as it is, for the next start.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.store.close().await;
    }
}
