//! The desk: every alert received is filed here, with what it did, in one transaction per
//! batch, and the sender is answered once that transaction is committed.
//!
//! One task files alerts in arrival order, so two alerts for one group can never both
//! start a run; what arrives while a batch is filed waits and goes in the next, which is
//! how a storm is taken in bulk. An alert does, in order of precedence:
//! - a re-send of one filed before: counted, nothing more (unless it was held back);
//! - a resolve: recorded; it withdraws an open offer once every alert behind it resolved;
//! - a firing alert that fits no route, or names no known group: recorded as such;
//! - the group has an active run, or a live offer, of the route's action: joins it;
//! - the route started a run for the group (or a person said no) within its `cooldown`:
//!   recorded as such;
//! - the route's rate limit is spent: held back, and a re-send is decided again;
//! - else it opens an offer: started at once (`auto`), or asked about in chat.
//!
//! The rules themselves are pure and tested on their own: `triage` sorts an alert and says
//! when a resolve withdraws, `firing` decides a firing alert. The desk does the reads and
//! writes around them.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;

use std::sync::Mutex;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{mpsc, oneshot};

use super::firing::{self, Live, Step};
use super::offers::Offers;
use super::routing;
use super::triage::{Triage, triage, withdraws};
use crate::bus::{Bus, Envelope, RunEvent};
use crate::domain::{Actor, Alert, AlertDecision, EventKind, Offer, OfferMode, RunId, Status};
use crate::metrics::Metrics;
use crate::orchestrator::Orchestrator;
use crate::store::{AlertTx, Filing, Store};
use crate::workflow::{Action, Route};

/// Most alerts filed in one transaction.
const MOST: usize = 2000;

/// What became of one alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    pub decision: AlertDecision,
    /// A re-send of an alert filed before.
    pub repeat: bool,
    pub route: Option<String>,
    pub group: Option<String>,
    pub detail: Option<String>,
    pub run: Option<RunId>,
    pub offer: Option<RunId>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The store did not take the alerts: the sender should try again.
    #[error("alerts could not be recorded: {0}")]
    Unavailable(String),
    #[error("Lifeboat is shutting down")]
    Closed,
}

struct Job {
    alerts: Vec<Alert>,
    reply: oneshot::Sender<Result<Vec<Receipt>, DeskError>>,
}

/// Where alerts are handed in.
#[derive(Clone)]
pub struct Desk {
    tx: mpsc::Sender<Job>,
}

impl Desk {
    /// Files `alerts` and says what each did, once that is durable.
    pub async fn file(&self, alerts: Vec<Alert>) -> Result<Vec<Receipt>, DeskError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { alerts, reply })
            .await
            .map_err(|_| DeskError::Closed)?;
        rx.await.map_err(|_| DeskError::Closed)?
    }
}

pub struct DeskTask {
    rx: mpsc::Receiver<Job>,
    store: Store,
    orchestrator: Orchestrator,
    offers: Offers,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    /// Each route's `starts_per_minute`: a storm across many groups is held back rather
    /// than failing the whole estate over.
    limiters: Mutex<HashMap<String, (u32, DefaultDirectRateLimiter)>>,
}

/// Rows held back to be filed many to a statement.
const FLUSH_AT: usize = 500;

/// A batch being filed: new alerts waiting for their insert, re-sends to count, and what
/// each alert did, in arrival order.
struct Batch<'a> {
    live: HashMap<(String, Action), Live>,
    pending: Vec<(usize, Filing<'a>)>,
    repeats: HashMap<i64, i64>,
    receipts: Vec<Receipt>,
}

impl Batch<'_> {
    /// Files the pending alerts. One whose key turns out to be filed already (earlier in
    /// this batch, or by another replica a moment ago) is counted as a re-send instead.
    async fn flush(&mut self, tx: &mut AlertTx) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let filings: Vec<Filing> = self.pending.iter().map(|(_, f)| f.clone()).collect();
        let mut inserted: HashSet<(String, String)> =
            tx.insert(&filings).await?.into_iter().collect();
        for (i, f) in std::mem::take(&mut self.pending) {
            let key = (
                f.alert.source.as_str().to_string(),
                f.alert.dedupe_key.clone(),
            );
            if inserted.remove(&key) {
                continue;
            }
            if let Some((id, decision)) = tx.previous(f.alert).await? {
                *self.repeats.entry(id).or_default() += 1;
                self.receipts[i] = repeat(decision);
            }
        }
        Ok(())
    }
}

fn repeat(decision: AlertDecision) -> Receipt {
    Receipt {
        decision,
        repeat: true,
        route: None,
        group: None,
        detail: None,
        run: None,
        offer: None,
    }
}

