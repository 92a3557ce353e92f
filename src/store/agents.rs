//! Agents' heartbeats: which agent processes are alive, what kinds of work they take, and
//! how busy they are. What the preflight and `GET /api/v1/agents` read.

use sqlx::Row;

use super::Store;
use crate::clock::Millis;

/// An agent process as its last heartbeat described it.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentBeat {
    /// `agent:host:pid` or `embedded:host:pid`, as in its leases.
    pub instance: String,
    pub kinds: Vec<String>,
    pub host: String,
    pub version: String,
    /// Attempts it holds a lease for now.
    pub in_flight: u32,
    pub started_at: Millis,
    pub last_seen: Millis,
}

impl Store {
    /// Records a heartbeat: the agent's row, created or brought up to date.
    pub async fn agent_seen(&self, beat: &AgentBeat) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO agents (instance, kinds, host, version, in_flight, started_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (instance) DO UPDATE SET kinds = excluded.kinds, host = excluded.host, \
             version = excluded.version, in_flight = excluded.in_flight, last_seen = excluded.last_seen",
        )
        .bind(&beat.instance)
        .bind(serde_json::to_string(&beat.kinds)?)
        .bind(&beat.host)
        .bind(&beat.version)
        .bind(i64::from(beat.in_flight))
        .bind(beat.started_at)
        .bind(beat.last_seen)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An agent stopped cleanly: it is gone at once rather than when its heartbeat ages.
    pub async fn agent_left(&self, instance: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM agents WHERE instance = $1")
            .bind(instance)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets agents silent since before `before`: ones that died without leaving.
    pub async fn forget_agents(&self, before: Millis) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM agents WHERE last_seen < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Agents heard from since `since`, the most recently seen first.
    pub async fn agents(&self, since: Millis) -> anyhow::Result<Vec<AgentBeat>> {
        let rows = sqlx::query(
            "SELECT instance, kinds, host, version, in_flight, started_at, last_seen FROM agents \
             WHERE last_seen >= $1 ORDER BY last_seen DESC, instance",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kinds: String = r.try_get("kinds")?;
                Ok(AgentBeat {
                    instance: r.try_get("instance")?,
                    kinds: serde_json::from_str(&kinds)
                        .map_err(|e| anyhow::anyhow!("stored agent kinds {kinds:?}: {e}"))?,
                    host: r.try_get("host")?,
                    version: r.try_get("version")?,
                    in_flight: u32::try_from(r.try_get::<i64, _>("in_flight")?).unwrap_or(0),
                    started_at: r.try_get("started_at")?,
                    last_seen: r.try_get("last_seen")?,
                })
            })
            .collect()
    }
}
