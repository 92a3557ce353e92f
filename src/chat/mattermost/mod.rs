//! Mattermost: `/dr` as a custom slash command, cards with interactive buttons, and an
//! incident thread of each run in the group's `mattermost_channel`, through REST API v4
//! with a bot account. groups.yaml: `mattermost_channel`, `allow.mattermost_users`,
//! `allow.mattermost_teams`, `owners.mattermost` and `people.<p>.mattermost`, by id.

pub mod api;
pub mod inbound;
pub mod names;
pub mod outbound;
pub mod render;
pub mod routes;
pub mod settings;

pub use settings::MattermostSettings;

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;

use super::launch::{Launch, Running};
use super::markup::Markup;
use super::platform::ChatPlatform;
use crate::domain::Platform;
use crate::workflow::ChatKeys;
use api::MattermostApi;
use inbound::MattermostBot;
use outbound::MattermostOut;
use render::Actions;

const NAME: &str = "mattermost";

/// Mattermost as a chat platform.
#[derive(Clone, Copy)]
pub struct Mattermost;

pub const MATTERMOST: Mattermost = Mattermost;
pub const PLATFORM: Platform = Platform::from_static(NAME);

impl Markup for Mattermost {
    fn platform(&self) -> Option<Platform> {
        Some(PLATFORM)
    }
    fn mention(&self, user: &str) -> String {
        match names::of(user) {
            Some(name) => format!("@{name}"),
            None => format!("`mattermost:{user}`"),
        }
    }
    fn link(&self, url: &str, text: &str) -> String {
        super::markup::markdown_link(url, text)
    }
    fn escape(&self, text: &str) -> String {
        // `@channel`, `@all`, `@here` and `@name` in text from elsewhere notify no one: a
        // zero-width space after the `@`; and a bracket makes no link.
        text.replace('@', "@\u{200B}").replace('[', "\\[")
    }
    fn channel(&self, id: &str) -> String {
        // An incident is `CHANNEL/ROOT`: its channel is named.
        let channel = id.split('/').next().unwrap_or(id);
        match names::of(channel) {
            Some(name) => format!("~{name}"),
            None => format!("the channel `{channel}`"),
        }
    }
}

#[async_trait]
impl ChatPlatform for Mattermost {
    fn name(&self) -> Platform {
        PLATFORM
    }
    fn title(&self) -> &'static str {
        "Mattermost"
    }
    fn keys(&self) -> ChatKeys {
        ChatKeys {
            platform: NAME,
            channel: outbound::CHANNEL,
            users: "mattermost_users",
            groups: "mattermost_teams",
        }
    }
    fn paths(&self) -> &'static [&'static str] {
        routes::PATHS
    }

    async fn start(&self, launch: &Launch<'_>) -> anyhow::Result<Option<Running>> {
        let Some(settings) = launch.settings_of(MattermostSettings::from_env)? else {
            return Ok(None);
        };
        let api =
            Arc::new(MattermostApi::new(&settings).context("setting up the Mattermost client")?);
        let actions = settings
            .actions_url
            .clone()
            .map(|url| Actions::new(url, &settings.bot_token));
        if actions.is_none() {
            tracing::warn!(
                "LIFEBOAT_PUBLIC_URL is not set: Mattermost cards have no buttons (the commands work)."
            );
        }
        let tasks = launch
            .notifiers(Arc::new(MattermostOut {
                api,
                actions: actions.clone(),
            }))
            .await?;
        let bot = Arc::new(MattermostBot {
            cx: launch.chat.clone(),
            tokens: settings.command_tokens,
            actions,
        });
        Ok(Some(Running {
            routes: routes::routes(bot),
            tasks,
            connections: Vec::new(),
        }))
    }
}
