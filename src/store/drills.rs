//! Scheduled drills (`drills`): each group's scheduled time taken once, by one replica; and
//! what each chat platform was last told of a group's readiness (`readiness_told`).

use std::str::FromStr;

use sqlx::Row;

use super::Store;
use crate::clock::Millis;
use crate::domain::RunId;

/// A scheduled drill as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrillRow {
    pub slot: Millis,
    pub run: Option<RunId>,
    pub skipped: Option<String>,
}

impl Store {
    /// Takes the drill of `group` scheduled at `slot`: true for the one caller that gets
    /// it, false for every other (another replica, or this one again).
    pub async fn claim_drill(&self, group: &str, slot: Millis) -> anyhow::Result<bool> {
        let made = sqlx::query(
            "INSERT INTO drills (group_name, slot) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(group)
        .bind(slot)
        .execute(&self.pool)
        .await?;
        Ok(made.rows_affected() == 1)
    }

    /// What became of a drill taken: its run, or why none started.
    pub async fn drill_done(
        &self,
        group: &str,
        slot: Millis,
        run: Option<RunId>,
        skipped: Option<&str>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE drills SET run_id = $1, skipped = $2 WHERE group_name = $3 AND slot = $4",
        )
        .bind(run.map(|r| r.to_string()))
        .bind(skipped)
        .bind(group)
        .bind(slot)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A group's latest scheduled drills, newest first.
    pub async fn drills(&self, group: &str, limit: i64) -> anyhow::Result<Vec<DrillRow>> {
        let rows = sqlx::query(
            "SELECT slot, run_id, skipped FROM drills WHERE group_name = $1 \
             ORDER BY slot DESC LIMIT $2",
        )
        .bind(group)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DrillRow {
                    slot: r.try_get("slot")?,
                    run: r
                        .try_get::<Option<String>, _>("run_id")?
                        .map(|id| RunId::from_str(&id))
                        .transpose()?,
                    skipped: r.try_get("skipped")?,
                })
            })
            .collect()
    }

    /// Whether `platform` should be told that `group` is now `ready` (or not): true for
    /// the one caller that moves what it was last told, if it was told otherwise and not
    /// told this way since `quiet_since`. A group first heard of counts as told ready.
    pub async fn tell_readiness(
        &self,
        group: &str,
        platform: &str,
        ready: bool,
        quiet_since: Millis,
    ) -> anyhow::Result<bool> {
        sqlx::query(
            "INSERT INTO readiness_told (group_name, platform, ready, told_ready_at, told_not_ready_at) \
             VALUES ($1, $2, 1, 0, 0) ON CONFLICT DO NOTHING",
        )
        .bind(group)
        .bind(platform)
        .execute(&self.pool)
        .await?;
        let column = if ready {
            "told_ready_at"
        } else {
            "told_not_ready_at"
        };
        let moved = sqlx::query(&format!(
            "UPDATE readiness_told SET ready = $1, {column} = $2 \
             WHERE group_name = $3 AND platform = $4 AND ready <> $1 AND {column} <= $5"
        ))
        .bind(i64::from(ready))
        .bind(self.clock.now_ms())
        .bind(group)
        .bind(platform)
        .bind(quiet_since)
        .execute(&self.pool)
        .await?;
        Ok(moved.rows_affected() == 1)
    }
}
