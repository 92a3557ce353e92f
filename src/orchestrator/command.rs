//! What the rest of the service asks of the engine, and how a request can fail.

use tokio::sync::oneshot;

use super::machine::{Input, Refusal};
use crate::bus::Progress;
use crate::domain::{Actor, LeaseOutcome, Run, RunId};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("run {0} not found")]
    NotFound(RunId),
    #[error("stage `{0}` not found")]
    UnknownStage(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("the orchestrator could not store the change: {0}")]
    Store(String),
    #[error("the orchestrator is shutting down")]
    Closed,
}

/// Where the engine answers a command: with the run as it stands after the change.
pub type Reply = oneshot::Sender<Result<Run, CommandError>>;

pub enum Command {
    /// A run just inserted by `Orchestrator::create`.
    Start(Box<Run>),
    Apply {
        run: RunId,
        input: Input,
        reply: Option<Reply>,
    },
    /// Approve by stage name, resolved against the run's plan inside the engine.
    Approve {
        run: RunId,
        stage: Option<String>,
        actor: Actor,
        reply: Reply,
    },
    Outcome(LeaseOutcome),
    Progress(Progress),
}
