//! What a chat platform does for the notifier: open a run's incident, post and edit its
//! card, reply in its thread, and tell other channels where it is; and for offers, post
//! and edit their cards in the group's standing channel.

use std::time::Duration;

use async_trait::async_trait;

use super::card::Card;
use super::markup::Markup;
use super::offer_card::OfferCard;
use crate::domain::{Platform, Run};
use crate::store::Origin;
use crate::workflow::Group;

/// Where a card is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    pub channel: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The platform asked to wait this long (a 429): nothing is lost, the call is made
    /// again after.
    #[error("rate limited for {0:?}")]
    RateLimited(Duration),
    /// Worth trying again later.
    #[error("{0}")]
    Failed(String),
}

#[async_trait]
pub trait Outbound: Send + Sync {
    fn platform(&self) -> Platform;

    /// The platform's markup, which its cards are written in.
    fn markup(&self) -> &'static dyn Markup;

    /// Whether a run of this group has a card here.
    fn covers(&self, group: &Group) -> bool;

    /// Opens the run's incident (Slack: a channel of its own; Discord: a thread in the
    /// group's channel), brings in who should be there, and returns it.
    async fn open(
        &self,
        run: &Run,
        group: &Group,
        origin: Option<&Origin>,
    ) -> Result<String, SendError>;

    /// Incidents the platform holds that `open` may have made for this run, most likely
    /// first: for a claimer that died between the platform making one and the store
    /// recording it. None where the platform cannot tell.
    async fn find_incident(&self, _run: &Run, _group: &Group) -> Result<Vec<String>, SendError> {
        Ok(Vec::new())
    }

    /// Brings into a found incident who `open` would have (again: one already there stays).
    async fn bring_in(
        &self,
        _channel: &str,
        _group: &Group,
        _origin: Option<&Origin>,
    ) -> Result<(), SendError> {
        Ok(())
    }

    /// Posts the card in the incident; returns the message.
    async fn post_card(&self, channel: &str, card: &Card) -> Result<String, SendError>;

    /// The run's card in `channel`, if an earlier claimer posted it there and died before
    /// recording it. None where the platform cannot tell.
    async fn find_card(&self, _channel: &str, _run: &Run) -> Result<Option<String>, SendError> {
        Ok(None)
    }

    async fn edit_card(&self, at: &Posted, card: &Card) -> Result<(), SendError>;

    /// A reply in the card's thread.
    async fn reply(&self, at: &Posted, text: &str) -> Result<(), SendError>;

    /// A message in another channel (where the run was asked for, the group's standing
    /// channel) saying where the incident is.
    async fn announce(&self, channel: &str, text: &str) -> Result<(), SendError>;

    /// The card as this platform sends it, kept to skip an edit that changes nothing.
    fn rendering(&self, card: &Card) -> String;

    /// The channels other than the incident that hear of it.
    fn announce_in(&self, group: &Group, origin: Option<&Origin>) -> Vec<String>;

    /// Where the group's offers are asked about here: its standing channel, if it has one.
    fn offer_channel(&self, group: &Group) -> Option<String>;

    /// Posts an offer's card; returns the message.
    async fn post_offer(&self, channel: &str, card: &OfferCard) -> Result<String, SendError>;

    async fn edit_offer(&self, at: &Posted, card: &OfferCard) -> Result<(), SendError>;

    /// The offer's card as this platform sends it.
    fn offer_rendering(&self, card: &OfferCard) -> String;
}

/// Who an incident brings in on `platform`: the person who asked there, then the group's
/// owners, each once.
pub fn invitees(group: &Group, origin: Option<&Origin>, platform: Platform) -> Vec<String> {
    let mut people: Vec<String> = origin.map(|o| o.user.clone()).into_iter().collect();
    for owner in group.owners_on(platform.as_str()) {
        if !people.contains(owner) {
            people.push(owner.clone());
        }
    }
    people
}
