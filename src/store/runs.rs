//! Runs, their stages and audit records, and the outbox of messages a change must send.

use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError, leases, rows};
use crate::bus::Envelope;
use crate::clock::Millis;
use crate::domain::{Audit, Revocation, Run, RunAudit, RunId};
use crate::workflow::Versions;

/// How often a new run's insert is tried while the run in its way keeps ending just before
/// it is looked up.
const INSERT_TRIES: usize = 3;

/// Why a run could not be created.
/// Which runs a list holds: all filters optional; `before` is the cursor (the last run of
/// the page before).
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub group: Option<String>,
    pub state: Option<crate::domain::RunState>,
    pub action: Option<crate::workflow::Action>,
    pub before: Option<RunId>,
    /// Created at or after this time.
    pub since: Option<Millis>,
    pub limit: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("group `{group}` already has an active {action} run: {active}")]
    Busy {
        group: String,
        action: String,
        active: RunId,
    },
    /// A run with this id is stored already.
    #[error("run {0} exists already")]
    Exists(RunId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<anyhow::Error> for CreateError {
    fn from(e: anyhow::Error) -> Self {
        CreateError::Store(e.into())
    }
}

/// A run changed by the engine, to be written with its changed stages.
pub struct RunWrite<'a> {
    pub run: &'a Run,
    /// The version the change was computed from; the write fails if the row moved on.
    pub expected_version: i64,
    pub stages: &'a [usize],
}

pub struct OutboxRow {
    pub id: i64,
    pub message: Envelope,
}

/// Everything one state change writes, in one transaction.
#[derive(Default)]
pub struct Batch<'a> {
    pub runs: Vec<RunWrite<'a>>,
    pub audit: Vec<RunAudit>,
    pub outbox: Vec<Envelope>,
    pub revocations: Vec<Revocation>,
    /// Outbox rows already published: deleted in the same transaction.
    pub delivered: &'a [i64],
}

impl Store {
    /// Inserts a new run with its stages and first audit record. Refused when the group
    /// already has an unfinished run of the same kind.
    pub async fn insert_run(&self, run: &Run, audit: &Audit) -> Result<(), CreateError> {
        self.insert_run_with(run, std::slice::from_ref(audit)).await
    }

    /// Inserts a run with its first audit records (its creation, and what was decided
    /// about it before it began).
    pub async fn insert_run_with(&self, run: &Run, audit: &[Audit]) -> Result<(), CreateError> {
        self.insert_run_versioned(run, audit, None).await
    }

