//! The Slack Web API as Lifeboat calls it (slack-morphism), within Slack's rate tiers: a
//! governor limiter per method keeps each call within its tier for the whole workspace,
//! and a 429 comes back as `SendError::RateLimited` with Slack's `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use super::super::outbound::SendError;
use super::SlackSettings;
use crate::clock::bounded_wait;
use crate::secret::ExposeSecret;

/// How long a user group's members are trusted before they are asked for again.
const MEMBERS_FRESH: Duration = Duration::from_secs(300);

/// Slack's published tiers (per workspace, per method), as calls a minute.
const TIER_2: f64 = 20.0;
const TIER_3: f64 = 50.0;
/// `chat.postMessage`: about one a second in each channel.
const POSTS_PER_CHANNEL_PER_MINUTE: f64 = 60.0;

pub struct SlackApi {
    client: SlackHyperClient,
    token: SlackApiToken,
    http: reqwest::Client,
    create: DefaultDirectRateLimiter,
    invite: DefaultDirectRateLimiter,
    update: DefaultDirectRateLimiter,
    members: DefaultDirectRateLimiter,
    post: DefaultKeyedRateLimiter<String>,
    groups: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

/// A limiter of `per_minute` calls spread evenly: no burst, so that no minute holds more.
fn per_minute(per_minute: f64, scale: f64) -> Quota {
    let rate = (per_minute * scale).max(1.0);
    let period = Duration::from_secs_f64(60.0 / rate);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN)
}

/// A Slack client on `SLACK_API_URL`.
pub fn client(settings: &SlackSettings) -> anyhow::Result<SlackHyperClient> {
    // https or http: the API is https, a stand-in or proxy may be plain http.
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let connector =
        SlackClientHyperConnector::with_connector(https).with_slack_api_url(&settings.api_url);
    Ok(SlackClient::new(connector))
}

impl SlackApi {
    pub fn new(settings: &SlackSettings) -> anyhow::Result<SlackApi> {
        let scale = settings.tier_scale;
        Ok(SlackApi {
            client: client(settings)?,
            token: SlackApiToken::new(settings.bot_token.expose_secret().to_string().into()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            create: RateLimiter::direct(per_minute(TIER_2, scale)),
            invite: RateLimiter::direct(per_minute(TIER_3, scale)),
            update: RateLimiter::direct(per_minute(TIER_3, scale)),
            members: RateLimiter::direct(per_minute(TIER_2, scale)),
            post: RateLimiter::keyed(per_minute(POSTS_PER_CHANNEL_PER_MINUTE, scale)),
            groups: Mutex::new(HashMap::new()),
        })
    }

    /// Creates a channel; `Ok(None)` when the name is taken.
    pub async fn create_channel(&self, name: &str) -> Result<Option<String>, SendError> {
        self.create.until_ready().await;
        let session = self.client.open_session(&self.token);
        match session
            .conversations_create(&SlackApiConversationsCreateRequest::new(name.to_string()))
            .await
        {
            Ok(r) => Ok(Some(r.channel.id.to_string())),
            Err(SlackClientError::ApiError(e)) if e.code == "name_taken" => Ok(None),
            Err(e) => Err(failure(e)),
        }
    }

    /// The ids of the channels with these names, in the names' order: a look through the
    /// workspace's channels, made only to find an incident opened by a claimer that died.
    pub async fn channels_named(&self, names: &[String]) -> Result<Vec<String>, SendError> {
        /// A few thousand channels: each page is one tier-2 call, and the look must end
        /// well within the 30 s a card's claim holds.
        const PAGES: usize = 3;
        let session = self.client.open_session(&self.token);
        let mut found: HashMap<String, String> = HashMap::new();
        let mut cursor = None;
        for _ in 0..PAGES {
            self.members.until_ready().await;
            let request = SlackApiConversationsListRequest::new()
                .with_limit(1000)
                .with_exclude_archived(true)
                .opt_cursor(cursor.take());
            let page = session
                .conversations_list(&request)
                .await
                .map_err(failure)?;
            for c in page.channels {
                if let Some(name) = c.name.filter(|n| names.contains(n)) {
                    found.insert(name, c.id.to_string());
                }
            }
            cursor = page.response_metadata.and_then(|m| m.next_cursor);
            if cursor.is_none() || found.len() == names.len() {
                break;
            }
        }
        Ok(names.iter().filter_map(|n| found.remove(n)).collect())
    }

    /// The oldest message in `channel` that this app's bot posted with blocks: in a run's
    /// own incident channel, its card (its replies are in the card's thread).
    pub async fn first_bot_card(&self, channel: &str) -> Result<Option<String>, SendError> {
        self.members.until_ready().await;
        let session = self.client.open_session(&self.token);
        let Some(own) = session.auth_test().await.map_err(failure)?.bot_id else {
            return Ok(None);
        };
        let request = SlackApiConversationsHistoryRequest::new()
            .with_channel(channel.into())
            .with_limit(200);
        let history = session
            .conversations_history(&request)
            .await
            .map_err(failure)?;
        Ok(history
            .messages
            .iter()
            .filter(|m| m.sender.bot_id.as_ref() == Some(&own))
            .filter(|m| m.content.blocks.as_ref().is_some_and(|b| !b.is_empty()))
            .min_by(|a, b| a.origin.ts.0.cmp(&b.origin.ts.0))
            .map(|m| m.origin.ts.to_string()))
    }

    pub async fn invite(&self, channel: &str, users: &[String]) -> Result<(), SendError> {
        if users.is_empty() {
            return Ok(());
        }
        self.invite.until_ready().await;
        let session = self.client.open_session(&self.token);
        let request = SlackApiConversationsInviteRequest::new(
            channel.into(),
            users.iter().map(|u| u.clone().into()).collect(),
        );
        match session.conversations_invite(&request).await {
            Ok(_) => Ok(()),
            // Inviting someone already there, or the bot itself, is not a failure.
            Err(SlackClientError::ApiError(e))
                if matches!(e.code.as_str(), "already_in_channel" | "cant_invite_self") =>
            {
                Ok(())
            }
            Err(e) => Err(failure(e)),
        }
    }

    /// Posts a message; returns its ts.
    pub async fn post(
        &self,
        channel: &str,
        content: SlackMessageContent,
        thread: Option<&str>,
    ) -> Result<String, SendError> {
        self.post.until_key_ready(&channel.to_string()).await;
        let session = self.client.open_session(&self.token);
        let request = SlackApiChatPostMessageRequest::new(channel.into(), content)
            .opt_thread_ts(thread.map(|t| t.to_string().into()));
        session
            .chat_post_message(&request)
            .await
            .map(|r| r.ts.to_string())
            .map_err(failure)
    }

    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        content: SlackMessageContent,
    ) -> Result<(), SendError> {
        self.update.until_ready().await;
        let session = self.client.open_session(&self.token);
        let request =
            SlackApiChatUpdateRequest::new(channel.into(), content, ts.to_string().into());
        session
            .chat_update(&request)
            .await
            .map(drop)
            .map_err(failure)
    }

