//! `postgres`: role switches on PostgreSQL streaming replication. A promote checks that
//! the server is a replica within `max_lag`, runs `pg_promote` and waits for it; a demote
//! fences a writer with `default_transaction_read_only` (written with `ALTER SYSTEM` and
//! reloaded, so that it outlives a restart) and ends every other client session, since a
//! transaction begun read-write before the fence could still write. Each is verified on a
//! new session. The role needs superuser, or `ALTER SYSTEM` on that parameter plus
//! `pg_signal_backend` and `pg_promote` rights. `rpo` measures what a promote would lose,
//! `switchover` hands over from a fenced writer with nothing lost, and `reprotect` makes
//! the old writer a replica again on the server's own host (`host`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Row};

use super::capability::{Database, Demote, Promote, Provider, Reprotect};
use super::{data_loss, reference};
use host::HostFields;

mod host;
mod reprotect;
mod rpo;
mod switchover;
use crate::agents::work::{Failure, Work};
use crate::domain::RecoveryPoint;
use crate::workflow::{SpecError, Target, kinds};

pub const DATABASE: Provider<dyn Database> = Provider {
    name: "postgres",
    check,
    build: |target| Ok(Arc::new(Postgres::for_target(target)?)),
};

/// The longest a single connection attempt may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// The longest the old writer may take to answer when the recovery point is measured: a
/// writer in a lost region must not hold each measurement for the full connect limit.
const WRITER_LIMIT: Duration = Duration::from_secs(3);
/// How long a replica may take to catch up with the writer fenced for a switchover.
const CATCHUP_LIMIT: Duration = Duration::from_secs(60);
/// How long a re-protected server may take to stream from its source once started.
const STREAM_LIMIT: Duration = Duration::from_secs(60);
/// How long a fence may take to show on a new session (a reload is asynchronous).
const VERIFY_LIMIT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresTarget {
    /// A libpq URL; its password (or all of it) from `${env:…}` or `${file:…}`.
    url: String,
    // The server's host, for re-protect (`HostFields`): written out here, since serde's
    // `deny_unknown_fields` cannot take them flattened.
    #[serde(default)]
    data_dir: Option<std::path::PathBuf>,
    #[serde(default)]
    bin_dir: Option<std::path::PathBuf>,
    #[serde(default)]
    os_user: Option<String>,
    #[serde(default)]
    start: Option<Vec<String>>,
    #[serde(default)]
    stop: Option<Vec<String>>,
}

impl PostgresTarget {
    fn host(&self) -> HostFields {
        HostFields {
            data_dir: self.data_dir.clone(),
            bin_dir: self.bin_dir.clone(),
            os_user: self.os_user.clone(),
            start: self.start.clone(),
            stop: self.stop.clone(),
        }
    }
}

fn check(fields: &Value) -> Result<(), SpecError> {
    let t: PostgresTarget = kinds::parse(fields)?;
    reference::check(&t.url).map_err(|m| SpecError::at(&["url"], m))?;
    if let Some((field, problem)) = t.host().problem() {
        return Err(SpecError::at(&[field], problem));
    }
    // A password in the URL's user part or its query, other than a reference (whose `{`
    // the URL parser writes as %7B).
    let literal_password = reqwest::Url::parse(&t.url).is_ok_and(|u| {
        u.password().is_some_and(|p| !p.contains("%7B"))
            || u.query_pairs()
                .any(|(k, v)| k == "password" && !v.contains("${"))
    });
    if literal_password {
        return Err(SpecError::at(
            &["url"],
            "a password is written here: read it with ${env:NAME} or ${file:PATH}",
        ));
    }
    if !reference::has_reference(&t.url) {
        PgConnectOptions::from_str(&t.url)
            .map_err(|e| SpecError::at(&["url"], format!("not a PostgreSQL URL: {e}")))?;
    }
    Ok(())
}

pub struct Postgres {
    url: SecretString,
    host: HostFields,
}

