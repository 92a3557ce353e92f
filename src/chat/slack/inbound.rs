//! What arrives from Slack, once verified: slash commands and button presses, however they
//! came (HTTP or Socket Mode). Each is answered within Slack's 3 seconds; what may take
//! longer (starting a run, a decision, which may ask Slack for user-group members) is done
//! after the acknowledgement and answered on the request's `response_url`.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::access;
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
    /// Slack's id for this invocation: the same command seen again is a replay.
    #[serde(default)]
    pub trigger_id: Option<String>,
}

/// A `block_actions` payload's fields that Lifeboat reads (PROTOCOLS.md section 2).
#[derive(Clone, Debug, Deserialize)]
pub struct Interaction {
    #[serde(rename = "type")]
    pub kind: String,
    /// None for some payloads (another app's view submission): those do nothing.
    #[serde(default)]
    pub user: Option<InteractionUser>,
    #[serde(default)]
    pub team: Option<InteractionTeam>,
    #[serde(default)]
    pub trigger_id: Option<String>,
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
pub struct InteractionTeam {
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
    #[serde(default)]
    pub action_ts: Option<String>,
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
    /// `SLACK_TEAM_IDS`: the workspaces served; empty serves every one.
    pub team_ids: Vec<String>,
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
        let who = self.requester(&c.user_id, &c.channel_id);
        let team = c.team_id.as_deref();
        if let Err(refusal) = access::pinned(
            &self.cx,
            &who.actor(),
            ("Slack workspace", team),
            &self.team_ids,
            &c.text,
        )
        .await
        {
            return Reply::ephemeral(refusal);
        }
        let command = match commands::parse(&c.text) {
            Ok(command) => command,
            Err(usage) => return Reply::ephemeral(usage),
        };
        let acts = matches!(
            command,
            Command::Start { .. } | Command::Control { .. } | Command::Evacuate { .. }
        );
        if acts {
            // A replayed command is answered as before, and does nothing again.
            match self.first_sight(c.trigger_id.as_deref()).await {
                Ok(true) => {}
                Ok(false) => return Reply::ephemeral(acknowledgement(&command)),
                Err(refused) => return refused,
            }
        }
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
        let (true, Some(user)) = (i.kind == "block_actions", &i.user) else {
            return;
        };
        let channel = i.channel.as_ref().map(|c| c.id.clone()).unwrap_or_default();
        let who = self.requester(&user.id, &channel);
        let team = i.team.as_ref().map(|t| t.id.as_str());
        if let Err(refusal) = access::pinned(
            &self.cx,
            &who.actor(),
            ("Slack workspace", team),
            &self.team_ids,
            "press",
        )
        .await
        {
            if let Some(url) = &i.response_url {
                self.api
                    .respond(url, &body(&Reply::ephemeral(refusal)))
                    .await;
            }
            return;
        }
        // A press is known by its trigger, or else by its action's time.
        let id = i
            .trigger_id
            .as_deref()
            .or_else(|| i.actions.iter().find_map(|a| a.action_ts.as_deref()));
        match self.first_sight(id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(refused) => {
                if let Some(url) = &i.response_url {
                    self.api.respond(url, &body(&refused)).await;
                }
                return;
            }
        }
        for action in &i.actions {
            let Some(button) = Button::from_id(&action.action_id) else {
                continue;
            };
            let reply = match action.value.as_deref().map(Target::from_str) {
                Some(Ok(target)) => {
                    let who = self.requester(&user.id, &channel);
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

impl SlackBot {
    /// Whether the interaction `id` is new: `Ok(false)` for a replay. One without an id
    /// (an older sender) is taken; one the store cannot check is not.
    async fn first_sight(&self, id: Option<&str>) -> Result<bool, Reply> {
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            return Ok(true);
        };
        self.cx.store.first_sight("slack", id).await.map_err(|e| {
            tracing::error!(error = %e, "Could not check a Slack interaction against replays.");
            Reply::ephemeral("Lifeboat could not take that just now; try again.")
        })
    }
}

fn acknowledgement(command: &Command) -> String {
    match command {
        Command::Start { action, group, .. } => format!("Starting {action} of `{group}`…"),
        Command::Evacuate { .. } => "Starting the evacuation…".into(),
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
