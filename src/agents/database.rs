//! `database`: switch a database's role, promoting a replica to writer or fencing a writer
//! as a reader. `cluster` names a target under `databases:` in targets.yaml, whose
//! provider does the work.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::agent::{Agent, Env};
use super::providers::capability::{Demote, Promote};
use super::spec_fields::{checked_target, on_target, opt_duration, run_target};
use super::work::{Failure, Work};
use crate::workflow::{SpecError, TargetKind, Targets};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseRole {
    Writer,
    Reader,
}

/// What a demote does when it cannot reach the writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unreachable {
    /// Fail, retryably: the writer may be back in a moment.
    #[default]
    Fail,
    /// Treat it as fenced and succeed: in a region loss the old writer is gone.
    Ok,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// Older workflows named the provider here; targets.yaml says it now, and this must
    /// agree.
    #[serde(default)]
    pub provider: Option<String>,
    pub cluster: String,
    pub role: DatabaseRole,
    /// Refuse to promote while the replica is further behind than this.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_lag: Option<Duration>,
    /// aurora-global: the member (a key of the target's `members`) to make the primary.
    #[serde(default)]
    pub member: Option<String>,
    /// aurora-global: fail over (unreplicated writes may be lost) instead of switching over.
    #[serde(default)]
    pub allow_data_loss: bool,
    /// For a demote: what an unreachable writer means.
    #[serde(default)]
    pub unreachable: Unreachable,
    /// `sim` only: fail this many attempts (retryably) before succeeding.
    #[serde(default)]
    pub fail_attempts: u32,
    /// `sim` only: fail every attempt permanently.
    #[serde(default)]
    pub fail_permanently: bool,
    /// `sim` only: how long the simulated work takes.
    #[serde(default, deserialize_with = "opt_duration")]
    pub duration: Option<Duration>,
}

on_target!(DatabaseSpec, TargetKind::Database, cluster);

pub struct Database {
    env: Env,
}

#[async_trait]
impl Agent for Database {
    const KIND: &'static str = "database";
    type Spec = DatabaseSpec;

    fn check(spec: &DatabaseSpec, targets: &Targets) -> Result<(), SpecError> {
        checked_target(spec, targets).map(drop)
    }

    fn resource(spec: &DatabaseSpec) -> Option<String> {
        Some(format!("database:{}", spec.cluster))
    }

    fn build(env: &Env) -> anyhow::Result<Self> {
        Ok(Database { env: env.clone() })
    }

    async fn run(&self, spec: DatabaseSpec, work: &Work) -> Result<String, Failure> {
        let target = run_target(&spec, &self.env.targets)?;
        let provider = self.env.providers.database(&target)?;
        match spec.role {
            DatabaseRole::Writer => {
                let promote = Promote {
                    max_lag: spec.max_lag,
                    member: spec.member.clone(),
                    allow_data_loss: spec.allow_data_loss,
                };
                provider.promote(&target, &promote, work).await
            }
            DatabaseRole::Reader => {
                let demote = Demote {
                    unreachable_ok: spec.unreachable == Unreachable::Ok,
                };
                provider.demote(&target, &demote, work).await
            }
        }
    }
}
