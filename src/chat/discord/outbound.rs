//! Each run's incident in Discord: a thread in the group's `discord_channel`, with the
//! requester and the group's owners added, the card posted there and edited in place, and
//! replies in the thread.

use std::sync::Arc;

use async_trait::async_trait;

use super::super::card::Card;
use super::super::offer_card::OfferCard;
use super::super::outbound::{Outbound, Posted, SendError, invitees};
use super::api::DiscordApi;
use super::render;
use crate::chat::markup::Markup;
use crate::clock::rfc3339;
use crate::domain::{Platform, Run};

use crate::store::Origin;
use crate::workflow::Group;

/// The group's key for the channel incident threads open in.
const CHANNEL: &str = "discord_channel";

pub struct DiscordOut {
    pub api: Arc<DiscordApi>,
}

/// `failover petstore 2026-11-25 18:40`.
pub fn thread_name(run: &Run) -> String {
    let stamp = rfc3339(run.created_at);
    let when = stamp.get(..16).unwrap_or(&stamp).replace('T', " ");
    let mut name = format!("{} {} {when}", run.action, run.group);
    name.truncate(100);
    name
}

#[async_trait]
impl Outbound for DiscordOut {
    fn platform(&self) -> Platform {
        super::PLATFORM
    }

    fn markup(&self) -> &'static dyn Markup {
        &super::DISCORD
    }

    fn covers(&self, group: &Group) -> bool {
        group.channel(CHANNEL).is_some()
    }

    async fn open(
        &self,
        run: &Run,
        group: &Group,
        origin: Option<&Origin>,
    ) -> Result<String, SendError> {
        let Some(channel) = group.channel(CHANNEL) else {
            return Err(SendError::Failed(format!(
                "group `{}` names no discord_channel",
                group.name
            )));
        };
        let thread = self.api.thread(channel, &thread_name(run)).await?;
        self.bring_in(&thread, group, origin).await?;
        Ok(thread)
    }

    async fn find_incident(&self, run: &Run, group: &Group) -> Result<Vec<String>, SendError> {
        match group.channel(CHANNEL) {
            Some(channel) => self.api.threads_named(channel, &thread_name(run)).await,
            None => Ok(Vec::new()),
        }
    }

    async fn bring_in(
        &self,
        thread: &str,
        group: &Group,
        origin: Option<&Origin>,
    ) -> Result<(), SendError> {
        for person in invitees(group, origin, super::PLATFORM) {
            if let Err(e) = self.api.add_to_thread(thread, &person).await {
                tracing::warn!(error = %e, person, "Could not add someone to an incident thread.");
            }
        }
        Ok(())
    }

    async fn find_card(&self, thread: &str, _run: &Run) -> Result<Option<String>, SendError> {
        self.api.first_bot_message(thread).await
    }

    async fn post_card(&self, channel: &str, card: &Card) -> Result<String, SendError> {
        self.api.post(channel, &render::card(card)).await
    }

    async fn edit_card(&self, at: &Posted, card: &Card) -> Result<(), SendError> {
        self.api
            .edit(&at.channel, &at.message, &render::card(card))
            .await
    }

    async fn reply(&self, at: &Posted, text: &str) -> Result<(), SendError> {
        self.api
            .post(&at.channel, &render::message(text))
            .await
            .map(drop)
    }

    async fn announce(&self, channel: &str, text: &str) -> Result<(), SendError> {
        self.api
            .post(channel, &render::message(text))
            .await
            .map(drop)
    }

    fn rendering(&self, card: &Card) -> String {
        render::card(card).to_string()
    }

    fn offer_channel(&self, group: &Group) -> Option<String> {
        group.channel(CHANNEL).map(str::to_string)
    }

    async fn post_offer(&self, channel: &str, card: &OfferCard) -> Result<String, SendError> {
        self.api.post(channel, &render::offer(card)).await
    }

    async fn edit_offer(&self, at: &Posted, card: &OfferCard) -> Result<(), SendError> {
        self.api
            .edit(&at.channel, &at.message, &render::offer(card))
            .await
    }

    fn offer_rendering(&self, card: &OfferCard) -> String {
        render::offer(card).to_string()
    }

    fn announce_in(&self, group: &Group, origin: Option<&Origin>) -> Vec<String> {
        let mut channels: Vec<String> = origin.map(|o| o.channel.clone()).into_iter().collect();
        if let Some(home) = group.channel(CHANNEL)
            && !channels.iter().any(|c| c == home)
        {
            channels.push(home.to_string());
        }
        channels
    }
}
