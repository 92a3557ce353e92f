//! Field types that stage specs share.

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::work::Failure;
use crate::workflow::targets::SIMULATED;
use crate::workflow::{SpecError, Target, TargetKind, Targets};

/// A duration written as people write them: `2s`, `10m`, `1h30m`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("bad duration {s:?}: {e}")))
}

pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A spec of an agent that works on a target: capacity, database and dial. Besides the
/// field that names the target, each such spec carries the same few fields (a provider
/// named by older workflows, failure injection for simulated targets), written out in
/// each spec because serde's `deny_unknown_fields` cannot take them flattened.
pub trait OnTarget {
    /// The section of targets.yaml the target is in.
    const KIND: TargetKind;
    /// The spec field that names it.
    const FIELD: &'static str;
    fn target(&self) -> &str;
    fn provider(&self) -> Option<&str>;
    /// `fail_attempts`, `fail_permanently`, `duration`.
    fn injected(&self) -> (u32, bool, Option<Duration>);
}

/// Implements `OnTarget` for a spec from the name of its target field.
macro_rules! on_target {
    ($spec:ty, $kind:expr, $field:ident) => {
        impl $crate::agents::spec_fields::OnTarget for $spec {
            const KIND: $crate::workflow::TargetKind = $kind;
            const FIELD: &'static str = stringify!($field);
            fn target(&self) -> &str {
                &self.$field
            }
            fn provider(&self) -> Option<&str> {
                self.provider.as_deref()
            }
            fn injected(&self) -> (u32, bool, Option<std::time::Duration>) {
                (self.fail_attempts, self.fail_permanently, self.duration)
            }
        }
    };
}
pub(crate) use on_target;

/// The target a spec names, as validation checks it: it is in targets.yaml (or simulated,
/// without one), a provider the spec names is its own, and failure injection asks only
/// a simulated one.
pub fn checked_target<'t, S: OnTarget>(
    spec: &S,
    targets: &'t Targets,
) -> Result<Cow<'t, Target>, SpecError> {
    let target = targets
        .get(S::KIND, spec.target())
        .map_err(|m| SpecError::at(&[S::FIELD], m))?;
    named_provider(&target, spec.provider())?;
    let (fail_attempts, fail_permanently, duration) = spec.injected();
    simulation_only(&target, fail_attempts, fail_permanently, duration)?;
    Ok(target)
}

/// The target of a spec at run time. The runtime checked the spec against this process's
/// targets before the work began, so one that is missing now fails the attempt for good.
pub fn run_target<'t, S: OnTarget>(
    spec: &S,
    targets: &'t Targets,
) -> Result<Cow<'t, Target>, Failure> {
    targets
        .get(S::KIND, spec.target())
        .map_err(Failure::permanent)
}

/// Workflows written before targets.yaml named the provider in the spec (`provider: sim`).
/// It is accepted still, and must agree with the target's.
pub fn named_provider(target: &Target, named: Option<&str>) -> Result<(), SpecError> {
    match named {
        Some(p) if p != target.provider => Err(SpecError::at(
            &["provider"],
            format!(
                "{} `{}` is driven by {}, not {p}: targets.yaml chooses the provider",
                target.kind, target.name, target.provider
            ),
        )),
        _ => Ok(()),
    }
}

/// Failure injection (`fail_attempts`, `fail_permanently`, `duration`) is for simulated
/// targets; on a real one it would be ignored, so a stage that asks for it is refused.
pub fn simulation_only(
    target: &Target,
    fail_attempts: u32,
    fail_permanently: bool,
    duration: Option<Duration>,
) -> Result<(), SpecError> {
    if target.provider == SIMULATED {
        return Ok(());
    }
    let asked = [
        ("fail_attempts", fail_attempts > 0),
        ("fail_permanently", fail_permanently),
        ("duration", duration.is_some()),
    ];
    match asked.iter().find(|(_, set)| *set) {
        None => Ok(()),
        Some((field, _)) => Err(SpecError::at(
            &[field],
            format!(
                "`{field}` is for simulated targets, and {} `{}` is driven by {}",
                target.kind, target.name, target.provider
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::TargetKind;
    use crate::workflow::source::Pos;

    fn target(provider: &str) -> Target {
        Target {
            name: "k8s-a".into(),
            kind: TargetKind::Cluster,
            provider: provider.into(),
            fields: serde_json::json!({}),
            pos: Pos::default(),
        }
    }

    #[test]
    fn failure_injection_is_refused_on_a_real_target() {
        assert!(simulation_only(&target("sim"), 2, true, None).is_ok());
        assert!(simulation_only(&target("kubernetes"), 0, false, None).is_ok());
        let refused = simulation_only(&target("kubernetes"), 2, false, None).expect_err("real");
        assert_eq!(refused.field(), "fail_attempts");
        assert_eq!(
            refused.message,
            "`fail_attempts` is for simulated targets, and cluster `k8s-a` is driven by kubernetes"
        );
        let refused = simulation_only(
            &target("kubernetes"),
            0,
            false,
            Some(Duration::from_secs(1)),
        )
        .expect_err("real");
        assert_eq!(refused.field(), "duration");
    }

    #[test]
    fn a_provider_named_in_a_spec_must_be_the_targets() {
        assert!(named_provider(&target("sim"), Some("sim")).is_ok());
        assert!(named_provider(&target("sim"), None).is_ok());
        let refused = named_provider(&target("sim"), Some("kubernetes")).expect_err("differs");
        assert_eq!(refused.field(), "provider");
        assert!(
            refused.message.contains("driven by sim"),
            "{}",
            refused.message
        );
    }
}
