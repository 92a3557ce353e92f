//! The store: runs, stages, the audit log and the outbox (`runs`), and leases with their
//! recorded ends (`leases`), on SQLite (the embedded default) or PostgreSQL, chosen by the
//! URL. One code path serves both through sqlx's `Any` driver; the schemas differ only
//! where the databases do (`migrations/sqlite`, `migrations/postgres`).

mod agents;
mod alerts;
mod chat;
mod drills;
mod error;
mod evacuations;
mod exclusive;
mod leases;
mod placeholders;
mod rows;
mod runs;
mod sessions;
mod versions;
mod work;

use anyhow::Context;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use crate::clock::Clock;
use crate::secret::mask_url;

pub use agents::AgentBeat;
pub use alerts::{AlertFilter, AlertRow, AlertTx, Filing};
pub use chat::{CardClaim, CardKey, CardRow, CardStep, HeldLease, Origin, Refusal, RefusalRow};
pub use drills::DrillRow;
pub use error::StoreError;
pub use evacuations::GroupMove;
pub use exclusive::{Holder, LockError, StoreLock};
pub use leases::{Expiring, Release};
pub use runs::{Batch, CreateError, OutboxRow, RunFilter, RunWrite};
pub use sessions::Session;
pub use work::StoredWork;

/// Rows (or ids) per statement: well inside both databases' parameter limits.
const CHUNK: usize = 500;

use placeholders::{Column, holes, typed_values, values};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    pub backend: Backend,
    /// What the rows' times are read from, inside the transactions that write them.
    clock: Clock,
}

impl Store {
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!(
                "unsupported database URL {:?}: use sqlite://PATH or postgres://…",
                mask_url(url)
            );
        };
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') || url.contains(":memory:") {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                // One connection: SQLite has one writer, and queueing here is cheaper than
                // SQLITE_BUSY retries. No transaction ever waits on another query.
                // Checkpoints copy the WAL back and fsync: done by `maintain` when the engine
                // is idle, with the automatic one (at 10,000 pages, ~40 MB) only as a bound.
                AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                                 PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=10000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await
                    .with_context(|| format!("cannot open SQLite database {}", mask_url(&url)))?
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(std::time::Duration::from_secs(5))
                .connect(url)
                .await
                .with_context(|| format!("cannot connect to PostgreSQL at {}", mask_url(url)))?,
        };
        let store = Store {
            pool,
            backend,
            clock: Clock::system(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The same store, dating what it writes by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Store {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await,
        }
        .context("database migration failed")
    }

    /// Housekeeping for quiet moments: on SQLite, a WAL checkpoint, kept out of the commits
    /// that move runs because it ends in an fsync.
    pub async fn maintain(&self) -> anyhow::Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
