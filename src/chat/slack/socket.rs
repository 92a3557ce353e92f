//! Socket Mode, for workspaces that cannot reach Lifeboat over HTTP: with `SLACK_APP_TOKEN`
//! set, Lifeboat opens a WebSocket to Slack (slack-morphism's listener) and receives slash
//! commands and button presses on it, acknowledged on the socket as Slack asks, and handled
//! exactly as those that come over HTTP.

use std::sync::Arc;

use slack_morphism::prelude::*;

use super::SlackSettings;
use super::api;
use super::inbound::{
    Interaction, InteractionAction, InteractionChannel, InteractionTeam, InteractionUser, SlackBot,
    SlashCommand,
};
use crate::secret::ExposeSecret;

pub struct SocketMode {
    listener: SlackClientSocketModeListener<SlackClientHyperHttpsConnector>,
}

impl SocketMode {
    /// Connects with the app-level token and starts receiving.
    pub async fn connect(
        bot: Arc<SlackBot>,
        settings: &SlackSettings,
    ) -> anyhow::Result<SocketMode> {
        let Some(app_token) = &settings.app_token else {
            anyhow::bail!("Socket Mode needs SLACK_APP_TOKEN");
        };
        let client = Arc::new(api::client(settings)?);
        let environment =
            Arc::new(SlackClientEventsListenerEnvironment::new(client).with_user_state(bot));
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_command_events(on_command)
            .with_interaction_events(on_interaction);
        let listener = SlackClientSocketModeListener::new(
            &SlackClientSocketModeConfig::new(),
            environment,
            callbacks,
        );
        let token = SlackApiToken::new(app_token.expose_secret().to_string().into());
        listener
            .listen_for(&token)
            .await
            .map_err(|e| anyhow::anyhow!("Slack Socket Mode: {e}"))?;
        listener.start().await;
        Ok(SocketMode { listener })
    }

    pub async fn shutdown(&self) {
        self.listener.shutdown().await;
    }
}

async fn bot(state: &SlackClientEventsUserState) -> UserCallbackResult<Arc<SlackBot>> {
    state
        .read()
        .await
        .get_user_state::<Arc<SlackBot>>()
        .cloned()
        .ok_or_else(|| "the Slack bot is missing from the listener's state".into())
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let bot = bot(&state).await?;
    let reply = bot
        .command(SlashCommand {
            user_id: event.user_id.to_string(),
            channel_id: event.channel_id.to_string(),
            text: event.text.unwrap_or_default(),
            response_url: Some(event.response_url.value().to_string()),
            team_id: Some(event.team_id.to_string()),
            trigger_id: Some(event.trigger_id.to_string()),
        })
        .await;
    Ok(
        SlackCommandEventResponse::new(SlackMessageContent::new().with_text(reply.text))
            .with_response_type(if reply.ephemeral {
                SlackMessageResponseType::Ephemeral
            } else {
                SlackMessageResponseType::InChannel
            }),
    )
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let SlackInteractionEvent::BlockActions(press) = event else {
        return Ok(());
    };
    let interaction = Interaction {
        kind: "block_actions".into(),
        user: press.user.map(|user| InteractionUser {
            id: user.id.to_string(),
        }),
        team: Some(InteractionTeam {
            id: press.team.id.to_string(),
        }),
        trigger_id: Some(press.trigger_id.to_string()),
        channel: press.channel.map(|c| InteractionChannel {
            id: c.id.to_string(),
        }),
        response_url: press.response_url.map(|u| u.value().to_string()),
        actions: press
            .actions
            .unwrap_or_default()
            .into_iter()
            .map(|a| InteractionAction {
                action_id: a.action_id.to_string(),
                value: a.value,
                action_ts: a.action_ts.map(|ts| ts.to_string()),
            })
            .collect(),
    };
    let bot = bot(&state).await?;
    // Acknowledged on the socket now; the press is handled after.
    tokio::spawn(async move { bot.press(interaction).await });
    Ok(())
}
