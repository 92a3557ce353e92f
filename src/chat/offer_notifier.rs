//! Keeps each offer's card on one platform: posted in the group's standing channel when
//! the offer opens, its countdown counted down, and edited once more with how it ended.
//!
//! It wakes when an offer moves here, and every few seconds besides, which both counts
//! countdowns down and finds offers another replica opened. The card's place is stored
//! and its post claimed first (`chat_cards`, keyed `offer:ID`), as a run's card is, so a
//! restarted or another replica edits the same message and none posts it twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::card_slot::CardSlot;
use super::context::ChatContext;
use super::offer_card::OfferCard;
use super::outbound::{Outbound, Posted, SendError};
use crate::domain::{OfferMode, RunId};
use crate::store::CardKey;

/// How often open offers are looked at when nothing moved: a countdown's face changes at
/// this pace, within every platform's rate limits.
const TICK: Duration = Duration::from_secs(5);

pub struct OfferNotifier {
    cx: ChatContext,
    out: Arc<dyn Outbound>,
    instance: String,
}

impl OfferNotifier {
    pub fn new(cx: ChatContext, out: Arc<dyn Outbound>, instance: String) -> OfferNotifier {
        OfferNotifier { cx, out, instance }
    }

    /// Runs until aborted.
    pub async fn run(self) {
        let mut changes = self.cx.offers.changes();
        let mut ticks = tokio::time::interval(TICK);
        loop {
            let mut due: HashSet<RunId> = HashSet::new();
            tokio::select! {
                moved = changes.recv() => match moved {
                    Ok(id) => {
                        due.insert(id);
                        // Whatever else moved meanwhile goes in the same round.
                        while let Ok(id) = changes.try_recv() {
                            due.insert(id);
                        }
                    }
                    Err(RecvError::Lagged(_)) => due.extend(self.all().await),
                    Err(RecvError::Closed) => return,
                },
                _ = ticks.tick() => due.extend(self.all().await),
            }
            for id in due {
                if let Err(e) = self.refresh(id).await {
                    match e {
                        SendError::RateLimited(wait) => tokio::time::sleep(wait).await,
                        SendError::Failed(why) => {
                            tracing::warn!(offer = %id, error = %why, platform = %self.out.platform(), "Could not update an offer's card; trying again soon.")
                        }
                    }
                }
            }
        }
    }

    /// Every offer whose card may need a change: those open or starting, and those whose
    /// card does not yet show how they ended.
    async fn all(&self) -> Vec<RunId> {
        let mut ids = Vec::new();
        match self.cx.store.live_offers().await {
            Ok(live) => ids.extend(live.into_iter().map(|o| o.id)),
            Err(e) => tracing::warn!(error = %e, "Could not read the live offers."),
        }
        match self
            .cx
            .store
            .unsettled_offer_cards(self.out.platform())
            .await
        {
            Ok(unsettled) => ids.extend(unsettled),
            Err(e) => tracing::warn!(error = %e, "Could not read the offer cards left unsettled."),
        }
        ids
    }

    async fn refresh(&self, id: RunId) -> Result<(), SendError> {
        let platform = self.out.platform();
        let store = &self.cx.store;
        let failed = |e: anyhow::Error| SendError::Failed(e.to_string());
        let Some(offer) = store.offer(id).await.map_err(failed)? else {
            return Ok(());
        };
        // `auto` asks no one: its run's card tells of the alert.
        if offer.mode == OfferMode::Auto {
            return Ok(());
        }
        let Some(group) = self.cx.catalog().groups.get(&offer.group) else {
            return Ok(());
        };
        let Some(channel) = self.out.offer_channel(group) else {
            return Ok(());
        };
        let key = CardKey::Offer(id);
        let alerts = store.count_offer_alerts(id).await.map_err(failed)?;
        let incident = match offer.run_id {
            Some(run) => store
                .card(platform, run)
                .await
                .map_err(failed)?
                .and_then(|c| c.channel),
            None => None,
        };
        let card = OfferCard::of(
            &offer,
            alerts,
            incident.as_deref(),
            self.out.markup(),
            self.cx.clock.now_ms(),
        );
        let rendering = self.out.offer_rendering(&card);
        let slot = CardSlot {
            store,
            platform,
            key,
            claimer: &self.instance,
        };
        // Busy: another replica posts it; the next tick edits it if need be.
        slot.sync(
            &rendering,
            card.settled,
            async |_| Ok(channel),
            // An offer's card is one among many in the standing channel, and an offer is
            // short-lived: one posted by a claimer that died is posted again.
            async |channel: &str, _| self.out.post_offer(channel, &card).await,
            async |at: &Posted| self.out.edit_offer(at, &card).await,
        )
        .await?;
        Ok(())
    }
}
