//! The agent kinds a process knows, by name: what validation checks specs against, what
//! planning takes resource keys from, and what the runtime builds agents from.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::agent::{Agent, Env};
use super::providers::Providers;
use super::work::{Failure, Work};
use super::{capacity, database, dial, exec, http, noop, wait};
use crate::workflow::kinds::{self, SpecError, StageKinds};
use crate::workflow::{TargetKind, Targets};

/// An agent kind with its type erased: what the registry keeps of an `Agent`.
#[derive(Clone, Copy)]
pub struct Registration {
    pub kind: &'static str,
    check: fn(&Value, &Targets) -> Result<(), SpecError>,
    resource: fn(&Value) -> Option<String>,
    target: fn(&Value) -> Option<(TargetKind, String)>,
    build: fn(&Env) -> anyhow::Result<Arc<dyn Runner>>,
}

impl Registration {
    pub fn of<A: Agent>() -> Registration {
        Registration {
            kind: A::KIND,
            check: check::<A>,
            resource: resource::<A>,
            target: target::<A>,
            build: build::<A>,
        }
    }

    pub fn build(&self, env: &Env) -> anyhow::Result<Arc<dyn Runner>> {
        (self.build)(env)
    }
}

fn check<A: Agent>(spec: &Value, targets: &Targets) -> Result<(), SpecError> {
    A::check(&kinds::parse::<A::Spec>(spec)?, targets)
}

fn resource<A: Agent>(spec: &Value) -> Option<String> {
    kinds::parse::<A::Spec>(spec)
        .ok()
        .and_then(|s| A::resource(&s))
}

fn target<A: Agent>(spec: &Value) -> Option<(TargetKind, String)> {
    kinds::parse::<A::Spec>(spec)
        .ok()
        .and_then(|s| A::target(&s))
}

fn build<A: Agent>(env: &Env) -> anyhow::Result<Arc<dyn Runner>> {
    Ok(Arc::new(Typed {
        agent: A::build(env)?,
        targets: env.targets.clone(),
    }))
}

/// An agent as the runtime drives it, whatever its spec type.
#[async_trait]
pub trait Runner: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    async fn execute(&self, work: &Work) -> Result<String, Failure>;
}

struct Typed<A> {
    agent: A,
    /// The targets this process knows, which a spec is checked against again.
    targets: Arc<Targets>,
}

#[async_trait]
impl<A: Agent> Runner for Typed<A> {
    fn kind(&self) -> &'static str {
        A::KIND
    }

    /// A request comes off the bus: its spec is checked as validation checked it, and one
    /// that fails (sent by something else, or naming a target this process lacks) fails
    /// the attempt for good, saying where.
    async fn execute(&self, work: &Work) -> Result<String, Failure> {
        let spec: A::Spec = work.spec()?;
        A::check(&spec, &self.targets).map_err(Failure::bad_spec)?;
        self.agent.run(spec, work).await
    }
}

#[derive(Clone, Default)]
pub struct Registry {
    agents: Vec<Registration>,
    providers: Providers,
}

impl Registry {
    /// The agents and providers this build ships.
    pub fn builtin() -> Registry {
        Registry::empty()
            .with::<capacity::Capacity>()
            .with::<database::Database>()
            .with::<dial::Dial>()
            .with::<http::Http>()
            .with::<exec::Exec>()
            .with::<wait::Wait>()
            .with::<noop::Noop>()
    }

    pub fn empty() -> Registry {
        Registry {
            agents: Vec::new(),
            providers: Providers::builtin(),
        }
    }

    /// Adds an agent kind, or replaces the one of the same name.
    pub fn with<A: Agent>(mut self) -> Registry {
        let r = Registration::of::<A>();
        match self.agents.iter_mut().find(|a| a.kind == r.kind) {
            Some(existing) => *existing = r,
            None => self.agents.push(r),
        }
        self
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.agents.iter().map(|a| a.kind).collect()
    }

    pub fn get(&self, kind: &str) -> Option<&Registration> {
        self.agents.iter().find(|a| a.kind == kind)
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// The environment agents of this registry are built with, over these targets.
    pub fn env(&self, targets: Targets) -> Env {
        Env {
            targets: Arc::new(targets),
            providers: Arc::new(self.providers.clone()),
        }
    }

    /// Builds the agents of these kinds (all, when empty) for this process; an unknown
    /// kind is an error that lists the known ones.
    pub fn build(&self, kinds: &[&str], env: &Env) -> anyhow::Result<Vec<Arc<dyn Runner>>> {
        let chosen: Vec<&Registration> = if kinds.is_empty() {
            self.agents.iter().collect()
        } else {
            kinds
                .iter()
                .map(|k| {
                    self.get(k).ok_or_else(|| {
                        anyhow::anyhow!("unknown agent `{k}` (agents: {})", self.kinds().join(", "))
                    })
                })
                .collect::<anyhow::Result<_>>()?
        };
        chosen.into_iter().map(|r| r.build(env)).collect()
    }
}

impl StageKinds for Registry {
    fn agents(&self) -> Vec<&'static str> {
        self.kinds()
    }

    fn check(&self, agent: &str, spec: &Value, targets: &Targets) -> Result<(), SpecError> {
        match self.get(agent) {
            Some(r) => (r.check)(spec, targets),
            None => Err(SpecError::at(&[], format!("unknown agent `{agent}`"))),
        }
    }

    fn resource(&self, agent: &str, spec: &Value) -> Option<String> {
        self.get(agent).and_then(|r| (r.resource)(spec))
    }

    fn target(&self, agent: &str, spec: &Value) -> Option<(TargetKind, String)> {
        self.get(agent).and_then(|r| (r.target)(spec))
    }

    fn providers(&self, kind: TargetKind) -> Vec<&'static str> {
        self.providers.names(kind)
    }

    fn check_target(
        &self,
        kind: TargetKind,
        provider: &str,
        fields: &Value,
    ) -> Result<(), SpecError> {
        self.providers.check(kind, provider, fields)
    }
}