    /// Inserts a run with its first audit records and what it uses, by hash.
    pub async fn insert_run_versioned(
        &self,
        run: &Run,
        audit: &[Audit],
        versions: Option<&Versions>,
    ) -> Result<(), CreateError> {
        // The run holding the group's slot may end between a refused insert and the look-up
        // of who holds it: the slot is free then, and the insert is tried again.
        for _ in 0..INSERT_TRIES {
            let Some(tx) = self.insert_run_row(run).await? else {
                let same: Option<AnyRow> = sqlx::query("SELECT id FROM runs WHERE id = $1")
                    .bind(run.id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(anyhow::Error::from)?;
                if same.is_some() {
                    return Err(CreateError::Exists(run.id));
                }
                if let Some(active) = self.active_run(&run.active_key()).await? {
                    return Err(CreateError::Busy {
                        group: run.group.clone(),
                        action: run.action.to_string(),
                        active,
                    });
                }
                continue;
            };
            return self.insert_run_rest(tx, run, audit, versions).await;
        }
        Err(CreateError::Store(StoreError::Conflict(format!(
            "run {} could not be inserted: the group's active run kept changing",
            run.id
        ))))
    }

    /// Inserts the run's row, in a transaction left open for the rest; `None` when another
    /// row (the same run, or the group's active run) is in the way.
    async fn insert_run_row(
        &self,
        run: &Run,
    ) -> Result<Option<Transaction<'static, Any>>, CreateError> {
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        let inserted = sqlx::query(
            "INSERT INTO runs (id, group_name, action, workflow, dry_run, reason, requested_by, \
             params, plan, state, active_key, created_at, started_at, finished_at, message, version, \
             overrides) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT DO NOTHING",
        )
        .bind(run.id.to_string())
        .bind(&run.group)
        .bind(run.action.as_str())
        .bind(&run.workflow)
        .bind(run.dry_run as i64)
        .bind(run.reason.clone())
        .bind(run.requested_by.to_string())
        .bind(serde_json::to_string(&run.params).map_err(anyhow::Error::from)?)
        .bind(serde_json::to_string(&run.plan).map_err(anyhow::Error::from)?)
        .bind(run.state.as_str())
        .bind(run.active_key())
        .bind(run.created_at)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(run.message.clone())
        .bind(run.version)
        .bind(
            run.overrides
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(anyhow::Error::from)?,
        )
        .execute(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?;
        Ok((inserted.rows_affected() == 1).then_some(tx))
    }

    /// The stages and audit of a run whose row `tx` inserted, and the commit.
    async fn insert_run_rest(
        &self,
        mut tx: Transaction<'static, Any>,
        run: &Run,
        audit: &[Audit],
        versions: Option<&Versions>,
    ) -> Result<(), CreateError> {
        rows::insert_stages(&mut tx, run).await?;
        if let Some(v) = versions {
            sqlx::query(
                "INSERT INTO run_versions (run_id, workflow, templates, targets) VALUES ($1, $2, $3, $4)",
            )
            .bind(run.id.to_string())
            .bind(v.workflow.clone())
            .bind(&v.templates)
            .bind(&v.targets)
            .execute(&mut *tx)
            .await
            .map_err(anyhow::Error::from)?;
        }
        let audit: Vec<RunAudit> = audit
            .iter()
            .map(|a| RunAudit {
                run: run.id,
                audit: a.clone(),
            })
            .collect();
        rows::insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// The unfinished run holding `key` (group, action and dry-run-ness), if any.
    pub async fn active_run(&self, key: &str) -> anyhow::Result<Option<RunId>> {
        let id: Option<String> = sqlx::query("SELECT id FROM runs WHERE active_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r: AnyRow| r.try_get("id"))
            .transpose()?;
        id.map(|s| RunId::from_str(&s).map_err(|e| anyhow::anyhow!("stored run id {s:?}: {e}")))
            .transpose()
    }

    /// Writes a batch of state changes and their consequences in one transaction. Returns
    /// the outbox ids of `batch.outbox`.
    pub async fn commit(&self, batch: &Batch<'_>) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        rows::delete_outbox(&mut tx, batch.delivered).await?;
        rows::update_runs(&mut tx, &batch.runs).await?;
        rows::insert_audit(&mut tx, &batch.audit).await?;
        for r in &batch.revocations {
            leases::revoke_in(&mut tx, r, self.clock.now_us()).await?;
        }
        let ids = rows::insert_outbox(&mut tx, &batch.outbox, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(ids)
    }

    pub async fn delete_outbox(&self, ids: &[i64]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        rows::delete_outbox(&mut tx, ids).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Outbox rows written before `before` (all of them with `i64::MAX`), oldest first.
    pub async fn pending_outbox(&self, before: Millis) -> anyhow::Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT id, topic, msg_key, payload FROM outbox WHERE created_at < $1 ORDER BY id",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.try_get("id")?,
                    message: Envelope {
                        topic: r.try_get("topic")?,
                        key: r.try_get("msg_key")?,
                        payload: r.try_get("payload")?,
                    },
                })
            })
            .collect()
    }

