//! A kind of agent only the tests know, to show what adding one takes: this file (its spec,
//! its check, its resource key and its work) and one line,
//! `Registry::builtin().with::<toy::Toy>()`.

use async_trait::async_trait;
use lifeboat::agents::{Agent, Env, Failure, Work};
use lifeboat::workflow::{SpecError, Targets};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToySpec {
    pub word: String,
    #[serde(default = "once")]
    pub times: usize,
    /// A bug, on demand.
    #[serde(default)]
    pub panic: bool,
}

fn once() -> usize {
    1
}

pub struct Toy;

#[async_trait]
impl Agent for Toy {
    const KIND: &'static str = "toy";
    type Spec = ToySpec;

    fn check(spec: &ToySpec, _: &Targets) -> Result<(), SpecError> {
        if spec.word.trim().is_empty() {
            return Err(SpecError::at(&["word"], "say a word"));
        }
        Ok(())
    }

    fn resource(spec: &ToySpec) -> Option<String> {
        Some(format!("toy:{}", spec.word))
    }

    fn build(_: &Env) -> anyhow::Result<Self> {
        Ok(Toy)
    }

    async fn run(&self, spec: ToySpec, work: &Work) -> Result<String, Failure> {
        if work.request.dry_run {
            return Ok(format!("would say {}", spec.word));
        }
        if spec.panic {
            panic!("told to panic at {}", spec.word);
        }
        work.say(format!("saying {} {} times", spec.word, spec.times))
            .await;
        Ok(vec![spec.word.as_str(); spec.times].join(" "))
    }
}