/// What a committed batch leaves to do.
#[derive(Default)]
struct After {
    /// Offers to start now (`auto`).
    start: Vec<Offer>,
    /// Offers opened or withdrawn, for chat.
    moved: Vec<RunId>,
    /// Runs alerts joined, and their group and action, for their cards' counts.
    joined: HashMap<RunId, (String, Action)>,
}

impl DeskTask {
    pub fn new(
        store: Store,
        orchestrator: Orchestrator,
        offers: Offers,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
    ) -> (Desk, DeskTask) {
        let (tx, rx) = mpsc::channel(4096);
        (
            Desk { tx },
            DeskTask {
                rx,
                store,
                orchestrator,
                offers,
                bus,
                metrics,
                limiters: Mutex::new(HashMap::new()),
            },
        )
    }

    /// Files batches until every `Desk` is dropped.
    pub async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let mut jobs = vec![first];
            let mut count = jobs[0].alerts.len();
            while count < MOST {
                match self.rx.try_recv() {
                    Ok(job) => {
                        count += job.alerts.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            let mut after = After::default();
            match self.file_batch(&jobs, &mut after).await {
                Ok(receipts) => {
                    for (job, receipts) in jobs.into_iter().zip(receipts) {
                        let _ = job.reply.send(Ok(receipts));
                    }
                    self.carry_out(after).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "Could not record alerts; their senders are told to retry.");
                    for job in jobs {
                        let _ = job.reply.send(Err(DeskError::Unavailable(e.to_string())));
                    }
                }
            }
        }
    }

    async fn file_batch(
        &self,
        jobs: &[Job],
        after: &mut After,
    ) -> anyhow::Result<Vec<Vec<Receipt>>> {
        let alerts: Vec<&Alert> = jobs.iter().flat_map(|j| &j.alerts).collect();
        let mut tx = self.store.alert_tx().await?;
        let filed = tx.filed(&alerts).await?;
        let mut b = Batch {
            live: HashMap::new(),
            pending: Vec::new(),
            repeats: HashMap::new(),
            receipts: Vec::with_capacity(alerts.len()),
        };
        for &alert in &alerts {
            let previous = filed
                .get(&(alert.source.as_str().to_string(), alert.dedupe_key.clone()))
                .copied();
            match previous {
                Some((id, decision)) if decision.settles() => {
                    *b.repeats.entry(id).or_default() += 1;
                    b.receipts.push(repeat(decision));
                }
                _ => {
                    // What a resolve does depends on the alerts filed before it.
                    if alert.status == Status::Resolved {
                        b.flush(&mut tx).await?;
                    }
                    let f = self.decide(&mut tx, alert, &mut b.live, after).await?;
                    b.receipts.push(receipt(&f));
                    match previous {
                        // Held back before: decided again now.
                        Some((id, _)) => tx.redecide(id, &f).await?,
                        None => {
                            b.pending.push((b.receipts.len() - 1, f));
                            if b.pending.len() >= FLUSH_AT {
                                b.flush(&mut tx).await?;
                            }
                        }
                    }
                }
            }
        }
        b.flush(&mut tx).await?;
        tx.add_repeats(&b.repeats).await?;
        tx.commit().await?;
        for (alert, r) in alerts.iter().zip(&b.receipts) {
            self.metrics.alert_filed(
                alert.source.as_str(),
                r.route.as_deref().unwrap_or(""),
                r.decision,
                r.repeat,
            );
        }
        let mut receipts = b.receipts.into_iter();
        Ok(jobs
            .iter()
            .map(|j| receipts.by_ref().take(j.alerts.len()).collect())
            .collect())
    }