    /// The user groups among `candidates` that `user` is in, each group's members cached
    /// for a few minutes.
    pub async fn groups_of(&self, user: &str, candidates: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        for group in candidates {
            match self.members(group).await {
                Ok(members) if members.iter().any(|m| m == user) => found.push(group.clone()),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(usergroup = %group, error = %e, "Could not read a user group's members.")
                }
            }
        }
        found
    }

    async fn members(&self, group: &str) -> Result<Vec<String>, SendError> {
        if let Some((at, members)) = self.cached(group)
            && at.elapsed() < MEMBERS_FRESH
        {
            return Ok(members);
        }
        self.members.until_ready().await;
        let session = self.client.open_session(&self.token);
        let users = session
            .usergroups_users_list(&SlackApiUserGroupsUsersListRequest::new(
                group.to_string().into(),
            ))
            .await
            .map_err(failure)?
            .users
            .into_iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>();
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(group.to_string(), (Instant::now(), users.clone()));
        Ok(users)
    }

    fn cached(&self, group: &str) -> Option<(Instant, Vec<String>)> {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group)
            .cloned()
    }

    /// Answers a slash command or a button press later, on its `response_url`.
    pub async fn respond(&self, response_url: &str, body: &serde_json::Value) {
        let sent = self.http.post(response_url).json(body).send().await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status(), "Slack refused a response_url reply."),
            Err(e) => {
                tracing::warn!(error = %crate::secret::unsent(e), "Could not send a response_url reply.")
            }
        }
    }
}

fn failure(e: SlackClientError) -> SendError {
    match e {
        SlackClientError::RateLimitError(r) => SendError::RateLimited(
            r.retry_after
                .map_or(Duration::from_secs(1), |d| bounded_wait(d.as_secs_f64())),
        ),
        SlackClientError::ApiError(e) if e.code == "ratelimited" => {
            SendError::RateLimited(Duration::from_secs(1))
        }
        SlackClientError::ApiError(e) => SendError::Failed(format!("Slack said {}", e.code)),
        other => SendError::Failed(other.to_string()),
    }
}
