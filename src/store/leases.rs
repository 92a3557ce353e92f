//! The lease tables: who holds which resource for which request until when
//! (`leases`), and how every request's lease ended (`lease_outcomes`). The rules around
//! them (the TTL, heartbeats, when an expired lease is swept) belong to the semaphore.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Backend, CHUNK, Store, holes};
use crate::clock;
use crate::domain::{
    Acquire, Budget, LeaseOutcome, LeaseRequest, OutcomeKind, Report, Revocation, RunId,
};

const OUTCOME_SELECT: &str = "SELECT request_id, run_id, stage, attempt, outcome, retryable, message, report, holder, released_us, \
     acquired_at FROM lease_outcomes";

/// Which leases an expiry takes.
pub enum Expiring<'a> {
    /// Those whose time is up.
    Due,
    /// Every lease of holders whose name starts so: a restarted process's own.
    HeldBy { prefix: &'a str },
}

/// How a holder ends its lease.
pub struct Release<'a> {
    pub request_id: &'a str,
    pub holder: &'a str,
    pub kind: OutcomeKind,
    pub retryable: bool,
    pub message: Option<String>,
    pub report: Option<Report>,
}

impl Store {
    /// Takes the leases of requests that count against no budget, in one transaction of a
    /// few statements however many there are: what an agent claims for the messages it
    /// fetched together. Each answer is what `acquire_lease` would give for that request.
    pub async fn acquire_leases(
        &self,
        reqs: &[&LeaseRequest],
        ttl: Duration,
    ) -> anyhow::Result<Vec<Acquire>> {
        anyhow::ensure!(
            reqs.iter().all(|r| r.budgets.is_empty()),
            "a lease counted against a budget is taken on its own"
        );
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        // Inserted in resource order, so that two agents claiming overlapping requests
        // wait on each other's rows in one order rather than deadlock.
        let mut order: Vec<&LeaseRequest> = reqs.to_vec();
        order.sort_by(|a, b| a.resource.cmp(&b.resource));
        let mut tx = self.pool.begin().await?;
        let now = self.clock.now_ms();
        let mut inserted: HashSet<String> = HashSet::new();
        for chunk in order.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO leases (resource, request_id, run_id, stage, attempt, holder, acquired_at, expires_at) \
                 VALUES {} ON CONFLICT DO NOTHING RETURNING request_id",
                super::values(chunk.len(), 8)
            );
            let sql = Backend::of(&tx).bulk(sql);
            let mut q = sqlx::query(&sql);
            for req in chunk {
                q = bind_lease(q, req, now, ttl);
            }
            for row in q.fetch_all(&mut *tx).await? {
                inserted.insert(row.try_get("request_id")?);
            }
        }
        // After the inserts, as in `acquire_lease`: a release that committed while an
        // insert waited on its row is seen here.
        let ids: Vec<&str> = reqs.iter().map(|r| r.request_id.as_str()).collect();
        let mut ended: HashMap<String, OutcomeKind> = HashMap::new();
        let sql = "SELECT request_id, outcome FROM lease_outcomes WHERE request_id IN ({})";
        for row in rows_in(&mut tx, sql, &ids).await? {
            ended.insert(row.try_get("request_id")?, outcome_kind(&row)?);
        }
        // Leases just taken for requests that turn out to have ended are given back.
        let taken_back: Vec<&str> = inserted
            .iter()
            .filter(|id| ended.contains_key(*id))
            .map(String::as_str)
            .collect();
        rows_in(
            &mut tx,
            "DELETE FROM leases WHERE request_id IN ({})",
            &taken_back,
        )
        .await?;
        // Who holds what the others asked for.
        let refused: Vec<&LeaseRequest> = reqs
            .iter()
            .copied()
            .filter(|r| !inserted.contains(&r.request_id) && !ended.contains_key(&r.request_id))
            .collect();
        let mut by_request: HashMap<String, String> = HashMap::new();
        let mut by_resource: HashMap<String, String> = HashMap::new();
        for chunk in refused.chunks(CHUNK) {
            let sql = format!(
                "SELECT resource, request_id, holder FROM leases WHERE resource IN ({}) OR request_id IN ({})",
                holes(1, chunk.len()),
                holes(chunk.len() + 1, chunk.len())
            );
            let sql = Backend::of(&tx).bulk(sql);
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q.bind(&r.resource);
            }
            for r in chunk {
                q = q.bind(&r.request_id);
            }
            for row in q.fetch_all(&mut *tx).await? {
                let request_id: String = row.try_get("request_id")?;
                by_resource.insert(row.try_get("resource")?, request_id.clone());
                by_request.insert(request_id, row.try_get("holder")?);
            }
        }
        tx.commit().await?;
        // A request named twice is taken once: its second copy finds it held.
        let mut given: HashSet<&str> = HashSet::new();
        Ok(reqs
            .iter()
            .map(|r| {
                if let Some(kind) = ended.get(&r.request_id) {
                    Acquire::Ended(*kind)
                } else if inserted.contains(&r.request_id) {
                    if given.insert(r.request_id.as_str()) {
                        Acquire::Acquired
                    } else {
                        Acquire::InProgress {
                            holder: r.holder.clone(),
                        }
                    }
                } else if let Some(holder) = by_request.get(&r.request_id) {
                    Acquire::InProgress {
                        holder: holder.clone(),
                    }
                } else {
                    // Released between the statements when nothing holds it now: the
                    // caller tries again.
                    Acquire::Busy {
                        request_id: by_resource.get(&r.resource).cloned().unwrap_or_default(),
                    }
                }
            })
            .collect())
    }

    /// Takes the lease of `req` for `ttl`, unless the request has ended or the resource
    /// is held.
    pub async fn acquire_lease(
        &self,
        req: &LeaseRequest,
        ttl: Duration,
    ) -> anyhow::Result<Acquire> {
        let mut tx = self.pool.begin().await?;
        let now = self.clock.now_ms();
        // Insert first, then look for an outcome. A release that committed while this insert
        // waited on its row is then seen by the look-up (PostgreSQL's READ COMMITTED gives each
        // statement a fresh snapshot); the other order would take a lease for work just done.
        let inserted = bind_lease(
            sqlx::query(
                "INSERT INTO leases (resource, request_id, run_id, stage, attempt, holder, acquired_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            ),
            req,
            now,
            ttl,
        )
        .execute(&mut *tx)
        .await?;
        let ended = sqlx::query("SELECT outcome FROM lease_outcomes WHERE request_id = $1")
            .bind(&req.request_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = ended {
            // Dropping the transaction takes back the lease just inserted.
            return Ok(Acquire::Ended(outcome_kind(&row)?));
        }
        if inserted.rows_affected() == 1 {
            for budget in &req.budgets {
                if let Some(over) = take_slot(&mut tx, budget, &req.request_id).await? {
                    // Rolling back gives up the lease and the slots taken so far.
                    tx.rollback().await?;
                    self.note_budget_wait(req, budget).await?;
                    return Ok(over);
                }
            }
            if !req.budgets.is_empty() {
                sqlx::query("DELETE FROM budget_waits WHERE request_id = $1")
                    .bind(&req.request_id)
                    .execute(&mut *tx)
                    .await?;
            }
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

    /// Gives the lease `ttl` from now; `false` when it is no longer this holder's.
    pub async fn renew_lease(
        &self,
        request_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> anyhow::Result<bool> {
        let done =
            sqlx::query("UPDATE leases SET expires_at = $1 WHERE request_id = $2 AND holder = $3")
                .bind(clock::add(self.clock.now_ms(), ttl))
                .bind(request_id)
                .bind(holder)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the holder's lease with its outcome, recorded in the same transaction. `None`
    /// when the lease is no longer the holder's.
    pub async fn release_lease(&self, r: Release<'_>) -> anyhow::Result<Option<LeaseOutcome>> {
        Ok(self
            .release_leases(std::slice::from_ref(&r))
            .await?
            .pop()
            .flatten())
    }

    /// `release_lease` for each of `releases`, in one transaction of a few statements
    /// however many there are: the outcome of each, in order.
    pub async fn release_leases(
        &self,
        releases: &[Release<'_>],
    ) -> anyhow::Result<Vec<Option<LeaseOutcome>>> {
        let mut tx = self.pool.begin().await?;
        // What each holder gave back, by request and holder.
        let mut held: HashMap<(String, String), (RunId, String, u32, i64)> = HashMap::new();
        for chunk in releases.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM leases WHERE (request_id, holder) IN (VALUES {}) \
                 RETURNING request_id, holder, run_id, stage, attempt, acquired_at",
                super::values(chunk.len(), 2)
            );
            let sql = Backend::of(&tx).bulk(sql);
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q.bind(r.request_id).bind(r.holder);
            }
            for row in q.fetch_all(&mut *tx).await? {
                held.insert(
                    (row.try_get("request_id")?, row.try_get("holder")?),
                    (
                        RunId::from_str(&row.try_get::<String, _>("run_id")?)?,
                        row.try_get("stage")?,
                        row.try_get::<i64, _>("attempt")? as u32,
                        row.try_get("acquired_at")?,
                    ),
                );
            }
        }
        // Read once the leases are gone: the start of the orchestration overhead.
        let released_us = self.clock.now_us();
        let outcomes: Vec<Option<LeaseOutcome>> = releases
            .iter()
            .map(|r| {
                // A lease named twice ends once.
                held.remove(&(r.request_id.to_string(), r.holder.to_string()))
                    .map(|(run_id, stage, attempt, acquired_at)| LeaseOutcome {
                        request_id: r.request_id.to_string(),
                        run_id,
                        stage,
                        attempt,
                        kind: r.kind,
                        retryable: r.retryable,
                        message: r.message.clone(),
                        report: r.report.clone(),
                        holder: Some(r.holder.to_string()),
                        released_us,
                        acquired_at: Some(acquired_at),
                    })
            })
            .collect();
        let ended: Vec<&LeaseOutcome> = outcomes.iter().flatten().collect();
        free_slots(&mut tx, &ended).await?;
        record(&mut tx, &ended).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Ends the leases `which` names as expired, recording each end.
    pub async fn expire_leases(&self, which: Expiring<'_>) -> anyhow::Result<Vec<LeaseOutcome>> {
        let mut tx = self.pool.begin().await?;
        let rows = match &which {
            Expiring::Due => sqlx::query(
                "DELETE FROM leases WHERE expires_at <= $1 RETURNING request_id, run_id, stage, attempt, holder, acquired_at",
            )
            .bind(self.clock.now_ms())
            .fetch_all(&mut *tx)
            .await?,
            Expiring::HeldBy { prefix } => sqlx::query(
                "DELETE FROM leases WHERE holder LIKE $1 RETURNING request_id, run_id, stage, attempt, holder, acquired_at",
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
                report: None,
                holder: row.try_get("holder")?,
                released_us: self.clock.now_us(),
                acquired_at: row.try_get("acquired_at")?,
            };
            out.push(outcome);
        }
        let ended: Vec<&LeaseOutcome> = out.iter().collect();
        record(&mut tx, &ended).await?;
        free_slots(&mut tx, &ended).await?;
        if matches!(which, Expiring::Due) {
            // A waiter that stopped asking (its process died) is forgotten.
            sqlx::query("DELETE FROM budget_waits WHERE seen_at <= $1")
                .bind(self.clock.now_ms() - WAIT_FORGOTTEN_MS)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// How these requests ended, for those that have: one query for a batch of releases.
    pub async fn lease_outcomes(&self, request_ids: &[&str]) -> anyhow::Result<Vec<LeaseOutcome>> {
        let mut found = Vec::with_capacity(request_ids.len());
        for chunk in request_ids.chunks(CHUNK) {
            let sql = format!(
                "{OUTCOME_SELECT} WHERE request_id IN ({})",
                holes(1, chunk.len())
            );
            let sql = self.backend.bulk(sql);
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.pool).await? {
                found.push(outcome_from_row(&row)?);
            }
        }
        Ok(found)
    }

    /// Outcomes recorded for attempts whose stage is still in flight: ended, but not yet
    /// applied by any orchestrator.
    pub async fn pending_lease_outcomes(&self) -> anyhow::Result<Vec<LeaseOutcome>> {
        let rows = sqlx::query(
            "SELECT o.request_id, o.run_id, o.stage, o.attempt, o.outcome, o.retryable, o.message, o.report, o.holder, \
             o.released_us, o.acquired_at FROM stages s JOIN lease_outcomes o \
             ON o.run_id = s.run_id AND o.stage = s.name AND o.attempt = s.attempts \
             WHERE s.state IN ('dispatched', 'running')",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outcome_from_row).collect()
    }

    /// Outcomes recorded for a run's requests.
    pub async fn lease_outcomes_of(&self, run: RunId) -> anyhow::Result<Vec<LeaseOutcome>> {
        let rows = sqlx::query(&format!("{OUTCOME_SELECT} WHERE run_id = $1"))
            .bind(run.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(outcome_from_row).collect()
    }
}

/// How long a waiter's word that it waits for a budget holds without being said again.
pub const WAIT_FORGOTTEN_MS: i64 = 15_000;

impl Store {
    /// Notes that `req.holder` waits for `budget` for the request: what lets the
    /// orchestrator keep the stage's deadline off while it waits.
    async fn note_budget_wait(&self, req: &LeaseRequest, budget: &Budget) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        sqlx::query(
            "INSERT INTO budget_waits (request_id, holder, budget, since, seen_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (request_id, holder) DO UPDATE SET budget = excluded.budget, seen_at = excluded.seen_at",
        )
        .bind(&req.request_id)
        .bind(&req.holder)
        .bind(&budget.key)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The first of `budgets` with no slot free now, with how many of its slots are held:
    /// a read, so that a stage waiting for a budget can look without taking the store's
    /// write lock.
    pub async fn budget_full<'b>(
        &self,
        budgets: &'b [Budget],
    ) -> anyhow::Result<Option<(&'b Budget, u32)>> {
        for b in budgets {
            let held: i64 = sqlx::query(
                "SELECT COUNT(*) AS held FROM budget_slots WHERE budget = $1 AND slot < $2",
            )
            .bind(&b.key)
            .bind(i64::from(b.limit))
            .fetch_one(&self.pool)
            .await?
            .try_get("held")?;
            if held >= i64::from(b.limit) {
                return Ok(Some((b, u32::try_from(held).unwrap_or(u32::MAX))));
            }
        }
        Ok(None)
    }

    /// Says again that `holder` waits for `budget` for the request.
    pub async fn still_waiting(&self, req: &LeaseRequest, budget: &Budget) -> anyhow::Result<()> {
        self.note_budget_wait(req, budget).await
    }

    /// Which of these requests each holder says, lately, it waits for a budget for.
    pub async fn budget_waiters(
        &self,
        request_ids: &[&str],
    ) -> anyhow::Result<Vec<(String, String)>> {
        let since = self.clock.now_ms() - WAIT_FORGOTTEN_MS;
        let mut found = Vec::new();
        for chunk in request_ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT request_id, holder FROM budget_waits WHERE seen_at > $1 AND request_id IN ({})",
                holes(2, chunk.len())
            );
            let sql = self.backend.bulk(sql);
            let mut query = sqlx::query(&sql).bind(since);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.pool).await? {
                found.push((row.try_get("request_id")?, row.try_get("holder")?));
            }
        }
        Ok(found)
    }

    /// How many slots of each budget are held now, by budget key.
    pub async fn budgets_held(&self) -> anyhow::Result<Vec<(String, u32)>> {
        let rows = sqlx::query(
            "SELECT budget, COUNT(*) AS held FROM budget_slots GROUP BY budget ORDER BY budget",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("budget")?,
                    u32::try_from(r.try_get::<i64, _>("held")?).unwrap_or(u32::MAX),
                ))
            })
            .collect()
    }
}

