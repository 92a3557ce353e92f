//! Calls an endpoint and checks the answer: `{ url, method, headers, body, expect_status,
//! expect_body }`. Connection errors, 5xx and 429 are retryable; any other unexpected
//! status is permanent (a 403 does not fix itself).

use std::time::Duration;

use async_trait::async_trait;

use super::specs::HttpSpec;
use super::{Agent, Failure, Work};

pub struct HttpAgent {
    client: reqwest::Client,
}

impl HttpAgent {
    pub fn new() -> Self {
        HttpAgent {
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }
}

impl Default for HttpAgent {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Agent for HttpAgent {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn execute(&self, work: &Work) -> Result<String, Failure> {
        let spec: HttpSpec = work.spec()?;
        let method = reqwest::Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Failure::permanent(format!("bad method {:?}", spec.method)))?;
        if work.request.dry_run && method != reqwest::Method::GET && method != reqwest::Method::HEAD
        {
            return Ok(format!("dry run: would call {method} {}", spec.url));
        }
        let mut req = self.client.request(method.clone(), &spec.url);
        for (k, v) in &spec.headers {
            req = req.header(k, v);
        }
        req = match &spec.body {
            Some(serde_json::Value::String(s)) => req.body(s.clone()),
            Some(json) => req.json(json),
            None => req,
        };
        let left = (work.request.deadline - crate::clock::now_ms()).max(1000) as u64;
        let resp = req
            .timeout(Duration::from_millis(left))
            .send()
            .await
            .map_err(|e| Failure::retryable(format!("{method} {} failed: {e}", spec.url)))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let status_ok = match &spec.expect_status {
            Some(expect) => expect.accepts(status),
            None => (200..300).contains(&status),
        };
        if !status_ok {
            let message = format!("{method} {} answered {status}", spec.url);
            return Err(if status >= 500 || status == 429 {
                Failure::retryable(message)
            } else {
                Failure::permanent(message)
            });
        }
        if let Some(want) = &spec.expect_body
            && !body.contains(want.as_str())
        {
            return Err(Failure::retryable(format!(
                "{method} {} answered {status} without {want:?}",
                spec.url
            )));
        }
        Ok(format!("{method} {} answered {status}", spec.url))
    }
}
