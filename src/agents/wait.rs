//! Polls until something is healthy: `{ url | tcp | sql, interval, timeout }`.

use std::time::Duration;

use async_trait::async_trait;

use super::specs::WaitSpec;
use super::{Agent, Failure, Work};

pub struct WaitAgent {
    client: reqwest::Client,
}

impl WaitAgent {
    pub fn new() -> Self {
        WaitAgent {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn probe(&self, spec: &WaitSpec) -> Result<String, String> {
        if let Some(url) = &spec.url {
            let resp = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
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

impl Default for WaitAgent {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Agent for WaitAgent {
    fn kind(&self) -> &'static str {
        "wait"
    }

    async fn execute(&self, work: &Work) -> Result<String, Failure> {
        let spec: WaitSpec = work.spec()?;
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
                    if polls == 1 || polls % 10 == 0 {
                        work.say(format!("waiting: {e}")).await;
                    }
                }
            }
            tokio::time::sleep(spec.interval).await;
        }
    }
}
