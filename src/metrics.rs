//! Prometheus metrics. Counts by state come from the store at scrape time, so every replica
//! reports the same truth; durations, retries and the orchestration overhead are observed
//! by the engine as they happen.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::{AlertDecision, EventKind, Run, RunAudit, RunId, RunState, StageState};

/// Counts of runs and of stages by state, as the store has them.
pub struct StateCounts {
    pub runs: Vec<(String, i64)>,
    pub stages: Vec<(String, i64)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    agent: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabel {
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabel {
    agent: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecoveryLabel {
    group: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabel {
    group: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabel {
    source: String,
    route: String,
    decision: String,
}

pub struct Metrics {
    registry: Registry,
    alerts: Family<AlertLabel, Counter>,
    runs: Family<StateLabel, Gauge>,
    stages: Family<StateLabel, Gauge>,
    stage_seconds: Family<StageLabel, Histogram, fn() -> Histogram>,
    retries: Family<AgentLabel, Counter>,
    overhead_seconds: Histogram,
    recovery_seconds: Family<RecoveryLabel, Histogram, fn() -> Histogram>,
    recovery_point_seconds: Family<RecoveryLabel, Gauge<f64, AtomicU64>>,
    work_refused: Family<RefusedLabel, Counter>,
    group_ready: Family<GroupLabel, Gauge>,
    drill_success: Family<GroupLabel, Gauge<f64, AtomicU64>>,
    replica_lag: Family<LagLabel, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lifeboat");
        let runs = Family::<StateLabel, Gauge>::default();
        let stages = Family::<StateLabel, Gauge>::default();
        let stage_seconds =
            Family::<StageLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.01, 2.0, 18))) as fn() -> Histogram,
            );
        let retries = Family::<AgentLabel, Counter>::default();
        let overhead_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let alerts = Family::<AlertLabel, Counter>::default();
        let recovery_seconds =
            Family::<RecoveryLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                (|| Histogram::new(exponential_buckets(1.0, 2.0, 16))) as fn() -> Histogram,
            );
        registry.register(
            "recovery_seconds",
            "Total recovery time of runs that succeeded (not dry runs), from request to end",
            recovery_seconds.clone(),
        );
        registry.register(
            "alerts",
            "Alerts received, by source, route and what they did (`repeat` for re-sends)",
            alerts.clone(),
        );
        let recovery_point_seconds = Family::<RecoveryLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "recovery_point_seconds",
            "The recovery point a promote last measured: the writes, in seconds, that promoting loses",
            recovery_point_seconds.clone(),
        );
        let work_refused = Family::<RefusedLabel, Counter>::default();
        registry.register(
            "work_refused",
            "Work requests an agent refused because the store does not hold them as sent",
            work_refused.clone(),
        );
        let group_ready = Family::<GroupLabel, Gauge>::default();
        registry.register(
            "group_ready",
            "1 when the group's last drill passed every check, 0 when it did not (absent: never drilled)",
            group_ready.clone(),
        );
        let drill_success = Family::<GroupLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "drill_last_success_timestamp_seconds",
            "When the group's last drill that passed every check ended",
            drill_success.clone(),
        );
        let replica_lag = Family::<LagLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "replica_lag_seconds",
            "How far each replica a group promotes was behind when its last drill measured it",
            replica_lag.clone(),
        );
        registry.register("runs", "Runs by state", runs.clone());
        registry.register("stages", "Stages by state", stages.clone());
        registry.register(
            "stage_duration_seconds",
            "Time from a stage's first dispatch to its end",
            stage_seconds.clone(),
        );
        registry.register(
            "stage_retries",
            "Attempts retried after a failure",
            retries.clone(),
        );
        registry.register(
            "stage_overhead_seconds",
            "From a lease's successful release to the dispatch of the stage waiting on it",
            overhead_seconds.clone(),
        );
        Metrics {
            registry,
            alerts,
            runs,
            stages,
            stage_seconds,
            retries,
            overhead_seconds,
            recovery_seconds,
            recovery_point_seconds,
            work_refused,
            group_ready,
            drill_success,
            replica_lag,
        }
    }

    /// A group's readiness, as its drills last told it.
    pub fn readiness(&self, r: &crate::readiness::Readiness) {
        let label = GroupLabel {
            group: r.group.clone(),
        };
        if let Some(ready) = r.ready {
            self.group_ready.get_or_create(&label).set(i64::from(ready));
        }
        if let Some(at) = r.last_success {
            self.drill_success
                .get_or_create(&label)
                .set(at as f64 / 1000.0);
        }
        for lag in &r.replica_lag {
            self.replica_lag
                .get_or_create(&LagLabel {
                    group: r.group.clone(),
                    target: lag.target.clone(),
                })
                .set(lag.seconds);
        }
    }

    /// Counts a work request an agent refused.
    pub fn work_refused(&self, agent: &str, reason: &str) {
        self.work_refused
            .get_or_create(&RefusedLabel {
                agent: agent.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition of what this process observed itself: for agent
    /// processes, which have no store counts to add.
    pub fn render_observed(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Counts an alert filed: a re-send as decision `repeat`.
    pub fn alert_filed(&self, source: &str, route: &str, decision: AlertDecision, repeat: bool) {
        self.alerts
            .get_or_create(&AlertLabel {
                source: source.to_string(),
                route: route.to_string(),
                decision: if repeat { "repeat" } else { decision.as_str() }.to_string(),
            })
            .inc();
    }

    pub fn overhead(&self, micros: i64) {
        self.overhead_seconds.observe(micros as f64 / 1e6);
    }

    /// Learns from the audit records of a committed batch.
    pub fn observe(&self, audit: &[RunAudit], runs: &HashMap<RunId, Run>) {
        for RunAudit { run: id, audit: a } in audit {
            if let (EventKind::Run(RunState::Succeeded), Some(run)) = (a.kind, runs.get(id)) {
                if let (false, Some(end)) = (run.dry_run, run.finished_at) {
                    self.recovery_seconds
                        .get_or_create(&RecoveryLabel {
                            group: run.group.clone(),
                            action: run.action.to_string(),
                        })
                        .observe((end - run.created_at).max(0) as f64 / 1000.0);
                }
                continue;
            }
            let (Some(run), Some(stage)) = (runs.get(id), a.stage.as_deref()) else {
                continue;
            };
            let Some(i) = run.stage_index(stage) else {
                continue;
            };
            let agent = run.plan[i].agent.clone();
            let rpo = run.stages[i].report.as_ref().and_then(|r| r.rpo.as_ref());
            if let (EventKind::Stage(_), Some(seconds)) = (a.kind, rpo.and_then(|r| r.seconds)) {
                self.recovery_point_seconds
                    .get_or_create(&RecoveryLabel {
                        group: run.group.clone(),
                        action: run.action.to_string(),
                    })
                    .set(seconds);
            }
            match a.kind {
                EventKind::Stage(StageState::Retrying) => {
                    self.retries.get_or_create(&AgentLabel { agent }).inc();
                }
                EventKind::Stage(outcome @ (StageState::Succeeded | StageState::Failed)) => {
                    let s = &run.stages[i];
                    if let (Some(start), Some(end)) = (s.started_at, s.finished_at) {
                        self.stage_seconds
                            .get_or_create(&StageLabel {
                                agent,
                                outcome: outcome.to_string(),
                            })
                            .observe((end - start).max(0) as f64 / 1000.0);
                    }
                }
                _ => {}
            }
        }
    }

    /// The Prometheus text exposition, with the by-state counts as the store has them.
    pub fn render(&self, counts: StateCounts) -> anyhow::Result<String> {
        let runs: HashMap<String, i64> = counts.runs.into_iter().collect();
        let stages: HashMap<String, i64> = counts.stages.into_iter().collect();
        for s in RunState::ALL {
            let n = runs.get(s.as_str()).copied().unwrap_or(0);
            self.runs
                .get_or_create(&StateLabel {
                    state: s.to_string(),
                })
                .set(n);
        }
        for s in StageState::ALL {
            let n = stages.get(s.as_str()).copied().unwrap_or(0);
            self.stages
                .get_or_create(&StateLabel {
                    state: s.to_string(),
                })
                .set(n);
        }
        self.render_observed()
    }
}

/// Prometheus's text exposition as an HTTP answer.
pub fn exposition(text: String) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Serves `/metrics` (what this process observed) and `/healthz` on `addr`: the exporter of
/// an agent process, which has no API of its own.
pub async fn serve_observed(
    addr: std::net::SocketAddr,
    metrics: std::sync::Arc<Metrics>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(async move || match metrics.render_observed() {
                Ok(text) => exposition(text),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            }),
        )
        .route("/healthz", axum::routing::get(async || "ok"));
    tracing::info!(listen = %addr, "Serving agent metrics.");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "The metrics server stopped.");
        }
    }))
}
