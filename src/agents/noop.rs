//! Does nothing and succeeds: the benchmark's agent, and a placeholder stage.

use async_trait::async_trait;

use super::{Agent, Failure, Work};

pub struct NoopAgent;

#[async_trait]
impl Agent for NoopAgent {
    fn kind(&self) -> &'static str {
        "noop"
    }

    async fn execute(&self, _work: &Work) -> Result<String, Failure> {
        Ok("done".into())
    }
}
