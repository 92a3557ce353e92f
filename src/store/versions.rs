//! What each run used, by hash (`run_versions`, written with the run), and when this
//! deployment first saw each hash of a workflow (`versions_seen`), which dates a change.

use sqlx::Row;

use super::Store;
use crate::clock::Millis;
use crate::domain::RunId;
use crate::workflow::Versions;

impl Store {
    /// What `run` used; `None` for a run stored before versions were kept.
    pub async fn run_versions(&self, run: RunId) -> anyhow::Result<Option<Versions>> {
        let row =
            sqlx::query("SELECT workflow, templates, targets FROM run_versions WHERE run_id = $1")
                .bind(run.to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok(Versions {
                workflow: r.try_get("workflow")?,
                templates: r.try_get("templates")?,
                targets: r.try_get("targets")?,
            })
        })
        .transpose()
    }

    /// Notes each of `versions`' hashes as seen for `workflow` at `now`, unless seen before.
    pub async fn saw_versions(
        &self,
        workflow: &str,
        versions: &Versions,
        now: Millis,
    ) -> anyhow::Result<()> {
        let seen: Vec<(&str, &str)> = crate::workflow::VersionPart::ALL
            .into_iter()
            .filter_map(|part| versions.get(part).map(|hash| (part.as_str(), hash)))
            .collect();
        if seen.is_empty() {
            return Ok(());
        }
        // One statement: every run notes its versions as it starts.
        let sql = format!(
            "INSERT INTO versions_seen (workflow, part, hash, first_seen) VALUES {} \
             ON CONFLICT DO NOTHING",
            super::values(seen.len(), 4)
        );
        let sql = self.backend.bulk(sql);
        let mut query = sqlx::query(&sql);
        for (part, hash) in seen {
            query = query.bind(workflow).bind(part).bind(hash).bind(now);
        }
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// When `hash` of `workflow`'s `part` was first seen, if it was.
    pub async fn first_seen(
        &self,
        workflow: &str,
        part: crate::workflow::VersionPart,
        hash: &str,
    ) -> anyhow::Result<Option<Millis>> {
        let row = sqlx::query(
            "SELECT first_seen FROM versions_seen WHERE workflow = $1 AND part = $2 AND hash = $3",
        )
        .bind(workflow)
        .bind(part.as_str())
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("first_seen")).transpose()?)
    }
}
