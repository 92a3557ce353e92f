//! `wait`: poll until something is healthy: `{ url | tcp | sql, interval, timeout }`.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::agent::{Agent, Env};
use super::spec_fields::duration;
use super::work::{Failure, Work};
use crate::workflow::{SpecError, Targets};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    /// Healthy when a GET answers 2xx.
    #[serde(default)]
    pub url: Option<String>,
    /// Healthy when `host:port` accepts a connection.
    #[serde(default)]
    pub tcp: Option<String>,
    /// Healthy when this database URL answers `SELECT 1`.
    #[serde(default)]
    pub sql: Option<String>,
    #[serde(default = "two_seconds", deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(default = "five_minutes", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn two_seconds() -> Duration {
    Duration::from_secs(2)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

impl WaitSpec {
    fn validate(&self) -> Result<(), SpecError> {
        let set = [self.url.is_some(), self.tcp.is_some(), self.sql.is_some()];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(SpecError::at(
                &[],
                "wait needs exactly one of `url`, `tcp` or `sql`",
            ));
        }
        if let Some(tcp) = &self.tcp
            && tcp
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
        {
            return Err(SpecError::at(&["tcp"], format!("{tcp:?} is not host:port")));
        }
        if let Some(url) = &self.url {
            reqwest::Url::parse(url)
                .map_err(|e| SpecError::at(&["url"], format!("bad url: {e}")))?;
        }
        if self.interval.is_zero() {
            return Err(SpecError::at(&["interval"], "interval must be above zero"));
        }
        Ok(())
    }
}

pub struct Wait {
    client: reqwest::Client,
}

impl Wait {
    async fn probe(&self, spec: &WaitSpec) -> Result<String, String> {
        if let Some(url) = &spec.url {
            let resp = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| format!("{url}: {}", crate::secret::unsent(e)))?;
            let status = resp.status();
            return if status.is_success() {
                Ok(format!("{url} answered {}", status.as_u16()))
            } else {
                Err(format!("{url} answered {}", status.as_u16()))
            };
        }
        if let Some(addr) = &spec.tcp {
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| format!("{addr}: connect timed out"))?
                .map_err(|e| format!("{addr}: {e}"))?;
            return Ok(format!("{addr} accepts connections"));
        }
        if let Some(url) = &spec.sql {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query("SELECT 1")
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let _ = conn.close().await;
            return Ok("database answers SELECT 1".into());
        }
        Err("nothing to probe".into())
    }
}

#[async_trait]
impl Agent for Wait {
    const KIND: &'static str = "wait";
    type Spec = WaitSpec;

    fn check(spec: &WaitSpec, _: &Targets) -> Result<(), SpecError> {
        spec.validate()
    }

    fn build(_: &Env) -> anyhow::Result<Self> {
        Ok(Wait {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    async fn run(&self, spec: WaitSpec, work: &Work) -> Result<String, Failure> {
        if work.request.dry_run {
            // Probing changes nothing: a dry run reports the health it sees now.
            return Ok(match self.probe(&spec).await {
                Ok(m) => format!("dry run: healthy now ({m})"),
                Err(e) => format!("dry run: not healthy now ({e})"),
            });
        }
        let started = tokio::time::Instant::now();
        let mut polls = 0u32;
        loop {
            match self.probe(&spec).await {
                Ok(m) => return Ok(m),
                Err(e) => {
                    polls += 1;
                    if started.elapsed() + spec.interval > spec.timeout {
                        return Err(Failure::retryable(format!(
                            "not healthy after {}: {e}",
                            humantime::format_duration(spec.timeout)
                        )));
                    }
                    if polls == 1 || polls.is_multiple_of(10) {
                        work.say(format!("waiting: {e}")).await;
                    }
                }
            }
            tokio::time::sleep(spec.interval).await;
        }
    }
}
