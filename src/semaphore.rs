//! The semaphore: one lease per resource (`database:petstore-region-a`), held by the agent
//! doing a stage's work, kept alive by heartbeats, and released with the outcome. The
//! orchestrator moves on when a lease is released with success; a lease whose holder
//! stops heartbeating expires and counts as a retryable failure.
//!
//! Every request's end is recorded in `lease_outcomes`, which is what makes a redelivered
//! work request a no-op and lets a restarted orchestrator find outcomes it missed.

use std::str::FromStr;
use std::time::Duration;

use sqlx::{Any, Row, Transaction};
use std::sync::Arc;

use crate::clock;
use crate::ids::RunId;
use crate::store::{Revocation, Store};

pub const LEASE_TTL: Duration = Duration::from_secs(15);
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// Expiry is checked this often: precise enough against a 15 s TTL, rare enough to stay
/// out of the way of the writes that move runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    Succeeded,
    Failed,
    Expired,
    Revoked,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Succeeded => "succeeded",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Expired => "expired",
            OutcomeKind::Revoked => "revoked",
        }
    }
}

impl FromStr for OutcomeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "succeeded" => OutcomeKind::Succeeded,
            "failed" => OutcomeKind::Failed,
            "expired" => OutcomeKind::Expired,
            "revoked" => OutcomeKind::Revoked,
            other => return Err(format!("unknown lease outcome `{other}`")),
        })
    }
}

/// How a request's lease ended.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseOutcome {
    pub request_id: String,
    pub run_id: RunId,
    pub stage: String,
    pub attempt: u32,
    pub kind: OutcomeKind,
    pub retryable: bool,
    pub message: Option<String>,
    pub holder: Option<String>,
    /// Wall-clock microseconds of the release: the start of the orchestration overhead.
    pub released_us: i64,
}

#[derive(Clone, Debug)]
pub struct LeaseRequest {
    pub resource: String,
    pub request_id: String,
    pub run_id: RunId,
    pub stage: String,
    pub attempt: u32,
    pub holder: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Acquire {
    Acquired,
    /// This request already ended; do nothing.
    Ended(OutcomeKind),
    /// This request's lease is held already (a redelivery while someone works on it).
    InProgress {
        holder: String,
    },
    /// Another request holds the resource.
    Busy {
        request_id: String,
    },
}

/// Tells the orchestrator that a lease ended. In one process this is a call into the
/// engine's queue; across processes the same outcomes are found in the store.
pub type OutcomeSink = Arc<dyn Fn(LeaseOutcome) + Send + Sync>;

#[derive(Clone)]
pub struct Semaphore {
    store: Store,
    sink: Option<OutcomeSink>,
}

impl Semaphore {
    pub fn new(store: Store, sink: Option<OutcomeSink>) -> Self {
        Semaphore { store, sink }
    }

    fn notify(&self, outcomes: &[LeaseOutcome]) {
        if let Some(sink) = &self.sink {
            for o in outcomes {
                sink(o.clone());
            }
        }
    }

