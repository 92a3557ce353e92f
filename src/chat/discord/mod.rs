//! Discord: `/dr` as an application command with subcommands, over HTTP interactions
//! (Ed25519-verified) or the gateway, and the live card in an incident thread of each run.

pub mod api;
pub mod gateway;
pub mod inbound;
pub mod interaction;
pub mod outbound;
pub mod render;
pub mod routes;
pub mod settings;

pub use settings::DiscordSettings;

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::launch::{Launch, Running};
use super::markup::Markup;
use super::platform::ChatPlatform;
use crate::domain::Platform;
use crate::workflow::ChatKeys;
use api::DiscordApi;
use inbound::DiscordBot;
use outbound::DiscordOut;

/// Discord as a chat platform.
#[derive(Clone, Copy)]
pub struct Discord;

pub const DISCORD: Discord = Discord;
pub const PLATFORM: Platform = Platform::from_static("discord");

impl Markup for Discord {
    fn platform(&self) -> Option<Platform> {
        Some(PLATFORM)
    }
    fn mention(&self, user: &str) -> String {
        format!("<@{user}>")
    }
    fn link(&self, url: &str, text: &str) -> String {
        super::markup::markdown_link(url, text)
    }
    fn channel(&self, id: &str) -> String {
        format!("<#{id}>")
    }
    fn escape(&self, text: &str) -> String {
        // What Lifeboat sends pings no one (`allowed_mentions`); a zero-width space keeps
        // `@everyone` and `<@…>` from even looking like a mention, and a bracket from
        // making a link.
        text.replace('@', "@\u{200B}")
            .replace('<', "<\u{200B}")
            .replace('[', "\\[")
    }
}

#[async_trait]
impl ChatPlatform for Discord {
    fn name(&self) -> Platform {
        PLATFORM
    }
    fn title(&self) -> &'static str {
        "Discord"
    }
    fn keys(&self) -> ChatKeys {
        ChatKeys {
            platform: "discord",
            channel: "discord_channel",
            users: "discord_users",
            groups: "discord_roles",
        }
    }
    fn allow_example(&self) -> String {
        "`allow: { discord_users: [\"53908232506183680\"], discord_roles: [\"123\"] }`".into()
    }

    fn paths(&self) -> &'static [&'static str] {
        routes::PATHS
    }

    async fn start(&self, launch: &Launch<'_>) -> anyhow::Result<Option<Running>> {
        let Some(settings) = launch.settings_of(DiscordSettings::from_env)? else {
            return Ok(None);
        };
        let verifier = match &settings.public_key {
            Some(key) => Some(verifier(key)?),
            None => None,
        };
        let api = Arc::new(DiscordApi::new(&settings).context("setting up the Discord client")?);
        let mut tasks = launch
            .notifiers(Arc::new(DiscordOut { api: api.clone() }))
            .await?;
        // `/dr` is (re)registered at every start: the definition is this build's.
        let registrar = api.clone();
        tasks.push(tokio::spawn(async move {
            match registrar.register(&interaction::definition()).await {
                Ok(()) => tracing::info!("Registered /dr with Discord."),
                Err(e) => tracing::warn!(error = %e, "Could not register /dr with Discord."),
            }
        }));
        if settings.guild_ids.is_empty() {
            tracing::warn!(
                "DISCORD_GUILD_IDS is not set: interactions from any server Lifeboat's bot is in are taken. Set it to your server's id."
            );
        }
        let bot = Arc::new(DiscordBot {
            cx: launch.chat.clone(),
            api,
            verifier,
            guild_ids: settings.guild_ids.clone(),
        });
        let mut connections = Vec::new();
        // Without an Interactions Endpoint, interactions come over the gateway.
        if settings.public_key.is_none() {
            let stop = CancellationToken::new();
            let task = tokio::spawn(gateway::run(bot.clone(), settings, stop.clone()));
            connections.push((stop, task));
        }
        Ok(Some(Running {
            routes: routes::routes(bot),
            tasks,
            connections,
        }))
    }
}

/// The verifier of `/discord/interactions`, from the application's public key.
fn verifier(key: &str) -> anyhow::Result<serenity::interactions_endpoint::Verifier> {
    let bytes: [u8; 32] = hex::decode(key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            anyhow::anyhow!("DISCORD_PUBLIC_KEY is not a 64-digit hex Ed25519 public key")
        })?;
    serenity::interactions_endpoint::Verifier::try_new(bytes)
        .map_err(|e| anyhow::anyhow!("DISCORD_PUBLIC_KEY: {e}"))
}
