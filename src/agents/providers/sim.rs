//! `sim`: a simulated estate for drills, demos and tests, with realistic step durations and
//! failure injected from the stage's spec (`fail_attempts`, `fail_permanently`,
//! `duration`). Every message it produces says it is simulated; nothing outside Lifeboat
//! is touched.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::capability::{
    Capacity, Database, Demote, Dial, Method, Move, Promote, Provider, Reprotect, Scale,
};
use super::data_loss;
use super::records::{self, Regions};
use crate::agents::spec_fields::opt_duration;
use crate::agents::work::{Failure, Work};
use crate::domain::{Basis, RecoveryPoint};
use crate::workflow::{SpecError, Target, kinds};

pub const CAPACITY: Provider<dyn Capacity> = Provider {
    name: "sim",
    check: plain_target,
    build: |_| Ok(Arc::new(Sim)),
};

pub const DATABASE: Provider<dyn Database> = Provider {
    name: "sim",
    check: database_target,
    build: |_| Ok(Arc::new(Sim)),
};

pub const DIAL: Provider<dyn Dial> = Provider {
    name: "sim",
    check: endpoint_target,
    build: |_| Ok(Arc::new(Sim)),
};

pub struct Sim;

/// A simulated database or cluster needs nothing but its name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainTarget {}

fn plain_target(fields: &Value) -> Result<(), SpecError> {
    kinds::parse::<PlainTarget>(fields).map(drop)
}

/// A simulated database may say how far its replica is behind (`lag: 45s`; 0.2 s when it
/// does not), which a promote checks against its `max_lag` as a real one would.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DatabaseTarget {
    #[serde(default, deserialize_with = "opt_duration")]
    lag: Option<Duration>,
}

fn database_target(fields: &Value) -> Result<(), SpecError> {
    kinds::parse::<DatabaseTarget>(fields).map(drop)
}

/// A simulated endpoint may list its regions' records, as a real one does.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointTarget {
    #[serde(default)]
    #[allow(dead_code)]
    ttl: Option<u32>,
    #[serde(default)]
    regions: Regions,
}

fn endpoint_target(fields: &Value) -> Result<(), SpecError> {
    let t: EndpointTarget = kinds::parse(fields)?;
    records::check(&t.regions)
}

/// The failure-injection fields of a stage's spec, which the agent's spec type accepts
/// and this provider reads.
#[derive(Deserialize, Default)]
struct Knobs {
    #[serde(default)]
    fail_attempts: u32,
    #[serde(default)]
    fail_permanently: bool,
    #[serde(default, deserialize_with = "opt_duration")]
    duration: Option<Duration>,
}

/// What the simulated work does: its steps (each with a share of the time), what it checks
/// first and what it changes.
struct Script {
    steps: Vec<String>,
    total: Duration,
    dry_run: String,
    checks: Vec<(String, String)>,
    changes: Vec<(String, String, String)>,
}

impl Script {
    async fn play(self, work: &Work) -> Result<String, Failure> {
        let knobs: Knobs = work.spec()?;
        for (name, detail) in &self.checks {
            work.check(name.clone(), true, format!("{detail} (simulated)"))
                .await;
        }
        if work.request.dry_run {
            for (target, from, to) in &self.changes {
                work.change(target.clone(), from.clone(), to.clone()).await;
            }
            return Ok(format!("simulated dry run: {}", self.dry_run));
        }
        let total = knobs.duration.unwrap_or(self.total);
        let step = total / self.steps.len().max(1) as u32;
        let attempt = work.request.attempt;
        if knobs.fail_permanently {
            tokio::time::sleep(step).await;
            return Err(Failure::permanent(
                "simulated: permanent failure injected by the spec",
            ));
        }
        if attempt <= knobs.fail_attempts {
            tokio::time::sleep(step).await;
            return Err(Failure::retryable(format!(
                "simulated: transient failure injected by the spec (attempt {attempt} of {} set to fail)",
                knobs.fail_attempts
            )));
        }
        let mut last = String::new();
        for (n, line) in self.steps.iter().enumerate() {
            tokio::time::sleep(step).await;
            last = format!("simulated: {line}");
            if n + 1 < self.steps.len() {
                work.say(last.clone()).await;
            }
        }
        for (target, from, to) in self.changes {
            work.change(target, from, to).await;
        }
        Ok(last)
    }
}

#[async_trait]
impl Capacity for Sim {
    async fn scale(&self, target: &Target, s: &Scale, work: &Work) -> Result<String, Failure> {
        let workload = s.workload.as_deref().unwrap_or("all workloads");
        let cluster = &target.name;
        Script {
            steps: vec![
                format!(
                    "scaling {workload} in {cluster}/{} to {} replicas",
                    s.namespace, s.replicas
                ),
                format!("{0}/{0} replicas ready in {1}", s.replicas, s.namespace),
            ],
            total: Duration::from_millis(1500),
            dry_run: format!(
                "would scale {workload} in {cluster}/{} to {} replicas",
                s.namespace, s.replicas
            ),
            checks: vec![("cluster reachable".into(), format!("{cluster} answers"))],
            changes: vec![(
                format!("{cluster}/{}/{workload} replicas", s.namespace),
                "current".into(),
                s.replicas.to_string(),
            )],
        }
        .play(work)
        .await
    }
}