/// What the server says of itself.
struct State {
    in_recovery: bool,
    /// Replay lag in seconds: zero when all received WAL is replayed; `None` when unknown
    /// (nothing replayed yet) or not a replica.
    lag: Option<f64>,
    read_only: bool,
    /// Client sessions other than ours. Any of them may hold a transaction begun read-write
    /// before the fence, or have set `default_transaction_read_only` off for itself: a fence
    /// ends them all, and clients reconnect to find the server read-only.
    sessions: i64,
    /// The replica's WAL receiver streams from a primary.
    streaming: bool,
}

impl Postgres {
    fn for_target(target: &Target) -> Result<Postgres, Failure> {
        let fields: PostgresTarget = kinds::parse(&target.fields).map_err(Failure::bad_spec)?;
        let url = reference::resolve_url(&format!("database `{}` url", target.name), &fields.url)?;
        Ok(Postgres {
            url,
            host: fields.host(),
        })
    }

    async fn connect(&self, name: &str, work: &Work) -> Result<PgConnection, Failure> {
        self.reach(name, work).await.map_err(|(f, _)| f)
    }

    /// Whether this server is a replica streaming from `source` (its WAL receiver's
    /// sender is the source's host and port).
    async fn streams_from(&self, name: &str, source: &Postgres, work: &Work) -> bool {
        let Ok(options) = PgConnectOptions::from_str(source.url.expose_secret()) else {
            return false;
        };
        let Ok(mut c) = self.reach_within(name, work, WRITER_LIMIT).await else {
            return false;
        };
        let sender: Option<(Option<String>, Option<i32>)> = sqlx::query_as(
            "SELECT sender_host, sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'",
        )
        .fetch_optional(&mut c)
        .await
        .ok()
        .flatten();
        let _ = c.close().await;
        sender.is_some_and(|(host, port)| {
            host.as_deref() == Some(options.get_host())
                && port == Some(i32::from(options.get_port()))
        })
    }

    /// The recovery point of promoting this replica: measured against `from`, the writer
    /// it takes over from, while that answers as a writer; estimated otherwise.
    async fn recovery_point(
        &self,
        name: &str,
        from: Option<&Target>,
        work: &Work,
    ) -> Result<Option<RecoveryPoint>, Failure> {
        let mut lsn = None;
        if let Some(from) = from {
            let writer = Postgres::for_target(from)?;
            match writer.reach_within(&from.name, work, WRITER_LIMIT).await {
                Ok(mut c) => {
                    lsn = rpo::writer_lsn(&mut c).await.ok().flatten();
                    let _ = c.close().await;
                }
                Err((f, _)) => {
                    tracing::debug!(writer = %from.name, error = %f.message, "The old writer does not answer; estimating.")
                }
            }
        }
        let mut c = self.connect(name, work).await?;
        let rpo = rpo::measure(&mut c, lsn.as_deref())
            .await
            .map_err(|e| failed(name, e))?;
        let _ = c.close().await;
        Ok(Some(rpo))
    }

    /// A connection, or the failure and whether the server is unreachable: nothing
    /// answered at the network level for the whole connect limit. A server that answers
    /// with an error (too many connections, starting up, a TLS or login problem) is alive,
    /// and is never taken for fenced.
    async fn reach(&self, name: &str, work: &Work) -> Result<PgConnection, (Failure, bool)> {
        self.reach_within(name, work, CONNECT_LIMIT).await
    }

    async fn reach_within(
        &self,
        name: &str,
        work: &Work,
        most: Duration,
    ) -> Result<PgConnection, (Failure, bool)> {
        let options = PgConnectOptions::from_str(self.url.expose_secret()).map_err(|_| {
            (
                Failure::permanent(format!(
                    "database `{name}`: its url is not a PostgreSQL URL"
                )),
                false,
            )
        })?;
        let limit = most.min(work.time_left());
        match tokio::time::timeout(limit, PgConnection::connect_with(&options)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => {
                let unreachable = matches!(e, sqlx::Error::Io(_));
                Err((refused(name, e), unreachable))
            }
            Err(_) => Err((
                Failure::retryable(format!(
                    "cannot reach database `{name}`: no answer in {}",
                    humantime::format_duration(limit)
                )),
                limit >= CONNECT_LIMIT,
            )),
        }
    }

