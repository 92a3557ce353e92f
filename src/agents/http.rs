//! `http`: call an endpoint and check the answer: `{ url, method, headers, body,
//! expect_status, expect_body }`. Connection errors, 5xx and 429 are retryable; any other
//! unexpected status is permanent (a 403 does not fix itself).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::agent::{Agent, Env};
use super::work::{Failure, Work};
use crate::workflow::{SpecError, Targets};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    pub url: String,
    #[serde(default = "get")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub expect_status: Option<ExpectStatus>,
    /// The response body must contain this text.
    #[serde(default)]
    pub expect_body: Option<String>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ExpectStatus {
    One(u16),
    Any(Vec<u16>),
}

impl ExpectStatus {
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            ExpectStatus::One(s) => *s == status,
            ExpectStatus::Any(v) => v.contains(&status),
        }
    }
}

impl HttpSpec {
    fn validate(&self) -> Result<(), SpecError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| SpecError::at(&["url"], format!("bad url {:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SpecError::at(&["url"], "url must be http or https"));
        }
        reqwest::Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| SpecError::at(&["method"], format!("bad method {:?}", self.method)))?;
        Ok(())
    }
}

pub struct Http {
    client: reqwest::Client,
}

#[async_trait]
impl Agent for Http {
    const KIND: &'static str = "http";
    type Spec = HttpSpec;

    fn check(spec: &HttpSpec, _: &Targets) -> Result<(), SpecError> {
        spec.validate()
    }

    fn build(_: &Env) -> anyhow::Result<Self> {
        Ok(Http {
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    async fn run(&self, spec: HttpSpec, work: &Work) -> Result<String, Failure> {
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
        let left = work.time_left().max(Duration::from_secs(1));
        let resp = req.timeout(left).send().await.map_err(|e| {
            let e = crate::secret::unsent(e);
            Failure::retryable(format!("{method} {} failed: {e}", spec.url))
        })?;
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
