//! Mapping between rows and the run types.

use std::str::FromStr;

use anyhow::Context;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::{Backend, CHUNK, Column, RunWrite, holes, typed_values, values};
use crate::bus::Envelope;
use crate::clock::Millis;
use crate::domain::{
    Actor, Audit, EventKind, Run, RunAudit, RunId, RunState, StageRun, StageState,
};

pub const RUN_SELECT: &str = "SELECT id, group_name, action, workflow, dry_run, reason, requested_by, \
    params, plan, state, created_at, started_at, finished_at, message, version, overrides FROM runs";

pub fn run_from_row(row: &AnyRow) -> anyhow::Result<Run> {
    let id: String = row.try_get("id")?;
    let plan: Vec<crate::workflow::PlannedStage> =
        serde_json::from_str(&row.try_get::<String, _>("plan")?).context("stored plan")?;
    let stages = vec![StageRun::default(); plan.len()];
    Ok(Run {
        id: RunId::from_str(&id).with_context(|| format!("stored run id {id:?}"))?,
        group: row.try_get("group_name")?,
        action: row
            .try_get::<String, _>("action")?
            .parse()
            .map_err(anyhow::Error::msg)?,
        workflow: row.try_get("workflow")?,
        dry_run: row.try_get::<i64, _>("dry_run")? != 0,
        reason: row.try_get("reason")?,
        requested_by: actor(&row.try_get::<String, _>("requested_by")?)?,
        params: serde_json::from_str(&row.try_get::<String, _>("params")?)
            .context("stored params")?,
        overrides: row
            .try_get::<Option<String>, _>("overrides")?
            .map(|o| serde_json::from_str(&o))
            .transpose()
            .context("stored overrides")?,
        state: RunState::from_str(&row.try_get::<String, _>("state")?)
            .map_err(anyhow::Error::msg)?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        message: row.try_get("message")?,
        plan,
        stages,
        version: row.try_get("version")?,
    })
}

pub async fn load_stages(pool: &AnyPool, run: &mut Run) -> anyhow::Result<()> {
    let rows = sqlx::query(
        "SELECT position, state, attempts, started_at, finished_at, message, report, retry_at, deadline, approved_by, \
         approvals, skipped_by, budget_from, hold FROM stages WHERE run_id = $1",
    )
    .bind(run.id.to_string())
    .fetch_all(pool)
    .await?;
    for r in &rows {
        let i = r.try_get::<i64, _>("position")? as usize;
        let Some(slot) = run.stages.get_mut(i) else {
            anyhow::bail!(
                "run {} has a stage row at position {i} outside its plan",
                run.id
            );
        };
        *slot = StageRun {
            state: StageState::from_str(&r.try_get::<String, _>("state")?)
                .map_err(anyhow::Error::msg)?,
            attempts: r.try_get::<i64, _>("attempts")? as u32,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            message: r.try_get("message")?,
            report: super::leases::report_from(r.try_get("report")?)?,
            retry_at: r.try_get("retry_at")?,
            deadline: r.try_get("deadline")?,
            approved_by: r
                .try_get::<Option<String>, _>("approved_by")?
                .map(|a| actor(&a))
                .transpose()?,
            approvals: match r.try_get::<Option<String>, _>("approvals")? {
                Some(json) => serde_json::from_str(&json).context("stored approvals")?,
                None => Vec::new(),
            },
            skipped_by: r
                .try_get::<Option<String>, _>("skipped_by")?
                .map(|a| actor(&a))
                .transpose()?,
            budget_from: r.try_get::<i64, _>("budget_from")? as u32,
            hold: r
                .try_get::<Option<String>, _>("hold")?
                .map(|json| serde_json::from_str(&json).context("stored hold"))
                .transpose()?,
        };
    }
    Ok(())
}

