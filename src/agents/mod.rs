//! Agents do the work of stages. Each kind consumes `lifeboat.work.<kind>`; the runtime
//! around it takes the stage's lease, heartbeats it, reports progress and releases it with
//! the outcome. Adding an agent is one file here, one line in `builtin`, and its spec in
//! `specs`.
//!
//! `approval` stages have no agent: the approval is the whole of the work, and the
//! orchestrator holds the gate itself.

pub mod exec;
pub mod http;
pub mod noop;
pub mod runtime;
pub mod sim;
pub mod specs;
pub mod wait;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Delivery, Progress, ProgressKind, WorkRequest};

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub retryable: bool,
    pub message: String,
}

impl Failure {
    pub fn retryable(message: impl Into<String>) -> Self {
        Failure {
            retryable: true,
            message: message.into(),
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Failure {
            retryable: false,
            message: message.into(),
        }
    }
}

/// One attempt of one stage, as an agent sees it.
pub struct Work {
    pub request: WorkRequest,
    /// Cancelled once the attempt is over, whether it ended or was stopped (lease lost,
    /// deadline, shutdown): for work an agent handed to tasks of its own.
    pub cancel: CancellationToken,
    bus: Arc<dyn Bus>,
    instance: String,
    /// Progress is queued in order and never waited for while the work runs, so that a
    /// slow or absent broker does not hold the work up; `flush` waits for it at the end.
    sent: Mutex<Vec<Delivery>>,
}

impl Work {
    pub fn new(
        request: WorkRequest,
        cancel: CancellationToken,
        bus: Arc<dyn Bus>,
        instance: String,
    ) -> Self {
        Work {
            request,
            cancel,
            bus,
            instance,
            sent: Mutex::new(Vec::new()),
        }
    }

    /// Publishes a progress line for the incident channel and the terminal.
    pub async fn say(&self, message: impl Into<String>) {
        self.publish(ProgressKind::Progress, message.into(), None);
    }

    /// Queues a progress message; `flush` waits until the bus has them all.
    pub(crate) fn publish(&self, kind: ProgressKind, message: String, retryable: Option<bool>) {
        let r = &self.request;
        let p = Progress {
            v: crate::bus::VERSION,
            request_id: r.id.clone(),
            run_id: r.run_id,
            stage: r.stage.clone(),
            attempt: r.attempt,
            kind,
            message,
            retryable,
            at: crate::clock::now_ms(),
            agent_instance: self.instance.clone(),
        };
        match serde_json::to_vec(&p) {
            Ok(payload) => {
                let delivery =
                    self.bus
                        .enqueue(crate::bus::PROGRESS_TOPIC, &r.run_id.to_string(), payload);
                self.sent
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(delivery);
            }
            Err(e) => tracing::warn!(error = %e, "Could not encode progress."),
        }
    }

    /// Waits, at most `limit`, until the bus has every progress message of this attempt;
    /// what is left still goes, for as long as the process runs.
    pub(crate) async fn flush(self, limit: std::time::Duration) {
        let sent = self.sent.into_inner().unwrap_or_else(|e| e.into_inner());
        let all = futures_util::future::join_all(sent);
        match tokio::time::timeout(limit, all).await {
            Ok(results) => {
                for e in results.into_iter().filter_map(Result::err) {
                    tracing::warn!(error = %e, request = %self.request.id, "Could not publish progress.");
                }
            }
            Err(_) => {
                tracing::warn!(request = %self.request.id, "Progress not yet delivered; moving on.")
            }
        }
    }

    pub fn spec<T: for<'de> serde::Deserialize<'de>>(&self) -> Result<T, Failure> {
        specs::parse_spec(&self.request.spec)
            .map_err(|e| Failure::permanent(format!("bad spec: {e}")))
    }
}

#[async_trait]
pub trait Agent: Send + Sync + 'static {
    fn kind(&self) -> &'static str;

    /// Does the work (or, for a dry run, checks its preconditions and says what it would
    /// do). `Ok` carries the closing message.
    async fn execute(&self, work: &Work) -> Result<String, Failure>;
}

/// The agents this build ships, by kind. `approval` is not among them (see above).
pub fn builtin(kind: &str) -> Option<Arc<dyn Agent>> {
    Some(match kind {
        "capacity" | "database" | "dial" => Arc::new(sim::SimAgent::new(kind)?),
        "http" => Arc::new(http::HttpAgent::new()),
        "exec" => Arc::new(exec::ExecAgent),
        "wait" => Arc::new(wait::WaitAgent::new()),
        "noop" => Arc::new(noop::NoopAgent),
        _ => return None,
    })
}

/// Every kind that runs as an agent.
pub const RUNNABLE: &[&str] = &[
    "capacity", "database", "dial", "http", "exec", "wait", "noop",
];
