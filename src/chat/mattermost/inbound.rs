//! What arrives from Mattermost: `/dr` as a custom slash command, verified by its token,
//! and presses of a card's buttons, verified by the HMAC in their context. Both are
//! answered with the outcome, seen only by the person who asked unless it is news for the
//! channel.

use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Value, json};

use super::names;
use super::render::Actions;
use crate::chat::card::{Button, Target};
use crate::chat::context::ChatContext;
use crate::chat::handle;
use crate::chat::people::{Requester, Roles};
use crate::chat::reply::Reply;
use crate::commands;
use crate::secret::{ExposeSecret, SecretString};
use crate::signing;

/// A slash command, as Mattermost posts it (a form).
#[derive(Deserialize)]
pub struct SlashCommand {
    pub token: String,
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    pub channel_id: String,
    #[serde(default)]
    pub channel_name: String,
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub text: String,
}

/// A button's press, as Mattermost posts it (JSON).
#[derive(Deserialize)]
pub struct Press {
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub context: Value,
}

pub struct MattermostBot {
    pub cx: ChatContext,
    /// The `/dr` commands' tokens; without any, commands are refused.
    pub tokens: Vec<SecretString>,
    /// Without it, presses are refused (cards then have no buttons).
    pub actions: Option<Actions>,
}

impl MattermostBot {
    /// Checks a command's token (the form's, or `Authorization: Token …`).
    pub fn verify_command(&self, token: &str) -> Result<(), String> {
        if self.tokens.is_empty() {
            return Err(
                "MATTERMOST_COMMAND_TOKENS is not set: Mattermost commands are refused".into(),
            );
        }
        if token.is_empty() {
            return Err("the command carries no token".into());
        }
        if self
            .tokens
            .iter()
            .any(|t| signing::same(t.expose_secret().as_bytes(), token.as_bytes()))
        {
            Ok(())
        } else {
            Err("the command's token is not one of MATTERMOST_COMMAND_TOKENS".into())
        }
    }

    /// Answers a verified command.
    pub async fn command(&self, c: SlashCommand) -> Value {
        names::remember(&c.user_id, &c.user_name);
        names::remember(&c.channel_id, &c.channel_name);
        let reply = match commands::parse(&c.text) {
            Ok(command) => {
                let who = requester(c.user_id, c.channel_id, c.team_id);
                handle::handle(&self.cx, &who, command).await
            }
            Err(usage) => Reply::ephemeral(usage),
        };
        json!({
            "response_type": if reply.ephemeral { "ephemeral" } else { "in_channel" },
            "text": reply.text,
        })
    }

    /// Answers a press, once its context is shown to be one of Lifeboat's own buttons.
    pub async fn press(&self, p: Press) -> Result<Value, String> {
        let Some(actions) = &self.actions else {
            return Err("LIFEBOAT_PUBLIC_URL is not set: Mattermost buttons are refused".into());
        };
        let field = |name: &str| p.context.get(name).and_then(Value::as_str).unwrap_or("");
        let (button, target, signature) = (field("button"), field("target"), field("signature"));
        if !actions.verify(button, target, signature) {
            return Err("the button's context is not one Lifeboat made".into());
        }
        let (Some(button), Ok(target)) = (Button::from_id(button), Target::from_str(target)) else {
            return Err("the button names no run".into());
        };
        names::remember(&p.user_id, &p.user_name);
        let who = requester(p.user_id, p.channel_id, p.team_id);
        let reply = handle::press(&self.cx, &who, button, target).await;
        Ok(json!({ "ephemeral_text": reply.text }))
    }
}

/// Someone on Mattermost, in the team the request came from: what `mattermost_teams`
/// names.
fn requester(user: String, channel: String, team: String) -> Requester {
    Requester {
        platform: &super::MATTERMOST,
        user,
        channel,
        membership: Box::new(Roles(vec![team])),
    }
}
