//! The running service's API as the command line calls it: at a base URL, with the token
//! in `LIFEBOAT_API_TOKEN`, answering the status and the JSON body.

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::Value;

pub struct ApiClient {
    client: reqwest::Client,
    base: reqwest::Url,
    token: Option<String>,
}

impl ApiClient {
    pub fn new(server: &str) -> anyhow::Result<ApiClient> {
        let base = reqwest::Url::parse(server)
            .with_context(|| format!("`{server}` is not a URL (e.g. http://127.0.0.1:8080)"))?;
        Ok(ApiClient {
            client: reqwest::Client::new(),
            base,
            token: std::env::var("LIFEBOAT_API_TOKEN")
                .ok()
                .map(|t| t.trim().to_string()),
        })
    }

    /// A GET of `path` (its segments), or a POST of `body` when there is one.
    pub async fn call(
        &self,
        path: &[&str],
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let response = self.send(path, &[], body).await?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// A GET of `path` with `query`, answered as text (a report); a refusal's JSON error
    /// as the text of an error.
    pub async fn text(&self, path: &[&str], query: &[(&str, &str)]) -> anyhow::Result<String> {
        let response = self.send(path, query, None).await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            let said: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            anyhow::bail!(
                "refused ({status}): {}",
                said["error"].as_str().unwrap_or(&text)
            );
        }
        Ok(text)
    }

    async fn send(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow::anyhow!("`{}` cannot take a path", self.base))?
            .pop_if_empty()
            .extend(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = match body {
            Some(b) => self.client.post(url).json(b),
            None => self.client.get(url),
        };
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await.with_context(|| {
            format!(
                "no answer from {} (is `lifeboat serve` running there?)",
                self.base
            )
        })
    }
}
