//! Mattermost's REST API v4, as far as Lifeboat needs it: posts (in a thread or not),
//! their edits, and a user's name. A 429 waits out `Retry-After` (or
//! `X-Ratelimit-Reset`) and the call is made again by the caller.

use std::time::Duration;

use serde_json::Value;

use super::settings::MattermostSettings;
use crate::chat::outbound::SendError;
use crate::clock::bounded_wait;
use crate::secret::{ExposeSecret, SecretString};

pub struct MattermostApi {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

impl MattermostApi {
    pub fn new(settings: &MattermostSettings) -> anyhow::Result<MattermostApi> {
        Ok(MattermostApi {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            base: format!("{}/api/v4", settings.url),
            token: settings.bot_token.clone(),
        })
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, SendError> {
        let resp = request
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| SendError::Failed(format!("Mattermost: {}", crate::secret::unsent(e))))?;
        let status = resp.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            let wait = header("retry-after")
                .or_else(|| header("x-ratelimit-reset"))
                .unwrap_or(1.0);
            return Err(SendError::RateLimited(bounded_wait(wait)));
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let said = body["message"].as_str().unwrap_or("no message");
            return Err(SendError::Failed(format!(
                "Mattermost answered {status}: {said}"
            )));
        }
        Ok(body)
    }

    /// Posts `body` (`message`, `props`) in `channel`, in the thread of `root` if given;
    /// returns the post's id.
    pub async fn post(
        &self,
        channel: &str,
        root: Option<&str>,
        mut body: Value,
    ) -> Result<String, SendError> {
        if let Some(map) = body.as_object_mut() {
            map.insert("channel_id".into(), Value::String(channel.into()));
            if let Some(root) = root {
                map.insert("root_id".into(), Value::String(root.into()));
            }
        }
        let post = self
            .call(self.http.post(format!("{}/posts", self.base)).json(&body))
            .await?;
        post["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| SendError::Failed("Mattermost answered a post with no id".into()))
    }

    /// The posts in `channel` made since `since` (ms).
    pub async fn posts(&self, channel: &str, since: i64) -> Result<Vec<Value>, SendError> {
        let url = format!("{}/channels/{channel}/posts?since={since}", self.base);
        Ok(listed(self.call(self.http.get(url)).await?))
    }

    /// The posts of the thread that hangs from `root`, the root included.
    pub async fn thread(&self, root: &str) -> Result<Vec<Value>, SendError> {
        let url = format!("{}/posts/{root}/thread", self.base);
        Ok(listed(self.call(self.http.get(url)).await?))
    }

    /// Replaces a post's `message` and `props`.
    pub async fn edit(&self, post: &str, body: Value) -> Result<(), SendError> {
        self.call(
            self.http
                .put(format!("{}/posts/{post}/patch", self.base))
                .json(&body),
        )
        .await
        .map(drop)
    }

    /// The bot's own user id.
    pub async fn own_id(&self) -> Result<String, SendError> {
        let me = self
            .call(self.http.get(format!("{}/users/me", self.base)))
            .await?;
        me["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| SendError::Failed("Mattermost did not say who the bot is".into()))
    }

    /// A user's name, for a mention.
    pub async fn username(&self, user: &str) -> Result<String, SendError> {
        let found = self
            .call(self.http.get(format!("{}/users/{user}", self.base)))
            .await?;
        found["username"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| SendError::Failed(format!("Mattermost knows no user {user}")))
    }
}

/// The posts of a `{order, posts}` answer.
fn listed(answer: Value) -> Vec<Value> {
    let posts = &answer["posts"];
    answer["order"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|id| posts.get(id.as_str()?).cloned())
        .collect()
}
