//! The loop around every agent: consume a work request, take the lease, heartbeat it while
//! the agent works, publish progress, release with the outcome. A request delivered twice
//! does the work once: the semaphore remembers how each request ended.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::{self, MAX_REQUEST_BYTES, Reason, Refused, Verdict};
use super::registry::Runner;
use super::work::{Failure, Work};
use crate::bus::{self, Bus, ProgressKind, WorkRequest};
use crate::clock::Clock;
use crate::domain::{
    Acquire, Actor, Audit, Budget, EventKind, LeaseOutcome, LeaseRequest, OutcomeKind, Report,
    RunId, WAITING_FOR_BUDGET,
};
use crate::metrics::Metrics;
use crate::semaphore::{HEARTBEAT_EVERY, LEASE_TTL, Semaphore};
use crate::store::Release;

const BUSY_RETRY: Duration = Duration::from_millis(250);
/// Most work messages whose leases are claimed together before their offsets are committed.
const CLAIM_BATCH: usize = 64;
/// How often a stage waiting for a budget tries again when no slot is given back in this
/// process (a slot freed by another process, or by an expiry, is seen this late at most).
const BUDGET_RETRY: Duration = Duration::from_secs(1);
/// How often a stage waiting for a budget tells the orchestrator it still waits: well
/// within `WAITING_HOLDS`, so that a wait never looks like a dead agent.
const WAITING_TOLD_EVERY: Duration = Duration::from_secs(5);
/// How long before its lease could expire an agent stops work it cannot renew the lease of.
const RENEWAL_MARGIN: Duration = Duration::from_secs(3);
/// How soon a failed heartbeat is tried again, and how long one may wait for an answer.
const HEARTBEAT_RETRY: Duration = Duration::from_secs(1);
const HEARTBEAT_CALL_LIMIT: Duration = Duration::from_secs(2);
/// The longest one store call may take before it counts as failed.
const STORE_CALL_LIMIT: Duration = Duration::from_secs(10);
/// How long an attempt runs before its agent tells that it started. Work that ends sooner
/// (a no-op, a check that answers at once) is shown started by its end.
const START_TOLD_AFTER: Duration = Duration::from_millis(20);
/// How long a finished attempt waits for its progress messages to reach the bus.
const FLUSH_WAIT: Duration = Duration::from_secs(5);
/// The longest pause between tries to record an outcome in an unreachable store.
const MAX_RELEASE_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Runtime {
    pub bus: Arc<dyn Bus>,
    pub semaphore: Semaphore,
    /// The semaphore's clock: deadlines and lease times are read on one clock.
    clock: Clock,
    /// This process's name in leases and progress: `embedded:host:pid` or `agent:host:pid`.
    pub instance: String,
    /// Cancelled on SIGTERM: no new work is taken, and work still running after `grace`
    /// is released as a retryable failure so another agent takes it without waiting for
    /// the lease to expire.
    pub shutdown: CancellationToken,
    pub grace: Duration,
    /// Work in flight, so that shutdown can wait for every release.
    pub tracker: TaskTracker,
    /// When the grace period of a stop ends: set once, when the stop is asked for.
    grace_ends: Arc<OnceLock<Instant>>,
    /// Requests whose lease this process holds for an attempt it runs: a redelivery of one
    /// of them is not run twice, and a lease found held under this process's name that is
    /// not among them was taken by a try whose answer was lost.
    holding: Arc<Mutex<HashSet<String>>>,
    /// The kinds of work this process takes, as its heartbeat announces them.
    kinds: Arc<Mutex<Vec<String>>>,
    /// Where refused requests are counted.
    metrics: Arc<Metrics>,
    /// Refusals already in a run's audit, by run and reason: a sender can make up stages
    /// and attempts without end, not runs that exist.
    refusals_noted: Arc<Mutex<HashSet<RefusalKey>>>,
    /// Where the time each check against the store took goes, in µs (the benchmark).
    check_log: Option<Arc<Mutex<Vec<u32>>>>,
}

type RefusalKey = (RunId, Reason);

/// Refusals remembered for the audit before the memory starts again.
const MAX_REFUSALS_NOTED: usize = 4096;

