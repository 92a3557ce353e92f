//! Each run's incident in Slack: a channel of its own, named from the group, the action
//! and the time, with the requester and the group's owners invited; the card posted there
//! and edited in place; replies in the card's thread.

use std::sync::Arc;

use async_trait::async_trait;

use super::super::card::Card;
use super::super::offer_card::OfferCard;
use super::super::outbound::{Outbound, Posted, SendError, invitees};
use super::api::SlackApi;
use super::blocks;
use crate::chat::markup::Markup;
use crate::clock::rfc3339;
use crate::domain::{Platform, Run};

use crate::store::Origin;
use crate::workflow::Group;

/// The group's key for its standing DR channel.
const CHANNEL: &str = "channel";

/// How many numbered names are tried after the first is taken.
const NAME_TRIES: usize = 9;
/// Slack's longest channel name.
const NAME_MAX: usize = 80;

pub struct SlackOut {
    pub api: Arc<SlackApi>,
}

/// `dr-petstore-failover-20261125-1840`: lowercase letters, digits, `-` and `_` only.
pub fn channel_name(run: &Run) -> String {
    let stamp: String = rfc3339(run.created_at)
        .chars()
        .filter(char::is_ascii_digit)
        .take(12)
        .collect();
    let (date, time) = stamp.split_at(stamp.len().min(8));
    let raw = format!("dr-{}-{}-{date}-{time}", run.group, run.action);
    let mut name: String = raw
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(NAME_MAX - 3);
    name
}

/// The names a run's channel may have, in the order they are tried: its own, then
/// numbered ones, then, every numbered name taken, one from the run's id.
fn channel_names(run: &Run) -> Vec<String> {
    let base = channel_name(run);
    let mut names = vec![base.clone()];
    names.extend((2..=NAME_TRIES + 1).map(|n| format!("{base}-{n}")));
    names.push(format!("dr-{}", run.id.to_string().replace('-', "")));
    names
}

#[async_trait]
impl Outbound for SlackOut {
    fn platform(&self) -> Platform {
        super::PLATFORM
    }

    fn markup(&self) -> &'static dyn Markup {
        &super::SLACK
    }

    fn covers(&self, _group: &Group) -> bool {
        true
    }

    async fn open(
        &self,
        run: &Run,
        group: &Group,
        origin: Option<&Origin>,
    ) -> Result<String, SendError> {
        let mut channel = None;
        for name in channel_names(run) {
            if let Some(id) = self.api.create_channel(&name).await? {
                channel = Some(id);
                break;
            }
        }
        let channel = channel.ok_or_else(|| SendError::Failed("no free channel name".into()))?;
        self.bring_in(&channel, group, origin).await?;
        Ok(channel)
    }

    async fn find_incident(&self, run: &Run, _group: &Group) -> Result<Vec<String>, SendError> {
        self.api.channels_named(&channel_names(run)).await
    }

    async fn bring_in(
        &self,
        channel: &str,
        group: &Group,
        origin: Option<&Origin>,
    ) -> Result<(), SendError> {
        let people = invitees(group, origin, super::PLATFORM);
        self.api.invite(channel, &people).await
    }

    async fn find_card(&self, channel: &str, _run: &Run) -> Result<Option<String>, SendError> {
        self.api.first_bot_card(channel).await
    }

    async fn post_card(&self, channel: &str, card: &Card) -> Result<String, SendError> {
        self.api.post(channel, blocks::card(card), None).await
    }

    async fn edit_card(&self, at: &Posted, card: &Card) -> Result<(), SendError> {
        self.api
            .update(&at.channel, &at.message, blocks::card(card))
            .await
    }

    async fn reply(&self, at: &Posted, text: &str) -> Result<(), SendError> {
        self.api
            .post(&at.channel, blocks::message(text), Some(&at.message))
            .await
            .map(drop)
    }

    async fn announce(&self, channel: &str, text: &str) -> Result<(), SendError> {
        self.api
            .post(channel, blocks::message(text), None)
            .await
            .map(drop)
    }

    fn rendering(&self, card: &Card) -> String {
        serde_json::to_string(&blocks::card(card)).unwrap_or_default()
    }

    fn offer_channel(&self, group: &Group) -> Option<String> {
        group.channel(CHANNEL).map(str::to_string)
    }

    async fn post_offer(&self, channel: &str, card: &OfferCard) -> Result<String, SendError> {
        self.api.post(channel, blocks::offer(card), None).await
    }

    async fn edit_offer(&self, at: &Posted, card: &OfferCard) -> Result<(), SendError> {
        self.api
            .update(&at.channel, &at.message, blocks::offer(card))
            .await
    }

    fn offer_rendering(&self, card: &OfferCard) -> String {
        serde_json::to_string(&blocks::offer(card)).unwrap_or_default()
    }

    fn announce_in(&self, group: &Group, origin: Option<&Origin>) -> Vec<String> {
        let mut channels: Vec<String> = origin.map(|o| o.channel.clone()).into_iter().collect();
        if let Some(standing) = group.channel(CHANNEL)
            && !channels.iter().any(|c| c == standing)
        {
            channels.push(standing.to_string());
        }
        channels
    }
}
