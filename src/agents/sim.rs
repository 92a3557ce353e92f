//! The `sim` provider for capacity, database and dial: a simulated estate with realistic
//! step durations and failure injection from the spec (`fail_attempts`,
//! `fail_permanently`, `duration`). Every message it produces says it is simulated.

use std::time::Duration;

use async_trait::async_trait;

use super::specs::{CapacitySpec, DatabaseRole, DatabaseSpec, DialSpec, SimKnobs};
use super::{Agent, Failure, Work};

pub struct SimAgent {
    kind: &'static str,
}

impl SimAgent {
    pub fn new(kind: &str) -> Option<Self> {
        let kind = match kind {
            "capacity" => "capacity",
            "database" => "database",
            "dial" => "dial",
            _ => return None,
        };
        Some(SimAgent { kind })
    }
}

/// What the simulated work does: its steps (each with a share of the time) and its knobs.
struct Script {
    steps: Vec<String>,
    total: Duration,
    knobs: SimKnobs,
    dry_run: String,
}

fn script(kind: &str, work: &Work) -> Result<Script, Failure> {
    Ok(match kind {
        "capacity" => {
            let s: CapacitySpec = work.spec()?;
            let target = s.workload.as_deref().unwrap_or("all workloads");
            Script {
                steps: vec![
                    format!(
                        "scaling {target} in {}/{} to {} replicas",
                        s.cluster, s.namespace, s.replicas
                    ),
                    format!("{0}/{0} replicas ready in {1}", s.replicas, s.namespace),
                ],
                total: Duration::from_millis(1500),
                knobs: s.sim(),
                dry_run: format!(
                    "would scale {target} in {}/{} to {} replicas",
                    s.cluster, s.namespace, s.replicas
                ),
            }
        }
        "database" => {
            let s: DatabaseSpec = work.spec()?;
            match s.role {
                DatabaseRole::Writer => Script {
                    steps: vec![
                        format!("replica lag on {} is 0.2s", s.cluster),
                        format!("promoted {} to writer", s.cluster),
                    ],
                    total: Duration::from_millis(2000),
                    knobs: s.sim(),
                    dry_run: format!("would promote {} to writer (replica lag 0.2s)", s.cluster),
                },
                DatabaseRole::Reader => Script {
                    steps: vec![format!("{} set read-only", s.cluster)],
                    total: Duration::from_millis(1000),
                    knobs: s.sim(),
                    dry_run: format!("would set {} read-only", s.cluster),
                },
            }
        }
        _ => {
            let s: DialSpec = work.spec()?;
            Script {
                steps: vec![
                    format!("pointing {} at {}", s.endpoint, s.region),
                    format!("{} now answers from {}", s.endpoint, s.region),
                ],
                total: Duration::from_millis(1000),
                knobs: s.sim(),
                dry_run: format!("would point {} at {}", s.endpoint, s.region),
            }
        }
    })
}

#[async_trait]
impl Agent for SimAgent {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn execute(&self, work: &Work) -> Result<String, Failure> {
        let script = script(self.kind, work)?;
        if work.request.dry_run {
            return Ok(format!("simulated dry run: {}", script.dry_run));
        }
        let total = script.knobs.duration.unwrap_or(script.total);
        let step = total / script.steps.len().max(1) as u32;
        let attempt = work.request.attempt;
        if script.knobs.fail_permanently {
            tokio::time::sleep(step).await;
            return Err(Failure::permanent(
                "simulated: permanent failure injected by the spec",
            ));
        }
        if attempt <= script.knobs.fail_attempts {
            tokio::time::sleep(step).await;
            return Err(Failure::retryable(format!(
                "simulated: transient failure injected by the spec (attempt {attempt} of {} set to fail)",
                script.knobs.fail_attempts
            )));
        }
        let mut last = String::new();
        for (n, line) in script.steps.iter().enumerate() {
            tokio::time::sleep(step).await;
            last = format!("simulated: {line}");
            if n + 1 < script.steps.len() {
                work.say(last.clone()).await;
            }
        }
        Ok(last)
    }
}
