//! What a provider does for each agent: one trait per capability. Every provider checks
//! its preconditions first, is idempotent (a step already done reports success and changes
//! nothing), honours the attempt's deadline and cancel, says what it does in words a
//! person can follow, and in a dry run says what it would change without changing it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::agents::work::{Failure, Work};
use crate::workflow::{SpecError, Target};

/// A provider of one capability (`P` is its trait): how its targets are checked and how it
/// is built for a target.
pub struct Provider<P: ?Sized> {
    /// What `provider:` in targets.yaml says.
    pub name: &'static str,
    /// Checks a target's fields (all but `provider`).
    pub check: fn(&Value) -> Result<(), SpecError>,
    pub build: fn(&Target) -> Result<Arc<P>, Failure>,
}

impl<P: ?Sized> Clone for Provider<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: ?Sized> Copy for Provider<P> {}

/// Scale a workload up (or down) and wait until it is ready: the capacity agent.
#[async_trait]
pub trait Capacity: Send + Sync {
    async fn scale(&self, target: &Target, scale: &Scale, work: &Work) -> Result<String, Failure>;
}

pub struct Scale {
    pub namespace: String,
    /// A Deployment or StatefulSet; every workload in the namespace when absent.
    pub workload: Option<String>,
    pub replicas: u32,
}

/// Switch a database's role: the database agent.
#[async_trait]
pub trait Database: Send + Sync {
    /// Make it the writer: promote a replica, once it is within `max_lag`.
    async fn promote(
        &self,
        target: &Target,
        promote: &Promote,
        work: &Work,
    ) -> Result<String, Failure>;

    /// Make it a reader: fence a writer so that it takes no more writes.
    async fn demote(
        &self,
        target: &Target,
        demote: &Demote,
        work: &Work,
    ) -> Result<String, Failure>;

    /// Make it a replica of `source` again, after a failover left it behind: re-protect.
    async fn reprotect(
        &self,
        target: &Target,
        reprotect: &Reprotect,
        work: &Work,
    ) -> Result<String, Failure> {
        let _ = (reprotect, work);
        Err(Failure::permanent(format!(
            "database `{}`: the {} provider cannot re-protect it",
            target.name, target.provider
        )))
    }
}

pub struct Reprotect {
    /// The writer it is to replicate.
    pub source: Target,
    pub method: Method,
}

/// How a PostgreSQL server is made a replica again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `pg_rewind` when the server allows it (`wal_log_hints` or data checksums), else a
    /// clone.
    #[default]
    Auto,
    /// `pg_rewind`: only what diverged is copied.
    Rewind,
    /// A fresh `pg_basebackup`; the old data directory is kept beside it.
    Clone,
}

pub struct Demote {
    /// An unreachable writer counts as fenced: in a real region loss the old writer is gone.
    pub unreachable_ok: bool,
}

pub struct Promote {
    /// Refuse while the replica is further behind than this.
    pub max_lag: Option<Duration>,
    /// Stop at a data-loss gate when promoting would lose more writes than this.
    pub max_data_loss: Option<Duration>,
    /// How long to wait for the replica to come within `max_data_loss` first.
    pub catchup: Duration,
    /// The writer it takes over from, to measure the recovery point against.
    pub from: Option<Target>,
    /// `sim` only: the recovery point to report.
    pub simulated_rpo: Option<Duration>,
    /// A planned switchover: fence `from`, wait until this replica has replayed all it
    /// wrote, then promote; nothing is lost.
    pub switchover: bool,
    /// Which member becomes the writer, for targets with several (aurora-global).
    pub member: Option<String>,
    /// Fail over rather than switch over, accepting the loss of unreplicated writes.
    pub allow_data_loss: bool,
}

/// Move traffic to a region and verify the new answer: the dial agent.
#[async_trait]
pub trait Dial: Send + Sync {
    async fn dial(&self, target: &Target, dial: &Move, work: &Work) -> Result<String, Failure>;
}

pub struct Move {
    /// The endpoint's region to answer from.
    pub region: String,
    /// What the endpoint must answer now, by record type, before it is moved: a failback
    /// worked out from a failover expects what that failover left. Empty: no expectation.
    pub expect: indexmap::IndexMap<String, String>,
    /// The record's time to live, when the stage sets one.
    pub ttl: Option<u32>,
}