/// Every stage row of a new run, in one statement per chunk.
pub async fn insert_stages(tx: &mut Transaction<'_, Any>, run: &Run) -> anyhow::Result<()> {
    let positions: Vec<usize> = (0..run.stages.len()).collect();
    for chunk in positions.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO stages (run_id, position, name, agent, state, attempts, started_at, finished_at, \
             message, retry_at, deadline, approved_by, report, approvals, skipped_by, budget_from, hold) \
             VALUES {}",
            values(chunk.len(), 17)
        );
        let sql = Backend::of(tx).bulk(sql);
        let mut query = sqlx::query(&sql);
        for &i in chunk {
            query = query
                .bind(run.id.to_string())
                .bind(i as i64)
                .bind(&run.plan[i].name)
                .bind(&run.plan[i].agent);
            query = bind_stage(query, &run.stages[i])?;
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// Binds a stage's thirteen stored columns, `state` to `hold`, in the order both the insert
/// and the update name them.
fn bind_stage<'q>(query: AnyQuery<'q>, s: &'q StageRun) -> anyhow::Result<AnyQuery<'q>> {
    Ok(query
        .bind(s.state.as_str())
        .bind(s.attempts as i64)
        .bind(s.started_at)
        .bind(s.finished_at)
        .bind(s.message.clone())
        .bind(s.retry_at)
        .bind(s.deadline)
        .bind(s.approved_by.as_ref().map(Actor::to_string))
        .bind(super::leases::report_json(s.report.as_ref())?)
        .bind(approvals_json(s)?)
        .bind(s.skipped_by.as_ref().map(Actor::to_string))
        .bind(s.budget_from as i64)
        .bind(s.hold.as_ref().map(serde_json::to_string).transpose()?))
}

/// Writes runs and their changed stages: one statement per chunk of runs and one per chunk
/// of stages, not one per row, since the engine writes every batch this way. Refused as a
/// whole if any run's row moved on from the version its change was computed from.
pub async fn update_runs(
    tx: &mut Transaction<'_, Any>,
    writes: &[RunWrite<'_>],
) -> anyhow::Result<()> {
    use Column::{Int, Text};
    for chunk in writes.chunks(CHUNK) {
        let sql = format!(
            "UPDATE runs SET state = v.column2, active_key = v.column3, started_at = v.column4, \
             finished_at = v.column5, message = v.column6, version = v.column7 \
             FROM (VALUES {}) AS v WHERE runs.id = v.column1 AND runs.version = v.column8",
            typed_values(chunk.len(), &[Text, Text, Text, Int, Int, Text, Int, Int])
        );
        let sql = Backend::of(tx).bulk(sql);
        let mut q = sqlx::query(&sql);
        for w in chunk {
            let run = w.run;
            q = q
                .bind(run.id.to_string())
                .bind(run.state.as_str())
                .bind((!run.state.is_final()).then(|| run.active_key()))
                .bind(run.started_at)
                .bind(run.finished_at)
                .bind(run.message.clone())
                .bind(run.version)
                .bind(w.expected_version);
        }
        let done = q.execute(&mut **tx).await?;
        if done.rows_affected() != chunk.len() as u64 {
            let runs: Vec<String> = chunk.iter().map(|w| w.run.id.to_string()).collect();
            return Err(super::StoreError::Conflict(format!(
                "{} of runs {} changed underneath this writer",
                chunk.len() as u64 - done.rows_affected(),
                runs.join(", ")
            ))
            .into());
        }
    }
    let stages: Vec<(&Run, usize)> = writes
        .iter()
        .flat_map(|w| w.stages.iter().map(move |&i| (w.run, i)))
        .collect();
    for chunk in stages.chunks(CHUNK) {
        let sql = format!(
            "UPDATE stages SET state = v.column3, attempts = v.column4, started_at = v.column5, \
             finished_at = v.column6, message = v.column7, retry_at = v.column8, deadline = v.column9, \
             approved_by = v.column10, report = v.column11, approvals = v.column12, \
             skipped_by = v.column13, budget_from = v.column14, hold = v.column15 \
             FROM (VALUES {}) AS v WHERE stages.run_id = v.column1 AND stages.position = v.column2",
            typed_values(
                chunk.len(),
                &[
                    Text, Int, Text, Int, Int, Int, Text, Int, Int, Text, Text, Text, Text, Int,
                    Text
                ]
            )
        );
        let sql = Backend::of(tx).bulk(sql);
        let mut q = sqlx::query(&sql);
        for &(run, i) in chunk {
            q = bind_stage(q.bind(run.id.to_string()).bind(i as i64), &run.stages[i])?;
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A gate's approvals as stored: JSON, or NULL when there are none.
fn approvals_json(s: &StageRun) -> anyhow::Result<Option<String>> {
    Ok(if s.approvals.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&s.approvals)?)
    })
}

pub async fn insert_audit(tx: &mut Transaction<'_, Any>, audit: &[RunAudit]) -> anyhow::Result<()> {
    for chunk in audit.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO audit (run_id, at, actor, kind, stage, attempt, message) VALUES {}",
            values(chunk.len(), 7)
        );
        let sql = Backend::of(tx).bulk(sql);
        let mut q = sqlx::query(&sql);
        for RunAudit { run, audit: a } in chunk {
            q = q
                .bind(run.to_string())
                .bind(a.at)
                .bind(a.actor.to_string())
                .bind(a.kind.to_string())
                .bind(a.stage.clone())
                .bind(a.attempt.map(|n| n as i64))
                .bind(a.message.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

pub async fn insert_outbox(
    tx: &mut Transaction<'_, Any>,
    outbox: &[Envelope],
    now: Millis,
) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(outbox.len());
    for chunk in outbox.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO outbox (topic, msg_key, payload, created_at) VALUES {} RETURNING id",
            values(chunk.len(), 4)
        );
        let sql = Backend::of(tx).bulk(sql);
        let mut q = sqlx::query(&sql);
        for m in chunk {
            q = q
                .bind(m.topic.clone())
                .bind(m.key.clone())
                .bind(m.payload.clone())
                .bind(now);
        }
        for row in q.fetch_all(&mut **tx).await? {
            ids.push(row.try_get::<i64, _>("id")?);
        }
    }
    Ok(ids)
}

pub async fn delete_outbox(tx: &mut Transaction<'_, Any>, ids: &[i64]) -> anyhow::Result<()> {
    for chunk in ids.chunks(CHUNK) {
        let sql = format!("DELETE FROM outbox WHERE id IN ({})", holes(1, chunk.len()));
        let sql = Backend::of(tx).bulk(sql);
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

pub fn actor(text: &str) -> anyhow::Result<Actor> {
    text.parse()
        .map_err(|e: String| anyhow::anyhow!("stored actor: {e}"))
}

pub fn audit_from_row(r: &AnyRow) -> anyhow::Result<Audit> {
    Ok(Audit {
        at: r.try_get("at")?,
        actor: actor(&r.try_get::<String, _>("actor")?)?,
        kind: r
            .try_get::<String, _>("kind")?
            .parse::<EventKind>()
            .map_err(|e| anyhow::anyhow!("stored audit record: {e}"))?,
        stage: r.try_get("stage")?,
        attempt: r.try_get::<Option<i64>, _>("attempt")?.map(|a| a as u32),
        message: r.try_get("message")?,
    })
}