    pub async fn load_run(&self, id: RunId) -> anyhow::Result<Option<Run>> {
        let row = sqlx::query(&format!("{} WHERE id = $1", rows::RUN_SELECT))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let mut run = rows::run_from_row(&row)?;
                rows::load_stages(&self.pool, &mut run).await?;
                Ok(Some(run))
            }
        }
    }

    /// Id and version of every unfinished run: what a replica compares its copies with.
    pub async fn active_versions(&self) -> anyhow::Result<Vec<(RunId, i64)>> {
        let rows = sqlx::query("SELECT id, version FROM runs WHERE finished_at IS NULL")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    RunId::from_str(&r.try_get::<String, _>("id")?)?,
                    r.try_get("version")?,
                ))
            })
            .collect()
    }

    /// Every unfinished run, for recovery after a restart.
    pub async fn active_runs(&self) -> anyhow::Result<Vec<Run>> {
        let sql = format!("{} WHERE finished_at IS NULL ORDER BY id", rows::RUN_SELECT);
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        self.with_stages(&rows).await
    }

    /// The unfinished runs of `group`: each id, and whether it is a dry run.
    pub async fn unfinished_of(&self, group: &str) -> anyhow::Result<Vec<(RunId, bool)>> {
        let rows = sqlx::query(
            "SELECT id, dry_run FROM runs WHERE group_name = $1 AND finished_at IS NULL",
        )
        .bind(group)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    RunId::from_str(&r.try_get::<String, _>("id")?)?,
                    r.try_get::<i64, _>("dry_run")? != 0,
                ))
            })
            .collect()
    }

    /// The most recent runs first, optionally of one group.
    pub async fn list_runs(&self, group: Option<&str>, limit: i64) -> anyhow::Result<Vec<Run>> {
        self.find_runs(&RunFilter {
            group: group.map(str::to_string),
            limit,
            ..RunFilter::default()
        })
        .await
    }

    /// The most recent runs that pass `filter`, newest first.
    pub async fn find_runs(&self, filter: &RunFilter) -> anyhow::Result<Vec<Run>> {
        let mut wheres = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        let mut hole = |column: &str, value: String| {
            binds.push(value);
            wheres.push(format!("{column} ${}", binds.len()));
        };
        if let Some(g) = &filter.group {
            hole("group_name =", g.clone());
        }
        if let Some(s) = filter.state {
            hole("state =", s.to_string());
        }
        if let Some(a) = filter.action {
            hole("action =", a.to_string());
        }
        // Run ids are UUIDv7: in id order is in time order, and the key is the cursor.
        if let Some(before) = filter.before {
            hole("id <", before.to_string());
        }
        // A number this process computed, never a caller's text: written into the query.
        if let Some(since) = filter.since {
            wheres.push(format!("created_at >= {since}"));
        }
        let clause = if wheres.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wheres.join(" AND "))
        };
        let sql = format!(
            "{} {clause} ORDER BY id DESC LIMIT ${}",
            rows::RUN_SELECT,
            binds.len() + 1
        );
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.bind(filter.limit).fetch_all(&self.pool).await?;
        self.with_stages(&rows).await
    }

    async fn with_stages(&self, rows: &[AnyRow]) -> anyhow::Result<Vec<Run>> {
        let mut runs = Vec::with_capacity(rows.len());
        for row in rows {
            let mut run = rows::run_from_row(row)?;
            rows::load_stages(&self.pool, &mut run).await?;
            runs.push(run);
        }
        Ok(runs)
    }

    pub async fn audit(&self, id: RunId) -> anyhow::Result<Vec<Audit>> {
        let rows = sqlx::query(
            "SELECT at, actor, kind, stage, attempt, message FROM audit WHERE run_id = $1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::audit_from_row).collect()
    }

    /// Counts of runs and stages by state, for `/metrics`.
    pub async fn state_counts(&self) -> anyhow::Result<(Vec<(String, i64)>, Vec<(String, i64)>)> {
        let count = |sql: &'static str| async move {
            let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
                .collect::<anyhow::Result<Vec<_>>>()
        };
        Ok((
            count("SELECT state, COUNT(*) FROM runs GROUP BY state").await?,
            count("SELECT state, COUNT(*) FROM stages GROUP BY state").await?,
        ))
    }
}
