//! `capacity`: scale up the passive side and wait until it is ready. `cluster` names a
//! target under `clusters:` in targets.yaml, whose provider does the work.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::agent::{Agent, Env};
use super::providers::capability::Scale;
use super::spec_fields::{checked_target, on_target, opt_duration, run_target};
use super::work::{Failure, Work};
use crate::workflow::{SpecError, TargetKind, Targets};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySpec {
    /// Older workflows named the provider here; targets.yaml says it now, and this must
    /// agree.
    #[serde(default)]
    pub provider: Option<String>,
    pub cluster: String,
    /// Kubernetes (and simulated) clusters scale workloads in a namespace; an Auto Scaling
    /// group has none.
    #[serde(default)]
    pub namespace: Option<String>,
    pub replicas: u32,
    /// Deployment or StatefulSet name; all workloads in the namespace when absent.
    #[serde(default)]
    pub workload: Option<String>,
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

on_target!(CapacitySpec, TargetKind::Cluster, cluster);

/// The provider whose clusters have no namespaces.
const NO_NAMESPACE: &str = "autoscaling";

pub struct Capacity {
    env: Env,
}

#[async_trait]
impl Agent for Capacity {
    const KIND: &'static str = "capacity";
    type Spec = CapacitySpec;

    fn check(spec: &CapacitySpec, targets: &Targets) -> Result<(), SpecError> {
        let target = checked_target(spec, targets)?;
        if spec.namespace.is_none() && target.provider != NO_NAMESPACE {
            return Err(SpecError::at(
                &[],
                format!(
                    "missing field `namespace` (a {} cluster scales workloads in a namespace)",
                    target.provider
                ),
            ));
        }
        Ok(())
    }

    fn target(spec: &CapacitySpec) -> Option<(TargetKind, String)> {
        use crate::agents::spec_fields::OnTarget;
        Some((CapacitySpec::KIND, spec.target().to_string()))
    }

    fn resource(spec: &CapacitySpec) -> Option<String> {
        Some(match &spec.namespace {
            Some(ns) => format!("capacity:{}/{ns}", spec.cluster),
            None => format!("capacity:{}", spec.cluster),
        })
    }

    fn build(env: &Env) -> anyhow::Result<Self> {
        Ok(Capacity { env: env.clone() })
    }

    async fn run(&self, spec: CapacitySpec, work: &Work) -> Result<String, Failure> {
        let target = run_target(&spec, &self.env.targets)?;
        let provider = self.env.providers.capacity(&target)?;
        let scale = Scale {
            namespace: spec.namespace.unwrap_or_default(),
            workload: spec.workload,
            replicas: spec.replicas,
        };
        provider.scale(&target, &scale, work).await
    }
}
