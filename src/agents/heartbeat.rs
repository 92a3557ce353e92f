//! An agent process's heartbeat: every few seconds it tells the store which kinds of work
//! it takes, from which host, in which version, and how much it holds now. The preflight
//! refuses a run that needs a kind no live agent serves; `GET /api/v1/agents` and
//! `/dr agents` list what was heard.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::runtime::Runtime;
use crate::clock::Millis;
use crate::store::AgentBeat;

/// As often as leases are renewed.
pub const EVERY: Duration = crate::semaphore::HEARTBEAT_EVERY;

/// An agent not heard from for this long is not live: three heartbeats missed.
pub const LIVE_FOR: Duration = crate::semaphore::LEASE_TTL;

/// How long a silent agent stays listed, so that one which died shows when it was last
/// seen.
pub const LISTED_FOR: Duration = Duration::from_secs(3600);

/// The version every heartbeat carries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Runtime {
    async fn send_beat(&self, started_at: Millis) {
        let beat = self.beat(started_at);
        let forget = crate::clock::sub(beat.last_seen, LISTED_FOR);
        if let Err(e) = self.semaphore.announce(&beat, forget).await {
            tracing::warn!(error = %e, "Could not record the agents' heartbeat.");
        }
    }

    fn beat(&self, started_at: Millis) -> AgentBeat {
        AgentBeat {
            instance: self.instance.clone(),
            kinds: self.kinds(),
            host: host(),
            version: VERSION.to_string(),
            in_flight: self.in_flight(),
            started_at,
            last_seen: self.semaphore.clock().now_ms(),
        }
    }

    /// Announces this process once now (so that a run asked for right after start-up
    /// finds it), then every `EVERY` until the runtime stops; on a stop it leaves.
    pub async fn announce(&self) -> JoinHandle<()> {
        let started_at = self.semaphore.clock().now_ms();
        self.send_beat(started_at).await;
        let rt = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(EVERY);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = rt.shutdown.cancelled() => break,
                    _ = every.tick() => {}
                }
                rt.send_beat(started_at).await;
            }
            if let Err(e) = rt.semaphore.leave(&rt.instance).await {
                tracing::warn!(error = %e, "Could not record that the agents stopped.");
            }
        })
    }
}

/// This machine's name.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
