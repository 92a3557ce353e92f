//! Slack: `/dr` slash commands and card buttons over HTTP or Socket Mode, and the live card
//! in an incident channel of each run.

pub mod api;
pub mod blocks;
pub mod inbound;
pub mod outbound;
pub mod routes;
pub mod settings;
pub mod socket;
pub mod verify;

pub use settings::SlackSettings;

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::launch::{Launch, Running};
use super::markup::Markup;
use super::platform::ChatPlatform;
use crate::domain::Platform;
use crate::workflow::ChatKeys;
use api::SlackApi;
use inbound::SlackBot;
use outbound::SlackOut;
use socket::SocketMode;

/// Slack as a chat platform.
#[derive(Clone, Copy)]
pub struct Slack;

pub const SLACK: Slack = Slack;
pub const PLATFORM: Platform = Platform::from_static("slack");

impl Markup for Slack {
    fn platform(&self) -> Option<Platform> {
        Some(PLATFORM)
    }
    fn mention(&self, user: &str) -> String {
        format!("<@{user}>")
    }
    fn link(&self, url: &str, text: &str) -> String {
        // A `|` or `>` in the URL would end it early.
        let url = self.escape(url).replace('|', "%7C");
        format!("<{url}|{text}>")
    }
    fn channel(&self, id: &str) -> String {
        format!("<#{id}>")
    }
    fn escape(&self, text: &str) -> String {
        // Slack's control characters: `<!channel>`, `<@U…>` and `<url|text>` start with
        // `<`, and Slack reads `&` as the start of an escape.
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
}

#[async_trait]
impl ChatPlatform for Slack {
    fn name(&self) -> Platform {
        PLATFORM
    }
    fn title(&self) -> &'static str {
        "Slack"
    }
    fn keys(&self) -> ChatKeys {
        ChatKeys {
            platform: "slack",
            // The standing DR channel: the first platform's key, kept as it was.
            channel: "channel",
            users: "slack_users",
            groups: "slack_groups",
        }
    }
    fn allow_example(&self) -> String {
        "`allow: { slack_users: [U012ABC], slack_groups: [S0SRE] }`".into()
    }

    fn paths(&self) -> &'static [&'static str] {
        routes::PATHS
    }

    async fn start(&self, launch: &Launch<'_>) -> anyhow::Result<Option<Running>> {
        let Some(settings) = launch.settings_of(SlackSettings::from_env)? else {
            return Ok(None);
        };
        let api = Arc::new(SlackApi::new(&settings).context("setting up the Slack client")?);
        let tasks = launch
            .notifiers(Arc::new(SlackOut { api: api.clone() }))
            .await?;
        if settings.team_ids.is_empty() {
            tracing::warn!(
                "SLACK_TEAM_IDS is not set: requests from any workspace Lifeboat's Slack app is installed in are taken. Set it to your workspace's team id."
            );
        }
        let bot = Arc::new(SlackBot {
            cx: launch.chat.clone(),
            api,
            signing_secret: settings.signing_secret.clone(),
            team_ids: settings.team_ids.clone(),
        });
        let mut connections = Vec::new();
        if settings.app_token.is_some() {
            let stop = CancellationToken::new();
            let task = tokio::spawn(socket_mode(bot.clone(), settings, stop.clone()));
            connections.push((stop, task));
        }
        Ok(Some(Running {
            routes: routes::routes(bot),
            tasks,
            connections,
        }))
    }
}

/// Keeps a Socket Mode connection to Slack until `stop`, connecting again after a failure:
/// Slack being away at start-up is no reason for the service not to start.
async fn socket_mode(bot: Arc<SlackBot>, settings: SlackSettings, stop: CancellationToken) {
    const AGAIN: std::time::Duration = std::time::Duration::from_secs(5);
    loop {
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            c = SocketMode::connect(bot.clone(), &settings) => c,
        };
        match connected {
            Ok(socket) => {
                tracing::info!("Slack Socket Mode connected.");
                stop.cancelled().await;
                socket.shutdown().await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Slack Socket Mode could not connect; trying again.")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(AGAIN) => {}
        }
    }
}
