//! Keeps each evacuation's one card on one platform, in groups.yaml's `evacuation_channel`
//! for the platform, or else the standing channel of the first of its groups that has one. It looks every few seconds, which is also how the card's
//! time so far moves on; the card's place is stored and its post claimed first
//! (`chat_cards`, keyed `evacuation:ID`), so a restarted or another replica edits the
//! same message, and an edit is made only when the card changed.

use std::sync::Arc;
use std::time::Duration;

use super::card_slot::CardSlot;
use super::context::ChatContext;
use super::evacuation_card;
use super::outbound::{Outbound, SendError};
use crate::domain::EvacuationId;
use crate::store::CardKey;

/// How often evacuations are looked at: the card's clock moves at this pace, well within
/// every platform's limit on edits of one message.
const TICK: Duration = Duration::from_secs(5);

pub struct EvacuationNotifier {
    cx: ChatContext,
    out: Arc<dyn Outbound>,
    instance: String,
}

impl EvacuationNotifier {
    pub fn new(cx: ChatContext, out: Arc<dyn Outbound>, instance: String) -> Self {
        EvacuationNotifier { cx, out, instance }
    }

    /// Runs until aborted.
    pub async fn run(self) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            for id in self.all().await {
                match self.refresh(id).await {
                    Ok(()) => {}
                    Err(SendError::RateLimited(wait)) => tokio::time::sleep(wait).await,
                    Err(SendError::Failed(why)) => {
                        tracing::warn!(evacuation = %id, error = %why, platform = %self.out.platform(), "Could not update an evacuation's card; trying again soon.")
                    }
                }
            }
        }
    }

    /// Evacuations going, and those whose card does not yet show how they ended.
    async fn all(&self) -> Vec<EvacuationId> {
        let store = &self.cx.store;
        let mut ids = match store.going_evacuations().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the evacuations going.");
                Vec::new()
            }
        };
        match store.unsettled_evacuation_cards(self.out.platform()).await {
            Ok(unsettled) => {
                for u in unsettled {
                    if !ids.contains(&u) {
                        ids.push(u);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the evacuation cards left unsettled.")
            }
        }
        ids
    }

    async fn refresh(&self, id: EvacuationId) -> Result<(), SendError> {
        let store = &self.cx.store;
        let failed = |e: anyhow::Error| SendError::Failed(e.to_string());
        let Some(e) = store.evacuation(id).await.map_err(failed)? else {
            return Ok(());
        };
        let catalog = self.cx.catalog();
        let named = catalog
            .evacuation_channel
            .get(self.out.platform().as_str())
            .cloned();
        let Some(channel) = named.or_else(|| {
            e.groups.iter().find_map(|g| {
                let group = catalog.groups.get(&g.group)?;
                self.out
                    .covers(group)
                    .then(|| self.out.offer_channel(group))
                    .flatten()
            })
        }) else {
            return Ok(());
        };
        let depends_on = |g: &str| crate::evacuation::depends_within(catalog, &e, g);
        let times = store.evacuation_run_times(id).await.map_err(failed)?;
        let now = self.cx.clock.now_ms();
        let score = crate::domain::evacuation::score(&e, &times, &depends_on, now);
        let card = evacuation_card::of(&e, &score, self.out.markup(), now);
        let rendering = self.out.offer_rendering(&card);
        let slot = CardSlot {
            store,
            platform: self.out.platform(),
            key: CardKey::Evacuation(id),
            claimer: &self.instance,
        };
        slot.sync(
            &rendering,
            card.settled,
            async |_| Ok(channel),
            async |channel: &str, _| self.out.post_offer(channel, &card).await,
            async |at| self.out.edit_offer(at, &card).await,
        )
        .await?;
        Ok(())
    }
}