/// Takes a free slot of `budget` for the request. `Some`: none is free.
async fn take_slot(
    tx: &mut Transaction<'_, Any>,
    budget: &Budget,
    request_id: &str,
) -> anyhow::Result<Option<Acquire>> {
    let taken: HashSet<i64> = sqlx::query("SELECT slot FROM budget_slots WHERE budget = $1")
        .bind(&budget.key)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>("slot"))
        .collect::<Result<_, _>>()?;
    for slot in (0..i64::from(budget.limit)).filter(|s| !taken.contains(s)) {
        // Another taker may have the same slot in hand: the key decides, and the loser
        // tries the next.
        let took = sqlx::query(
            "INSERT INTO budget_slots (budget, slot, request_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&budget.key)
        .bind(slot)
        .bind(request_id)
        .execute(&mut **tx)
        .await?;
        if took.rows_affected() == 1 {
            return Ok(None);
        }
    }
    Ok(Some(Acquire::OverBudget {
        budget: budget.name(),
        held: u32::try_from(taken.len())
            .unwrap_or(u32::MAX)
            .max(budget.limit),
        limit: budget.limit,
    }))
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// Binds a lease row's eight columns, `resource` to `expires_at`, as the inserts name them.
fn bind_lease<'q>(
    q: AnyQuery<'q>,
    req: &'q LeaseRequest,
    now: clock::Millis,
    ttl: Duration,
) -> AnyQuery<'q> {
    q.bind(&req.resource)
        .bind(&req.request_id)
        .bind(req.run_id.to_string())
        .bind(&req.stage)
        .bind(req.attempt as i64)
        .bind(&req.holder)
        .bind(now)
        .bind(clock::add(now, ttl))
}

