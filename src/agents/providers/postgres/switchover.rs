//! A planned switchover on PostgreSQL, losing nothing: the writer handed over from is
//! fenced, and the replica is promoted only once it has replayed all that writer wrote.

use std::time::Duration;

use sqlx::Connection;

use super::{CATCHUP_LIMIT, Postgres, failed, rpo};
use crate::agents::providers::capability::{Database, Demote};
use crate::agents::work::{Failure, Work};
use crate::workflow::Target;

impl Postgres {
    /// A planned switchover's first half: fences `from` (read-only, its sessions ended)
    /// and waits until this replica has replayed all it wrote, so that both end at one LSN.
    pub(super) async fn fence_and_catch_up(
        &self,
        name: &str,
        from: &Target,
        work: &Work,
    ) -> Result<(), Failure> {
        let writer = Postgres::for_target(from)?;
        let fenced = writer
            .demote(
                from,
                &Demote {
                    unreachable_ok: false,
                },
                work,
            )
            .await?;
        work.say(fenced).await;
        if work.request.dry_run {
            work.check(
                "caught up",
                true,
                format!(
                    "would wait until {name} has replayed everything {} wrote",
                    from.name
                ),
            )
            .await;
            return Ok(());
        }
        let until = tokio::time::Instant::now() + CATCHUP_LIMIT.min(work.time_left());
        loop {
            let mut w = writer.connect(&from.name, work).await?;
            let lsn = rpo::writer_lsn(&mut w)
                .await
                .map_err(|e| failed(&from.name, e))?;
            let _ = w.close().await;
            let Some(lsn) = lsn else {
                return Err(Failure::permanent(format!(
                    "database `{}` is in recovery, not the writer: there is nothing to switch over from",
                    from.name
                )));
            };
            let mut r = self.connect(name, work).await?;
            let behind: Option<f64> = sqlx::query_scalar(
                "SELECT pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn())::float8",
            )
            .bind(&lsn)
            .fetch_one(&mut r)
            .await
            .map_err(|e| failed(name, e))?;
            let _ = r.close().await;
            if behind.is_some_and(|b| b <= 0.0) {
                work.check(
                    "caught up",
                    true,
                    format!("{name} has replayed {} up to {lsn}", from.name),
                )
                .await;
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                let detail = format!(
                    "{name} is {} bytes behind {} after {}",
                    behind.map_or_else(|| "an unknown number of".into(), |b| format!("{b:.0}")),
                    from.name,
                    humantime::format_duration(CATCHUP_LIMIT)
                );
                work.check("caught up", false, detail.clone()).await;
                return Err(Failure::retryable(format!(
                    "{detail}; {} stays fenced and nothing is promoted",
                    from.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
