//! Interactions over Discord's gateway, for bots without an Interactions Endpoint URL
//! (no `DISCORD_PUBLIC_KEY`): serenity keeps the connection, and each interaction it
//! receives is handled as one that came over HTTP, its immediate answer sent back on the
//! interaction's callback.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serenity::all::{ClientBuilder, Context, EventHandler, GatewayIntents, HttpBuilder, Ready};
use tokio_util::sync::CancellationToken;

use super::DiscordSettings;
use super::inbound::DiscordBot;
use super::interaction::Interaction;
use crate::secret::ExposeSecret;

struct Handler {
    bot: Arc<DiscordBot>,
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _: Context, ready: Ready) {
        tracing::info!(user = %ready.user.name, "Connected to Discord's gateway.");
    }

    async fn interaction_create(&self, _: Context, received: serenity::all::Interaction) {
        let id = received.id().to_string();
        let token = received.token().to_string();
        // The same reading as an HTTP interaction's: serenity's model written back as
        // Discord's JSON, with the type serenity keeps in its enum.
        use serenity::all::Interaction as Received;
        let kind = match &received {
            Received::Ping(_) => super::interaction::PING,
            Received::Command(_) => super::interaction::COMMAND,
            Received::Component(_) => super::interaction::COMPONENT,
            _ => return,
        };
        let ours: Interaction = match serde_json::to_value(&received).and_then(|mut v| {
            v["type"] = kind.into();
            serde_json::from_value(v)
        }) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read a gateway interaction.");
                return;
            }
        };
        match self.bot.interact(ours) {
            Ok(answer) => {
                if let Err(e) = self.bot.api.respond(&id, &token, &answer).await {
                    tracing::warn!(error = %e, "Could not answer a gateway interaction.");
                }
            }
            Err(why) => tracing::warn!(why, "Ignoring a gateway interaction."),
        }
    }
}

/// Keeps a gateway connection until `stop`, connecting again after a failure.
pub async fn run(bot: Arc<DiscordBot>, settings: DiscordSettings, stop: CancellationToken) {
    const AGAIN: Duration = Duration::from_secs(5);
    loop {
        let mut http = HttpBuilder::new(settings.token.expose_secret())
            // serenity 0.12's own rate limiter ignores the base URL; Lifeboat's REST calls
            // keep to Discord's limits themselves (`api`).
            .ratelimiter_disabled(true);
        if let Some(url) = &settings.api_url {
            http = http.proxy(url.clone());
        }
        let client = ClientBuilder::new_with_http(http.build(), GatewayIntents::empty())
            .event_handler(Handler { bot: bot.clone() })
            .await;
        match client {
            Ok(mut client) => {
                let shards = client.shard_manager.clone();
                tokio::select! {
                    _ = stop.cancelled() => {
                        shards.shutdown_all().await;
                        return;
                    }
                    ended = client.start() => {
                        if let Err(e) = ended {
                            tracing::warn!(error = %e, "Discord's gateway connection ended; connecting again.");
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not set up Discord's gateway client; trying again.")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(AGAIN) => {}
        }
    }
}