/// Gives back the budget slots the leases of these outcomes held.
async fn free_slots(tx: &mut Transaction<'_, Any>, ended: &[&LeaseOutcome]) -> anyhow::Result<()> {
    let ids: Vec<&str> = ended.iter().map(|o| o.request_id.as_str()).collect();
    rows_in(
        tx,
        "DELETE FROM budget_slots WHERE request_id IN ({})",
        &ids,
    )
    .await?;
    Ok(())
}

/// `sql`, whose `{}` stands for an `IN (…)` list, run in `tx` over `ids` a chunk at a time:
/// every row it gave.
async fn rows_in(
    tx: &mut Transaction<'_, Any>,
    sql: &str,
    ids: &[&str],
) -> anyhow::Result<Vec<AnyRow>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let sql = sql.replace("{}", &holes(1, chunk.len()));
        let sql = Backend::of(tx).bulk(sql);
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

fn outcome_kind(row: &AnyRow) -> anyhow::Result<OutcomeKind> {
    OutcomeKind::from_str(&row.try_get::<String, _>("outcome")?).map_err(anyhow::Error::msg)
}

fn outcome_from_row(r: &AnyRow) -> anyhow::Result<LeaseOutcome> {
    Ok(LeaseOutcome {
        request_id: r.try_get("request_id")?,
        run_id: RunId::from_str(&r.try_get::<String, _>("run_id")?)?,
        stage: r.try_get("stage")?,
        attempt: r.try_get::<i64, _>("attempt")? as u32,
        kind: outcome_kind(r)?,
        retryable: r.try_get::<i64, _>("retryable")? != 0,
        message: r.try_get("message")?,
        report: report_from(r.try_get("report")?)?,
        holder: r.try_get("holder")?,
        released_us: r.try_get("released_us")?,
        acquired_at: r.try_get("acquired_at")?,
    })
}

