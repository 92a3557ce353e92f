//! Re-protect on PostgreSQL: the old writer made a streaming replica of the new one, on
//! the server's own host. The source is checked, a server already streaming from it is
//! left alone, `pg_controldata` picks `pg_rewind` or a clone, and the server is started
//! only with `standby.signal` and watched until it streams.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::Connection;

use super::host::Host;
use super::{Postgres, STREAM_LIMIT, failed, run};
use crate::agents::providers::capability::{Method, Reprotect};
use crate::agents::work::{Failure, Work};
use crate::workflow::Target;

impl Postgres {
    pub(super) async fn reprotect_on_host(
        &self,
        target: &Target,
        r: &Reprotect,
        work: &Work,
    ) -> Result<String, Failure> {
        let (name, src) = (&target.name, &r.source.name);
        let source = Postgres::for_target(&r.source)?;
        let mut c = source.connect(src, work).await?;
        let writer = Self::state(&mut c).await.map_err(|e| failed(src, e))?;
        let _ = c.close().await;
        match (writer.in_recovery, work.request.dry_run) {
            (false, _) => {
                work.check("source", true, format!("{src} is the writer"))
                    .await
            }
            // A dry run promoted nothing before this stage.
            (true, true) => {
                work.check(
                    "source",
                    true,
                    format!("{src} is a replica now; the run's promote makes it the writer"),
                )
                .await
            }
            (true, false) => {
                work.check(
                    "source",
                    false,
                    format!("{src} is in recovery, not the writer"),
                )
                .await;
                return Err(Failure::retryable(format!(
                    "database `{src}` is not the writer yet: {name} cannot replicate it"
                )));
            }
        }
        if self.streams_from(name, &source, work).await {
            work.check("role", true, format!("{name} streams from {src}"))
                .await;
            return Ok(format!(
                "{name} is already a replica of {src}; nothing to do"
            ));
        }
        let host = Host::of(name, &self.host)?;
        let (rewindable, why) = host.rewindable(work).await?;
        let method = match (r.method, rewindable) {
            (Method::Auto, true) | (Method::Rewind, true) => Method::Rewind,
            (Method::Rewind, false) => {
                work.check("method", false, format!("rewind: {why}")).await;
                return Err(Failure::permanent(format!(
                    "database `{name}`: method rewind asked, but {why}; use method: clone"
                )));
            }
            (Method::Auto, false) | (Method::Clone, _) => Method::Clone,
        };
        let how = match method {
            Method::Rewind => "rewind",
            _ => "clone",
        };
        let chosen = match (r.method, method) {
            (Method::Auto, Method::Rewind) => format!("rewind: {why}"),
            (Method::Auto, _) => format!("clone: {why}"),
            (_, _) => format!("{how}: as the stage asks"),
        };
        work.check("method", true, chosen).await;
        work.change(
            name.clone(),
            "not a replica",
            format!("replica of {src} ({how})"),
        )
        .await;
        if work.request.dry_run {
            return Ok(format!(
                "would make {name} a replica of {src} by {how}; nothing changed"
            ));
        }
        if host.running(work).await? {
            work.say(format!("stopping {name}")).await;
            host.stop(work).await?;
        }
        let url = source.url.expose_secret().to_string();
        let kept = match method {
            Method::Rewind => {
                // A promoted server writes its new timeline to its control file at its
                // next checkpoint; until then pg_rewind sees one timeline and does nothing.
                let mut c = source.connect(src, work).await?;
                run(&mut c, src, "CHECKPOINT").await?;
                let _ = c.close().await;
                work.say(format!(
                    "rewinding {name} to {src}'s timeline with pg_rewind"
                ))
                .await;
                match host.rewind(&url, work).await {
                    Ok(()) => None,
                    // The WAL back to where they diverged may be gone (no archive, no
                    // wal_keep_size): a clone needs none of it.
                    Err(f) if r.method == Method::Auto => {
                        work.check("rewind", false, f.message.clone()).await;
                        work.say(format!(
                            "pg_rewind could not rewind {name}; cloning {src} instead"
                        ))
                        .await;
                        Some(host.clone_from(&url, work).await?)
                    }
                    Err(f) => return Err(f),
                }
            }
            _ => {
                work.say(format!("cloning {src} into {name} with pg_basebackup"))
                    .await;
                Some(host.clone_from(&url, work).await?)
            }
        };
        work.say(format!("starting {name} as a replica of {src}"))
            .await;
        host.start(work).await?;
        let until = tokio::time::Instant::now() + STREAM_LIMIT.min(work.time_left());
        while !self.streams_from(name, &source, work).await {
            if tokio::time::Instant::now() >= until {
                work.check(
                    "streaming",
                    false,
                    format!("{name} does not stream from {src}"),
                )
                .await;
                return Err(Failure::retryable(format!(
                    "database `{name}`: started as a replica, but not streaming from {src} after {}",
                    humantime::format_duration(STREAM_LIMIT)
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        work.check("streaming", true, format!("{name} streams from {src}"))
            .await;
        Ok(match kept {
            Some(old) => format!(
                "{name} is a replica of {src} again, by clone; its old data directory is kept at {}",
                old.display()
            ),
            None => format!("{name} is a replica of {src} again, by rewind"),
        })
    }
}
