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

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Progress, ProgressKind, WorkRequest};

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
    instance: String,
    /// Progress leaves in order from a task of its own, so that a slow or absent broker
    /// never holds the work up.
    progress: mpsc::UnboundedSender<Vec<u8>>,
    sending: JoinHandle<()>,
}

impl Work {
    pub fn new(
        request: WorkRequest,
        cancel: CancellationToken,
        bus: Arc<dyn Bus>,
        instance: String,
    ) -> Self {
        let (progress, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        let (key, id) = (request.run_id.to_string(), request.id.clone());
        let sending = tokio::spawn(async move {
            while let Some(payload) = queue.recv().await {
                if let Err(e) = bus.publish(crate::bus::PROGRESS_TOPIC, &key, payload).await {
                    tracing::warn!(error = %e, request = %id, "Could not publish progress.");
                }
            }
        });
        Work {
            request,
            cancel,
            instance,
            progress,
            sending,
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
                if self.progress.send(payload).is_err() {
                    tracing::warn!(request = %r.id, "Progress sender has stopped; message dropped.");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Could not encode progress."),
        }
    }

    /// Waits, at most `limit`, until every queued progress message has been handed to the
    /// bus; what is left still goes, for as long as the process runs.
    pub(crate) async fn flush(self, limit: std::time::Duration) {
        drop(self.progress);
        let _ = tokio::time::timeout(limit, self.sending).await;
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
