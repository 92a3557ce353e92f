//! `dial`: move an endpoint's traffic to a region and verify the new answer. `endpoint`
//! names a target under `endpoints:` in targets.yaml, whose provider does the work; the
//! region must be one the endpoint lists when it lists any.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::agent::{Agent, Env};
use super::providers::capability::Move;
use super::spec_fields::{checked_target, on_target, opt_duration, run_target};
use super::work::{Failure, Work};
use crate::workflow::{SpecError, TargetKind, Targets};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialSpec {
    /// Older workflows named the provider here; targets.yaml says it now, and this must
    /// agree.
    #[serde(default)]
    pub provider: Option<String>,
    pub endpoint: String,
    pub region: String,
    #[serde(default)]
    pub ttl: Option<u32>,
    /// What the endpoint answers now, by record type (`{ A: "192.0.2.1" }`), as a failover
    /// left it: a move from anything else is refused as drift.
    #[serde(default)]
    pub expect: indexmap::IndexMap<String, String>,
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

on_target!(DialSpec, TargetKind::Endpoint, endpoint);

pub struct Dial {
    env: Env,
}

#[async_trait]
impl Agent for Dial {
    const KIND: &'static str = "dial";
    type Spec = DialSpec;

    fn check(spec: &DialSpec, targets: &Targets) -> Result<(), SpecError> {
        let target = checked_target(spec, targets)?;
        if let Some(regions) = target.fields.get("regions").and_then(|r| r.as_object())
            && !regions.contains_key(&spec.region)
        {
            let known: Vec<&str> = regions.keys().map(String::as_str).collect();
            return Err(SpecError::at(
                &["region"],
                format!(
                    "endpoint `{}` has no region `{}` in targets.yaml (regions: {})",
                    spec.endpoint,
                    spec.region,
                    known.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn target(spec: &DialSpec) -> Option<(TargetKind, String)> {
        use crate::agents::spec_fields::OnTarget;
        Some((DialSpec::KIND, spec.target().to_string()))
    }

    fn resource(spec: &DialSpec) -> Option<String> {
        Some(format!("dial:{}", spec.endpoint))
    }

    fn build(env: &Env) -> anyhow::Result<Self> {
        Ok(Dial { env: env.clone() })
    }

    async fn run(&self, spec: DialSpec, work: &Work) -> Result<String, Failure> {
        let target = run_target(&spec, &self.env.targets)?;
        let provider = self.env.providers.dial(&target)?;
        let to = Move {
            expect: spec.expect,
            region: spec.region,
            ttl: spec.ttl,
        };
        provider.dial(&target, &to, work).await
    }
}