#[async_trait]
impl Database for Sim {
    async fn promote(&self, target: &Target, p: &Promote, work: &Work) -> Result<String, Failure> {
        let cluster = &target.name;
        if let (true, Some(from)) = (p.switchover, &p.from) {
            let from = &from.name;
            work.check("fenced", true, format!("{from} is read-only (simulated)"))
                .await;
            work.change(format!("{from} default_transaction_read_only"), "off", "on")
                .await;
            work.check(
                "caught up",
                true,
                format!("{cluster} has replayed everything {from} wrote (simulated)"),
            )
            .await;
        }
        // A healthy simulated replica loses nothing; `rpo` in the spec says otherwise.
        let target_lag = kinds::parse::<DatabaseTarget>(&target.fields)
            .ok()
            .and_then(|t| t.lag);
        // Behind by its lag, the replica would lose as much, unless the spec says otherwise.
        let rpo = p
            .simulated_rpo
            .or(target_lag)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        data_loss::guard(cluster, p, work, || async {
            Ok(Some(RecoveryPoint {
                seconds: Some(rpo),
                bytes: Some((rpo * 400_000.0) as u64),
                basis: Basis::Measured,
                limit: None,
            }))
        })
        .await?;
        let lag = target_lag.unwrap_or(Duration::from_millis(200));
        work.replica_lag(lag.as_secs_f64());
        let shown = format!("{:.1}s", lag.as_secs_f64());
        if let Some(max) = p.max_lag.filter(|max| lag > *max) {
            let detail = format!("{shown} > {}", humantime::format_duration(max));
            work.check("replica lag", false, format!("{detail} (simulated)"))
                .await;
            return Err(Failure::retryable(format!(
                "database `{cluster}`: replica lag {detail}: not promoted (simulated)"
            )));
        }
        let limit = p
            .max_lag
            .map(|l| format!(" ≤ {}", humantime::format_duration(l)))
            .unwrap_or_default();
        Script {
            steps: vec![
                format!("replica lag on {cluster} is {shown}"),
                format!("promoted {cluster} to writer"),
            ],
            total: Duration::from_millis(2000),
            dry_run: format!("would promote {cluster} to writer (replica lag {shown})"),
            checks: vec![
                ("in recovery".into(), format!("{cluster} is a replica")),
                ("replica lag".into(), format!("{shown}{limit}")),
            ],
            changes: vec![(cluster.clone(), "replica".into(), "writer".into())],
        }
        .play(work)
        .await
    }

    async fn reprotect(
        &self,
        target: &Target,
        r: &Reprotect,
        work: &Work,
    ) -> Result<String, Failure> {
        let (cluster, source) = (&target.name, &r.source.name);
        let method = match r.method {
            Method::Clone => "clone",
            Method::Auto | Method::Rewind => "rewind",
        };
        Script {
            steps: vec![
                format!("stopped {cluster}"),
                format!("{method} of {cluster} from {source}"),
                format!("{cluster} streams from {source}"),
            ],
            total: Duration::from_millis(3000),
            dry_run: format!("would make {cluster} a replica of {source} by {method}"),
            checks: vec![
                ("source".into(), format!("{source} is the writer")),
                ("method".into(), format!("{method}: wal_log_hints is on")),
            ],
            changes: vec![(
                cluster.clone(),
                "writer (fenced)".into(),
                format!("replica of {source}"),
            )],
        }
        .play(work)
        .await
    }

    async fn demote(&self, target: &Target, _: &Demote, work: &Work) -> Result<String, Failure> {
        let cluster = &target.name;
        Script {
            steps: vec![format!("{cluster} set read-only")],
            total: Duration::from_millis(1000),
            dry_run: format!("would set {cluster} read-only"),
            checks: vec![("reachable".into(), format!("{cluster} answers"))],
            changes: vec![(
                format!("{cluster} default_transaction_read_only"),
                "off".into(),
                "on".into(),
            )],
        }
        .play(work)
        .await
    }
}

#[async_trait]
impl Dial for Sim {
    async fn dial(&self, target: &Target, m: &Move, work: &Work) -> Result<String, Failure> {
        let (endpoint, region) = (&target.name, &m.region);
        Script {
            steps: vec![
                format!("pointing {endpoint} at {region}"),
                format!("{endpoint} now answers from {region}"),
            ],
            total: Duration::from_millis(1000),
            dry_run: format!("would point {endpoint} at {region}"),
            checks: vec![("zone answers".into(), format!("{endpoint} resolves"))],
            changes: records(target, region),
        }
        .play(work)
        .await
    }
}

/// The record sets a dial replaces, each from what the other regions list for its type
/// (the simulated estate keeps no current answer), or the endpoint's name alone when the
/// target lists no records.
fn records(target: &Target, region: &str) -> Vec<(String, String, String)> {
    let regions: Regions = kinds::parse::<EndpointTarget>(&target.fields)
        .map(|t| t.regions)
        .unwrap_or_default();
    let Some(dialed) = regions.get(region).filter(|sets| !sets.is_empty()) else {
        return vec![(
            target.name.clone(),
            "another region".into(),
            region.to_string(),
        )];
    };
    dialed
        .iter()
        .map(|(kind, to)| {
            let from: Vec<&str> = regions
                .iter()
                .filter(|(r, _)| r.as_str() != region)
                .filter_map(|(_, sets)| sets.get(kind))
                .flatten()
                .map(String::as_str)
                .collect();
            let from = if from.is_empty() {
                "nothing".to_string()
            } else {
                from.join(", ")
            };
            (format!("{} {kind}", target.name), from, to.join(", "))
        })
        .collect()
}
