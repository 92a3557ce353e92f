//! `noop`: does nothing and succeeds. The benchmark's agent, and a placeholder stage.

use async_trait::async_trait;
use serde::Deserialize;

use super::agent::{Agent, Env};
use super::work::{Failure, Work};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopSpec {}

pub struct Noop;

#[async_trait]
impl Agent for Noop {
    const KIND: &'static str = "noop";
    type Spec = NoopSpec;

    fn build(_: &Env) -> anyhow::Result<Self> {
        Ok(Noop)
    }

    async fn run(&self, _: NoopSpec, _: &Work) -> Result<String, Failure> {
        Ok("done".into())
    }
}
