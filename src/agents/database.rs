//! `database`: switch a database's role, promoting a replica to writer or fencing a writer
//! as a reader. `cluster` names a target under `databases:` in targets.yaml, whose
//! provider does the work.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::agent::{Agent, Env};
use super::providers::capability::{Demote, Method, Promote, Reprotect};
use super::spec_fields::{checked_target, on_target, opt_duration, run_target};
use super::work::{Failure, Work};
use crate::workflow::targets::SIMULATED;
use crate::workflow::{SpecError, TargetKind, Targets};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseRole {
    Writer,
    Reader,
    /// A replica of `source` again: re-protect after a failover.
    Replica,
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
    /// For a promote: a planned switchover from `from` (fenced, then caught up with, then
    /// promoted from), losing nothing.
    #[serde(default)]
    pub switchover: bool,
    /// For `role: replica`: the writer (a database target of the same provider) to
    /// replicate.
    #[serde(default)]
    pub source: Option<String>,
    /// For `role: replica`: `auto` (the default), `rewind` or `clone`.
    #[serde(default)]
    pub method: Option<Method>,
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
            ("switchover", spec.switchover),
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
        let replica_only = [
            ("source", spec.source.is_some()),
            ("method", spec.method.is_some()),
        ];
        if spec.role != DatabaseRole::Replica
            && let Some((field, _)) = replica_only.iter().find(|(_, set)| *set)
        {
            return Err(SpecError::at(
                &[field],
                format!("`{field}` is for a re-protect (`role: replica`)"),
            ));
        }
        if spec.switchover && spec.from.is_none() {
            return Err(SpecError::at(
                &["from"],
                "a switchover needs `from`: the writer to hand over from",
            ));
        }
        if spec.role == DatabaseRole::Replica && spec.source.is_none() {
            return Err(SpecError::at(
                &["source"],
                "a replica needs `source`: the database target it replicates",
            ));
        }
        for (field, other) in [("from", &spec.from), ("source", &spec.source)] {
            let Some(other) = other else { continue };
            let writer = targets
                .get(TargetKind::Database, other)
                .map_err(|m| SpecError::at(&[field], m))?;
            if writer.provider != target.provider {
                return Err(SpecError::at(
                    &[field],
                    format!(
                        "database `{other}` is driven by {}, and `{}` by {}: both must be of one provider",
                        writer.provider, target.name, target.provider
                    ),
                ));
            }
            if writer.name == target.name {
                return Err(SpecError::at(
                    &[field],
                    format!("database `{other}` is the stage's own `cluster`"),
                ));
            }
        }
        Ok(())
    }

    fn target(spec: &DatabaseSpec) -> Option<(TargetKind, String)> {
        use crate::agents::spec_fields::OnTarget;
        Some((DatabaseSpec::KIND, spec.target().to_string()))
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
                    switchover: spec.switchover,
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
            DatabaseRole::Replica => {
                let Some(source) = &spec.source else {
                    return Err(Failure::permanent("a replica needs `source`"));
                };
                let reprotect = Reprotect {
                    source: self
                        .env
                        .targets
                        .get(TargetKind::Database, source)
                        .map_err(Failure::permanent)?
                        .into_owned(),
                    method: spec.method.unwrap_or_default(),
                };
                provider.reprotect(&target, &reprotect, work).await
            }
        }
    }
}
