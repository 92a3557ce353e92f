//! What arrives from Slack, once verified: slash commands and button presses, however they
//! came (HTTP or Socket Mode). Each is answered within Slack's 3 seconds; what may take
//! longer (starting a run, a decision, which may ask Slack for user-group members) is done
//! after the acknowledgement and answered on the request's `response_url`.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::card::{Button, Target};
use super::super::context::ChatContext;
use super::super::handle;
use super::super::people::{Membership, Requester};
use super::super::reply::Reply;
use super::api::SlackApi;
use crate::commands::{self, Command};
use crate::secret::{ExposeSecret, SecretString};

/// A slash command's fields that Lifeboat reads (PROTOCOLS.md section 1).
#[derive(Clone, Debug, Deserialize)]
pub struct SlashCommand {
    pub user_id: String,
    pub channel_id: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub response_url: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
}

/// A `block_actions` payload's fields that Lifeboat reads (PROTOCOLS.md section 2).
#[derive(Clone, Debug, Deserialize)]
pub struct Interaction {
    #[serde(rename = "type")]
    pub kind: String,
    pub user: InteractionUser,
    #[serde(default)]
    pub channel: Option<InteractionChannel>,
    #[serde(default)]
    pub response_url: Option<String>,
    #[serde(default)]
    pub actions: Vec<InteractionAction>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct InteractionUser {
    pub id: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct InteractionChannel {
    pub id: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct InteractionAction {
    pub action_id: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// The user groups a Slack user is in, asked of Slack when a group's `allow` names some.
struct SlackMembership {
    api: Arc<SlackApi>,
    user: String,
}

#[async_trait]
impl Membership for SlackMembership {
    async fn which(&self, candidates: &[String]) -> Vec<String> {
        if candidates.is_empty() {
            return Vec::new();
        }
        self.api.groups_of(&self.user, candidates).await
    }
}

#[derive(Clone)]
pub struct SlackBot {
    pub cx: ChatContext,
    pub api: Arc<SlackApi>,
    /// Verifies what comes over HTTP; without it, HTTP requests are refused.
    pub signing_secret: Option<SecretString>,
}

impl SlackBot {
    /// Checks a request's signature against its raw body, before anything reads it.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let Some(secret) = &self.signing_secret else {
            return Err("SLACK_SIGNING_SECRET is not set: Slack requests are refused".into());
        };
        let now = self.cx.clock.now_ms() / 1000;
        super::verify::verify(
            secret.expose_secret().as_bytes(),
            timestamp,
            signature,
            body,
            now,
        )
        .map_err(|e| e.to_string())
    }

    fn requester(&self, user: &str, channel: &str) -> Requester {
        Requester {
            platform: &super::SLACK,
            user: user.to_string(),
            channel: channel.to_string(),
            membership: Box::new(SlackMembership {
                api: self.api.clone(),
                user: user.to_string(),
            }),
        }
    }

    /// Answers a slash command: at once for what reads, and for what acts, an
    /// acknowledgement now and the outcome on `response_url`.
    pub async fn command(&self, c: SlashCommand) -> Reply {
        let command = match commands::parse(&c.text) {
            Ok(command) => command,
            Err(usage) => return Reply::ephemeral(usage),
        };
        let acts = matches!(command, Command::Start { .. } | Command::Control { .. });
        let who = self.requester(&c.user_id, &c.channel_id);
        match (acts, c.response_url) {
            (true, Some(url)) => {
                let bot = self.clone();
                let ack = acknowledgement(&command);
                tokio::spawn(async move {
                    let reply = handle::handle(&bot.cx, &who, command).await;
                    bot.api.respond(&url, &body(&reply)).await;
                });
                Reply::ephemeral(ack)
            }
            _ => handle::handle(&self.cx, &who, command).await,
        }
    }

    /// Handles a button press after it is acknowledged; the outcome goes to its
    /// `response_url`, and the card shows it once the run moves.
    pub async fn press(&self, i: Interaction) {
        if i.kind != "block_actions" {
            return;
        }
        let channel = i.channel.as_ref().map(|c| c.id.clone()).unwrap_or_default();
        for action in &i.actions {
            let Some(button) = Button::from_id(&action.action_id) else {
                continue;
            };
            let reply = match action.value.as_deref().map(Target::from_str) {
                Some(Ok(target)) => {
                    let who = self.requester(&i.user.id, &channel);
                    handle::press(&self.cx, &who, button, target).await
                }
                _ => Reply::ephemeral("That button names no run."),
            };
            if let Some(url) = &i.response_url {
                let mut answer = body(&reply);
                answer["replace_original"] = Value::Bool(false);
                self.api.respond(url, &answer).await;
            }
        }
    }
}

fn acknowledgement(command: &Command) -> String {
    match command {
        Command::Start { action, group, .. } => format!("Starting {action} of `{group}`…"),
        _ => "On it…".into(),
    }
}

/// A reply as Slack's response body.
pub fn body(reply: &Reply) -> Value {
    json!({
        "response_type": if reply.ephemeral { "ephemeral" } else { "in_channel" },
        "text": reply.text,
    })
}