impl Runtime {
    pub fn new(bus: Arc<dyn Bus>, semaphore: Semaphore, instance: String) -> Self {
        Runtime {
            bus,
            clock: semaphore.clock().clone(),
            semaphore,
            instance,
            shutdown: CancellationToken::new(),
            grace: Duration::from_secs(10),
            tracker: TaskTracker::new(),
            grace_ends: Arc::new(OnceLock::new()),
            holding: Arc::default(),
            kinds: Arc::default(),
            metrics: Arc::new(Metrics::new()),
            refusals_noted: Arc::default(),
            check_log: None,
        }
    }

    /// Records how long each check of a request against the store takes, in µs.
    pub fn with_check_log(mut self, log: Option<Arc<Mutex<Vec<u32>>>>) -> Self {
        self.check_log = log;
        self
    }

    /// Counts refusals in `metrics` (the service's own, where it has one).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The kinds of work this process consumes.
    pub fn kinds(&self) -> Vec<String> {
        self.kinds.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Attempts this process holds a lease for now.
    pub fn in_flight(&self) -> u32 {
        u32::try_from(self.holding().len()).unwrap_or(u32::MAX)
    }

    /// Stops taking work, lets running work finish within the grace period, releases what
    /// is left, and returns when every lease is handed back and every consumer has stopped.
    pub async fn stop(&self) {
        let _ = self.grace_ends.set(Instant::now() + self.grace);
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Resolves once a stop was asked for and its grace period is over.
    async fn grace_over(&self) {
        self.shutdown.cancelled().await;
        let ends = self.grace_ends.get().copied().unwrap_or_else(Instant::now);
        tokio::time::sleep_until(ends).await;
    }

    /// Consumes the agent's work topic until the bus closes.
    ///
    /// Each agent process reads every request of its kind (a consumer group of its own) and
    /// the lease decides which one does the work. A dead agent then costs one lease TTL
    /// before its stage runs elsewhere, whatever the broker does about the dead member:
    /// with a shared group, its partitions, and every request keyed to them, would wait
    /// for the group to rebalance.
    pub async fn spawn(&self, agent: Arc<dyn Runner>) -> anyhow::Result<JoinHandle<()>> {
        let topic = bus::work_topic(agent.kind());
        {
            let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
            if !kinds.iter().any(|k| k == agent.kind()) {
                kinds.push(agent.kind().to_string());
            }
        }
        let mut sub = self
            .bus
            .subscribe(
                &topic,
                &format!("agents.{}.{}", agent.kind(), self.instance),
            )
            .await?;
        let rt = self.clone();
        // In the tracker, so that a stop waits for a claim in progress and the work it
        // starts, rather than leaving a fresh lease to expire.
        Ok(self.tracker.spawn(async move {
            loop {
                let first = tokio::select! {
                    biased;
                    _ = rt.shutdown.cancelled() => break,
                    m = sub.next() => match m { Some(m) => m, None => break },
                };
                let kind = agent.kind();
                if rt.bus.keeps_offsets() {
                    // Every lease of what was fetched is claimed before the offsets are
                    // committed: the messages at hand, claimed together.
                    let mut batch = vec![first];
                    while batch.len() < CLAIM_BATCH {
                        match sub.next().now_or_never() {
                            Some(Some(m)) => batch.push(m),
                            _ => break,
                        }
                    }
                    let claimed = batch
                        .iter()
                        .filter_map(|m| rt.read(kind, m).map(|claimed| (m.topic.as_str(), claimed)))
                        .collect();
                    let claimed = rt.claim(kind, claimed).await;
                    for (req, claim) in claimed {
                        let (rt2, agent) = (rt.clone(), agent.clone());
                        rt.tracker
                            .spawn(async move { rt2.handle(agent, req, claim).await });
                    }
                } else if let Some(claimed) = rt.read(kind, &first) {
                    // Claiming in the task keeps consumption parallel.
                    let (rt2, agent) = (rt.clone(), agent.clone());
                    let topic = first.topic.clone();
                    rt.tracker.spawn(async move {
                        let kind = agent.kind();
                        if let Some((req, claim)) =
                            rt2.claim(kind, vec![(&topic, claimed)]).await.pop()
                        {
                            rt2.handle(agent, req, claim).await;
                        }
                    });
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
            budgets: req.budgets.clone(),
        }
    }

    /// Marks a request as held by an attempt of this process; false if it is already.
    fn hold(&self, request_id: &str) -> bool {
        self.holding().insert(request_id.to_string())
    }

    fn is_held(&self, request_id: &str) -> bool {
        self.holding().contains(request_id)
    }

    fn let_go(&self, request_id: &str) {
        self.holding().remove(request_id);
    }

    /// The set is plain data: one left by a panicking holder is still consistent.
    fn holding(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.holding.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the store for the lease, within a bound: a store cut off mid-query must not
    /// hold a consumer (or a stop) for as long as TCP takes to notice.
    async fn acquire(&self, lease: &LeaseRequest) -> anyhow::Result<Acquire> {
        tokio::time::timeout(STORE_CALL_LIMIT, self.semaphore.acquire(lease))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the store did not answer in time")))
    }

    /// `acquire` for requests claimed together, within the same bound.
    async fn acquire_all(&self, leases: &[LeaseRequest]) -> Vec<anyhow::Result<Acquire>> {
        match tokio::time::timeout(STORE_CALL_LIMIT, self.semaphore.acquire_all(leases)).await {
            Ok(answers) => answers,
            Err(_) => leases
                .iter()
                .map(|_| Err(anyhow::anyhow!("the store did not answer in time")))
                .collect(),
        }
    }

    /// The request in a message, unless it is too large or not a work request: those are
    /// refused unread.
    fn read(&self, kind: &str, msg: &bus::Message) -> Option<WorkRequest> {
        let refused =
            |reason, detail| self.refused(kind, &msg.topic, None, &Refused { reason, detail });
        if msg.payload.len() > MAX_REQUEST_BYTES {
            refused(
                Reason::Oversized,
                format!(
                    "{} bytes, over the {MAX_REQUEST_BYTES}-byte limit",
                    msg.payload.len()
                ),
            );
            return None;
        }
        match serde_json::from_slice::<WorkRequest>(&msg.payload) {
            Ok(req) => Some(req),
            Err(e) => {
                refused(Reason::Malformed, format!("not a work request: {e}"));
                None
            }
        }
    }

    /// Checks requests (each with the topic it came from) against the store, in one
    /// query. For each, `None`: nothing to run (it ended, or it was refused and that is
    /// told); `Some`: the attempt as stored, which is what runs.
    async fn admit(
        &self,
        kind: &str,
        claimed: &[(&str, WorkRequest)],
    ) -> anyhow::Result<Vec<Option<WorkRequest>>> {
        let asked = Instant::now();
        let keys: Vec<(RunId, &str, &str)> = claimed
            .iter()
            .map(|(_, c)| (c.run_id, c.stage.as_str(), c.id.as_str()))
            .collect();
        let stored =
            tokio::time::timeout(STORE_CALL_LIMIT, self.semaphore.store().stored_works(&keys))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the store did not answer in time")))?;
        if let Some(log) = &self.check_log {
            let took = u32::try_from(asked.elapsed().as_micros()).unwrap_or(u32::MAX);
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(std::iter::repeat_n(took, claimed.len()));
        }
        let mut admitted = Vec::with_capacity(claimed.len());
        for ((topic, claimed), stored) in claimed.iter().zip(stored) {
            admitted.push(match admission::judge(claimed, kind, stored) {
                Verdict::Admit(req) => Some(req),
                Verdict::Ended => {
                    tracing::debug!(request = %claimed.id, "Skipping work: it has ended.");
                    None
                }
                Verdict::Refuse(why) => {
                    self.refused(kind, topic, Some(claimed), &why);
                    if why.reason != Reason::UnknownRun {
                        self.note_refusal(kind, topic, claimed, &why).await;
                    }
                    None
                }
            });
        }
        Ok(admitted)
    }

    /// Says that a request was refused: in the log and in the metric.
    fn refused(&self, kind: &str, topic: &str, claimed: Option<&WorkRequest>, why: &Refused) {
        let (run, stage, agent, attempt) = match claimed {
            Some(c) => (
                c.run_id.to_string(),
                admission::clip(&c.stage),
                admission::clip(&c.agent),
                c.attempt,
            ),
            None => (String::new(), "", "", 0),
        };
        tracing::warn!(
            topic,
            run,
            stage,
            agent,
            attempt,
            reason = why.reason.as_str(),
            "Refused a work request, and ran nothing: {}",
            why.detail
        );
        self.metrics.work_refused(kind, why.reason.as_str());
    }

    /// Puts a refusal in the audit of the run it claimed, once per run and reason in this
    /// process: a flood of forged messages is told once, not written once each.
    async fn note_refusal(&self, kind: &str, topic: &str, claimed: &WorkRequest, why: &Refused) {
        let key = (claimed.run_id, why.reason);
        {
            let mut noted = self
                .refusals_noted
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if noted.len() >= MAX_REFUSALS_NOTED {
                noted.clear();
            }
            if !noted.insert(key) {
                return;
            }
        }
        let audit = Audit {
            at: self.clock.now_ms(),
            actor: Actor::Agent(self.instance.clone()),
            kind: EventKind::WorkRefused,
            stage: (why.reason != Reason::UnknownStage).then(|| claimed.stage.clone()),
            attempt: Some(claimed.attempt),
            message: Some(format!(
                "the {kind} agent refused a request from {topic} and ran nothing: {}",
                why.detail
            )),
        };
        let write = self
            .semaphore
            .store()
            .audit_refused_work(claimed.run_id, audit);
        match tokio::time::timeout(STORE_CALL_LIMIT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, run = %claimed.run_id, "Could not audit a refused work request.")
            }
            Err(_) => {
                tracing::warn!(run = %claimed.run_id, "Could not audit a refused work request: the store did not answer in time.")
            }
        }
    }

    /// The first try for the leases of requests fetched together (each with the topic it
    /// came from), made before their messages are committed: once it returns, each request
    /// is either held in the store, known to be done, or waiting on another holder. Those
    /// with nothing to do are left out.
    async fn claim(
        &self,
        kind: &str,
        claimed: Vec<(&str, WorkRequest)>,
    ) -> Vec<(WorkRequest, Claim)> {
        let now = self.clock.now_ms();
        let claimed: Vec<(&str, WorkRequest)> = claimed
            .into_iter()
            .filter(|(_, c)| {
                // How a replay of old requests ends, without a store read each; a request
                // that says it is late runs nothing, whoever sent it.
                let late = now >= c.deadline;
                if late {
                    tracing::debug!(request = %c.id, "Skipping work: past its deadline.");
                }
                !late
            })
            .collect();
        if claimed.is_empty() {
            return Vec::new();
        }
        let admitted = match self.admit(kind, &claimed).await {
            Ok(admitted) => admitted,
            Err(e) => {
                tracing::warn!(error = %e, count = claimed.len(), "Could not check work requests against the store; trying again.");
                return claimed
                    .into_iter()
                    .map(|(_, c)| (c, Claim::Unchecked))
                    .collect();
            }
        };
        let now = self.clock.now_ms();
        let reqs: Vec<WorkRequest> = admitted
            .into_iter()
            .flatten()
            .filter(|req| {
                let late = now >= req.deadline;
                if late {
                    tracing::debug!(request = %req.id, "Skipping work: past its stored deadline.");
                }
                !late
            })
            .collect();
        let leases: Vec<LeaseRequest> = reqs.iter().map(|r| self.lease_for(r)).collect();
        let asked = Instant::now();
        let answers = self.acquire_all(&leases).await;
        // In order: of a request fetched twice, the first copy holds it and the second
        // finds it held.
        reqs.into_iter()
            .zip(answers)
            .filter_map(|(req, answer)| {
                let claim = match answer {
                    Ok(Acquire::Acquired) => {
                        self.hold(&req.id);
                        Claim::Held(asked)
                    }
                    Ok(Acquire::Ended(kind)) => {
                        tracing::debug!(request = %req.id, outcome = kind.as_str(), "Skipping work: it has ended.");
                        return None;
                    }
                    Ok(Acquire::InProgress { holder })
                        if holder != self.instance || self.is_held(&req.id) =>
                    {
                        tracing::debug!(request = %req.id, %holder, "Skipping work: it is in hand.");
                        return None;
                    }
                    Ok(Acquire::OverBudget { budget, .. }) => {
                        Claim::Waiting(Some(BudgetWait::new(&req.budgets, &budget, asked)))
                    }
                    // Busy, or held under this process's name by a try whose answer was lost.
                    Ok(Acquire::Busy { .. } | Acquire::InProgress { .. }) => Claim::Waiting(None),
                    Err(e) => {
                        tracing::warn!(error = %e, request = %req.id, "Lease acquisition failed; retrying.");
                        Claim::Waiting(None)
                    }
                };
                Some((req, claim))
            })
            .collect()
    }

    /// Checks again, until the store answers, a request that could not be checked when it
    /// came. `None`: nothing to run (refused, ended, the claimed deadline passed, or a stop).
    async fn check_later(&self, kind: &str, claimed: WorkRequest) -> Option<WorkRequest> {
        let topic = bus::work_topic(kind);
        loop {
            tokio::time::sleep(BUSY_RETRY).await;
            // The claimed deadline only ever ends the wait: giving up runs nothing.
            if self.clock.now_ms() >= claimed.deadline || self.shutdown.is_cancelled() {
                return None;
            }
            match self.admit(kind, &[(&topic, claimed.clone())]).await {
                Ok(mut found) => {
                    return found
                        .pop()
                        .flatten()
                        .filter(|req| self.clock.now_ms() < req.deadline);
                }
                Err(e) => {
                    tracing::warn!(error = %e, request = %claimed.id, "Could not check a work request against the store; trying again.")
                }
            }
        }
    }

    /// Waits while another request holds the resource, or a budget has no slot free;
    /// returns when the lease was taken. `None`: give up (deadline, shutdown, or the
    /// request ended meanwhile). A wait for a budget is not held to the attempt's deadline:
    /// the agent tells the orchestrator it waits, which holds the deadline off, and the
    /// work gets the stage's whole timeout once it begins.
    async fn wait_for_lease(
        &self,
        work: &mut Work,
        lease: &LeaseRequest,
        mut budget: Option<BudgetWait>,
    ) -> Option<Instant> {
        let mut said_waiting = false;
        loop {
            match &budget {
                None => tokio::time::sleep(BUSY_RETRY).await,
                Some(wait) => {
                    let freed = self.semaphore.freed_signal(&wait.key);
                    tokio::select! {
                        _ = freed.notified() => {}
                        _ = tokio::time::sleep(BUDGET_RETRY) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                }
            }
            let late = budget.is_none() && self.clock.now_ms() >= work.request.deadline;
            if late || self.shutdown.is_cancelled() {
                return None; // the orchestrator times the attempt out
            }
            if let Some(wait) = &mut budget
                && self.still_full(work, lease, wait).await
            {
                continue;
            }
            let asked = Instant::now();
            match self.acquire(lease).await {
                Ok(Acquire::Acquired) => {
                    self.hold(&lease.request_id);
                    if let Some(wait) = &budget {
                        work.waited_for_budget(wait.since.elapsed());
                    }
                    return Some(asked);
                }
                // Taken by an earlier try whose answer was lost (and run by no attempt
                // here): renewing it says since when it is good.
                Ok(Acquire::InProgress { holder })
                    if holder == self.instance && self.hold(&lease.request_id) =>
                {
                    let asked = Instant::now();
                    if let Ok(true) = self.semaphore.heartbeat(&lease.request_id, &holder).await {
                        if let Some(wait) = &budget {
                            work.waited_for_budget(wait.since.elapsed());
                        }
                        return Some(asked);
                    }
                    self.let_go(&lease.request_id);
                }
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
                Ok(Acquire::OverBudget {
                    budget: name,
                    held,
                    limit,
                }) => {
                    let now = Instant::now();
                    let wait =
                        budget.get_or_insert_with(|| BudgetWait::new(&lease.budgets, &name, now));
                    // Another of the stage's budgets may be the one full now.
                    wait.key = budget_key(&lease.budgets, &name);
                    if wait.told.is_none_or(|t| now >= t + WAITING_TOLD_EVERY) {
                        wait.told = Some(now);
                        work.publish(
                            ProgressKind::Waiting,
                            format!("{WAITING_FOR_BUDGET} ({name} {held}/{limit})"),
                            None,
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, request = %lease.request_id, "Lease acquisition failed; retrying.")
                }
            }
        }
    }

    /// Whether the budgets of a stage waiting for one are still full, by a read: most
    /// looks find them full, and a try for the lease is a write. While full, the wait is
    /// told again as often as the orchestrator needs to hear it, and noted again in the
    /// store, which is what makes it believed. A store that does not answer is asked by
    /// the try itself.
    async fn still_full(&self, work: &Work, lease: &LeaseRequest, wait: &mut BudgetWait) -> bool {
        let store = self.semaphore.store();
        let full = tokio::time::timeout(STORE_CALL_LIMIT, store.budget_full(&lease.budgets)).await;
        let Ok(Ok(Some((budget, held)))) = full else {
            return false;
        };
        let now = Instant::now();
        wait.key = budget.key.clone();
        if wait.told.is_none_or(|t| now >= t + WAITING_TOLD_EVERY) {
            // A request that ended meanwhile (revoked: the run cancelled, the attempt timed
            // out) is let go by the try, which finds it ended.
            let ids = [lease.request_id.as_str()];
            let ended = self.semaphore.outcomes(&ids);
            if let Ok(Ok(found)) = tokio::time::timeout(STORE_CALL_LIMIT, ended).await
                && !found.is_empty()
            {
                return false;
            }
            wait.told = Some(now);
            if let Err(e) = store.still_waiting(lease, budget).await {
                tracing::warn!(error = %e, request = %lease.request_id, "Could not note a wait for a budget.");
            }
            work.publish(
                ProgressKind::Waiting,
                format!(
                    "{WAITING_FOR_BUDGET} ({} {held}/{})",
                    budget.name(),
                    budget.limit
                ),
                None,
            );
        }
        true
    }

    async fn handle(&self, agent: Arc<dyn Runner>, req: WorkRequest, claim: Claim) {
        let (req, claim) = match claim {
            Claim::Unchecked => match self.check_later(agent.kind(), req).await {
                Some(req) => (req, Claim::Waiting(None)),
                None => return,
            },
            claim => (req, claim),
        };
        let cancel = CancellationToken::new();
        let mut work = Work::new(
            req,
            cancel.clone(),
            self.bus.clone(),
            self.instance.clone(),
            self.clock.clone(),
        );
        let lease = self.lease_for(&work.request);
        let since = match claim {
            Claim::Held(since) => Some(since),
            Claim::Waiting(budget) => self.wait_for_lease(&mut work, &lease, budget).await,
            Claim::Unchecked => self.wait_for_lease(&mut work, &lease, None).await,
        };
        if let Some(since) = since {
            let budgets = lease.budgets.clone();
            self.attempt(agent, &work, lease, since).await;
            // Whatever ended the attempt gave its slots back (or will, by expiry): a stage
            // of this process waiting for one of them tries now.
            self.semaphore.freed(&budgets);
        }
        cancel.cancel();
        // What the attempt had to say leaves before its task ends; a broker that is away
        // does not hold a stop up for long (the outcome is in the store already).
        work.flush(FLUSH_WAIT).await;
    }

    async fn attempt(
        &self,
        agent: Arc<dyn Runner>,
        work: &Work,
        lease: LeaseRequest,
        since: Instant,
    ) {
        let _holding = Holding(self, &lease.request_id);
        if self.shutdown.is_cancelled() {
            // Claimed as the stop came: hand it straight back rather than start.
            let why = "the agent is stopping; another agent will run it";
            if let Ok(Some(_)) = self
                .release(&lease.request_id, OutcomeKind::Failed, true, why, None)
                .await
            {
                work.publish(ProgressKind::Failed, why.into(), Some(true));
            }
            return;
        }
        let mut heartbeat = tokio::spawn(heartbeat(
            self.semaphore.clone(),
            lease.request_id.clone(),
            self.instance.clone(),
            since,
        ));
        work.begin(format!(
            "{} started attempt {}",
            agent.kind(),
            work.request.attempt
        ));
        let tell_start = async {
            tokio::time::sleep(START_TOLD_AFTER).await;
            work.tell_start();
            std::future::pending::<std::convert::Infallible>().await
        };

        let until_deadline = work.time_left();
        // A panic in an agent ends its attempt like any failure: the lease is released and
        // the heartbeat stopped, rather than the stage held until someone notices.
        let execute = std::panic::AssertUnwindSafe(agent.execute(work)).catch_unwind();
        let result = tokio::select! {
            r = execute => Ok(r.unwrap_or_else(|panic| Err(panicked(agent.kind(), panic.as_ref(), work)))),
            lost = &mut heartbeat => Err(lost.unwrap_or(Lost::TakenBack)),
            _ = tokio::time::sleep(until_deadline) => Ok(Err(Failure::retryable("deadline passed"))),
            _ = self.grace_over() => Ok(Err(Failure::retryable("the agent was stopped; another agent will retry"))),
            never = tell_start => match never {},
        };
        heartbeat.abort();
        let result = match result {
            Ok(result) => result,
            Err(lost) => {
                // Work stopped for want of renewal is handed back as soon as the store
                // answers, so the retry need not wait for the lease to expire.
                if lost == Lost::Unrenewed {
                    let _ = self
                        .release(
                            &lease.request_id,
                            OutcomeKind::Failed,
                            true,
                            lost.message(),
                            work.report(),
                        )
                        .await;
                }
                work.publish(ProgressKind::Failed, lost.message().into(), Some(true));
                return;
            }
        };
        let (kind, retryable, message) = match result {
            Ok(m) => (OutcomeKind::Succeeded, false, work.scrub(&m)),
            Err(f) if f.held => (OutcomeKind::Held, false, work.scrub(&f.message)),
            Err(f) => (OutcomeKind::Failed, f.retryable, work.scrub(&f.message)),
        };
        match self
            .release(&lease.request_id, kind, retryable, &message, work.report())
            .await
        {
            Ok(Some(_)) => {
                let pk = match kind {
                    OutcomeKind::Succeeded => ProgressKind::Succeeded,
                    OutcomeKind::Held => ProgressKind::Held,
                    _ => ProgressKind::Failed,
                };
                work.publish(
                    pk,
                    message,
                    (kind == OutcomeKind::Failed).then_some(retryable),
                );
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
    /// A process told to stop gives up when its grace period ends; the lease then expires
    /// as a dead agent's would.
    async fn release(
        &self,
        request_id: &str,
        kind: OutcomeKind,
        retryable: bool,
        message: &str,
        report: Option<Report>,
    ) -> anyhow::Result<Option<LeaseOutcome>> {
        let stopping = self.grace_over();
        tokio::pin!(stopping);
        let mut wait = BUSY_RETRY;
        let mut tried = false;
        loop {
            let release = self.semaphore.release(Release {
                request_id,
                holder: &self.instance,
                kind,
                retryable,
                message: Some(message.to_string()),
                report: report.clone(),
            });
            let release = async {
                tokio::time::timeout(STORE_CALL_LIMIT, release)
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the store did not answer in time")))
            };
            // The first try is not cut short by a stop: a stopping agent releases its work
            // when the grace period ends, which is when this runs.
            let released = if tried {
                tokio::select! {
                    released = release => released,
                    _ = &mut stopping => anyhow::bail!("stopped before the outcome could be recorded"),
                }
            } else {
                release.await
            };
            let error = match released {
                // A try whose commit landed but whose answer was lost leaves no lease behind:
                // the outcome then says whether it was this one.
                Ok(None) if tried => {
                    return self.semaphore.released_by(request_id, &self.instance).await;
                }
                Err(e) => e,
                released => return released,
            };
            tried = true;
            tracing::warn!(error = %error, request = %request_id, retry_in = ?wait, "Release failed; trying again.");
            tokio::select! {
                _ = tokio::time::sleep(wait) => wait = (wait * 2).min(MAX_RELEASE_WAIT),
                _ = &mut stopping => return Err(error),
            }
        }
    }
}

/// This process's hold on a request, let go when the attempt ends however it ends.
struct Holding<'a>(&'a Runtime, &'a str);

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.let_go(self.1);
    }
}

/// A stage's wait for a budget: which, since when, and when the orchestrator was last told.
struct BudgetWait {
    key: String,
    since: Instant,
    told: Option<Instant>,
}

impl BudgetWait {
    /// A wait, since `since`, for the budget of `budgets` that the store called `name`.
    fn new(budgets: &[Budget], name: &str, since: Instant) -> BudgetWait {
        BudgetWait {
            key: budget_key(budgets, name),
            since,
            told: None,
        }
    }
}

/// The key of the budget of `budgets` that the store called `name`.
fn budget_key(budgets: &[Budget], name: &str) -> String {
    budgets
        .iter()
        .find(|b| b.name() == name)
        .map_or_else(|| name.to_string(), |b| b.key.clone())
}

/// How a first try for a lease ended, when there is work to do.
enum Claim {
    /// Held; the lease was taken no earlier than this.
    Held(Instant),
    /// Another request holds the resource, a budget is full (the wait for it, begun), or
    /// the store did not answer: wait and see.
    Waiting(Option<BudgetWait>),
    /// The store could not be asked whether the request is one it holds: ask again before
    /// anything else.
    Unchecked,
}

/// Why work stopped before it finished: its lease is no longer its own.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lost {
    /// Expired or revoked.
    TakenBack,
    /// Not renewed for so long that the expiry sweep may soon give the stage to another agent.
    Unrenewed,
}

impl Lost {
    fn message(self) -> &'static str {
        match self {
            Lost::TakenBack => "stopped: the lease was taken back",
            Lost::Unrenewed => {
                "stopped: the lease could not be renewed (store unreachable); the stage will be retried"
            }
        }
    }
}

/// Keeps a lease alive while its work runs, and returns when the work must stop. An agent
/// cut off from the store cannot tell that from a store outage, and working on without a
/// lease could run one stage twice at once. `since`: when the lease was last known good
/// (taken before the store was asked, so that the margin errs early).
async fn heartbeat(
    semaphore: Semaphore,
    request_id: String,
    holder: String,
    since: Instant,
) -> Lost {
    let mut renewed = since;
    let mut next = since + HEARTBEAT_EVERY;
    loop {
        let give_up = renewed + (LEASE_TTL - RENEWAL_MARGIN);
        tokio::time::sleep_until(next.min(give_up)).await;
        let asked = Instant::now();
        if asked >= give_up {
            return Lost::Unrenewed;
        }
        // A renewal that hangs is tried again soon, rather than left to eat the margin.
        let limit = (asked + HEARTBEAT_CALL_LIMIT).min(give_up);
        match tokio::time::timeout_at(limit, semaphore.heartbeat(&request_id, &holder)).await {
            Err(_) if limit >= give_up => return Lost::Unrenewed,
            Err(_) => {
                tracing::warn!(request = %request_id, "Heartbeat got no answer; trying again.");
                next = Instant::now() + HEARTBEAT_RETRY;
            }
            Ok(Ok(true)) => {
                renewed = asked;
                next = asked + HEARTBEAT_EVERY;
            }
            Ok(Ok(false)) => return Lost::TakenBack,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, request = %request_id, "Heartbeat failed; trying again.");
                next = Instant::now() + HEARTBEAT_RETRY;
            }
        }
    }
}

/// A panic's message as a permanent failure: a bug, which trying again will not fix. The
/// message may quote the spec, so it is scrubbed before it is logged.
fn panicked(kind: &str, panic: &(dyn std::any::Any + Send), work: &Work) -> Failure {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    let what = work.scrub(&what);
    tracing::error!(agent = kind, panic = %what, "An agent panicked.");
    Failure::permanent(format!("the {kind} agent failed unexpectedly: {what}"))
}
