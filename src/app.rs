//! Wiring: builds the service from settings (store, bus, semaphore, engine, agents) and
//! returns handles for the HTTP layer, the command line and tests. The embedded deployment
//! (SQLite, in-process bus, in-process agents) is this same code with the defaults.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agents::Registry;
use crate::agents::runtime::Runtime;
use crate::alerts::pagerduty_notes::Notes;
use crate::alerts::{Desk, DeskTask, Offers, Sources};
use crate::bus::{self, Bus, kafka::KafkaBus, memory::MemoryBus};
use crate::chat::ChatContext;
use crate::chat::launch::Launch;
use crate::clock::Clock;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::orchestrator::{self, Engine, Orchestrator, OverheadLog};
use crate::semaphore::Semaphore;
use crate::store::{Holder, Store, StoreLock};
use crate::workflow::{Catalog, Diagnostic, targets_file};

/// Workflows that fail validation: nothing starts.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the workflows:\n{}", .0.len(), .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct InvalidWorkflows(pub Vec<Diagnostic>);

pub struct App {
    pub orchestrator: Orchestrator,
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    pub(crate) metrics: Arc<Metrics>,
    pub catalog: Arc<Catalog>,
    pub instance: String,
    /// The chat platforms' inbound paths.
    pub(crate) chat_routes: axum::Router,
    /// Where alert webhooks file alerts.
    pub desk: Desk,
    /// The runs alerts proposed, and people's word on them.
    pub offers: Offers,
    /// The alert sources and their secrets.
    pub(crate) sources: Arc<Sources>,
    /// Slack's Socket Mode connection and Discord's gateway, closed before the rest stops.
    connections: Vec<(CancellationToken, JoinHandle<()>)>,
    tasks: Vec<JoinHandle<()>>,
    /// This embedded process's hold on its SQLite store, let go when the app is dropped.
    store_lock: Option<StoreLock>,
}

pub struct Options {
    /// Record release-to-dispatch overhead samples (the benchmark).
    pub overhead: Option<OverheadLog>,
    /// Where time comes from: the system clock, unless the caller hands in another.
    pub clock: Clock,
    /// The agent kinds and providers: the shipped ones, unless a test adds its own.
    pub registry: Registry,
    /// Workflows already loaded (the benchmark writes its own); otherwise they are read
    /// from the settings' directory and checked against `registry`.
    pub catalog: Option<Arc<Catalog>>,
    /// The embedded store's lock, when the caller took it already (`serve` does, before it
    /// listens).
    pub store_lock: Option<StoreLock>,
    /// Record how long in-process agents take to check each request against the store
    /// (the benchmark).
    pub work_checks: Option<OverheadLog>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            overhead: None,
            clock: Clock::system(),
            registry: Registry::builtin(),
            catalog: None,
            store_lock: None,
            work_checks: None,
        }
    }
}