/// Records how these leases ended; an end recorded already stays as it was.
async fn record(tx: &mut Transaction<'_, Any>, ended: &[&LeaseOutcome]) -> anyhow::Result<()> {
    for chunk in ended.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO lease_outcomes (request_id, run_id, stage, attempt, outcome, retryable, message, report, holder, released_us, \
             acquired_at) VALUES {} ON CONFLICT DO NOTHING",
            super::values(chunk.len(), 11)
        );
        let sql = Backend::of(tx).bulk(sql);
        let mut q = sqlx::query(&sql);
        for o in chunk {
            q = q
                .bind(&o.request_id)
                .bind(o.run_id.to_string())
                .bind(&o.stage)
                .bind(o.attempt as i64)
                .bind(o.kind.as_str())
                .bind(o.retryable as i64)
                .bind(o.message.clone())
                .bind(report_json(o.report.as_ref())?)
                .bind(o.holder.clone())
                .bind(o.released_us)
                .bind(o.acquired_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Takes a lease back inside the orchestrator's own transaction. Recording the outcome
/// even when no lease was taken yet keeps a late delivery of the request from starting.
pub(super) async fn revoke_in(
    tx: &mut Transaction<'_, Any>,
    r: &Revocation,
    released_us: i64,
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM leases WHERE request_id = $1")
        .bind(&r.request_id)
        .execute(&mut **tx)
        .await?;
    let ended = LeaseOutcome {
        request_id: r.request_id.clone(),
        run_id: r.run_id,
        stage: r.stage.clone(),
        attempt: r.attempt,
        kind: OutcomeKind::Revoked,
        retryable: false,
        message: Some(r.reason.clone()),
        report: None,
        holder: None,
        released_us,
        acquired_at: None,
    };
    free_slots(tx, &[&ended]).await?;
    sqlx::query("DELETE FROM budget_waits WHERE request_id = $1")
        .bind(&r.request_id)
        .execute(&mut **tx)
        .await?;
    record(tx, &[&ended]).await
}

/// A report as stored: JSON, or NULL when there is none.
pub(super) fn report_json(report: Option<&Report>) -> anyhow::Result<Option<String>> {
    Ok(match report {
        Some(r) if !r.is_empty() => Some(serde_json::to_string(r)?),
        _ => None,
    })
}

pub(super) fn report_from(stored: Option<String>) -> anyhow::Result<Option<Report>> {
    stored
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| anyhow::anyhow!("a stored report is not JSON of its kind: {e}"))
}
