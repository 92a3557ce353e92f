//! Each run's incident in Mattermost: a thread in the group's `mattermost_channel`, opened
//! by a post that mentions the requester and the group's owners, with the card posted in
//! the thread and edited in place, and replies in the thread.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::api::MattermostApi;
use super::names;
use super::render::{self, Actions};
use crate::chat::capitalised;
use crate::chat::card::Card;
use crate::chat::markup::Markup;
use crate::chat::offer_card::OfferCard;
use crate::chat::outbound::{Outbound, Posted, SendError, invitees};
use crate::domain::{Platform, Run};
use crate::store::Origin;
use crate::workflow::Group;

/// The group's key for the channel incident threads open in.
pub const CHANNEL: &str = "mattermost_channel";

pub struct MattermostOut {
    pub api: Arc<MattermostApi>,
    pub actions: Option<Actions>,
}

/// An incident: `CHANNEL/ROOT`, the channel and the post its thread hangs from.
fn incident(at: &str) -> (&str, Option<&str>) {
    match at.split_once('/') {
        Some((channel, root)) => (channel, Some(root)),
        None => (at, None),
    }
}

impl MattermostOut {
    /// `@name` for a user id, looked up once and remembered.
    async fn at(&self, user: &str) -> String {
        if names::of(user).is_none() {
            match self.api.username(user).await {
                Ok(name) => names::remember(user, &name),
                Err(e) => tracing::warn!(error = %e, user, "Could not look up a Mattermost user."),
            }
        }
        super::MATTERMOST.mention(user)
    }
}

#[async_trait]
impl Outbound for MattermostOut {
    fn platform(&self) -> Platform {
        super::PLATFORM
    }

    fn markup(&self) -> &'static dyn Markup {
        &super::MATTERMOST
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
                "group `{}` names no mattermost_channel",
                group.name
            )));
        };
        let mut mentions = Vec::new();
        for person in invitees(group, origin, super::PLATFORM) {
            mentions.push(self.at(&person).await);
        }
        let mut text = format!(
            "🛟 {} of `{}`: its incident thread.",
            capitalised(run.action.as_str()),
            run.group
        );
        if !mentions.is_empty() {
            text.push(' ');
            text.push_str(&mentions.join(" "));
        }
        let mut root = render::message(&text);
        // Which run it opens, for finding it again after a crash before it was recorded.
        root["props"]["lifeboat_run"] = Value::String(run.id.to_string());
        let root = self.api.post(channel, None, root).await?;
        Ok(format!("{channel}/{root}"))
    }

    async fn find_incident(&self, run: &Run, group: &Group) -> Result<Vec<String>, SendError> {
        let Some(channel) = group.channel(CHANNEL) else {
            return Ok(Vec::new());
        };
        let id = run.id.to_string();
        let own = self.api.own_id().await?;
        // A minute early, for a server whose clock is behind this one's.
        let posts = self.api.posts(channel, run.created_at - 60_000).await?;
        Ok(posts
            .iter()
            // The bot's own: anyone may give a post of theirs the same props.
            .filter(|p| p["user_id"].as_str() == Some(&own))
            .filter(|p| p["props"]["lifeboat_run"].as_str() == Some(&id))
            .filter(|p| p["root_id"].as_str().is_none_or(str::is_empty))
            .filter_map(|p| Some(format!("{channel}/{}", p["id"].as_str()?)))
            .collect())
    }

    async fn post_card(&self, at: &str, card: &Card) -> Result<String, SendError> {
        let (channel, root) = incident(at);
        let mut body = render::card(card, self.actions.as_ref());
        body["props"]["lifeboat_card"] = Value::String(card.run.to_string());
        self.api.post(channel, root, body).await
    }

    async fn find_card(&self, at: &str, run: &Run) -> Result<Option<String>, SendError> {
        let (_, Some(root)) = incident(at) else {
            return Ok(None);
        };
        let id = run.id.to_string();
        let own = self.api.own_id().await?;
        let posts = self.api.thread(root).await?;
        Ok(posts
            .iter()
            .filter(|p| p["user_id"].as_str() == Some(&own))
            .filter(|p| p["props"]["lifeboat_card"].as_str() == Some(&id))
            .min_by_key(|p| p["create_at"].as_i64().unwrap_or(i64::MAX))
            .and_then(|p| p["id"].as_str().map(str::to_string)))
    }

    async fn edit_card(&self, at: &Posted, card: &Card) -> Result<(), SendError> {
        self.api
            .edit(&at.message, render::card(card, self.actions.as_ref()))
            .await
    }

    async fn reply(&self, at: &Posted, text: &str) -> Result<(), SendError> {
        let (channel, root) = incident(&at.channel);
        self.api
            .post(channel, root.or(Some(&at.message)), render::message(text))
            .await
            .map(drop)
    }

    async fn announce(&self, channel: &str, text: &str) -> Result<(), SendError> {
        self.api
            .post(incident(channel).0, None, render::message(text))
            .await
            .map(drop)
    }

    fn rendering(&self, card: &Card) -> String {
        render::card(card, self.actions.as_ref()).to_string()
    }

    fn announce_in(&self, group: &Group, origin: Option<&Origin>) -> Vec<String> {
        // The thread hangs in the group's channel already: only where it was asked for,
        // if that is elsewhere, hears of it.
        origin
            .map(|o| o.channel.clone())
            .filter(|c| Some(c.as_str()) != group.channel(CHANNEL))
            .into_iter()
            .collect()
    }

    fn offer_channel(&self, group: &Group) -> Option<String> {
        group.channel(CHANNEL).map(str::to_string)
    }

    async fn post_offer(&self, channel: &str, card: &OfferCard) -> Result<String, SendError> {
        self.api
            .post(channel, None, render::offer(card, self.actions.as_ref()))
            .await
    }

    async fn edit_offer(&self, at: &Posted, card: &OfferCard) -> Result<(), SendError> {
        self.api
            .edit(&at.message, render::offer(card, self.actions.as_ref()))
            .await
    }

    fn offer_rendering(&self, card: &OfferCard) -> String {
        render::offer(card, self.actions.as_ref()).to_string()
    }
}
