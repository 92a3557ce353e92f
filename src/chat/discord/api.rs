//! Discord's REST API as Lifeboat calls it. serenity builds each request (its route, the
//! bot's token, and `DISCORD_API_URL` as another base URL); Lifeboat sends it and keeps to
//! Discord's limits itself, because serenity 0.12's rate limiter sends every request to
//! discord.com whatever base URL is set. Each route's `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset-After` hold its next call back until the bucket refills, and a 429
//! waits out its `retry_after` (for every route, when Discord says it is global).
//! Answers are read for the ids Lifeboat keeps and nothing more.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use serenity::http::{LightMethod, Request, Route};
use serenity::model::id::{ApplicationId, ChannelId, GuildId, MessageId, UserId};
use tokio::time::Instant;

use super::super::outbound::SendError;
use super::DiscordSettings;
use crate::clock::bounded_wait;
use crate::secret::{ExposeSecret, SecretString};

/// How often an interaction's answer is tried again after a 429.
const ANSWER_TRIES: usize = 3;

pub struct DiscordApi {
    client: reqwest::Client,
    /// `Bot …`, as the Authorization header carries it.
    token: SecretString,
    base: Option<String>,
    application: Option<ApplicationId>,
    /// When each route's bucket may be called again, once Discord said it is empty.
    buckets: Mutex<HashMap<String, Instant>>,
    /// When any call may be made again, after a global 429.
    global: Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct Limited {
    retry_after: f64,
    #[serde(default)]
    global: bool,
}

fn id<T: From<u64>>(raw: &str, what: &str) -> Result<T, SendError> {
    raw.parse::<u64>()
        .map(T::from)
        .map_err(|_| SendError::Failed(format!("{what} `{raw}` is not a Discord id")))
}

/// A route's rate-limit bucket: its method and path, with ids other than a channel's,
/// guild's or webhook's (Discord's major parameters) left out.
fn bucket(method: LightMethod, path: &str) -> String {
    let mut out = format!("{method:?} ");
    let mut after_major = false;
    for segment in path.split('/') {
        let numeric = !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit());
        if numeric && !after_major {
            out.push_str("{id}/");
        } else {
            out.push_str(segment);
            out.push('/');
        }
        after_major = matches!(segment, "channels" | "guilds" | "webhooks");
    }
    out
}

