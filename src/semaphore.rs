//! The semaphore: one lease per resource (`database:petstore-region-a`), held by the agent
//! doing a stage's work, kept alive by heartbeats, and released with the outcome. The
//! orchestrator moves on when a lease is released with success; a lease whose holder
//! stops heartbeating expires and counts as a retryable failure.
//!
//! Every request's end is recorded (`store::leases`), which is what makes a redelivered
//! work request a no-op and lets a restarted orchestrator find outcomes it missed. This
//! module holds the policy: how long a lease lives, how often it is renewed and swept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::clock::Clock;
use crate::domain::{Acquire, Budget, LeaseOutcome, LeaseRequest, OutcomeKind, Report};
use crate::store::{Expiring, Release, Store};

pub const LEASE_TTL: Duration = Duration::from_secs(15);
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// Expiry is checked this often: precise enough against a 15 s TTL, rare enough to stay
/// out of the way of the writes that move runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Tells the orchestrator that a lease ended. In one process this is a call into the
/// engine's queue; across processes the same outcomes are found in the store.
pub type OutcomeSink = Arc<dyn Fn(LeaseOutcome) + Send + Sync>;

#[derive(Clone)]
pub struct Semaphore {
    store: Store,
    sink: Option<OutcomeSink>,
    /// Rung when this process gives back a budget's slot, so that a stage of this process
    /// waiting for one tries at once rather than at its next poll.
    freed: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    /// Where releases wait for the task that writes them, together with those that came
    /// while the one before was written: started with the first release.
    releases: Arc<OnceLock<mpsc::UnboundedSender<Queued>>>,
}

/// Most releases written in one transaction.
const MOST_RELEASED_AT_ONCE: usize = 256;

/// A release waiting to be written, and who waits for its answer.
struct Queued {
    request_id: String,
    holder: String,
    kind: OutcomeKind,
    retryable: bool,
    message: Option<String>,
    report: Option<Report>,
    answer: oneshot::Sender<Result<Option<LeaseOutcome>, String>>,
}

impl Semaphore {
    pub fn new(store: Store, sink: Option<OutcomeSink>) -> Self {
        Semaphore {
            store,
            sink,
            freed: Arc::default(),
            releases: Arc::default(),
        }
    }

    /// What rings when a slot of `budget` is given back in this process.
    pub fn freed_signal(&self, budget: &str) -> Arc<Notify> {
        let mut freed = self.freed.lock().unwrap_or_else(|e| e.into_inner());
        freed.entry(budget.to_string()).or_default().clone()
    }

    /// Wakes one waiter of each budget: a slot of each is free.
    pub fn freed(&self, budgets: &[Budget]) {
        if budgets.is_empty() {
            return;
        }
        let freed = self.freed.lock().unwrap_or_else(|e| e.into_inner());
        for b in budgets {
            if let Some(signal) = freed.get(&b.key) {
                signal.notify_one();
            }
        }
    }

    /// The store the leases live in, which also holds the work they are for.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store's clock, by which leases are timed.
    pub fn clock(&self) -> &Clock {
        self.store.clock()
    }

    fn notify(&self, outcomes: &[LeaseOutcome]) {
        if let Some(sink) = &self.sink {
            for o in outcomes {
                sink(o.clone());
            }
        }
    }

    /// Records an agent process's heartbeat, which the preflight reads, and forgets
    /// agents silent since before `forget_before`.
    pub async fn announce(
        &self,
        beat: &crate::store::AgentBeat,
        forget_before: crate::clock::Millis,
    ) -> anyhow::Result<()> {
        self.store.agent_seen(beat).await?;
        self.store.forget_agents(forget_before).await
    }

    /// An agent process stopped cleanly.
    pub async fn leave(&self, instance: &str) -> anyhow::Result<()> {
        self.store.agent_left(instance).await
    }

    pub async fn acquire(&self, req: &LeaseRequest) -> anyhow::Result<Acquire> {
        self.store.acquire_lease(req, LEASE_TTL).await
    }

    /// `acquire` for each of `reqs`, in that order: those that count against no budget
    /// together, in one transaction; the others one by one, as their slots are counted.
    pub async fn acquire_all(&self, reqs: &[LeaseRequest]) -> Vec<anyhow::Result<Acquire>> {
        let plain: Vec<&LeaseRequest> = reqs.iter().filter(|r| r.budgets.is_empty()).collect();
        let mut plain = match self.store.acquire_leases(&plain, LEASE_TTL).await {
            Ok(answers) => answers.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => plain
                .iter()
                .map(|_| Err(anyhow::anyhow!("{e:#}")))
                .collect(),
        }
        .into_iter();
        let mut answers = Vec::with_capacity(reqs.len());
        for req in reqs {
            answers.push(if req.budgets.is_empty() {
                plain
                    .next()
                    .unwrap_or_else(|| Err(anyhow::anyhow!("no answer for {}", req.request_id)))
            } else {
                self.acquire(req).await
            });
        }
        answers
    }

    /// Extends the lease; `false` when it is no longer this holder's (expired or revoked).
    pub async fn heartbeat(&self, request_id: &str, holder: &str) -> anyhow::Result<bool> {
        self.store.renew_lease(request_id, holder, LEASE_TTL).await
    }

