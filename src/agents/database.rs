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
use crate::workflow::targets::SIMULATED;
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
    /// Stop at a data-loss gate when promoting would lose more writes than this.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_data_loss: Option<Duration>,
    /// The longest to wait for the replica to come within `max_data_loss` first.
    #[serde(default, deserialize_with = "opt_duration")]
    pub catchup: Option<Duration>,
    /// The writer a promote takes over from (a database target of the same provider): the
    /// recovery point is measured against it while it answers.
    #[serde(default)]
    pub from: Option<String>,
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
    /// `sim` only: the recovery point a promote measures.
    #[serde(default, deserialize_with = "opt_duration")]
    pub rpo: Option<Duration>,
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
        let target = checked_target(spec, targets)?;
        if spec.rpo.is_some() && target.provider != SIMULATED {
            return Err(SpecError::at(
                &["rpo"],
                format!(
                    "`rpo` is for simulated targets, and database `{}` is driven by {}",
                    target.name, target.provider
                ),
            ));
        }
        let promote_only = [
            ("max_data_loss", spec.max_data_loss.is_some()),
            ("catchup", spec.catchup.is_some()),
            ("from", spec.from.is_some()),
        ];
        if spec.role != DatabaseRole::Writer
            && let Some((field, _)) = promote_only.iter().find(|(_, set)| *set)
        {
            return Err(SpecError::at(
                &[field],
                format!("`{field}` is for a promote (`role: writer`)"),
            ));
        }
        if let Some(from) = &spec.from {
            let writer = targets
                .get(TargetKind::Database, from)
                .map_err(|m| SpecError::at(&["from"], m))?;
            if writer.provider != target.provider {
                return Err(SpecError::at(
                    &["from"],
                    format!(
                        "database `{from}` is driven by {}, and `{}` by {}: the recovery point is measured between two of one provider",
                        writer.provider, target.name, target.provider
                    ),
                ));
            }
        }
        Ok(())
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
                let from = match &spec.from {
                    Some(name) => Some(
                        self.env
                            .targets
                            .get(TargetKind::Database, name)
                            .map_err(Failure::permanent)?
                            .into_owned(),
                    ),
                    None => None,
                };
                let promote = Promote {
                    max_lag: spec.max_lag,
                    max_data_loss: spec.max_data_loss,
                    catchup: spec.catchup.unwrap_or(Duration::ZERO),
                    from,
                    simulated_rpo: spec.rpo,
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