fn header_f64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<f64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl DiscordApi {
    pub fn new(settings: &DiscordSettings) -> anyhow::Result<DiscordApi> {
        let token = settings.token.expose_secret().trim();
        let token = if token.starts_with("Bot ") {
            token.to_string()
        } else {
            format!("Bot {token}")
        };
        Ok(DiscordApi {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            token: SecretString::from(token),
            base: settings.api_url.clone(),
            application: settings.application_id.map(ApplicationId::new),
            buckets: Mutex::new(HashMap::new()),
            global: Mutex::new(None),
        })
    }

    async fn call(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: &Value,
    ) -> Result<Value, SendError> {
        let key = bucket(method, &route.path());
        let not_before = {
            let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let global = self.global.lock().unwrap_or_else(|e| e.into_inner());
            buckets.get(&key).copied().max(*global)
        };
        if let Some(at) = not_before {
            tokio::time::sleep_until(at).await;
        }
        let bytes = (!body.is_null())
            .then(|| serde_json::to_vec(body))
            .transpose()
            .map_err(|e| SendError::Failed(e.to_string()))?;
        let request = Request::new(route, method)
            .body(bytes)
            .build(
                &self.client,
                self.token.expose_secret(),
                self.base.as_deref(),
            )
            .map_err(|e| SendError::Failed(format!("Discord request: {e}")))?
            .build()
            .map_err(|e| {
                SendError::Failed(format!("Discord request: {}", crate::secret::unsent(e)))
            })?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| SendError::Failed(format!("Discord: {}", crate::secret::unsent(e))))?;
        let status = response.status();
        let headers = response.headers().clone();
        if header_f64(&headers, "x-ratelimit-remaining") == Some(0.0)
            && let Some(after) = header_f64(&headers, "x-ratelimit-reset-after")
        {
            self.buckets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), Instant::now() + bounded_wait(after));
        }
        let text = response.text().await.unwrap_or_default();
        if status.as_u16() == 429 {
            let limited: Option<Limited> = serde_json::from_str(&text).ok();
            let wait = limited
                .as_ref()
                .map(|l| l.retry_after)
                .or_else(|| header_f64(&headers, "retry-after"))
                .unwrap_or(1.0);
            let wait = bounded_wait(wait);
            let until = Instant::now() + wait;
            if limited.is_some_and(|l| l.global) {
                *self.global.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
            } else {
                self.buckets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, until);
            }
            return Err(SendError::RateLimited(wait));
        }
        if !status.is_success() {
            return Err(SendError::Failed(format!(
                "Discord answered {status}: {text}"
            )));
        }
        Ok(if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        })
    }

    fn created(answer: Value) -> Result<String, SendError> {
        serde_json::from_value::<Created>(answer)
            .map(|c| c.id)
            .map_err(|e| SendError::Failed(format!("Discord's answer names no id: {e}")))
    }

    /// Opens a public thread in a channel; returns the thread.
    pub async fn thread(&self, channel: &str, name: &str) -> Result<String, SendError> {
        let channel_id: ChannelId = id(channel, "channel")?;
        let answer = self
            .call(
                Route::ChannelThreads { channel_id },
                LightMethod::Post,
                // 11: a public thread; archived after a day without messages.
                &json!({ "name": name, "type": 11, "auto_archive_duration": 1440 }),
            )
            .await?;
        Self::created(answer)
    }

    /// The active threads under `channel` named `name`, oldest first: a look made only to
    /// find an incident opened by a claimer that died.
    pub async fn threads_named(&self, channel: &str, name: &str) -> Result<Vec<String>, SendError> {
        let channel_id: ChannelId = id(channel, "channel")?;
        let parent = self
            .call(
                Route::Channel { channel_id },
                LightMethod::Get,
                &Value::Null,
            )
            .await?;
        let Some(guild) = parent["guild_id"].as_str() else {
            return Ok(Vec::new());
        };
        let guild_id: GuildId = id(guild, "guild")?;
        let active = self
            .call(
                Route::GuildThreadsActive { guild_id },
                LightMethod::Get,
                &Value::Null,
            )
            .await?;
        let mut found: Vec<(u64, String)> = active["threads"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|t| {
                t["parent_id"].as_str() == Some(channel) && t["name"].as_str() == Some(name)
            })
            .filter_map(|t| {
                let id = t["id"].as_str()?;
                Some((id.parse().ok()?, id.to_string()))
            })
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }

    /// The oldest message this application's bot posted in `thread`: in a run's incident
    /// thread, its card.
    pub async fn first_bot_message(&self, thread: &str) -> Result<Option<String>, SendError> {
        let channel_id: ChannelId = id(thread, "thread")?;
        let messages = self
            .call(
                Route::ChannelMessages { channel_id },
                LightMethod::Get,
                &Value::Null,
            )
            .await?;
        Ok(messages
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            // This application's bot (a bot's user id is its application's id), or, not
            // knowing that, a bot.
            .filter(|m| match self.application {
                Some(app) => m["author"]["id"].as_str() == Some(app.to_string().as_str()),
                None => m["author"]["bot"].as_bool() == Some(true),
            })
            .filter_map(|m| {
                let id = m["id"].as_str()?;
                Some((id.parse::<u64>().ok()?, id.to_string()))
            })
            .min()
            .map(|(_, id)| id))
    }

    /// Adds a person to a thread.
    pub async fn add_to_thread(&self, thread: &str, user: &str) -> Result<(), SendError> {
        let channel_id: ChannelId = id(thread, "thread")?;
        let user_id: UserId = id(user, "user")?;
        self.call(
            Route::ChannelThreadMember {
                channel_id,
                user_id,
            },
            LightMethod::Put,
            &Value::Null,
        )
        .await
        .map(drop)
    }

    /// Posts a message; returns its id.
    pub async fn post(&self, channel: &str, message: &Value) -> Result<String, SendError> {
        let channel_id: ChannelId = id(channel, "channel")?;
        let answer = self
            .call(
                Route::ChannelMessages { channel_id },
                LightMethod::Post,
                message,
            )
            .await?;
        Self::created(answer)
    }

    pub async fn edit(&self, channel: &str, message: &str, body: &Value) -> Result<(), SendError> {
        let channel_id: ChannelId = id(channel, "channel")?;
        let message_id: MessageId = id(message, "message")?;
        self.call(
            Route::ChannelMessage {
                channel_id,
                message_id,
            },
            LightMethod::Patch,
            body,
        )
        .await
        .map(drop)
    }

    /// Replaces the deferred answer to an interaction with the outcome, waiting out rate
    /// limits: the person is waiting for it.
    pub async fn answer(&self, token: &str, body: &Value) -> Result<(), SendError> {
        let application_id = self
            .application
            .ok_or_else(|| SendError::Failed("DISCORD_APPLICATION_ID is not set".into()))?;
        let mut tries = 0;
        loop {
            let route = Route::WebhookOriginalInteractionResponse {
                application_id,
                token,
            };
            match self.call(route, LightMethod::Patch, body).await {
                Err(SendError::RateLimited(wait)) if tries < ANSWER_TRIES => {
                    tries += 1;
                    tokio::time::sleep(wait).await;
                }
                other => return other.map(drop),
            }
        }
    }

    /// The immediate answer to an interaction that came over the gateway.
    pub async fn respond(
        &self,
        interaction: &str,
        token: &str,
        body: &Value,
    ) -> Result<(), SendError> {
        let interaction_id: serenity::model::id::InteractionId = id(interaction, "interaction")?;
        self.call(
            Route::InteractionResponse {
                interaction_id,
                token,
            },
            LightMethod::Post,
            body,
        )
        .await
        .map(drop)
    }

    /// Registers `/dr` (replacing the application's global commands with it).
    pub async fn register(&self, commands: &Value) -> Result<(), SendError> {
        let application_id = self
            .application
            .ok_or_else(|| SendError::Failed("DISCORD_APPLICATION_ID is not set".into()))?;
        self.call(
            Route::Commands { application_id },
            LightMethod::Put,
            commands,
        )
        .await
        .map(drop)
    }
}
