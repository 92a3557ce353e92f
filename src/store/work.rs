//! What the store holds of a stage's current attempt: what an agent checks a work request
//! against before it runs anything, and who holds the lease of a request.

use std::collections::HashMap;
use std::str::FromStr;

use anyhow::Context;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{CHUNK, Store, holes};
use crate::bus::{VERSION, WorkRequest};
use crate::domain::run::{budgets_of, resource_key};
use crate::domain::{Audit, EventKind, RunAudit, RunId, StageState, request_id};
use crate::workflow::PlannedStage;

/// A stage as the store has it, for the attempt a request claims.
#[derive(Debug)]
pub enum StoredWork {
    /// No run has this id.
    NoRun,
    /// The run has no stage of this name.
    NoStage,
    Stage {
        state: StageState,
        /// The stage's current attempt, as the orchestrator would send it now.
        current: Box<WorkRequest>,
        /// The claimed request has ended (an outcome is recorded under its id).
        ended: bool,
    },
}

impl Store {
    /// The stage `stage` of run `run` as stored, and whether request `claimed_id` has
    /// ended: one query, on the path of every work request.
    pub async fn stored_work(
        &self,
        run: RunId,
        stage: &str,
        claimed_id: &str,
    ) -> anyhow::Result<StoredWork> {
        let mut found = self.stored_works(&[(run, stage, claimed_id)]).await?;
        found
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the store gave no answer for run {run}"))
    }

    /// `stored_work` for each of `asked` (run, stage, claimed request id), in that order:
    /// one query per chunk, for the messages an agent fetched together.
    pub async fn stored_works(
        &self,
        asked: &[(RunId, &str, &str)],
    ) -> anyhow::Result<Vec<StoredWork>> {
        use super::Column::{Int, Text};
        let mut found: Vec<Option<StoredWork>> = (0..asked.len()).map(|_| None).collect();
        for (c, chunk) in asked.chunks(CHUNK).enumerate() {
            let sql = format!(
                "SELECT v.column1 AS n, r.plan, r.dry_run, s.position, s.state, s.attempts, s.deadline, \
                 CASE WHEN s.hold IS NOT NULL AND s.approved_by IS NOT NULL THEN 1 ELSE 0 END \
                 AS accept_data_loss, \
                 (SELECT COUNT(*) FROM lease_outcomes o WHERE o.request_id = v.column4) AS ended \
                 FROM (VALUES {}) AS v LEFT JOIN runs r ON r.id = v.column2 \
                 LEFT JOIN stages s ON s.run_id = r.id AND s.name = v.column3",
                super::typed_values(chunk.len(), &[Int, Text, Text, Text])
            );
            let sql = self.backend.bulk(sql);
            let mut query = sqlx::query(&sql);
            for (i, (run, stage, claimed_id)) in chunk.iter().enumerate() {
                query = query
                    .bind((c * CHUNK + i) as i64)
                    .bind(run.to_string())
                    .bind(*stage)
                    .bind(*claimed_id);
            }
            for row in query.fetch_all(&self.pool).await? {
                let n = usize::try_from(row.try_get::<i64, _>("n")?)?;
                let Some(&(run, stage, _)) = asked.get(n) else {
                    anyhow::bail!("the store answered for request {n} of {}", asked.len());
                };
                found[n] = Some(stored_from_row(run, stage, &row)?);
            }
        }
        found
            .into_iter()
            .enumerate()
            .map(|(n, f)| {
                f.ok_or_else(|| anyhow::anyhow!("the store gave no answer for request {n}"))
            })
            .collect()
    }

    /// Notes on a run that an agent refused a request for it. Not a change of state: the
    /// run's version and events are the orchestrator's.
    pub async fn audit_refused_work(&self, run: RunId, audit: Audit) -> anyhow::Result<()> {
        debug_assert_eq!(audit.kind, EventKind::WorkRefused);
        let mut tx = self.pool.begin().await?;
        super::rows::insert_audit(&mut tx, &[RunAudit { run, audit }]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Who holds, or last held, the lease of each of these requests.
    pub async fn lease_holders(
        &self,
        request_ids: &[&str],
    ) -> anyhow::Result<HashMap<String, String>> {
        let mut found = HashMap::with_capacity(request_ids.len());
        for chunk in request_ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT request_id, holder FROM leases WHERE request_id IN ({}) \
                 UNION ALL SELECT request_id, holder FROM lease_outcomes \
                 WHERE request_id IN ({}) AND holder IS NOT NULL",
                holes(1, chunk.len()),
                holes(chunk.len() + 1, chunk.len())
            );
            let sql = self.backend.bulk(sql);
            let mut query = sqlx::query(&sql);
            for id in chunk.iter().chain(chunk) {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.pool).await? {
                found.insert(row.try_get("request_id")?, row.try_get("holder")?);
            }
        }
        Ok(found)
    }
}

/// A row of `stored_works`: the run's plan and the stage's stored attempt.
fn stored_from_row(run: RunId, stage: &str, row: &AnyRow) -> anyhow::Result<StoredWork> {
    let Some(plan) = row.try_get::<Option<String>, _>("plan")? else {
        return Ok(StoredWork::NoRun);
    };
    let Some(position) = row.try_get::<Option<i64>, _>("position")? else {
        return Ok(StoredWork::NoStage);
    };
    let plan: Vec<PlannedStage> = serde_json::from_str(&plan).context("stored plan")?;
    let planned = usize::try_from(position)
        .ok()
        .and_then(|i| plan.into_iter().nth(i))
        .ok_or_else(|| anyhow::anyhow!("stage {stage} of run {run} is not in its plan"))?;
    let dry_run = row.try_get::<i64, _>("dry_run")? != 0;
    let attempts = u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX);
    let state =
        StageState::from_str(&row.try_get::<String, _>("state")?).map_err(anyhow::Error::msg)?;
    Ok(StoredWork::Stage {
        state,
        current: Box::new(WorkRequest {
            v: VERSION,
            id: request_id(run, &planned.name, attempts),
            run_id: run,
            resource: resource_key(run, &planned, dry_run),
            budgets: budgets_of(&planned, dry_run),
            timeout_ms: u64::try_from(planned.timeout.as_millis()).unwrap_or(u64::MAX),
            stage: planned.name,
            agent: planned.agent,
            attempt: attempts,
            spec: planned.spec,
            deadline: row.try_get::<Option<i64>, _>("deadline")?.unwrap_or(0),
            dry_run,
            accept_data_loss: row.try_get::<i64, _>("accept_data_loss")? != 0,
        }),
        ended: row.try_get::<i64, _>("ended")? > 0,
    })
}
