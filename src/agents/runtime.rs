//! The loop around every agent: consume a work request, take the lease, heartbeat it while
//! the agent works, publish progress, release with the outcome. A request delivered twice
//! does the work once: the semaphore remembers how each request ended.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Agent, Failure, Work};
use crate::bus::{self, Bus, ProgressKind, WorkRequest};
use crate::clock;
use crate::semaphore::{Acquire, HEARTBEAT_EVERY, LeaseRequest, OutcomeKind, Semaphore};

const BUSY_RETRY: Duration = Duration::from_millis(250);
/// The longest pause between tries to record an outcome in an unreachable store.
const MAX_RELEASE_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Runtime {
    pub bus: Arc<dyn Bus>,
    pub semaphore: Semaphore,
    /// This process's name in leases and progress: `embedded:host:pid` or `agent:host:pid`.
    pub instance: String,
    /// Cancelled on SIGTERM: no new work is taken, and work still running after `grace`
    /// is released as a retryable failure so another agent picks it up at once.
    pub shutdown: CancellationToken,
    pub grace: Duration,
    /// Work in flight, so that shutdown can wait for every release.
    pub tracker: TaskTracker,
}

impl Runtime {
    pub fn new(bus: Arc<dyn Bus>, semaphore: Semaphore, instance: String) -> Self {
        Runtime {
            bus,
            semaphore,
            instance,
            shutdown: CancellationToken::new(),
            grace: Duration::from_secs(10),
            tracker: TaskTracker::new(),
        }
    }

    /// Stops taking work, lets running work finish within the grace period, releases what
    /// is left, and returns when every lease is handed back.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Consumes the agent's work topic until the bus closes.
    ///
    /// Each agent process reads every request of its kind (a consumer group of its own) and
    /// the lease decides which one does the work. A dead agent then costs one lease TTL
    /// before its stage runs elsewhere, whatever the broker does about the dead member:
    /// with a shared group, its partitions, and every request keyed to them, would wait
    /// for the group to rebalance.
    pub async fn spawn(&self, agent: Arc<dyn Agent>) -> anyhow::Result<JoinHandle<()>> {
        let topic = bus::work_topic(agent.kind());
        let mut sub = self
            .bus
            .subscribe(
                &topic,
                &format!("agents.{}.{}", agent.kind(), self.instance),
            )
            .await?;
        let rt = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = sub.next() => match m { Some(m) => m, None => break },
                    _ = rt.shutdown.cancelled() => break,
                };
                match serde_json::from_slice::<WorkRequest>(&msg.payload) {
                    // On a bus that keeps offsets, the lease is claimed before the message
                    // is committed; otherwise claiming in the task keeps consumption parallel.
                    Ok(req) if rt.bus.keeps_offsets() => {
                        if let Some(held) = rt.claim(&req).await {
                            let (rt2, agent) = (rt.clone(), agent.clone());
                            rt.tracker
                                .spawn(async move { rt2.handle(agent, req, held).await });
                        }
                    }
                    Ok(req) => {
                        let (rt2, agent) = (rt.clone(), agent.clone());
                        rt.tracker.spawn(async move {
                            if let Some(held) = rt2.claim(&req).await {
                                rt2.handle(agent, req, held).await;
                            }
                        });
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

    fn lease_for(&self, req: &WorkRequest) -> LeaseRequest {
        LeaseRequest {
            resource: req.resource.clone(),
            request_id: req.id.clone(),
            run_id: req.run_id,
            stage: req.stage.clone(),
            attempt: req.attempt,
            holder: self.instance.clone(),
        }
    }

    /// The first try for the lease, made before the message is committed: once it returns,
    /// the request is either held in the store, known to be done, or waiting on another
    /// holder. `None`: nothing to do.
    async fn claim(&self, req: &WorkRequest) -> Option<bool> {
        if clock::now_ms() >= req.deadline {
            return None; // the orchestrator times the attempt out
        }
        match self.semaphore.acquire(&self.lease_for(req)).await {
            Ok(Acquire::Acquired) => Some(true),
            Ok(Acquire::Ended(_) | Acquire::InProgress { .. }) => None,
            Ok(Acquire::Busy { .. }) => Some(false),
            Err(e) => {
                tracing::warn!(error = %e, request = %req.id, "Lease acquisition failed; retrying.");
                Some(false)
            }
        }
    }

    /// Waits while another request holds the resource. `None`: give up (deadline,
    /// shutdown, or the request ended meanwhile).
    async fn wait_for_lease(&self, work: &Work, lease: &LeaseRequest) -> Option<()> {
        let mut said_waiting = false;
        loop {
            tokio::time::sleep(BUSY_RETRY).await;
            if clock::now_ms() >= work.request.deadline || self.shutdown.is_cancelled() {
                return None; // the orchestrator times the attempt out
            }
            match self.semaphore.acquire(lease).await {
                Ok(Acquire::Acquired) => return Some(()),
                Ok(Acquire::Ended(_) | Acquire::InProgress { .. }) => return None,
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
        }
    }

    async fn handle(&self, agent: Arc<dyn Agent>, req: WorkRequest, held: bool) {
        let lease = self.lease_for(&req);
        let cancel = CancellationToken::new();
        let work = Work::new(req, cancel.clone(), self.bus.clone(), self.instance.clone());
        if !held && self.wait_for_lease(&work, &lease).await.is_none() {
            return;
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
        let stopping = async {
            self.shutdown.cancelled().await;
            tokio::time::sleep(self.grace).await;
        };
        let result = tokio::select! {
            r = agent.execute(&work) => Some(r),
            _ = cancel.cancelled() => None,
            _ = tokio::time::sleep(until_deadline) => Some(Err(Failure::retryable("deadline passed"))),
            _ = stopping => Some(Err(Failure::retryable("the agent was stopped; another agent will retry"))),
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
            .release(&lease.request_id, kind, retryable, &message)
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

    /// Releases with the outcome, trying again for as long as the store is unreachable: the
    /// work is done, and only this process can say how it went. The expiry sweep holds off
    /// for one lease TTL after a store outage, which is what gives these tries their chance.
    /// A process told to stop gives up after its grace period; the lease then expires as a
    /// dead agent's would.
    async fn release(
        &self,
        request_id: &str,
        kind: OutcomeKind,
        retryable: bool,
        message: &str,
    ) -> anyhow::Result<Option<crate::semaphore::LeaseOutcome>> {
        let stopping = async {
            self.shutdown.cancelled().await;
            tokio::time::sleep(self.grace).await;
        };
        tokio::pin!(stopping);
        let mut wait = BUSY_RETRY;
        loop {
            let error = match self
                .semaphore
                .release(
                    request_id,
                    &self.instance,
                    kind,
                    retryable,
                    Some(message.to_string()),
                )
                .await
            {
                Err(e) => e,
                released => return released,
            };
            tracing::warn!(error = %error, request = %request_id, retry_in = ?wait, "Release failed; trying again.");
            tokio::select! {
                _ = tokio::time::sleep(wait) => wait = (wait * 2).min(MAX_RELEASE_WAIT),
                _ = &mut stopping => return Err(error),
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
