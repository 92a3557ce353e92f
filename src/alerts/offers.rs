//! Offers once open: a person's word on them (approve or reject a confirmation, veto or
//! start a countdown now), the countdowns' clock, and the making of their runs.
//!
//! Every move is a conditional update of the stored offer (`open` to something else), so
//! whichever replica, button or deadline moves it first wins and the rest find it decided.
//! A countdown's deadline is stored: a restart resumes it. The run's id is the offer's, so
//! making it again after a crash finds the run made before.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use crate::clock::Clock;
use crate::domain::{Actor, Control, Offer, OfferMode, OfferState, RunId};
use crate::orchestrator::{CreateRunError, NewRun, Orchestrator};
use crate::store::{CreateError, Store};

/// How often the countdowns look at the store even when nothing woke them: offers
/// another replica opened.
const LOOK_AGAIN: Duration = Duration::from_secs(2);

/// The state a person's control moves an offer of `mode` to, or `None` when the control
/// is not for that kind of offer.
fn moves_to(control: &Control, mode: OfferMode) -> Option<OfferState> {
    match (control, mode) {
        (Control::Approve { .. }, OfferMode::Confirm)
        | (Control::StartNow, OfferMode::Countdown) => Some(OfferState::Starting),
        (Control::Reject { .. }, OfferMode::Confirm) => Some(OfferState::Rejected),
        (Control::Veto, OfferMode::Countdown) => Some(OfferState::Vetoed),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("no offer {0}")]
    NotFound(RunId),
    #[error("this offer is {0} already")]
    Decided(OfferState),
    #[error("a {mode} offer cannot be answered with {choice}")]
    Mismatch {
        mode: &'static str,
        choice: &'static str,
    },
    #[error("{0}")]
    Store(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct Offers {
    store: Store,
    orchestrator: Orchestrator,
    clock: Clock,
    /// Each offer that moved, for chat to show.
    changes: broadcast::Sender<RunId>,
    /// Wakes the countdowns when an offer opens here.
    wake: Arc<Notify>,
}

impl Offers {
    pub fn new(store: Store, orchestrator: Orchestrator, clock: Clock) -> Offers {
        let (changes, _) = broadcast::channel(1024);
        Offers {
            store,
            orchestrator,
            clock,
            changes,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Offers as they move (lagging subscribers miss some; chat looks at the store anyway).
    pub fn changes(&self) -> broadcast::Receiver<RunId> {
        self.changes.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Tells chat and the countdowns that an offer moved.
    pub(super) fn moved(&self, id: RunId) {
        let _ = self.changes.send(id);
        self.wake.notify_one();
    }

    pub async fn offer(&self, id: RunId) -> anyhow::Result<Option<Offer>> {
        self.store.offer(id).await
    }

    /// A person's word on an offer, once they are known to be allowed.
    pub async fn decide(
        &self,
        id: RunId,
        control: &Control,
        by: &Actor,
    ) -> Result<Offer, OfferError> {
        let offer = self
            .store
            .offer(id)
            .await?
            .ok_or(OfferError::NotFound(id))?;
        let Some(to) = moves_to(control, offer.mode) else {
            return Err(OfferError::Mismatch {
                mode: offer.mode.as_str(),
                choice: control.word(),
            });
        };
        let Some(moved) = self.store.decide_offer(id, to, by).await? else {
            let now = self
                .store
                .offer(id)
                .await?
                .ok_or(OfferError::NotFound(id))?;
            return Err(OfferError::Decided(now.state));
        };
        tracing::info!(offer = %id, by = %by, control = control.word(), "An offer was answered.");
        self.moved(id);
        if moved.state == OfferState::Starting {
            return Ok(self.start(moved).await?);
        }
        Ok(moved)
    }

    /// Makes a starting offer's run (or finds it made), and ends the offer with it. A
    /// store or shutdown failure leaves it starting, for the next try.
    pub async fn start(&self, offer: Offer) -> anyhow::Result<Offer> {
        let requested_by = offer
            .decided_by
            .clone()
            .unwrap_or_else(|| Actor::Alert(offer.route.clone()));
        let reason = match &offer.alert.summary {
            Some(s) => format!("alert {}: {s}", offer.alert.headline),
            None => format!("alert {}", offer.alert.headline),
        };
        let made = self
            .orchestrator
            .create(NewRun {
                group: offer.group.clone(),
                action: offer.action,
                dry_run: false,
                reason: Some(reason),
                params: Default::default(),
                requested_by,
                id: Some(offer.id),
                force: false,
            })
            .await;
        let (state, run, message) = match made {
            Ok(run) => (OfferState::Started, Some(run.id), None),
            Err(CreateRunError::Busy(CreateError::Busy { active, .. })) => (
                OfferState::Joined,
                Some(active),
                Some(format!("the group's run {active} was active already")),
            ),
            Err(CreateRunError::Plan(e)) => (OfferState::Failed, None, Some(e.to_string())),
            Err(CreateRunError::Unserved(why)) => (OfferState::Failed, None, Some(why)),
            Err(e) => return Err(anyhow::Error::from(e)),
        };
        self.store
            .finish_offer(offer.id, state, run, message.as_deref())
            .await?;
        match state {
            OfferState::Failed => {
                tracing::error!(offer = %offer.id, group = %offer.group, why = message.as_deref().unwrap_or(""), "An alert's run could not be made.")
            }
            _ => {
                tracing::info!(offer = %offer.id, run_id = ?run, state = %state, "An alert's offer ended.")
            }
        }
        self.moved(offer.id);
        Ok(self.store.offer(offer.id).await?.unwrap_or(offer))
    }

    /// Makes the runs of offers a crash left starting.
    pub async fn recover(&self) {
        match self.store.live_offers().await {
            Ok(offers) => {
                for o in offers
                    .into_iter()
                    .filter(|o| o.state == OfferState::Starting)
                {
                    if let Err(e) = self.start(o).await {
                        tracing::warn!(error = %e, "Could not make a starting offer's run; the next start tries again.");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "Could not read the live offers."),
        }
    }

    /// Starts each countdown's run at its deadline unless it was decided first; runs
    /// until aborted.
    pub async fn run_countdowns(self) {
        loop {
            let next = match self.fire_due().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "Could not look at the countdowns; trying again.");
                    None
                }
            };
            let wait = next
                .map(|at| Duration::from_millis((at - self.clock.now_ms()).max(0) as u64))
                .map_or(LOOK_AGAIN, |w| w.min(LOOK_AGAIN));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Starts every countdown past its deadline; the next deadline after those.
    async fn fire_due(&self) -> anyhow::Result<Option<i64>> {
        let now = self.clock.now_ms();
        let mut next = None;
        for o in self.store.live_offers().await? {
            let (OfferState::Open, Some(deadline)) = (o.state, o.deadline) else {
                continue;
            };
            if deadline > now {
                next = Some(next.map_or(deadline, |n: i64| n.min(deadline)));
                continue;
            }
            let by = Actor::Alert(o.route.clone());
            if let Some(moved) = self
                .store
                .decide_offer(o.id, OfferState::Starting, &by)
                .await?
            {
                tracing::info!(offer = %o.id, group = %o.group, "A countdown ran out: starting its run.");
                self.moved(o.id);
                self.start(moved).await?;
            }
        }
        Ok(next)
    }
}
