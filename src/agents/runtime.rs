//! The loop around every agent: consume a work request, take the lease, heartbeat it while
//! the agent works, publish progress, release with the outcome. A request delivered twice
//! does the work once: the semaphore remembers how each request ended.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Agent, Failure, Work};
use crate::bus::{self, Bus, ProgressKind, WorkRequest};
use crate::clock;
use crate::semaphore::{Acquire, HEARTBEAT_EVERY, LeaseRequest, OutcomeKind, Semaphore};

const BUSY_RETRY: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct Runtime {
    pub bus: Arc<dyn Bus>,
    pub semaphore: Semaphore,
    /// This process's name in leases and progress: `embedded:host:pid` or `agent:host:pid`.
    pub instance: String,
}

impl Runtime {
    /// Consumes the agent's work topic until the bus closes.
    pub async fn spawn(&self, agent: Arc<dyn Agent>) -> anyhow::Result<JoinHandle<()>> {
        let topic = bus::work_topic(agent.kind());
        let mut sub = self
            .bus
            .subscribe(&topic, &format!("agents.{}", agent.kind()))
            .await?;
        let rt = self.clone();
        Ok(tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                match serde_json::from_slice::<WorkRequest>(&msg.payload) {
                    Ok(req) => {
                        let rt = rt.clone();
                        let agent = agent.clone();
                        tokio::spawn(async move { rt.handle(agent, req).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, topic = %msg.topic, "Dropping a malformed work request.")
                    }
                }
                if let Err(e) = sub.commit().await {
                    tracing::warn!(error = %e, "Could not commit the work topic offset.");
                }
            }
        }))
    }

    async fn handle(&self, agent: Arc<dyn Agent>, req: WorkRequest) {
        let lease = LeaseRequest {
            resource: req.resource.clone(),
            request_id: req.id.clone(),
            run_id: req.run_id,
            stage: req.stage.clone(),
            attempt: req.attempt,
            holder: self.instance.clone(),
        };
        let cancel = CancellationToken::new();
        let work = Work::new(req, cancel.clone(), self.bus.clone(), self.instance.clone());
        let mut said_waiting = false;
        loop {
            if clock::now_ms() >= work.request.deadline {
                return; // the orchestrator times the attempt out
            }
            match self.semaphore.acquire(&lease).await {
                Ok(Acquire::Acquired) => break,
                Ok(Acquire::Ended(_) | Acquire::InProgress { .. }) => return,
                Ok(Acquire::Busy { request_id }) => {
                    if !said_waiting && !request_id.is_empty() {
                        said_waiting = true;
                        work.say(format!(
                            "waiting for {} (held by {request_id})",
                            lease.resource
                        ))
                        .await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, request = %lease.request_id, "Lease acquisition failed; retrying.")
                }
            }
            tokio::time::sleep(BUSY_RETRY).await;
        }
        work.publish(
            ProgressKind::Accepted,
            format!("{} started attempt {}", agent.kind(), work.request.attempt),
            None,
        )
        .await;

        let heartbeat = tokio::spawn(heartbeat(
            self.semaphore.clone(),
            lease.request_id.clone(),
            self.instance.clone(),
            cancel.clone(),
        ));
        let until_deadline =
            Duration::from_millis((work.request.deadline - clock::now_ms()).max(0) as u64);
        let result = tokio::select! {
            r = agent.execute(&work) => Some(r),
            _ = cancel.cancelled() => None,
            _ = tokio::time::sleep(until_deadline) => Some(Err(Failure::retryable("deadline passed"))),
        };
        heartbeat.abort();
        let Some(result) = result else {
            work.publish(
                ProgressKind::Failed,
                "stopped: the lease was taken back".into(),
                Some(true),
            )
            .await;
            return;
        };
        let (kind, retryable, message) = match result {
            Ok(m) => (OutcomeKind::Succeeded, false, m),
            Err(f) => (OutcomeKind::Failed, f.retryable, f.message),
        };
        match self
            .semaphore
            .release(
                &lease.request_id,
                &self.instance,
                kind,
                retryable,
                Some(message.clone()),
            )
            .await
        {
            Ok(Some(_)) => {
                let pk = if kind == OutcomeKind::Succeeded {
                    ProgressKind::Succeeded
                } else {
                    ProgressKind::Failed
                };
                work.publish(
                    pk,
                    message,
                    (kind == OutcomeKind::Failed).then_some(retryable),
                )
                .await;
            }
            Ok(None) => {
                tracing::warn!(request = %lease.request_id, "Lease was lost before release; outcome dropped.")
            }
            Err(e) => {
                tracing::error!(error = %e, request = %lease.request_id, "Release failed; the lease will expire.")
            }
        }
    }
}

async fn heartbeat(
    semaphore: Semaphore,
    request_id: String,
    holder: String,
    cancel: CancellationToken,
) {
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        match semaphore.heartbeat(&request_id, &holder).await {
            Ok(true) => {}
            Ok(false) => {
                cancel.cancel();
                return;
            }
            // A store hiccup is not a lost lease; the TTL leaves room for the next beat.
            Err(e) => tracing::warn!(error = %e, request = %request_id, "Heartbeat failed."),
        }
    }
}
