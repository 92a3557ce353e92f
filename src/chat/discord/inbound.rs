//! What arrives from Discord, once verified (HTTP) or received (gateway): a PING, `/dr`, or
//! a press of a card's button. Each is acknowledged at once with a deferred answer, seen
//! only by the person who asked; the outcome replaces it when the work is done.

use std::str::FromStr;
use std::sync::Arc;

use serde_json::{Value, json};

use super::super::access;
use super::super::card::{Button, Target};
use super::super::context::ChatContext;
use super::super::handle;
use super::super::people::{Requester, Roles};
use super::super::reply::Reply;
use super::api::DiscordApi;
use super::interaction::{self, COMMAND, COMPONENT, Interaction, PING};
use crate::commands;

/// Discord's "only you can see this" flag.
const EPHEMERAL: u64 = 64;

#[derive(Clone)]
pub struct DiscordBot {
    pub cx: ChatContext,
    pub api: Arc<DiscordApi>,
    /// Verifies `/discord/interactions`; without it, HTTP interactions are refused.
    pub verifier: Option<serenity::interactions_endpoint::Verifier>,
    /// `DISCORD_GUILD_IDS`: the servers served; empty serves every one.
    pub guild_ids: Vec<String>,
}

impl DiscordBot {
    /// Checks an HTTP interaction's Ed25519 signature over its timestamp and raw body, and
    /// that the timestamp is within five minutes of now: an old signed request replayed
    /// is refused.
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let Some(verifier) = &self.verifier else {
            return Err("DISCORD_PUBLIC_KEY is not set: Discord interactions are refused".into());
        };
        let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
            return Err("the request is not signed".into());
        };
        verifier
            .verify(signature, timestamp, body)
            .map_err(|()| "the request's signature does not match".to_string())?;
        crate::signing::fresh(timestamp, self.cx.clock.now_ms() / 1000).map_err(|e| e.to_string())
    }

    /// The immediate answer to an interaction; the work it calls for goes on after it.
    pub fn interact(&self, i: Interaction) -> Result<Value, String> {
        match i.kind {
            PING => Ok(json!({ "type": 1 })),
            COMMAND => {
                let words = match i.data.as_ref().map(interaction::words) {
                    Some(Ok(words)) => words,
                    Some(Err(why)) => {
                        return Ok(immediate(&format!("{why}. {}", commands::USAGE)));
                    }
                    None => return Err("a command without data".into()),
                };
                let command = match commands::parse(&words) {
                    Ok(command) => command,
                    Err(usage) => return Ok(immediate(&usage)),
                };
                let who = self.requester(&i)?;
                let bot = self.clone();
                tokio::spawn(async move {
                    let reply = match bot.admit(&i, &who, &words).await {
                        Ok(()) => handle::handle(&bot.cx, &who, command).await,
                        Err(None) => return,
                        Err(Some(refusal)) => refusal,
                    };
                    bot.answer(&i.token, &reply).await;
                });
                Ok(deferred())
            }
            COMPONENT => {
                let custom = i
                    .data
                    .as_ref()
                    .and_then(|d| d.custom_id.clone())
                    .unwrap_or_default();
                let pressed = custom.split_once(':').and_then(|(button, target)| {
                    Some((Button::from_id(button)?, Target::from_str(target).ok()?))
                });
                let Some((button, target)) = pressed else {
                    return Ok(immediate("That button names no run."));
                };
                let who = self.requester(&i)?;
                let bot = self.clone();
                tokio::spawn(async move {
                    let reply = match bot.admit(&i, &who, "press").await {
                        Ok(()) => handle::press(&bot.cx, &who, button, target).await,
                        Err(None) => return,
                        Err(Some(refusal)) => refusal,
                    };
                    bot.answer(&i.token, &reply).await;
                });
                Ok(deferred())
            }
            other => Err(format!(
                "interaction type {other} is not one Lifeboat handles"
            )),
        }
    }

    /// Whether an interaction may go on: from a server this Lifeboat serves, and not seen
    /// before. `Err(None)` is a replay, which does nothing again (its first answer stands);
    /// `Err(Some(reply))` a refusal to send.
    async fn admit(
        &self,
        i: &Interaction,
        who: &Requester,
        request: &str,
    ) -> Result<(), Option<Reply>> {
        let guild = i.guild_id.as_deref();
        access::pinned(
            &self.cx,
            &who.actor(),
            ("Discord server", guild),
            &self.guild_ids,
            request,
        )
        .await
        .map_err(|refusal| Some(Reply::ephemeral(refusal)))?;
        let Some(id) = i.id.as_deref().filter(|id| !id.is_empty()) else {
            return Ok(());
        };
        match self.cx.store.first_sight("discord", id).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::info!(
                    interaction = id,
                    "Ignoring a Discord interaction seen before."
                );
                Err(None)
            }
            Err(e) => {
                tracing::error!(error = %e, "Could not check a Discord interaction against replays.");
                Err(Some(Reply::ephemeral(
                    "Lifeboat could not take that just now; try again.",
                )))
            }
        }
    }

    fn requester(&self, i: &Interaction) -> Result<Requester, String> {
        let (user, roles) = i.person().ok_or("an interaction from no one")?;
        Ok(Requester {
            platform: &super::DISCORD,
            user,
            channel: i.channel_id.clone().unwrap_or_default(),
            membership: Box::new(Roles(roles)),
        })
    }

    async fn answer(&self, token: &str, reply: &Reply) {
        let body = json!({ "content": reply.text, "allowed_mentions": { "parse": [] } });
        if let Err(e) = self.api.answer(token, &body).await {
            tracing::warn!(error = %e, "Could not answer a Discord interaction.");
        }
    }
}

/// "Thinking…", seen only by the person who asked, until the outcome replaces it.
fn deferred() -> Value {
    json!({ "type": 5, "data": { "flags": EPHEMERAL } })
}

/// An answer now, seen only by the person who asked.
fn immediate(text: &str) -> Value {
    json!({ "type": 4, "data": { "content": text, "flags": EPHEMERAL } })
}