    /// Ends the lease with the work's outcome. `None` when the lease was no longer held
    /// (expired or revoked meanwhile): the outcome is then not this holder's to give.
    ///
    /// Releases that come while others are written go together in the next transaction:
    /// every stage's end is a release, and a busy agent's would otherwise queue for the
    /// store one by one.
    pub async fn release(&self, release: Release<'_>) -> anyhow::Result<Option<LeaseOutcome>> {
        let (answer, answered) = oneshot::channel();
        let queue = self.releases.get_or_init(|| self.start_releasing());
        queue
            .send(Queued {
                request_id: release.request_id.to_string(),
                holder: release.holder.to_string(),
                kind: release.kind,
                retryable: release.retryable,
                message: release.message,
                report: release.report,
                answer,
            })
            .map_err(|_| anyhow::anyhow!("the semaphore has stopped"))?;
        answered
            .await
            .map_err(|_| anyhow::anyhow!("the semaphore has stopped"))?
            .map_err(anyhow::Error::msg)
    }

    /// The task that writes queued releases; it ends with the last handle on this
    /// semaphore.
    fn start_releasing(&self) -> mpsc::UnboundedSender<Queued> {
        let (queue, mut queued) = mpsc::unbounded_channel::<Queued>();
        let writer = Semaphore {
            releases: Arc::default(),
            ..self.clone()
        };
        tokio::spawn(async move {
            while let Some(first) = queued.recv().await {
                let mut batch = vec![first];
                while batch.len() < MOST_RELEASED_AT_ONCE
                    && let Ok(more) = queued.try_recv()
                {
                    batch.push(more);
                }
                let releases: Vec<Release<'_>> = batch
                    .iter()
                    .map(|q| Release {
                        request_id: &q.request_id,
                        holder: &q.holder,
                        kind: q.kind,
                        retryable: q.retryable,
                        message: q.message.clone(),
                        report: q.report.clone(),
                    })
                    .collect();
                match writer.store.release_leases(&releases).await {
                    Ok(outcomes) => {
                        let ended: Vec<LeaseOutcome> = outcomes.iter().flatten().cloned().collect();
                        writer.notify(&ended);
                        for (q, outcome) in batch.into_iter().zip(outcomes) {
                            let _ = q.answer.send(Ok(outcome));
                        }
                    }
                    Err(e) => {
                        let why = format!("{e:#}");
                        for q in batch {
                            let _ = q.answer.send(Err(why.clone()));
                        }
                    }
                }
            }
        });
        queue
    }

    /// Expires every lease past its time, or (with `holder_prefix`) every lease of those
    /// holders at once: a restarted embedded process does not wait out its own old leases.
    pub async fn expire(&self, holder_prefix: Option<&str>) -> anyhow::Result<Vec<LeaseOutcome>> {
        let which = match holder_prefix {
            None => Expiring::Due,
            Some(prefix) => Expiring::HeldBy { prefix },
        };
        let out = self.store.expire_leases(which).await?;
        self.notify(&out);
        Ok(out)
    }

    /// The outcome `holder` released `request_id` with, if it did: for a holder whose
    /// release committed but whose answer was lost. Told to the orchestrator like any
    /// release.
    pub async fn released_by(
        &self,
        request_id: &str,
        holder: &str,
    ) -> anyhow::Result<Option<LeaseOutcome>> {
        let found = self.outcomes(&[request_id]).await?.into_iter().find(|o| {
            o.holder.as_deref() == Some(holder)
                && matches!(
                    o.kind,
                    OutcomeKind::Succeeded | OutcomeKind::Failed | OutcomeKind::Held
                )
        });
        if let Some(o) = &found {
            self.notify(std::slice::from_ref(o));
        }
        Ok(found)
    }

    /// How these requests ended, for those that have: one query for a batch of releases.
    pub async fn outcomes(&self, request_ids: &[&str]) -> anyhow::Result<Vec<LeaseOutcome>> {
        self.store.lease_outcomes(request_ids).await
    }

    /// Outcomes recorded for attempts whose stage is still in flight: ended, but not yet
    /// applied by any orchestrator.
    pub async fn pending_outcomes(&self) -> anyhow::Result<Vec<LeaseOutcome>> {
        self.store.pending_lease_outcomes().await
    }

    /// Outcomes recorded for a run's requests.
    pub async fn outcomes_for(
        &self,
        run: crate::domain::RunId,
    ) -> anyhow::Result<Vec<LeaseOutcome>> {
        self.store.lease_outcomes_of(run).await
    }

    /// Runs the expiry sweep until the process ends.
    ///
    /// A store outage stops every heartbeat, so leases look dead when it ends. After the
    /// sweep could not reach the store, it waits one TTL before expiring anything: holders
    /// that are alive heartbeat or release in that time, and only dead ones expire. It
    /// starts the same way, since a process may be starting just as the store returns
    /// (a supervisor restarting it through the outage), having seen none of it.
    pub async fn sweep_forever(self) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hold_until = Some(tokio::time::Instant::now() + LEASE_TTL);
        loop {
            every.tick().await;
            if let Some(until) = hold_until {
                if tokio::time::Instant::now() < until {
                    if !self.store.ping().await {
                        hold_until = Some(tokio::time::Instant::now() + LEASE_TTL);
                    }
                    continue;
                }
                hold_until = None;
            }
            if let Err(e) = self.expire(None).await {
                tracing::warn!(error = %e, "Lease expiry sweep failed; expiry waits one lease TTL after the store is back.");
                hold_until = Some(tokio::time::Instant::now() + LEASE_TTL);
            }
        }
    }
}