    pub async fn acquire(&self, req: &LeaseRequest) -> anyhow::Result<Acquire> {
        let mut tx = self.store.pool.begin().await?;
        let now = clock::now_ms();
        // Insert first, then look for an outcome. A release that committed while this insert
        // waited on its row is then seen by the look-up (PostgreSQL's READ COMMITTED gives each
        // statement a fresh snapshot); the other order would take a lease for work just done.
        let inserted = sqlx::query(
            "INSERT INTO leases (resource, request_id, run_id, stage, attempt, holder, acquired_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&req.resource)
        .bind(&req.request_id)
        .bind(req.run_id.to_string())
        .bind(&req.stage)
        .bind(req.attempt as i64)
        .bind(&req.holder)
        .bind(now)
        .bind(clock::add(now, LEASE_TTL))
        .execute(&mut *tx)
        .await?;
        let ended = sqlx::query("SELECT outcome FROM lease_outcomes WHERE request_id = $1")
            .bind(&req.request_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = ended {
            // Dropping the transaction takes back the lease just inserted.
            let kind = OutcomeKind::from_str(&row.try_get::<String, _>("outcome")?)
                .map_err(anyhow::Error::msg)?;
            return Ok(Acquire::Ended(kind));
        }
        if inserted.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(Acquire::Acquired);
        }
        let holder = sqlx::query(
            "SELECT request_id, holder FROM leases WHERE resource = $1 OR request_id = $2",
        )
        .bind(&req.resource)
        .bind(&req.request_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match holder {
            Some(row) => {
                let request_id: String = row.try_get("request_id")?;
                if request_id == req.request_id {
                    Acquire::InProgress {
                        holder: row.try_get("holder")?,
                    }
                } else {
                    Acquire::Busy { request_id }
                }
            }
            // Released between the two statements: the caller tries again.
            None => Acquire::Busy {
                request_id: String::new(),
            },
        })
    }

    /// Extends the lease; `false` when it is no longer this holder's (expired or revoked).
    pub async fn heartbeat(&self, request_id: &str, holder: &str) -> anyhow::Result<bool> {
        let done =
            sqlx::query("UPDATE leases SET expires_at = $1 WHERE request_id = $2 AND holder = $3")
                .bind(clock::add(clock::now_ms(), LEASE_TTL))
                .bind(request_id)
                .bind(holder)
                .execute(&self.store.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the lease with the work's outcome. `None` when the lease was no longer held
    /// (expired or revoked meanwhile): the outcome is then not this holder's to give.
    pub async fn release(
        &self,
        request_id: &str,
        holder: &str,
        kind: OutcomeKind,
        retryable: bool,
        message: Option<String>,
    ) -> anyhow::Result<Option<LeaseOutcome>> {
        let mut tx = self.store.pool.begin().await?;
        let row = sqlx::query("DELETE FROM leases WHERE request_id = $1 AND holder = $2 RETURNING run_id, stage, attempt")
            .bind(request_id)
            .bind(holder)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let outcome = LeaseOutcome {
            request_id: request_id.to_string(),
            run_id: RunId::from_str(&row.try_get::<String, _>("run_id")?)?,
            stage: row.try_get("stage")?,
            attempt: row.try_get::<i64, _>("attempt")? as u32,
            kind,
            retryable,
            message,
            holder: Some(holder.to_string()),
            released_us: clock::now_us(),
        };
        record(&mut tx, &outcome).await?;
        tx.commit().await?;
        self.notify(std::slice::from_ref(&outcome));
        Ok(Some(outcome))
    }

    /// Expires every lease past its time, or (with `holder_prefix`) every lease of those
    /// holders at once: a restarted embedded process does not wait out its own old leases.
    pub async fn expire(&self, holder_prefix: Option<&str>) -> anyhow::Result<Vec<LeaseOutcome>> {
        let mut tx = self.store.pool.begin().await?;
        let rows = match holder_prefix {
            None => sqlx::query(
                "DELETE FROM leases WHERE expires_at <= $1 RETURNING request_id, run_id, stage, attempt, holder",
            )
            .bind(clock::now_ms())
            .fetch_all(&mut *tx)
            .await?,
            Some(prefix) => sqlx::query(
                "DELETE FROM leases WHERE holder LIKE $1 RETURNING request_id, run_id, stage, attempt, holder",
            )
            .bind(format!("{prefix}%"))
            .fetch_all(&mut *tx)
            .await?,
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let outcome = LeaseOutcome {
                request_id: row.try_get("request_id")?,
                run_id: RunId::from_str(&row.try_get::<String, _>("run_id")?)?,
                stage: row.try_get("stage")?,
                attempt: row.try_get::<i64, _>("attempt")? as u32,
                kind: OutcomeKind::Expired,
                retryable: true,
                message: Some("lease expired: the agent stopped heartbeating".into()),
                holder: row.try_get("holder")?,
                released_us: clock::now_us(),
            };
            record(&mut tx, &outcome).await?;
            out.push(outcome);
        }
        tx.commit().await?;
        self.notify(&out);
        Ok(out)
    }

    /// The outcome `holder` released `request_id` with, if it did: for a holder whose
    /// release committed but whose answer was lost. Told to the orchestrator like any
    /// release.
    pub async fn released_by(
        &self,
        request_id: &str,
        holder: &str,
    ) -> anyhow::Result<Option<LeaseOutcome>> {
        let found = self.outcomes(&[request_id]).await?.into_iter().find(|o| {
            o.holder.as_deref() == Some(holder)
                && matches!(o.kind, OutcomeKind::Succeeded | OutcomeKind::Failed)
        });
        if let Some(o) = &found {
            self.notify(std::slice::from_ref(o));
        }
        Ok(found)
    }

    /// How these requests ended, for those that have: one query for a batch of releases.
    pub async fn outcomes(&self, request_ids: &[&str]) -> anyhow::Result<Vec<LeaseOutcome>> {
        let mut found = Vec::with_capacity(request_ids.len());
        // Well under every backend's limit on bound parameters.
        for chunk in request_ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "{OUTCOME_SELECT} WHERE request_id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.store.pool).await? {
                found.push(outcome_from_row(&row)?);
            }
        }
        Ok(found)
    }

    /// Outcomes recorded for attempts whose stage is still in flight: ended, but not yet
    /// applied by any orchestrator.
    pub async fn pending_outcomes(&self) -> anyhow::Result<Vec<LeaseOutcome>> {
        let rows = sqlx::query(
            "SELECT o.request_id, o.run_id, o.stage, o.attempt, o.outcome, o.retryable, o.message, o.holder, \
             o.released_us FROM stages s JOIN lease_outcomes o \
             ON o.run_id = s.run_id AND o.stage = s.name AND o.attempt = s.attempts \
             WHERE s.state IN ('dispatched', 'running')",
        )
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter().map(outcome_from_row).collect()
    }

    /// Outcomes recorded for a run's requests, for recovery.
    pub async fn outcomes_for(&self, run: RunId) -> anyhow::Result<Vec<LeaseOutcome>> {
        let rows = sqlx::query(&format!("{OUTCOME_SELECT} WHERE run_id = $1"))
            .bind(run.to_string())
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter().map(outcome_from_row).collect()
    }

    /// Runs the expiry sweep until the process ends.
    ///
    /// A store outage stops every heartbeat, so leases look dead when it ends. After the
    /// sweep could not reach the store, it waits one TTL before expiring anything: holders
    /// that are alive heartbeat or release in that time, and only dead ones expire. It
    /// starts the same way, since a process may be starting just as the store returns
    /// (a supervisor restarting it through the outage), having seen none of it.
    pub async fn sweep_forever(self) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hold_until = Some(tokio::time::Instant::now() + LEASE_TTL);
        loop {
            every.tick().await;
            if let Some(until) = hold_until {
                if tokio::time::Instant::now() < until {
                    if !self.store.ping().await {
                        hold_until = Some(tokio::time::Instant::now() + LEASE_TTL);
                    }
                    continue;
                }
                hold_until = None;
            }
            if let Err(e) = self.expire(None).await {
                tracing::warn!(error = %e, "Lease expiry sweep failed; expiry waits one lease TTL after the store is back.");
                hold_until = Some(tokio::time::Instant::now() + LEASE_TTL);
            }
        }
    }
}

const OUTCOME_SELECT: &str = "SELECT request_id, run_id, stage, attempt, outcome, retryable, message, holder, released_us \
     FROM lease_outcomes";

fn outcome_from_row(r: &sqlx::any::AnyRow) -> anyhow::Result<LeaseOutcome> {
    Ok(LeaseOutcome {
        request_id: r.try_get("request_id")?,
        run_id: RunId::from_str(&r.try_get::<String, _>("run_id")?)?,
        stage: r.try_get("stage")?,
        attempt: r.try_get::<i64, _>("attempt")? as u32,
        kind: OutcomeKind::from_str(&r.try_get::<String, _>("outcome")?)
            .map_err(anyhow::Error::msg)?,
        retryable: r.try_get::<i64, _>("retryable")? != 0,
        message: r.try_get("message")?,
        holder: r.try_get("holder")?,
        released_us: r.try_get("released_us")?,
    })
}

async fn record(tx: &mut Transaction<'_, Any>, o: &LeaseOutcome) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO lease_outcomes (request_id, run_id, stage, attempt, outcome, retryable, message, holder, released_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(&o.request_id)
    .bind(o.run_id.to_string())
    .bind(&o.stage)
    .bind(o.attempt as i64)
    .bind(o.kind.as_str())
    .bind(o.retryable as i64)
    .bind(o.message.clone())
    .bind(o.holder.clone())
    .bind(o.released_us)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes a lease back inside the orchestrator's own transaction. Recording the outcome
/// even when no lease was taken yet keeps a late delivery of the request from starting.
pub async fn revoke_in(tx: &mut Transaction<'_, Any>, r: &Revocation) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM leases WHERE request_id = $1")
        .bind(&r.request_id)
        .execute(&mut **tx)
        .await?;
    record(
        tx,
        &LeaseOutcome {
            request_id: r.request_id.clone(),
            run_id: r.run_id,
            stage: r.stage.clone(),
            attempt: r.attempt,
            kind: OutcomeKind::Revoked,
            retryable: false,
            message: Some(r.reason.clone()),
            holder: None,
            released_us: clock::now_us(),
        },
    )
    .await
}