    /// What an alert not filed before does; its side effects (an offer opened or
    /// withdrawn) are written in `tx`, its own row is left to the caller.
    async fn decide<'a>(
        &self,
        tx: &mut AlertTx,
        alert: &'a Alert,
        live: &mut HashMap<(String, Action), Live>,
        after: &mut After,
    ) -> anyhow::Result<Filing<'a>> {
        let catalog = self.orchestrator.catalog();
        let route = routing::route(&catalog.routes, alert);
        let group = route.map(|r| routing::group_of(r, alert, &catalog.groups));
        let mut f = Filing {
            alert,
            route: None,
            group: None,
            action: route.map(|r| r.action),
            decision: AlertDecision::Ignored,
            detail: None,
            offer: None,
            run: None,
        };
        f.route = route.map(|r| r.name.clone());
        f.group = group.as_ref().and_then(|g| g.as_ref().ok()).cloned();
        match triage(alert, route, group) {
            Triage::Settled(decision, detail) => {
                f.decision = decision;
                f.detail = detail;
            }
            Triage::Resolve => {
                f.decision = AlertDecision::Resolved;
                if let Some(offer) = tx.offers_firing(alert).await?.first().copied() {
                    f.offer = Some(offer);
                    let others = tx.still_firing_besides(offer, alert).await?;
                    if let Some(offer) = withdraws(Some(offer), others)
                        && tx.withdraw(offer).await?
                    {
                        f.decision = AlertDecision::Withdrew;
                        after.moved.push(offer);
                    }
                }
            }
            Triage::Firing { route, group } => {
                self.decide_firing(tx, alert, route, &group, live, after, &mut f)
                    .await?;
            }
        }
        Ok(f)
    }

    #[allow(clippy::too_many_arguments)]
    async fn decide_firing(
        &self,
        tx: &mut AlertTx,
        alert: &Alert,
        route: &Route,
        group: &str,
        live: &mut HashMap<(String, Action), Live>,
        after: &mut After,
        f: &mut Filing<'_>,
    ) -> anyhow::Result<()> {
        let key = (group.to_string(), route.action);
        let state = match live.get(&key) {
            Some(s) => s.clone(),
            None => {
                let s = if let Some(run) = tx.active_run(group, route.action).await? {
                    Live::Run(run)
                } else if let Some(offer) = tx.live_offer(group, route.action).await? {
                    Live::Offer(offer)
                } else {
                    Live::Nothing
                };
                live.insert(key.clone(), s.clone());
                s
            }
        };
        let last = match firing::needs_last_start(&state, route) {
            Some(known) => known,
            None => tx.last_start(&route.name, group).await?,
        };
        let step = firing::step(alert, route, group, &state, last, tx.now, || {
            self.may_start(route)
        });
        match step {
            Step::JoinRun(run) => {
                f.decision = AlertDecision::Joined;
                f.run = Some(run);
                after.joined.insert(run, (group.to_string(), route.action));
            }
            Step::JoinOffer(offer) => {
                f.decision = AlertDecision::Joined;
                f.offer = Some(offer);
            }
            Step::Cooldown { since, detail } => {
                live.insert(
                    key,
                    Live::Cooling {
                        route: route.name.clone(),
                        since,
                    },
                );
                f.decision = AlertDecision::Cooldown;
                f.detail = Some(detail);
            }
            Step::Held { detail } => {
                f.decision = AlertDecision::Held;
                f.detail = Some(detail);
            }
            Step::Open(offer) => {
                if tx.open_offer(&offer).await? {
                    let auto = offer.mode == OfferMode::Auto;
                    f.decision = if auto {
                        AlertDecision::Started
                    } else {
                        AlertDecision::Offered
                    };
                    f.offer = Some(offer.id);
                    live.insert(key, Live::Offer(offer.id));
                    after.moved.push(offer.id);
                    if auto {
                        after.start.push(*offer);
                    }
                } else {
                    // Another replica opened one a moment ago: join it.
                    f.decision = AlertDecision::Joined;
                    f.offer = tx.live_offer(group, route.action).await?;
                }
            }
        }
        Ok(())
    }

    /// Whether the route may open one more run or offer now.
    fn may_start(&self, route: &Route) -> bool {
        let Ok(mut limiters) = self.limiters.lock() else {
            return true;
        };
        let per_minute = route.starts_per_minute;
        let fresh = || {
            let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
            (per_minute, RateLimiter::direct(Quota::per_minute(n)))
        };
        let entry = limiters.entry(route.name.clone()).or_insert_with(fresh);
        // Workflows reloaded with another limit start afresh.
        if entry.0 != per_minute {
            *entry = fresh();
        }
        entry.1.check().is_ok()
    }

    /// What a committed batch leaves: start `auto` runs, tell chat of offers, and have the
    /// cards of runs that alerts joined count them.
    async fn carry_out(&self, after: After) {
        for offer in after.start {
            let id = offer.id;
            if let Err(e) = self.offers.start(offer).await {
                tracing::warn!(offer = %id, error = %e, "Could not start an alert's run now; the next start of Lifeboat tries again.");
            }
        }
        for id in after.moved {
            self.offers.moved(id);
        }
        let now = self.store.clock().now_ms();
        for (run, (group, action)) in after.joined {
            let event = RunEvent {
                v: crate::bus::VERSION,
                id: String::new(),
                run_id: run,
                group,
                action,
                dry_run: false,
                kind: EventKind::AlertsJoined,
                stage: None,
                attempt: None,
                message: None,
                actor: Actor::System,
                at: now,
            };
            match Envelope::event(&event) {
                Ok(env) => {
                    if let Err(e) = self
                        .bus
                        .publish(&env.topic, &env.key, env.payload.into_bytes())
                        .await
                    {
                        tracing::warn!(run_id = %run, error = %e, "Could not tell the cards of more alerts.");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Could not write an alerts event."),
            }
        }
    }
}

fn receipt(f: &Filing<'_>) -> Receipt {
    Receipt {
        decision: f.decision,
        repeat: false,
        route: f.route.clone(),
        group: f.group.clone(),
        detail: f.detail.clone(),
        run: f.run,
        offer: f.offer,
    }
}
