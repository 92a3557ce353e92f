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

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{mpsc, oneshot};

use super::offers::Offers;
use super::routing;
use crate::bus::{Bus, Envelope, RunEvent};
use crate::domain::{
    Actor, Alert, AlertBrief, Decision, EventKind, Offer, OfferMode, OfferState, RunId, Status,
};
use crate::metrics::Metrics;
use crate::orchestrator::Orchestrator;
use crate::store::{AlertTx, Filing, Store};
use crate::workflow::{Action, Route, RouteMode};

/// Most alerts filed in one transaction.
const MOST: usize = 2000;
/// Runs or offers a route may open per minute, for all its groups: a storm across many
/// groups is held back rather than failing the whole estate over.
const STARTS_PER_MINUTE: u32 = 10;

/// What became of one alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    pub decision: Decision,
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

/// The state of a group's action as a batch sees it.
#[derive(Clone, Copy)]
enum Live {
    Run(RunId),
    Offer(RunId),
    Nothing,
}

pub struct DeskTask {
    rx: mpsc::Receiver<Job>,
    store: Store,
    orchestrator: Orchestrator,
    offers: Offers,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    limiter: DefaultKeyedRateLimiter<String>,
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
        let per_minute = NonZeroU32::new(STARTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        (
            Desk { tx },
            DeskTask {
                rx,
                store,
                orchestrator,
                offers,
                bus,
                metrics,
                limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
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
        let mut tx = self.store.alert_tx().await?;
        let mut live: HashMap<(String, Action), Live> = HashMap::new();
        let mut out = Vec::with_capacity(jobs.len());
        let mut counted = Vec::new();
        for job in jobs {
            let mut receipts = Vec::with_capacity(job.alerts.len());
            for alert in &job.alerts {
                let r = self.file_one(&mut tx, alert, &mut live, after).await?;
                counted.push((alert.source, r.route.clone(), r.decision, r.repeat));
                receipts.push(r);
            }
            out.push(receipts);
        }
        tx.commit().await?;
        for (source, route, decision, repeat) in counted {
            self.metrics.alert_filed(
                source.as_str(),
                route.as_deref().unwrap_or(""),
                decision,
                repeat,
            );
        }
        Ok(out)
    }

    async fn file_one(
        &self,
        tx: &mut AlertTx,
        alert: &Alert,
        live: &mut HashMap<(String, Action), Live>,
        after: &mut After,
    ) -> anyhow::Result<Receipt> {
        let previous = tx.previous(alert).await?;
        if let Some((id, decision)) = previous
            && decision.settles()
        {
            tx.repeat(id).await?;
            return Ok(Receipt {
                decision,
                repeat: true,
                route: None,
                group: None,
                detail: None,
                run: None,
                offer: None,
            });
        }
        let catalog = self.orchestrator.catalog();
        let route = routing::route(&catalog.routes, alert);
        let group = route.map(|r| routing::group_of(r, alert, &catalog.groups));
        let mut f = Filing {
            alert,
            route: route.map(|r| r.name.as_str()),
            group: group
                .as_ref()
                .and_then(|g| g.as_ref().ok())
                .map(String::as_str),
            action: route.map(|r| r.action),
            decision: Decision::Ignored,
            detail: None,
            offer: None,
            run: None,
        };
        match (&alert.status, route, &group) {
            (Status::Other(_), _, _) => f.decision = Decision::Ignored,
            (Status::Resolved, _, _) => {
                f.decision = Decision::Resolved;
                if let Some(offer) = tx.offers_firing(alert).await?.first().copied() {
                    f.offer = Some(offer);
                    if tx.still_firing_besides(offer, alert).await? == 0
                        && tx.withdraw(offer).await?
                    {
                        f.decision = Decision::Withdrew;
                        after.moved.push(offer);
                    }
                }
            }
            (Status::Firing, None, _) => f.decision = Decision::Unrouted,
            (Status::Firing, Some(_), Some(Err(why))) => {
                f.decision = Decision::NoGroup;
                f.detail = Some(why.clone());
            }
            (Status::Firing, Some(r), Some(Ok(g))) => {
                self.decide_firing(tx, alert, r, g, live, after, &mut f)
                    .await?;
            }
            (Status::Firing, Some(_), None) => f.decision = Decision::Unrouted,
        }
        self.file(tx, &f, previous).await?;
        Ok(receipt(&f))
    }

    /// Writes the alert's row: new, or the decision of one held back before.
    async fn file(
        &self,
        tx: &mut AlertTx,
        f: &Filing<'_>,
        previous: Option<(i64, Decision)>,
    ) -> anyhow::Result<()> {
        match previous {
            Some((id, _)) => tx.redecide(id, f).await,
            None => {
                if !tx.insert(f).await? {
                    // Another replica filed the same alert a moment ago.
                    if let Some((id, _)) = tx.previous(f.alert).await? {
                        tx.repeat(id).await?;
                    }
                }
                Ok(())
            }
        }
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
            Some(s) => *s,
            None => {
                let s = if let Some(run) = tx.active_run(group, route.action).await? {
                    Live::Run(run)
                } else if let Some(offer) = tx.live_offer(group, route.action).await? {
                    Live::Offer(offer)
                } else {
                    Live::Nothing
                };
                live.insert(key.clone(), s);
                s
            }
        };
        match state {
            Live::Run(run) => {
                f.decision = Decision::Joined;
                f.run = Some(run);
                after.joined.insert(run, (group.to_string(), route.action));
                return Ok(());
            }
            Live::Offer(offer) => {
                f.decision = Decision::Joined;
                f.offer = Some(offer);
                return Ok(());
            }
            Live::Nothing => {}
        }
        if let Some(last) = tx.last_start(&route.name, group).await?
            && tx.now - last < route.cooldown.as_millis() as i64
        {
            f.decision = Decision::Cooldown;
            f.detail = Some(format!(
                "route `{}` started or was refused a run of `{group}` {} ago; its cooldown is {}",
                route.name,
                crate::clock::short_duration(tx.now - last),
                humantime::format_duration(route.cooldown)
            ));
            return Ok(());
        }
        if self.limiter.check_key(&route.name).is_err() {
            f.decision = Decision::Held;
            f.detail = Some(format!(
                "route `{}` opened {STARTS_PER_MINUTE} runs or offers in the last minute",
                route.name
            ));
            return Ok(());
        }
        let (mode, state, deadline, decided) = match route.mode {
            RouteMode::Auto => (
                OfferMode::Auto,
                OfferState::Starting,
                None,
                Some((Actor::Alert(route.name.clone()), tx.now)),
            ),
            RouteMode::Confirm => (OfferMode::Confirm, OfferState::Open, None, None),
            RouteMode::Countdown(delay) => (
                OfferMode::Countdown,
                OfferState::Open,
                Some(tx.now + delay.as_millis() as i64),
                None,
            ),
        };
        let offer = Offer {
            id: RunId::new(),
            route: route.name.clone(),
            group: group.to_string(),
            action: route.action,
            mode,
            state,
            opened_at: tx.now,
            deadline,
            decided_by: decided.as_ref().map(|d| d.0.clone()),
            decided_at: decided.map(|d| d.1),
            run_id: None,
            message: None,
            alert: AlertBrief::from(alert),
        };
        if tx.open_offer(&offer).await? {
            f.decision = if mode == OfferMode::Auto {
                Decision::Started
            } else {
                Decision::Offered
            };
            f.offer = Some(offer.id);
            live.insert(key, Live::Offer(offer.id));
            after.moved.push(offer.id);
            if mode == OfferMode::Auto {
                after.start.push(offer);
            }
        } else {
            // Another replica opened one a moment ago: join it.
            f.decision = Decision::Joined;
            f.offer = tx.live_offer(group, route.action).await?;
        }
        Ok(())
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
        route: f.route.map(str::to_string),
        group: f.group.map(str::to_string),
        detail: f.detail.clone(),
        run: f.run,
        offer: f.offer,
    }
}