    async fn state(c: &mut PgConnection) -> Result<State, sqlx::Error> {
        let row = sqlx::query(
            "SELECT pg_is_in_recovery() AS in_recovery, \
             CASE WHEN NOT pg_is_in_recovery() THEN NULL \
                  WHEN pg_last_wal_receive_lsn() IS NOT NULL \
                       AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0::float8 \
                  ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag, \
             current_setting('default_transaction_read_only') = 'on' AS read_only, \
             (SELECT count(*) FROM pg_stat_activity \
               WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()) AS sessions, \
             COALESCE((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false) AS streaming",
        )
        .fetch_one(&mut *c)
        .await?;
        Ok(State {
            in_recovery: row.try_get("in_recovery")?,
            lag: row.try_get("lag")?,
            read_only: row.try_get("read_only")?,
            sessions: row.try_get("sessions")?,
            streaming: row.try_get("streaming")?,
        })
    }

    /// The state as a new session sees it, polled until `done` holds or the limit passes.
    async fn settle(
        &self,
        name: &str,
        work: &Work,
        done: impl Fn(&State) -> bool,
    ) -> Result<State, Failure> {
        let until = tokio::time::Instant::now() + VERIFY_LIMIT.min(work.time_left());
        loop {
            let mut c = self.connect(name, work).await?;
            let state = Self::state(&mut c).await.map_err(|e| failed(name, e))?;
            let _ = c.close().await;
            if done(&state) || tokio::time::Instant::now() >= until {
                return Ok(state);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Lifts a fence left by an earlier demote, so that a promoted server takes writes.
    async fn unfence(&self, name: &str, work: &Work) -> Result<bool, Failure> {
        let state = self.settle(name, work, |_| true).await?;
        if !state.read_only {
            return Ok(false);
        }
        work.change(format!("{name} default_transaction_read_only"), "on", "off")
            .await;
        if work.request.dry_run {
            return Ok(true);
        }
        let mut c = self.connect(name, work).await?;
        run(
            &mut c,
            name,
            "ALTER SYSTEM RESET default_transaction_read_only",
        )
        .await?;
        run(&mut c, name, "SELECT pg_reload_conf()").await?;
        let _ = c.close().await;
        let after = self.settle(name, work, |s| !s.read_only).await?;
        if after.read_only {
            // ALTER SYSTEM RESET clears only what ALTER SYSTEM set: a read-only setting
            // from postgresql.conf, a role or a database outlives it, and no retry helps.
            let mut c = self.connect(name, work).await?;
            let source: Option<String> = sqlx::query_scalar(
                "SELECT source FROM pg_settings WHERE name = 'default_transaction_read_only'",
            )
            .fetch_optional(&mut c)
            .await
            .map_err(|e| failed(name, e))?;
            let _ = c.close().await;
            return Err(Failure::permanent(format!(
                "database `{name}`: still read-only after ALTER SYSTEM RESET: default_transaction_read_only comes from {} and must be changed there",
                source.unwrap_or_else(|| "elsewhere".into())
            )));
        }
        Ok(true)
    }
}

#[async_trait]
impl Database for Postgres {
    async fn promote(&self, target: &Target, p: &Promote, work: &Work) -> Result<String, Failure> {
        let name = &target.name;
        let mut c = self.connect(name, work).await?;
        let state = Self::state(&mut c).await.map_err(|e| failed(name, e))?;
        if !state.in_recovery {
            let _ = c.close().await;
            work.check("role", true, format!("{name} is already the writer"))
                .await;
            let unfenced = self.unfence(name, work).await?;
            return Ok(match (unfenced, work.request.dry_run) {
                (false, _) => format!("{name} is already the writer; nothing to do"),
                (true, true) => format!("would lift the read-only fence on {name}"),
                (true, false) => format!("{name} is the writer; lifted its read-only fence"),
            });
        }
        let stream = if state.streaming {
            "streaming from its primary"
        } else {
            "its WAL receiver is not streaming (is the primary gone?)"
        };
        work.check(
            "in recovery",
            true,
            format!("{name} is a replica, {stream}"),
        )
        .await;
        if p.switchover {
            let Some(from) = &p.from else {
                return Err(Failure::permanent(
                    "a switchover needs `from`: the writer to hand over from",
                ));
            };
            let _ = c.close().await;
            self.fence_and_catch_up(name, from, work).await?;
            c = self.connect(name, work).await?;
        }
        if let Some(lag) = state.lag {
            work.replica_lag(lag);
        }
        let lag = match (state.lag, p.max_lag) {
            (Some(lag), Some(max)) => {
                let ok = lag <= max.as_secs_f64();
                let detail = format!(
                    "{lag:.1}s {} {}",
                    if ok { "≤" } else { ">" },
                    humantime::format_duration(max)
                );
                work.check("replica lag", ok, detail.clone()).await;
                if !ok {
                    return Err(Failure::retryable(format!(
                        "database `{name}`: replica lag {detail}: not promoted"
                    )));
                }
                lag
            }
            (Some(lag), None) => {
                work.check("replica lag", true, format!("{lag:.1}s (no max_lag set)"))
                    .await;
                lag
            }
            (None, Some(_)) => {
                work.check(
                    "replica lag",
                    false,
                    "unknown: the replica has replayed no transaction yet",
                )
                .await;
                return Err(Failure::retryable(format!(
                    "database `{name}`: replica lag unknown (nothing replayed yet): not promoted"
                )));
            }
            (None, None) => 0.0,
        };
        let _ = c.close().await;
        data_loss::guard(name, p, work, || {
            self.recovery_point(name, p.from.as_ref(), work)
        })
        .await?;
        let mut c = self.connect(name, work).await?;
        work.change(name.clone(), "replica (in recovery)", "writer")
            .await;
        if work.request.dry_run {
            let _ = c.close().await;
            return Ok(format!(
                "would promote {name} (replica lag {lag:.1}s); nothing changed"
            ));
        }
        work.say(format!("promoting {name} with pg_promote")).await;
        let wait = work.time_left().as_secs().clamp(1, 60) as i32;
        let promoted: bool = sqlx::query_scalar("SELECT pg_promote(true, $1)")
            .bind(wait)
            .fetch_one(&mut c)
            .await
            .map_err(|e| failed(name, e))?;
        let _ = c.close().await;
        if !promoted {
            return Err(Failure::retryable(format!(
                "database `{name}`: promotion did not finish within {wait}s"
            )));
        }
        let after = self.settle(name, work, |s| !s.in_recovery).await?;
        if after.in_recovery {
            return Err(Failure::retryable(format!(
                "database `{name}`: still in recovery after pg_promote"
            )));
        }
        let unfenced = self.unfence(name, work).await?;
        Ok(format!(
            "promoted {name} to writer (replica lag was {lag:.1}s){}",
            if unfenced {
                "; lifted its read-only fence"
            } else {
                ""
            }
        ))
    }

    async fn reprotect(
        &self,
        target: &Target,
        r: &Reprotect,
        work: &Work,
    ) -> Result<String, Failure> {
        self.reprotect_on_host(target, r, work).await
    }

    async fn demote(&self, target: &Target, d: &Demote, work: &Work) -> Result<String, Failure> {
        let name = &target.name;
        let mut c = match self.reach(name, work).await {
            Ok(c) => c,
            Err((f, true)) if d.unreachable_ok => {
                work.check("reachable", false, f.message.clone()).await;
                return Ok(format!(
                    "{name} is unreachable, treated as fenced (unreachable: ok)"
                ));
            }
            Err((f, _)) => return Err(f),
        };
        let state = Self::state(&mut c).await.map_err(|e| failed(name, e))?;
        if state.in_recovery {
            let _ = c.close().await;
            work.check(
                "role",
                true,
                format!("{name} is a replica: it takes no writes"),
            )
            .await;
            return Ok(format!("{name} is a replica already; nothing to do"));
        }
        work.check("reachable", true, format!("{name} is a writer"))
            .await;
        if state.read_only {
            // Fenced by an earlier demote: sessions now are read-only ones, opened since.
            let _ = c.close().await;
            return Ok(format!("{name} is read-only already; nothing to do"));
        }
        work.change(format!("{name} default_transaction_read_only"), "off", "on")
            .await;
        if state.sessions > 0 {
            work.change(
                format!("{name} open sessions"),
                state.sessions.to_string(),
                "0 (ended; clients reconnect read-only)",
            )
            .await;
        }
        if work.request.dry_run {
            let _ = c.close().await;
            return Ok(format!("would fence {name} read-only; nothing changed"));
        }
        run(
            &mut c,
            name,
            "ALTER SYSTEM SET default_transaction_read_only = on",
        )
        .await?;
        run(&mut c, name, "SELECT pg_reload_conf()").await?;
        // The sessions are listed first and ended after: in one statement the planner may
        // call pg_terminate_backend before the filter that spares this very session.
        let open: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut c)
        .await
        .map_err(|e| failed(name, e))?;
        let ended: Vec<i32> = sqlx::query_scalar(
            "SELECT p FROM unnest($1::int4[]) AS p WHERE pg_terminate_backend(p)",
        )
        .bind(&open)
        .fetch_all(&mut c)
        .await
        .map_err(|e| failed(name, e))?;
        let after = self.settle(name, work, |s| s.read_only).await?;
        if !after.read_only {
            let _ = c.close().await;
            return Err(Failure::retryable(format!(
                "database `{name}`: a new session is still read-write after the reload"
            )));
        }
        let until = tokio::time::Instant::now() + VERIFY_LIMIT.min(work.time_left());
        loop {
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                    .bind(&ended)
                    .fetch_one(&mut c)
                    .await
                    .map_err(|e| failed(name, e))?;
            if left == 0 {
                break;
            }
            if tokio::time::Instant::now() >= until {
                let _ = c.close().await;
                return Err(Failure::retryable(format!(
                    "database `{name}`: {left} of the sessions it ended are still there"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = c.close().await;
        Ok(match ended.len() {
            0 => format!("{name} is read-only; no other session was open"),
            n => format!("{name} is read-only; ended {n} open sessions"),
        })
    }
}

async fn run(c: &mut PgConnection, name: &str, sql: &str) -> Result<(), Failure> {
    sqlx::query(sql)
        .execute(&mut *c)
        .await
        .map(drop)
        .map_err(|e| failed(name, e))
}

/// A connection that failed: unreachable servers may come back; refused credentials won't.
fn refused(name: &str, e: sqlx::Error) -> Failure {
    match &e {
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("28P01" | "28000")) => {
            Failure::permanent(format!("database `{name}`: login refused: {db}"))
        }
        sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => {
            Failure::permanent(format!("database `{name}`: {db}"))
        }
        _ => Failure::retryable(format!("cannot reach database `{name}`: {e}")),
    }
}

/// A statement that failed: missing rights won't change on a retry; the rest may.
fn failed(name: &str, e: sqlx::Error) -> Failure {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => {
            Failure::permanent(format!(
                "database `{name}`: permission denied ({db}); the role needs superuser or the rights listed in the README"
            ))
        }
        _ => Failure::retryable(format!("database `{name}`: {e}")),
    }
}
