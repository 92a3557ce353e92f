//! A card's place on one platform: claimed in the store before it is posted, so that with
//! several replicas, or after a restart, each card is posted once and then edited in place,
//! and only when what it shows has changed. Run cards and offer cards both keep theirs so.

use super::outbound::{Posted, SendError};
use crate::clock::Millis;
use crate::domain::Platform;
use crate::store::{CardClaim, CardKey, CardStep, Store};

/// A claim on a card with no message this old is taken over: its claimer died. Longer than
/// any post takes, short enough that a crashed poster's card still appears.
const STALE_CLAIM_MS: Millis = 30_000;

pub struct CardSlot<'a> {
    pub store: &'a Store,
    pub platform: Platform,
    pub key: CardKey,
    /// This process, as a claimer.
    pub claimer: &'a str,
}

/// Where the card stands after a sync.
pub enum Synced {
    /// Shown where `at` says; `new` when this sync placed it (posted it, or found it where
    /// a claimer that died left it).
    Shown { at: Posted, new: bool },
    /// Another claimer is posting it now.
    Busy,
}

fn failed(e: anyhow::Error) -> SendError {
    SendError::Failed(e.to_string())
}

/// Whether an earlier claimer began this step and died before the store heard how it
/// went: what it made (an incident, a card) may be there already, to be found rather than
/// made again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retake(pub bool);

impl CardSlot<'_> {
    /// Posts the card if no one has, or edits it if `rendering` differs from what it
    /// shows. `channel` names where a first post goes (called only when no earlier
    /// claimer chose one); `post` posts it there (or, on a retake, may bring what an
    /// earlier claimer posted up to date instead) and answers the message's id; `edit`
    /// edits. `settled`: the card will not change again.
    pub async fn sync(
        &self,
        rendering: &str,
        settled: bool,
        channel: impl AsyncFnOnce(Retake) -> Result<String, SendError>,
        post: impl AsyncFnOnce(&str, Retake) -> Result<String, SendError>,
        edit: impl AsyncFnOnce(&Posted) -> Result<(), SendError>,
    ) -> Result<Synced, SendError> {
        let (store, platform, key) = (self.store, self.platform, self.key);
        let claim = store
            .claim_card(platform, key, self.claimer, STALE_CLAIM_MS)
            .await
            .map_err(failed)?;
        match claim {
            CardClaim::Won { channel: chosen } => {
                // What an earlier claimer began: read only here, on the first post.
                let began = store.card(platform, key).await.map_err(failed)?;
                let (opening, posting) = began.map_or((false, false), |c| (c.opening, c.posting));
                let channel = match chosen {
                    Some(c) => c,
                    None => {
                        store
                            .mark_card(platform, key, CardStep::Opening)
                            .await
                            .map_err(failed)?;
                        let c = channel(Retake(opening)).await?;
                        store
                            .set_card_channel(platform, key, &c)
                            .await
                            .map_err(failed)?;
                        c
                    }
                };
                store
                    .mark_card(platform, key, CardStep::Posting)
                    .await
                    .map_err(failed)?;
                let message = post(&channel, Retake(posting)).await?;
                let at = Posted { channel, message };
                store
                    .set_card_shown(platform, key, Some(&at.message), rendering, settled)
                    .await
                    .map_err(failed)?;
                Ok(Synced::Shown { at, new: true })
            }
            CardClaim::Posted(row) => {
                let (Some(channel), Some(message)) = (row.channel, row.message) else {
                    return Err(SendError::Failed("a posted card without its place".into()));
                };
                let at = Posted { channel, message };
                if row.shown.as_deref() != Some(rendering) {
                    edit(&at).await?;
                    store
                        .set_card_shown(platform, key, None, rendering, settled)
                        .await
                        .map_err(failed)?;
                }
                Ok(Synced::Shown { at, new: false })
            }
            CardClaim::Busy => Ok(Synced::Busy),
        }
    }
}
