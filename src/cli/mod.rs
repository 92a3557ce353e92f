//! The command line (the README's "Command line"): `serve`, `agent`, `validate`, `plan`, `run`, and
//! the front ends in this folder: `demo`, `bench`, and the terminal `progress` that `run`
//! and the demo share. Exit codes: 0 success, 1 the run or check failed, 2 bad usage or
//! configuration.

mod api_client;
mod bench;
mod bench_alerts;
mod bench_evacuation;
mod control;
mod demo;
mod evacuate;
mod progress;
mod remote;
mod report;
mod routes;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::agents::Registry;
use crate::app::{self, App, Options};
use crate::config::Settings;
use crate::domain::{Actor, RunState};
use crate::startup::Service;
use crate::trigger::Trigger;
use crate::workflow::{Action, Catalog, Params, plan};
use progress::Approver;

#[derive(Parser)]
#[command(
    name = "lifeboat",
    version,
    about = "Disaster-recovery workflows, run by a durable orchestrator"
)]
pub struct Cli {
    /// Settings file (default: $LIFEBOAT_CONFIG; the environment overrides it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The service: HTTP API, orchestrator and, on the in-process bus, the agents.
    Serve {
        /// The store (default: $LIFEBOAT_DATABASE_URL, else sqlite://lifeboat.db).
        #[arg(long)]
        database: Option<String>,
    },
    /// Agents as their own process, consuming their work topics on Kafka.
    Agent {
        /// Agent kinds to run (default: all).
        #[arg(long, value_delimiter = ',')]
        agents: Vec<String>,
        /// On SIGTERM, how long running work may take to finish before it is released
        /// for another agent to retry.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        grace: Duration,
        /// Serve this process's Prometheus metrics (`/metrics`) and `/healthz` here.
        #[arg(long, env = "LIFEBOAT_AGENT_METRICS_LISTEN")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Check workflows, groups and routes; exit 1 with file:line:col errors.
    Validate {
        /// A workflows directory or one file (default: $LIFEBOAT_WORKFLOWS or workflows/).
        path: Option<PathBuf>,
    },
    /// Print a group's stages as waves of parallel work.
    Plan {
        group: String,
        #[arg(long, default_value = "failover")]
        action: Action,
    },
    /// Run a group's workflow in this process with live progress; exit 0 on success.
    Run {
        group: String,
        #[arg(long, default_value = "failover")]
        action: Action,
        /// Agents check their preconditions and say what they would do; nothing changes.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        reason: Option<String>,
        /// Approve every approval gate without asking.
        #[arg(long)]
        yes: bool,
        /// Start although the preflight finds no live agent for a kind the run needs, or
        /// a failback worked out from the record would refuse the estate's drift; audited.
        #[arg(long)]
        force: bool,
        /// Start and follow the run on the service at this URL, through its API, instead of
        /// in this process (the token is $LIFEBOAT_API_TOKEN).
        #[arg(long, conflicts_with = "database")]
        server: Option<String>,
        /// The store (default: $LIFEBOAT_DATABASE_URL, else sqlite://lifeboat.db).
        #[arg(long)]
        database: Option<String>,
    },
    /// Alert routes.
    Routes {
        #[command(subcommand)]
        command: RoutesCommand,
    },
    /// A failover of the simulated petstore estate, end to end, with no setup.
    Demo {
        /// Keep serving afterwards (the console, the API) until Enter is pressed.
        #[arg(long)]
        keep: bool,
    },
    /// Operator controls on a running service: resume, retry, skip, abort, approve, agents.
    #[command(flatten)]
    Control(control::Control),
    /// Evidence for an auditor from a running service: a run (its stages, decisions,
    /// timeline, RTO/RPO against the objectives, hashes of what ran), or with --group a
    /// group's drills and runs over a period.
    Report(report::Report),
    /// Move many groups at once on a running service, in dependency order (groups.yaml's
    /// `depends_on`), and follow it to its end: exit 0 when every group succeeded.
    Evacuate(evacuate::Evacuate),
    /// Measure the engine with no-op agents; prints one JSON object (two, in an array,
    /// with --kafka: embedded, then kafka+postgres).
    Bench {
        /// Concurrent runs in the throughput and memory phase.
        #[arg(long, default_value_t = 1000)]
        runs: usize,
        /// Stages per run (a chain).
        #[arg(long, default_value_t = 10)]
        stages: usize,
        /// Also measure the production deployment on these Kafka brokers...
        #[arg(long, requires = "database")]
        kafka: Option<String>,
        /// ...and this PostgreSQL database.
        #[arg(long, requires = "kafka")]
        database: Option<String>,
        /// Instead, evacuate this many groups at once (three dependency tiers) on the
        /// embedded deployment.
        #[arg(long, conflicts_with_all = ["kafka", "database"])]
        evacuation: Option<usize>,
    },
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// Say which route each alert of a webhook body (Alertmanager, PagerDuty, Grafana, or
    /// a generic source of routes.yaml) takes, and what would happen; starts nothing.
    Test {
        /// A webhook body, as JSON.
        file: PathBuf,
        /// The sender, when its shape does not tell: alertmanager, pagerduty, grafana, or
        /// a generic source's name.
        #[arg(long)]
        source: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::tls::install_crypto_provider();
    crate::telemetry::init(matches!(
        cli.command,
        Command::Serve { .. } | Command::Agent { .. }
    ));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        match dispatch(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        }
    })
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Command::Serve {
        database: Some(url),
    }
    | Command::Run {
        database: Some(url),
        ..
    } = &cli.command
    {
        settings.database_url = crate::secret::DatabaseUrl::new(url.clone());
    }
    match cli.command {
        Command::Validate { path } => Ok(validate(&path.unwrap_or(settings.workflows))),
        Command::Routes {
            command: RoutesCommand::Test { file, source },
        } => {
            let catalog = app::load_catalog(&settings, &Registry::builtin())?;
            let sources =
                crate::alerts::Sources::new(&settings.alerts, &catalog.sources, &|_| None)?;
            let (source, alerts) = routes::read(&file, &sources, source.as_deref())?;
            println!(
                "{}: {} {source} alert{}",
                file.display(),
                alerts.len(),
                if alerts.len() == 1 { "" } else { "s" }
            );
            for (i, alert) in alerts.iter().enumerate() {
                let lines = routes::explain(&catalog, alert);
                println!("{}. {}", i + 1, lines[0]);
                for line in &lines[1..] {
                    println!("   {line}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { group, action } => {
            let catalog = app::load_catalog(&settings, &Registry::builtin())?;
            let planned = match catalog.plan_for(&group, action, &Params::new()) {
                // No failback workflow: worked out from the failover in the store.
                Err(crate::workflow::PlanError::NoWorkflow { .. })
                    if action == Action::Failback =>
                {
                    let store =
                        crate::store::Store::connect(settings.database_url.expose()).await?;
                    let (planned, from) =
                        crate::orchestrator::failback::work_out(&store, &catalog, &group, false)
                            .await?;
                    println!("worked out from failover run {from}");
                    planned
                }
                other => other.map_err(|e| anyhow::anyhow!(e.explained()))?,
            };
            print!(
                "{}",
                plan::render(
                    &format!("{group} {action} → {}", planned.workflow),
                    &planned.stages
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { .. } => serve(settings).await,
        Command::Agent {
            agents,
            grace,
            metrics_listen,
        } => {
            let options = crate::app::AgentOptions {
                kinds: agents,
                grace,
                metrics_listen,
            };
            crate::app::run_agents(&settings, &options, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            group,
            action,
            dry_run,
            reason,
            yes,
            force,
            server: Some(server),
            ..
        } => {
            remote::run(remote::RemoteRun {
                server,
                group,
                action,
                dry_run,
                reason,
                yes,
                force,
            })
            .await
        }
        Command::Run {
            group,
            action,
            dry_run,
            reason,
            yes,
            force,
            ..
        } => {
            let app = App::start(&settings, Options::default()).await?;
            let actor = Actor::terminal();
            let approver = if yes {
                Approver::Auto {
                    actor: actor.clone(),
                    after: Duration::ZERO,
                }
            } else if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                Approver::Prompt {
                    actor: actor.clone(),
                }
            } else {
                Approver::Reject {
                    why: "approval needed, and no terminal to ask on (pass --yes)".into(),
                }
            };
            let trigger = Trigger {
                dry_run,
                reason,
                force,
                ..Trigger::new(actor, group, action)
            };
            let done = progress::run_in_terminal(&app, trigger, approver).await?;
            app.shutdown().await;
            Ok(if done.state == RunState::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Demo { keep } => demo::run(keep).await,
        Command::Control(c) => control::run(c, &server(&settings)).await,
        Command::Report(r) => report::run(r, &server(&settings)).await,
        Command::Evacuate(e) => evacuate::run(e, &server(&settings)).await,
        Command::Bench {
            evacuation: Some(groups),
            ..
        } => {
            let report = bench_evacuation::run(groups).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            runs,
            stages,
            kafka,
            database,
            evacuation: None,
        } => {
            use bench::Deployment;
            let embedded = bench::run(runs, stages, Deployment::Embedded).await?;
            let report = match (kafka, database) {
                (Some(brokers), Some(database)) => {
                    let production = bench::run(
                        runs,
                        stages,
                        Deployment::KafkaPostgres {
                            brokers,
                            database: crate::secret::DatabaseUrl::new(database),
                            fetch_wait_ms: settings.kafka_fetch_wait_ms,
                        },
                    )
                    .await?;
                    serde_json::json!([embedded, production])
                }
                _ => embedded,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where a running service answers: `LIFEBOAT_SERVER`, or the configured listen address.
fn server(settings: &Settings) -> String {
    std::env::var("LIFEBOAT_SERVER").unwrap_or_else(|_| format!("http://{}", settings.listen))
}

fn validate(path: &std::path::Path) -> ExitCode {
    if !path.exists() {
        eprintln!("error: {} does not exist", path.display());
        return ExitCode::from(2);
    }
    match app::catalog_at(path, &Registry::builtin()) {
        Ok(catalog) => {
            println!("{}", catalog.summary());
            for warning in catalog
                .warnings()
                .into_iter()
                .chain(unset_secrets(&catalog))
            {
                eprintln!("{warning}");
            }
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                println!("{d}");
            }
            eprintln!("{} problem(s) found", diagnostics.len());
            ExitCode::from(1)
        }
    }
}

/// Targets whose `${env:…}` names a variable this environment lacks: valid files, but an
/// agent started like this would fail the stages that need them.
fn unset_secrets(catalog: &Catalog) -> Vec<String> {
    fn strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let file = catalog.targets.file.clone().unwrap_or_default();
    let mut warnings = Vec::new();
    for kind in crate::workflow::TargetKind::ALL {
        for target in catalog.targets.of(kind) {
            let mut found = Vec::new();
            strings(&target.fields, &mut found);
            for name in found
                .into_iter()
                .flat_map(crate::agents::providers::reference::env_names)
            {
                if std::env::var_os(&name).is_none() {
                    warnings.push(format!(
                        "warning: {}:{}:{}: {kind} `{}` reads ${{env:{name}}}, which is not set here; an agent without it fails the stages that need it",
                        file.display(),
                        target.pos.line,
                        target.pos.column,
                        target.name
                    ));
                }
            }
        }
    }
    warnings
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    let service = Service::start(&settings, Options::default()).await?;
    tracing::info!(
        listen = %service.addr,
        database = %settings.database_url,
        instance = %service.app.instance,
        "Lifeboat is serving."
    );
    service.serve_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM. Runs in flight stay in the store and resume at the next start.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("Shutting down; unfinished runs resume at the next start.");
}
