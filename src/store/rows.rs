//! Mapping between rows and the run types.

use std::str::FromStr;

use anyhow::Context;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::{CHUNK, holes};
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

pub async fn insert_stage(
    tx: &mut Transaction<'_, Any>,
    run: &Run,
    i: usize,
) -> anyhow::Result<()> {
    let query = sqlx::query(
        "INSERT INTO stages (run_id, position, name, agent, state, attempts, started_at, finished_at, \
         message, retry_at, deadline, approved_by, report, approvals, skipped_by, budget_from, hold) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(run.id.to_string())
    .bind(i as i64)
    .bind(&run.plan[i].name)
    .bind(&run.plan[i].agent);
    bind_stage(query, &run.stages[i])?
        .execute(&mut **tx)
        .await?;
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

/// Writes a run and its changed `stages`, unless its row moved on from `expected_version`.
pub async fn update_run(
    tx: &mut Transaction<'_, Any>,
    run: &Run,
    expected_version: i64,
    stages: &[usize],
) -> anyhow::Result<()> {
    let active_key = (!run.state.is_final()).then(|| run.active_key());
    let done = sqlx::query(
        "UPDATE runs SET state = $1, active_key = $2, started_at = $3, finished_at = $4, message = $5, \
         version = $6 WHERE id = $7 AND version = $8",
    )
    .bind(run.state.as_str())
    .bind(active_key)
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(run.message.clone())
    .bind(run.version)
    .bind(run.id.to_string())
    .bind(expected_version)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(super::StoreError::Conflict(format!(
            "run {} changed underneath this writer (expected version {})",
            run.id, expected_version
        ))
        .into());
    }
    for &i in stages {
        let query = sqlx::query(
            "UPDATE stages SET state = $1, attempts = $2, started_at = $3, finished_at = $4, message = $5, \
             retry_at = $6, deadline = $7, approved_by = $8, report = $9, approvals = $10, skipped_by = $11, \
             budget_from = $12, hold = $13 WHERE run_id = $14 AND position = $15",
        );
        bind_stage(query, &run.stages[i])?
            .bind(run.id.to_string())
            .bind(i as i64)
            .execute(&mut **tx)
            .await?;
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

/// `($1, $2), ($3, $4)` for `rows` rows of `cols` columns.
fn values(rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * cols + c + 1));
        }
        out.push(')');
    }
    out
}

pub async fn insert_audit(tx: &mut Transaction<'_, Any>, audit: &[RunAudit]) -> anyhow::Result<()> {
    for chunk in audit.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO audit (run_id, at, actor, kind, stage, attempt, message) VALUES {}",
            values(chunk.len(), 7)
        );
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