/// Takes the embedded store's lock: only an embedded deployment (no Kafka) on a SQLite
/// file has one.
pub fn lock_store(
    settings: &Settings,
    listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<Option<StoreLock>> {
    if settings.kafka().is_some() {
        return Ok(None);
    }
    Ok(StoreLock::take(
        settings.database_url.expose(),
        &holder(listen),
    )?)
}

/// This process, as the holder of a store.
pub fn holder(listen: Option<std::net::SocketAddr>) -> Holder {
    Holder::this_process(
        crate::agents::heartbeat::host(),
        listen.map(|a| a.to_string()),
    )
}

/// This process's name in leases, progress and logs: `role:host:pid:nonce`. Containers
/// repeat hostnames and pids (every one may be pid 1), and a lease held under a name that
/// another live process also answers to could be renewed or released by the wrong one: the
/// random nonce keeps each process's name its own.
pub fn instance_name(role: &str) -> String {
    let host = crate::agents::heartbeat::host();
    instance_name_on(role, &host, std::process::id())
}

/// The name of a process with this role, host and pid.
pub fn instance_name_on(role: &str, host: &str, pid: u32) -> String {
    let random = uuid::Uuid::now_v7().simple().to_string();
    let nonce = &random[random.len() - 8..];
    format!("{role}:{host}:{pid}:{nonce}")
}

/// A platform that is not configured refuses its paths, saying so.
fn not_configured(platform: &'static dyn crate::chat::ChatPlatform) -> axum::Router {
    let mut router = axum::Router::new();
    for path in platform.paths() {
        router = router.route(
            path,
            axum::routing::post(move || async move {
                crate::chat::launch::refuse(
                    axum::http::StatusCode::UNAUTHORIZED,
                    format!("{} is not configured here", platform.title()),
                )
            }),
        );
    }
    router
}

/// Reads and checks a workflows directory against these agent kinds.
pub fn load_catalog(settings: &Settings, registry: &Registry) -> Result<Catalog, InvalidWorkflows> {
    catalog_at(&settings.workflows, registry).map_err(InvalidWorkflows)
}

/// Reads and checks a workflows directory (or one file): its stages against these agent
/// kinds, its routes against the alert sources there are, its groups' chat keys against
/// the chat platforms.
pub fn catalog_at(path: &Path, registry: &Registry) -> Result<Catalog, Vec<Diagnostic>> {
    let catalog = Catalog::load(path, Arc::new(registry.clone()))?;
    let builtin = crate::alerts::sources::builtin();
    let names: Vec<&str> = builtin.iter().map(|s| s.name()).collect();
    catalog.check_sources(&names)?;
    let chat: Vec<_> = crate::chat::platforms().iter().map(|p| p.keys()).collect();
    catalog.check_chat(&chat)?;
    Ok(catalog)
}

impl App {
    pub async fn start(settings: &Settings, options: Options) -> anyhow::Result<App> {
        crate::tls::install_crypto_provider();
        // With Kafka, agents are `lifeboat agent` processes; without, they live here.
        let kafka = settings.kafka();
        let embedded = kafka.is_none();
        // Taken before anything touches the store: a second process changes nothing.
        let store_lock = match options.store_lock {
            Some(lock) => Some(lock),
            None => lock_store(settings, None)?,
        };
        let catalog = match options.catalog {
            Some(c) => c,
            None => Arc::new(load_catalog(settings, &options.registry)?),
        };
        let sources = Arc::new(Sources::new(&settings.alerts, &catalog.sources, &|var| {
            settings.component_env(var)
        })?);
        let clock = options.clock;
        let registry = options.registry;
        let store = Store::connect(settings.database_url.expose())
            .await?
            .with_clock(clock.clone());
        let bus: Arc<dyn Bus> = match kafka {
            Some(k) => {
                Arc::new(KafkaBus::connect(k, &bus::kafka::topics(&registry.kinds())).await?)
            }
            None => Arc::new(MemoryBus::new()),
        };
        let metrics = Arc::new(Metrics::new());
        let instance = instance_name(if embedded { "embedded" } else { "serve" });

        let (cmd_tx, cmd_rx) = orchestrator::channel();
        let mut orchestrator =
            Orchestrator::new(cmd_tx, store.clone(), catalog.clone(), clock.clone());
        if !embedded {
            orchestrator = orchestrator.with_preflight();
        }
        // Lease outcomes go straight to the engine: releases by in-process agents, and
        // expiries found by this process's sweep.
        let sink = orchestrator.clone();
        let semaphore = Semaphore::new(store.clone(), Some(Arc::new(move |o| sink.outcome(o))));
        if store_lock.is_some() {
            // Only this process holds leases on a store it has locked: the previous
            // incarnation's leases are expired now rather than after their TTL.
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
        }

        let mut tasks = Vec::new();
        // Agents subscribe first so that recovery's re-sent work finds them.
        if embedded {
            let runtime = Runtime::new(bus.clone(), semaphore.clone(), instance.clone())
                .with_metrics(metrics.clone())
                .with_check_log(options.work_checks.clone());
            let env = registry.env(catalog.targets.clone());
            for agent in registry.build(&[], &env)? {
                tasks.push(runtime.spawn(agent).await?);
            }
            tasks.push(runtime.announce().await);
        }
        let mut progress = bus.subscribe(bus::PROGRESS_TOPIC, "orchestrator").await?;

        // Notifiers subscribe before recovery publishes anything.
        let offers = Offers::new(store.clone(), orchestrator.clone(), clock.clone());
        let chat = ChatContext {
            orchestrator: orchestrator.clone(),
            store: store.clone(),
            clock: clock.clone(),
            offers: offers.clone(),
        };
        let mut connections = Vec::new();
        let mut chat_routes = axum::Router::new();
        let env = |name: &str| settings.component_env(name);
        let launch = Launch {
            settings,
            env: &env,
            chat,
            bus: bus.clone(),
            // A process holding its store's lock is the only one posting cards there, so
            // what its previous incarnation claimed is its own to take up at once, rather
            // than after the claim goes stale.
            instance: match &store_lock {
                Some(_) => "embedded".to_string(),
                None => instance.clone(),
            },
        };
        for platform in crate::chat::platforms() {
            let started = platform
                .start(&launch)
                .await
                .with_context(|| format!("starting {}", platform.title()))?;
            chat_routes = chat_routes.merge(match started {
                Some(running) => {
                    tasks.extend(running.tasks);
                    connections.extend(running.connections);
                    running.routes
                }
                None => not_configured(platform),
            });
        }
        if let Some(api) = &settings.alerts.pagerduty_api {
            let events = bus
                .subscribe(bus::EVENTS_TOPIC, "notifier.pagerduty")
                .await?;
            let notes = Notes::new(store.clone(), api.clone(), settings.public_url.clone())
                .context("setting up the PagerDuty client")?;
            tasks.push(tokio::spawn(notes.run(events)));
        }
        let mut engine = Engine::new(
            store.clone(),
            bus.clone(),
            semaphore.clone(),
            metrics.clone(),
        );
        if !embedded {
            engine = engine.with_remote_agents();
        }
        if let Some(log) = options.overhead {
            engine.record_overhead(log);
        }
        let recovered = engine
            .recover()
            .await
            .context("recovering unfinished runs")?;
        tasks.push(tokio::spawn(engine.run(cmd_rx, recovered)));

        // Alerts, once the engine takes runs: offers a crash left starting are started,
        // and countdowns resume from their stored deadlines.
        offers.recover().await;
        let (desk, desk_task) = DeskTask::new(
            store.clone(),
            orchestrator.clone(),
            offers.clone(),
            bus.clone(),
            metrics.clone(),
        );
        tasks.push(tokio::spawn(desk_task.run()));
        tasks.push(tokio::spawn(offers.clone().run_countdowns()));

        let o = orchestrator.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(msg) = progress.next().await {
                match serde_json::from_slice(&msg.payload) {
                    Ok(p) => o.progress(p),
                    Err(e) => tracing::warn!(error = %e, "Dropping malformed progress."),
                }
                // Committing before the engine has stored anything loses nothing: an agent
                // records its release in the store before it says so here, and the resync
                // applies every recorded outcome that no message delivered.
                if let Err(e) = progress.commit().await {
                    tracing::warn!(error = %e, "Could not commit the progress offset.");
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
            chat_routes,
            desk,
            offers,
            sources,
            connections,
            tasks,
            store_lock,
        })
    }

    /// Stops the background tasks; stored state stays as it is, for the next start.
    pub async fn shutdown(self) {
        for (stop, task) in self.connections {
            stop.cancel();
            if tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("A chat connection did not close in time.");
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.store.close().await;
        drop(self.store_lock);
    }
}

/// How `lifeboat agent` runs.
pub struct AgentOptions {
    /// Agent kinds to run; empty: all.
    pub kinds: Vec<String>,
    /// How long running work may take to finish after a stop before it is released.
    pub grace: std::time::Duration,
    /// Where to serve `/metrics` and `/healthz`; none: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `lifeboat agent`: the named agent kinds on the Kafka bus, taking leases in the shared
/// store, until `stop` resolves; then running work gets its grace period and every lease is
/// released before returning.
pub async fn run_agents(
    settings: &Settings,
    options: &AgentOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (kinds, grace) = (&options.kinds, options.grace);
    let kafka = settings
        .kafka()
        .ok_or_else(|| anyhow::anyhow!("lifeboat agent needs LIFEBOAT_KAFKA_BROKERS: in-process agents run inside `lifeboat serve`"))?;
    let registry = Registry::builtin();
    let kinds: Vec<&str> = if kinds.is_empty() {
        registry.kinds()
    } else {
        kinds.iter().map(String::as_str).collect()
    };
    let targets = targets_file::load(&settings.workflows, &registry).map_err(InvalidWorkflows)?;
    match &targets.file {
        Some(file) => {
            tracing::info!(file = %file.display(), count = targets.len(), "Targets loaded.")
        }
        None => tracing::info!(
            workflows = %settings.workflows.display(),
            "No targets.yaml: every target is simulated."
        ),
    }
    let env = registry.env(targets);
    let agents = registry.build(&kinds, &env)?;
    let store = Store::connect(settings.database_url.expose()).await?;
    let bus: Arc<dyn Bus> = Arc::new(KafkaBus::connect(kafka, &bus::kafka::topics(&kinds)).await?);
    let metrics = Arc::new(Metrics::new());
    let mut runtime = Runtime::new(
        bus,
        Semaphore::new(store.clone(), None),
        instance_name("agent"),
    )
    .with_metrics(metrics.clone());
    runtime.grace = grace;
    let exporter = match options.metrics_listen {
        Some(addr) => Some(crate::metrics::serve_observed(addr, metrics).await?),
        None => None,
    };
    let mut consumers = Vec::new();
    for agent in agents {
        consumers.push(runtime.spawn(agent).await?);
    }
    let heartbeat = runtime.announce().await;
    tracing::info!(instance = %runtime.instance, agents = %kinds.join(","), "Agents are consuming work.");
    stop.await;
    tracing::info!(grace = ?grace, "Stopping: no new work; releasing what is still running after the grace period.");
    runtime.stop().await;
    // The heartbeat ends with the stop, recording that these agents left.
    let _ = heartbeat.await;
    for c in consumers {
        c.abort();
    }
    if let Some(exporter) = exporter {
        exporter.abort();
    }
    store.close().await;
    Ok(())
}
