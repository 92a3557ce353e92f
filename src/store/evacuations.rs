//! Evacuations and their groups (`evacuations`, `evacuation_groups`). Each move of a group
//! is a compare-and-set from the state it was read in, so that of several replicas moving
//! the same evacuation one makes each move.

use std::str::FromStr;

use anyhow::Context;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, rows};
use crate::clock::Millis;
use crate::domain::evacuation::{
    Evacuation, EvacuationGroup, EvacuationState, GroupState, RunTimes,
};
use crate::domain::{EvacuationId, RunId};

/// A group's move: from the state it was read in to `to`, with its run and note.
pub struct GroupMove<'a> {
    pub evacuation: EvacuationId,
    pub group: &'a str,
    pub from: GroupState,
    pub to: GroupState,
    /// The run to keep (`None`: keep the one it has).
    pub run: Option<RunId>,
    pub note: Option<&'a str>,
    pub at: Millis,
}

impl Store {
    /// Stores a new evacuation with every group waiting.
    pub async fn insert_evacuation(&self, e: &Evacuation) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO evacuations (id, action, dry_run, reason, requested_by, state, created_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(e.id.to_string())
        .bind(e.action.as_str())
        .bind(e.dry_run as i64)
        .bind(e.reason.clone())
        .bind(e.requested_by.to_string())
        .bind(e.state.as_str())
        .bind(e.created_at)
        .bind(e.finished_at)
        .execute(&mut *tx)
        .await?;
        for (i, g) in e.groups.iter().enumerate() {
            sqlx::query(
                "INSERT INTO evacuation_groups (evacuation_id, group_name, position, state, run_id, note, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(e.id.to_string())
            .bind(&g.group)
            .bind(i as i64)
            .bind(g.state.as_str())
            .bind(g.run.map(|r| r.to_string()))
            .bind(g.note.clone())
            .bind(g.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn evacuation(&self, id: EvacuationId) -> anyhow::Result<Option<Evacuation>> {
        let row = sqlx::query(
            "SELECT id, action, dry_run, reason, requested_by, state, created_at, finished_at \
             FROM evacuations WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut e = evacuation_from_row(&row)?;
        let groups = sqlx::query(
            "SELECT group_name, state, run_id, note, updated_at FROM evacuation_groups \
             WHERE evacuation_id = $1 ORDER BY position",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        e.groups = groups
            .iter()
            .map(group_from_row)
            .collect::<anyhow::Result<_>>()?;
        Ok(Some(e))
    }

    /// The evacuations still going, oldest first.
    pub async fn going_evacuations(&self) -> anyhow::Result<Vec<EvacuationId>> {
        let rows = sqlx::query("SELECT id FROM evacuations WHERE state = $1 ORDER BY id")
            .bind(EvacuationState::Going.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                EvacuationId::from_str(&id).with_context(|| format!("stored evacuation id {id:?}"))
            })
            .collect()
    }

    /// The state of each started group's run (`None`: the run is not stored yet).
    pub async fn evacuation_runs(
        &self,
        id: EvacuationId,
    ) -> anyhow::Result<Vec<(String, RunId, Option<crate::domain::RunState>)>> {
        let rows = sqlx::query(
            "SELECT g.group_name, g.run_id, r.state FROM evacuation_groups g \
             LEFT JOIN runs r ON r.id = g.run_id \
             WHERE g.evacuation_id = $1 AND g.state = $2",
        )
        .bind(id.to_string())
        .bind(GroupState::Started.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let run: Option<String> = r.try_get("run_id")?;
                let run = run.context("a started group without a run")?;
                Ok((
                    r.try_get("group_name")?,
                    RunId::from_str(&run).with_context(|| format!("stored run id {run:?}"))?,
                    r.try_get::<Option<String>, _>("state")?
                        .map(|s| crate::domain::RunState::from_str(&s))
                        .transpose()
                        .map_err(anyhow::Error::msg)?,
                ))
            })
            .collect()
    }

    /// When each group's run was made and ended, for the evacuation's scorecard.
    pub async fn evacuation_run_times(&self, id: EvacuationId) -> anyhow::Result<Vec<RunTimes>> {
        // One row per stage with a report: the waits for budgets are in the reports.
        let rows = sqlx::query(
            "SELECT g.group_name, r.created_at, r.finished_at, s.report FROM evacuation_groups g \
             JOIN runs r ON r.id = g.run_id \
             LEFT JOIN stages s ON s.run_id = r.id AND s.report IS NOT NULL \
             WHERE g.evacuation_id = $1 ORDER BY g.position",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<RunTimes> = Vec::new();
        for r in &rows {
            let group: String = r.try_get("group_name")?;
            if out.last().is_none_or(|t| t.group != group) {
                out.push(RunTimes {
                    group,
                    created_at: r.try_get("created_at")?,
                    finished_at: r.try_get("finished_at")?,
                    budget_wait_ms: 0,
                });
            }
            let waited = super::leases::report_from(r.try_get("report")?)?
                .and_then(|report| report.budget_wait_s);
            if let (Some(s), Some(t)) = (waited, out.last_mut()) {
                t.budget_wait_ms += (s * 1000.0) as i64;
            }
        }
        Ok(out)
    }

    /// The evacuation a run was made for, if any.
    pub async fn evacuation_of_run(&self, run: RunId) -> anyhow::Result<Option<EvacuationId>> {
        let row = sqlx::query("SELECT evacuation_id FROM evacuation_groups WHERE run_id = $1")
            .bind(run.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(EvacuationId::from_str(
            &row.try_get::<String, _>("evacuation_id")?,
        )?))
    }

    /// Moves a group if it is still in the state it was read in: true for the caller that
    /// moved it.
    pub async fn move_evacuation_group(&self, m: &GroupMove<'_>) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE evacuation_groups SET state = $1, run_id = COALESCE($2, run_id), note = $3, updated_at = $4 \
             WHERE evacuation_id = $5 AND group_name = $6 AND state = $7",
        )
        .bind(m.to.as_str())
        .bind(m.run.map(|r| r.to_string()))
        .bind(m.note)
        .bind(m.at)
        .bind(m.evacuation.to_string())
        .bind(m.group)
        .bind(m.from.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets the evacuation's state if it is still `from`.
    pub async fn settle_evacuation(
        &self,
        id: EvacuationId,
        from: EvacuationState,
        to: EvacuationState,
        at: Option<Millis>,
    ) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE evacuations SET state = $1, finished_at = $2 WHERE id = $3 AND state = $4",
        )
        .bind(to.as_str())
        .bind(at)
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn evacuation_from_row(row: &AnyRow) -> anyhow::Result<Evacuation> {
    let id: String = row.try_get("id")?;
    Ok(Evacuation {
        id: EvacuationId::from_str(&id).with_context(|| format!("stored evacuation id {id:?}"))?,
        action: row
            .try_get::<String, _>("action")?
            .parse()
            .map_err(anyhow::Error::msg)?,
        dry_run: row.try_get::<i64, _>("dry_run")? != 0,
        reason: row.try_get("reason")?,
        requested_by: rows::actor(&row.try_get::<String, _>("requested_by")?)?,
        state: EvacuationState::from_str(&row.try_get::<String, _>("state")?)
            .map_err(anyhow::Error::msg)?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
        groups: Vec::new(),
    })
}

fn group_from_row(row: &AnyRow) -> anyhow::Result<EvacuationGroup> {
    Ok(EvacuationGroup {
        group: row.try_get("group_name")?,
        state: GroupState::from_str(&row.try_get::<String, _>("state")?)
            .map_err(anyhow::Error::msg)?,
        run: row
            .try_get::<Option<String>, _>("run_id")?
            .map(|r| RunId::from_str(&r))
            .transpose()
            .context("stored run id")?,
        note: row.try_get("note")?,
        updated_at: row.try_get("updated_at")?,
    })
}
