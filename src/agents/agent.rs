//! What an agent kind is: the spec its stages write, how that spec is checked, which
//! resource its work leases, and the work itself. One file per kind holds all four, and
//! one line in `Registry::builtin` makes it known to validation, planning and the runtime.

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use super::providers::Providers;
use super::work::{Failure, Work};
use crate::workflow::{SpecError, Targets};

#[async_trait]
pub trait Agent: Send + Sync + Sized + 'static {
    /// The name stages use: `agent: exec`.
    const KIND: &'static str;

    /// A stage's `spec`, as this agent reads it. Validation and execution parse the same
    /// type, so a workflow that validates is one the agent can run.
    type Spec: DeserializeOwned + Send + Sync;

    /// Checks what the spec's shape cannot say (a URL parses, a target exists). `targets`
    /// resolves the logical names a spec uses.
    fn check(_spec: &Self::Spec, _targets: &Targets) -> Result<(), SpecError> {
        Ok(())
    }

    /// The lease key the work takes: two stages with one key never run at once. `None`:
    /// the stage's own key, which nothing else contends for.
    fn resource(_spec: &Self::Spec) -> Option<String> {
        None
    }

    /// The target the work acts on, whose provider's and own `limits:` it counts against.
    fn target(_spec: &Self::Spec) -> Option<(crate::workflow::TargetKind, String)> {
        None
    }

    /// Builds the agent once for the process that runs it.
    fn build(env: &Env) -> anyhow::Result<Self>;

    /// Does the work or, in a dry run, checks its preconditions and says what it would
    /// do. `Ok` carries the closing message.
    async fn run(&self, spec: Self::Spec, work: &Work) -> Result<String, Failure>;
}

/// What agents are built with: the estate as this process knows it.
#[derive(Clone, Default)]
pub struct Env {
    /// `targets.yaml`, as this process loaded it.
    pub targets: Arc<Targets>,
    pub providers: Arc<Providers>,
}
